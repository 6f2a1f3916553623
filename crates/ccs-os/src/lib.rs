//! Operating-system layer of agent-coherence.
//!
//! Everything the coherence protocol needs from the kernel, and nothing more:
//!
//! - [`Location`]: where a segment lives (a POSIX shared-memory name or a file path), and
//!   [`Access`], what an opener accepts (symbolic links never, another user's file on request);
//! - [`Mapping`]: a shared, read-write mapping of a whole segment, exposed only as a raw base
//!   pointer and a length (shared memory is data, never `&[u8]`);
//! - [`LockFile`]: Linux open-file-description byte-range locks, which the kernel releases the
//!   moment the holding process dies;
//! - [`futex_wait`] / [`futex_wake`]: process-shared futexes on words inside a segment;
//! - [`monotonic_ns`], [`current_pid`], [`process_exists`]: clocks and process identity.
//!
//! Linux only. `unsafe` is denied at the crate root and re-allowed only in [`lock`] (the
//! `fcntl` byte-range lock calls, which neither rustix nor std cover).
//!
//! ```
//! let loc = ccs_os::Location::parse("team-42")?;
//! assert_eq!(loc.display_name(), "team-42");
//! # Ok::<(), ccs_os::OsError>(())
//! ```
#![deny(unsafe_code)]
#![cfg(target_os = "linux")]

pub mod clock;
pub mod error;
pub mod futex;
pub mod location;
pub mod lock;
pub mod mapping;

pub use clock::{current_pid, monotonic_ns, process_exists};
pub use error::OsError;
pub use futex::{WaitOutcome, futex_wait, futex_wake};
pub use location::{Access, Location};
pub use lock::LockFile;
pub use mapping::{Mapping, destroy};

#[cfg(test)]
pub(crate) mod testutil;

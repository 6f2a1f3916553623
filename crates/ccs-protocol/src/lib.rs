//! The shared-memory layout and lock-free algorithms of agent-coherence: a MESI directory of
//! per-(agent, artifact) coherence states, after the directory-based cache-coherence protocols
//! of multiprocessors (Censier & Feautrier 1978; MESI: Papamarcos & Patel 1984), applied to the
//! artifacts that AI agents share.
//!
//! This crate makes no system calls: it sees a segment as [`Words`] (atomics only) and reaches
//! the operating system through the [`Env`] trait. Under `cfg(loom)` every atomic is loom's
//! (see `sync`), so the models in `tests/loom.rs` check the real code.
//!
//! ```
//! use ccs_protocol::{Condition, Config, Directory, HeapWords, Geometry, testing::MemEnv};
//!
//! let config = Config { max_agents: 4, max_artifacts: 8, arena_bytes: 1 << 16, max_payload: 1024,
//!                        write_lease_ms: 1000, log_records: 64, inbox_events: 16 };
//! let heap = HeapWords::new(Geometry::new(config)?.total_bytes as usize);
//! let dir = Directory::create_on_heap(heap, config, MemEnv::new(4))?;
//! let planner = dir.begin_attach(dir.register_agent("planner")?, 1)?;
//! let executor = dir.begin_attach(dir.register_agent("executor")?, 2)?;
//! let spec = dir.find_or_insert_key("task/spec")?;
//!
//! dir.put(planner, spec, b"v1", Condition::View)?;
//! let mut buf = Vec::new();
//! assert!(!dir.read(executor, spec, &mut buf)?.hit);          // MISS: first read
//! assert!(dir.read(executor, spec, &mut buf)?.hit);           // HIT: still current
//! dir.put(planner, spec, b"v2", Condition::View)?;            // invalidates the executor
//! assert!(!dir.check(executor, spec)?.valid);
//! dir.put(executor, spec, b"stale", Condition::View).unwrap_err(); // Conflict { current: 2, yours: 1 }
//! # Ok::<(), ccs_protocol::ProtocolError>(())
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod agents;
mod alloc;
mod arena;
mod directory;
mod env;
mod error;
mod free_list;
mod freshness;
#[cfg(not(loom))]
mod fsck;
#[cfg(not(loom))]
#[doc(hidden)]
pub mod fuzzing;
mod ghosts;
mod inbox;
mod keys;
mod layout;
/// The log's operation names live in `ccs-types`, shared with every backend's log; this crate
/// stores their codes.
mod opcodes {
    pub(crate) use ccs_types::{LogOp, LogOutcome, WriteMode};
}
mod oplog;
mod packing;
mod read;
mod records;
mod spare;
mod status;
pub mod sync;
pub mod testing;
mod wait;
mod words;
mod write;

pub use agents::{DROPPED_VIEW, SlotState, validate_name};
pub use ccs_types::{LogOp, LogOutcome, Mesi, WriteMode};
pub use directory::{AgentId, Directory, Switches};
pub use env::Env;
pub use error::{ProtocolError, Result, capacity_remedy};
pub use freshness::Strategy;
#[cfg(not(loom))]
pub use fsck::{ArenaUsage, DescriptorUsage, FsckKind, FsckProblem, FsckReport};
pub use inbox::{ChangeEvent, Delivery};
pub use keys::{LineRef, validate_key, version_of_key};
pub use layout::{
    Config, Geometry, LAYOUT_VERSION, MAGIC, MAX_AGENTS_LIMIT, MAX_INBOX_EVENTS, MAX_KEY_BYTES,
    MAX_LOG_RECORDS, MAX_NAME_BYTES, MAX_SUBSCRIPTIONS,
};
pub use oplog::{LogEntry, RawRecord, RecordRead};
pub use read::{Pinned, ReadInfo, ViewCheck};
#[doc(hidden)]
pub use records::KillPoint;
pub use status::{AgentRow, ArtifactRow, Cell};
pub use wait::WaitResult;
pub use words::{HeapWords, Words};
pub use write::{Condition, Hold, StopAt};

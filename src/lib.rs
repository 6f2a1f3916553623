//! agent-coherence: keep AI agents that run as separate processes on one machine coherent on
//! the artifacts they share, by applying the CPU's MESI cache-coherence protocol to those
//! artifacts in a shared-memory segment.
//!
//! When one agent writes version 2 of a plan while another still works from version 1, the
//! second would commit stale work and nothing would error. Here, a writer invalidates every
//! peer's copy before its write returns; a peer's next read is a MISS and fetches the current
//! version; and a write from a stale view is refused with a typed [`Error::Conflict`].
//!
//! ```
//! use agent_coherence::{Config, Conflict, Error, Segment};
//! # let name = format!("doc-lib-{}", std::process::id());
//! let seg = Segment::open_or_create(&name, Config::default())?;
//! let planner = seg.attach("planner")?;
//! let executor = seg.attach("executor")?;           // usually another process
//!
//! planner.put("task/spec", b"rename foo to bar")?;
//! let spec = executor.get("task/spec")?;            // MISS, version 1
//! assert!(executor.get("task/spec")?.hit);          // HIT: a few atomic loads
//! planner.put_if("task/spec", spec.version, b"rename foo to baz")?;
//! let refused = executor.put("task/notes/1", b"ok").and(executor.put("task/spec", b"done, per v1"));
//! assert!(matches!(refused, Err(Error::Conflict(Conflict { current: 2, yours: 1, .. }))));
//! # drop((planner, executor, seg));
//! # Segment::destroy(&name)?;
//! # Ok::<(), Error>(())
//! ```
//!
//! The same API runs on an etcd cluster, for agents on many machines: open the segment at
//! `etcd://host1:2379,host2:2379/prefix` instead of a name or path ([`Backend`];
//! `docs/backends.md` lists the few differences and the shared-memory-only operations).
//!
//! The layers: this crate is the facade, one `match` per call over the backends side by side
//! in `backend/` (no `unsafe` but in `backend/shm`: viewing the mapping as atomic words, and
//! the zero-copy lend of a pinned slot); `ccs-types` the values every backend speaks;
//! `ccs-protocol` the shared-memory layout and lock-free algorithms (loom-checked); `ccs-os`
//! the mapping, kernel-released locks and futexes; `ccs-etcd` the engine on etcd. See
//! `docs/architecture.md`, `docs/protocol.md`, `docs/layout.md` and `docs/protocol-etcd.md`.

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod agent;
mod backend;
mod error;
mod events;
mod guard;
mod segment;
mod status;
pub mod trace;

pub use agent::{Agent, ArtifactRef, Cached, Key};
pub use ccs_protocol::{ArenaUsage, DescriptorUsage, FsckKind, FsckProblem};
pub use ccs_protocol::{Config, MAX_AGENTS_LIMIT, MAX_KEY_BYTES, MAX_NAME_BYTES};
/// The values every backend speaks, defined once in `ccs-types`.
pub use ccs_types::{
    AgentState, ArtifactStatus, ChangeEvent, Check, Events, Mesi, Read, Strategy, Version,
};
/// The refusals every backend shares, carried by [`Error`]'s variants of the same names.
pub use ccs_types::{Conflict, Fenced, Held, LeaseLost, NotFound};
pub use error::{Error, Result};
pub use guard::{ReadGuard, WriteGuard};
pub use segment::{Backend, DEFAULT_MODE, FsckReport, OpenOptions, Segment, Switches};
pub use status::{AgentSlot, AgentStatus, Status};

//! agent-coherence on an etcd cluster: the MESI directory for agents spread over many hosts.
//!
//! etcd does consensus (Raft); this crate does coherence on top of it, with the semantics of
//! the shared-memory engine (`docs/protocol.md`): per-artifact versions (+1 per write, kept
//! across delete and re-create), conditional writes refused with a typed conflict, exclusive
//! holds with leases and fencing, and **no stale HIT once a write has returned**, across hosts.
//! A HIT is served from the agent's own process with no round trip.
//!
//! The protocol is a directory protocol (Censier & Feautrier, "A new solution to coherence
//! problems in multicache systems", 1978) whose directory lives in etcd: a copy is a
//! registration key under the reader's session lease, a write is one etcd transaction that
//! reads the registrations at its own revision, and it returns once each stale holder has
//! acknowledged over its watch, or its lease is gone. Local HITs rely on a lease deadline
//! computed from the time the last keepalive was *sent* (Gray & Cheriton, "Leases", 1989;
//! Burrows, "The Chubby lock service", 2006). `docs/protocol-etcd.md` has the full protocol,
//! its invariants, the clock assumption and measured numbers.
//!
//! Every operation is recorded in an operation log (the shared-memory engine's records, plus
//! the etcd revision): buffered in the agent's process, flushed to the cluster in the
//! background, read with [`Cluster::log_records`] and [`Cluster::log_follow`]
//! (`docs/protocol-etcd.md` §7).
//!
//! ```no_run
//! use ccs_etcd::{Cluster, Condition};
//! let cluster = Cluster::connect("etcd://127.0.0.1:2379/team-42")?;
//! let planner = cluster.attach("planner")?;
//! let executor = cluster.attach("executor")?;
//! planner.put("task/spec", b"v1", Condition::View)?;
//! assert!(!executor.get("task/spec")?.hit);              // MISS: fetched, registered
//! assert!(executor.get("task/spec")?.hit);               // HIT: local, no round trip
//! planner.put("task/spec", b"v2", Condition::View)?;     // returns after executor's ack
//! assert!(!executor.get("task/spec")?.hit);              // MISS again
//! # Ok::<(), ccs_etcd::Error>(())
//! ```

mod agent;
mod cluster;
mod error;
mod hold;
mod invalidate;
pub mod layout;
mod net;
mod oplog;
mod read;
mod session;
mod state;
mod types;
pub mod url;
mod wait;
mod watcher;
mod write;

pub use agent::EtcdAgent;
pub use ccs_types::{Conflict, Fenced, Held, LeaseLost, NotFound};
pub use cluster::Cluster;
pub use error::{Error, Result};
pub use net::{MAX_LOG_RECORDS, Options};
pub use oplog::{LogBatch, LogFollower, LogOp, LogOutcome, LogRecord, WriteMode, merge_order};
pub use types::{
    AgentState, AgentStatus, ArtifactStatus, ChangeEvent, Check, Condition, Events, Hold, Mesi,
    Read, Status, Strategy, Version, WaitResult, WriteStats,
};

//! The operation log on etcd: every agent operation is recorded (as on shared memory,
//! `docs/observability.md`), buffered in the agent's process and flushed to the cluster by a
//! background task, under `l/<agent>\0<seq>`; readers merge the agents' records.
//!
//! * `buffer`: the agent's in-process buffer (runs of HITs counted in memory, drops counted);
//! * `ship`: the background flusher (batched transactions, a ring of the newest records);
//! * `wire`: the record's encoding in etcd (JSON, validated on read);
//! * `follow`: reading (everything at once, or a follower that returns what is new), in the
//!   readers' order (`ccs_types::merge_order`).

mod buffer;
mod follow;
pub(crate) mod ship;
mod wire;

pub use ccs_types::{LogBatch, LogOp, LogOutcome, LogRecord, WriteMode, merge_order};
pub use follow::LogFollower;

pub(crate) use buffer::LogBuf;

use crate::error::Error;
use crate::types::{Condition, Version};
use ccs_types::{Conflict, Held};

/// A record as the agent's process holds it (its agent is the buffer's owner).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rec {
    pub(crate) seq: u64,
    /// 0: stamp when buffered.
    pub(crate) t_ns: u64,
    pub(crate) op: LogOp,
    pub(crate) outcome: LogOutcome,
    pub(crate) key: Option<String>,
    pub(crate) version: Version,
    pub(crate) held: Version,
    pub(crate) count: u64,
    pub(crate) bytes: u64,
    pub(crate) other: Option<String>,
    pub(crate) mode: Option<WriteMode>,
    pub(crate) rev: Option<u64>,
}

impl Rec {
    pub(crate) fn new(op: LogOp, outcome: LogOutcome) -> Rec {
        Rec {
            seq: 0,
            t_ns: 0,
            op,
            outcome,
            key: None,
            version: 0,
            held: 0,
            count: 1,
            bytes: 0,
            other: None,
            mode: None,
            rev: None,
        }
    }

    /// On artifact `key`.
    pub(crate) fn on(self, key: &str) -> Rec {
        Rec {
            key: Some(key.to_owned()),
            ..self
        }
    }

    pub(crate) fn versions(self, version: Version, held: Version) -> Rec {
        Rec {
            version,
            held,
            ..self
        }
    }

    /// At etcd revision `rev` (ignored unless positive).
    pub(crate) fn at(self, rev: i64) -> Rec {
        Rec {
            rev: u64::try_from(rev).ok().filter(|r| *r > 0),
            ..self
        }
    }

    /// This record as refused by `error` (the shared-memory engine's rules: a conflict names
    /// the current version and the writer's; other refusals have version 0).
    pub(crate) fn refused(self, held: Version, error: &Error) -> Rec {
        let rec = self.versions(0, held);
        match error {
            Error::Conflict(Conflict { current, yours, .. }) => Rec {
                outcome: LogOutcome::Conflict,
                ..rec.versions(*current, *yours)
            },
            Error::Held(Held { by, .. }) => Rec {
                outcome: LogOutcome::Held,
                other: Some(by.clone()),
                ..rec
            },
            Error::Fenced { .. } => Rec {
                outcome: LogOutcome::Fenced,
                ..rec
            },
            Error::NotFound { .. } => Rec {
                outcome: LogOutcome::NotFound,
                ..rec
            },
            _ => Rec {
                outcome: LogOutcome::Error,
                ..rec
            },
        }
    }

    pub(crate) fn into_record(self, agent: &str) -> LogRecord {
        LogRecord {
            seq: self.seq,
            t_ns: self.t_ns,
            agent: agent.to_owned(),
            op: self.op,
            outcome: self.outcome,
            key: self.key,
            version: self.version,
            held: self.held,
            count: self.count,
            bytes: self.bytes,
            other: self.other,
            mode: self.mode,
            revision: self.rev,
        }
    }
}

/// The log's name for a write condition.
pub(crate) fn mode_of(cond: Condition) -> WriteMode {
    match cond {
        Condition::View => WriteMode::View,
        Condition::Version(_) => WriteMode::If,
        Condition::Blind => WriteMode::Blind,
    }
}

/// `CLOCK_REALTIME` in nanoseconds since the Unix epoch (0 before it).
pub(crate) fn realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

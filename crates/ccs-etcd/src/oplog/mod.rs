//! The operation log on etcd: every agent operation is recorded (as on shared memory,
//! `docs/observability.md`), buffered in the agent's process and flushed to the cluster by a
//! background task, under `l/<agent>\0<seq>`; readers merge the agents' records.
//!
//! * `buffer`: the agent's in-process buffer (runs of HITs counted in memory, drops counted);
//! * `ship`: the background flusher (batched transactions, a ring of the newest records);
//! * `wire`: the record's encoding in etcd (JSON, validated on read);
//! * `follow`: reading (everything at once, or a follower that returns what is new), in the
//!   readers' order (`ccs_protocol::merge_order`).

mod buffer;
mod follow;
pub(crate) mod ship;
mod wire;

pub use ccs_protocol::merge_order;
pub use ccs_protocol::{LogOp, LogOutcome, WriteMode};
pub use follow::{LogBatch, LogFollower};

pub(crate) use buffer::LogBuf;

use crate::error::Error;
use crate::types::{Condition, Version};

/// One operation as the log holds it, decoded. The fields are those of the shared-memory
/// engine's records (the facade's `LogRecord`), with versions as this engine's `u64` and the
/// etcd revision of the operation where it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The agent's own sequence number for this record: 0, 1, 2, ... in the order the agent
    /// made them (it continues across attaches of the same name). A gap means records were
    /// lost (overwritten in the ring before they were read).
    pub seq: u64,
    /// When, in `CLOCK_REALTIME` nanoseconds of the agent's host (never decreasing within one
    /// agent's process). Across hosts, only as good as their clock synchronisation: readers
    /// order the writes of one key by [`LogRecord::revision`] instead.
    pub t_ns: u64,
    /// The agent's name.
    pub agent: String,
    /// What it did.
    pub op: LogOp,
    /// How it ended.
    pub outcome: LogOutcome,
    /// The artifact, if the operation had one.
    pub key: Option<String>,
    /// The version involved: returned by a read, created by a write, or the current version
    /// that refused a write (0 for other refusals).
    pub version: Version,
    /// The version the agent held before the operation (its view; for `put_if`, the version
    /// it named; for holds, the version at acquire); 0 if none.
    pub held: Version,
    /// How many identical operations this record stands for: consecutive HITs of one agent on
    /// one version share one record; 1 otherwise; for `Lost`, the records lost.
    pub count: u64,
    /// Payload bytes read or written by one of those operations.
    pub bytes: u64,
    /// The other agent involved: the holder that refused the operation (`held`) or whose hold
    /// was taken (`reclaim`).
    pub other: Option<String>,
    /// For writes, the condition they were made under.
    pub mode: Option<WriteMode>,
    /// The etcd revision of the operation, where there is one: a successful write's (exact
    /// and global: the writes of one key are in revision order), a MISS's read revision, a
    /// hold operation's, a refusal decided by a transaction's, an attach's session's. `None`
    /// for HITs, `detach`, `lost` and refusals decided on the local copy.
    pub revision: Option<u64>,
}

impl LogRecord {
    /// Whether this record is a write that created a version (`put`, `delete` or `commit`
    /// that succeeded).
    pub fn is_successful_write(&self) -> bool {
        matches!(self.op, LogOp::Put | LogOp::Delete | LogOp::Commit)
            && self.outcome == LogOutcome::Ok
    }
}

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
            Error::Conflict { current, yours, .. } => Rec {
                outcome: LogOutcome::Conflict,
                ..rec.versions(*current, *yours)
            },
            Error::Held { by, .. } => Rec {
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

impl ccs_protocol::Mergeable for LogRecord {
    fn agent(&self) -> &str {
        &self.agent
    }

    fn seq(&self) -> u64 {
        self.seq
    }

    fn t_ns(&self) -> u64 {
        self.t_ns
    }

    fn is_lost(&self) -> bool {
        self.op == LogOp::Lost
    }

    fn write_revision(&self) -> Option<(&str, u64)> {
        match (self.is_successful_write(), &self.key, self.revision) {
            (true, Some(key), Some(revision)) => Some((key, revision)),
            _ => None,
        }
    }
}

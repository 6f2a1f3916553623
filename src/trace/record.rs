//! One operation as the log holds it, decoded: what `ccs watch`, `ccs log`, `ccs diagnose` and
//! `ccs stats` work on, whether it came from a live segment or from a `trace.jsonl` file.

use std::fmt;

/// What an agent did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogOp {
    /// The agent attached (key: none).
    Attach,
    /// The agent detached (key: none).
    Detach,
    /// A read: outcome `Hit`, `Miss` or `NotFound`.
    Get,
    /// A write of a payload (plain, conditional or blind: see [`WriteMode`]).
    Put,
    /// A delete (a tombstone version).
    Delete,
    /// Taking a line for a read-modify-write (acquire).
    Acquire,
    /// Publishing under a hold taken by `Acquire`.
    Commit,
    /// Giving a hold up without writing.
    Release,
    /// Extending a hold's lease.
    Renew,
    /// Taking a dead or expired holder's line: `agent` is the reclaimer, `other` the holder.
    Reclaim,
    /// Not an operation: records of `agent` were overwritten before they were read;
    /// `count` says how many.
    Lost,
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogOutcome {
    /// Done.
    Ok,
    /// A read served from the agent's current copy.
    Hit,
    /// A read that had to fetch the current version.
    Miss,
    /// A read of an artifact that does not exist (never written, or deleted).
    NotFound,
    /// A conditional write refused: the writer's view (`held`) is not the current version
    /// (`version`).
    Conflict,
    /// Refused: another agent (`other`) holds the line.
    Held,
    /// Refused: the agent's hold was reclaimed (fenced) before this operation.
    Fenced,
    /// Failed for another reason (capacity, corruption, ...).
    Error,
}

/// The condition a write was made under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WriteMode {
    /// Conditional on the writer's own view (`put`, `delete`, `commit`).
    View,
    /// Conditional on a version the caller named (`put_if`); `held` is that version.
    If,
    /// Unconditional (`put_blind`): may overwrite versions the writer never saw.
    Blind,
}

/// One decoded log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The agent's own sequence number for this record (records of one agent are numbered
    /// 0, 1, 2, ... in the order it made them; there is no global counter to contend on).
    pub seq: u64,
    /// When, in `CLOCK_MONOTONIC` nanoseconds (one clock for every process on the machine).
    /// A write's time is taken while the writer holds the line, so the writes of one key are
    /// in version order by time.
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
    /// that refused a write.
    pub version: u32,
    /// The version the agent held before the operation (its view; for `put_if`, the version
    /// it named); 0 if it held none.
    pub held: u32,
    /// How many identical operations this record stands for: consecutive HITs of one agent on
    /// one version are counted in one record; 1 otherwise (for `Lost`, the records missed).
    pub count: u64,
    /// Payload bytes read or written by one of those operations.
    pub bytes: u64,
    /// The other agent involved: the holder that refused a write or was reclaimed.
    pub other: Option<String>,
    /// For writes, the condition they were made under.
    pub mode: Option<WriteMode>,
}

macro_rules! names {
    ($ty:ty { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$(<$ty>::$variant),*];

            /// The lowercase name used in traces and on screen.
            pub fn name(self) -> &'static str {
                match self { $(<$ty>::$variant => $name),* }
            }

            /// Parse a name written by [`Self::name`].
            pub fn from_name(name: &str) -> Option<$ty> {
                match name { $($name => Some(<$ty>::$variant),)* _ => None }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

names!(LogOp {
    Attach => "attach", Detach => "detach", Get => "get", Put => "put", Delete => "delete",
    Acquire => "acquire", Commit => "commit", Release => "release", Renew => "renew",
    Reclaim => "reclaim", Lost => "lost",
});

names!(LogOutcome {
    Ok => "ok", Hit => "hit", Miss => "miss", NotFound => "not_found", Conflict => "conflict",
    Held => "held", Fenced => "fenced", Error => "error",
});

names!(WriteMode { View => "view", If => "if", Blind => "blind" });

impl LogRecord {
    /// Whether this record is a write that created a version (`put`, `delete` or `commit`
    /// that succeeded).
    pub fn is_successful_write(&self) -> bool {
        matches!(self.op, LogOp::Put | LogOp::Delete | LogOp::Commit) && self.outcome == LogOutcome::Ok
    }
}

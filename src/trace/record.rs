//! One operation as the log holds it, decoded: what `ccs watch`, `ccs log`, `ccs diagnose` and
//! `ccs stats` work on, whether it came from a live segment or from a `trace.jsonl` file.

pub use ccs_protocol::{LogOp, LogOutcome, WriteMode};

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

impl LogRecord {
    /// Whether this record is a write that created a version (`put`, `delete` or `commit`
    /// that succeeded).
    pub fn is_successful_write(&self) -> bool {
        matches!(self.op, LogOp::Put | LogOp::Delete | LogOp::Commit)
            && self.outcome == LogOutcome::Ok
    }
}

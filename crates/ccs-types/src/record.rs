//! One operation as the log holds it, decoded: what `ccs watch`, `ccs log`, `ccs diagnose` and
//! `ccs stats` work on, whether it came from a live segment (on either backend) or from a
//! `trace.jsonl` file.

use std::fmt::Write as _;

use crate::Version;
use crate::opcodes::{LogOp, LogOutcome, WriteMode};

/// One decoded log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The agent's own sequence number for this record (records of one agent are numbered
    /// 0, 1, 2, ... in the order it made them; there is no global counter to contend on).
    pub seq: u64,
    /// When: on shared memory, in `CLOCK_MONOTONIC` nanoseconds (one clock for every process
    /// on the machine), a write's time taken while the writer holds the line, so the writes of
    /// one key are in version order by time; on etcd, in `CLOCK_REALTIME` nanoseconds of the
    /// agent's host, the writes of one key ordered by [`LogRecord::revision`] instead.
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
    /// it named; for holds, the version at acquire); 0 if it held none.
    pub held: Version,
    /// How many identical operations this record stands for: consecutive HITs of one agent on
    /// one version are counted in one record; 1 otherwise (for `Lost`, the records missed).
    pub count: u64,
    /// Payload bytes read or written by one of those operations.
    pub bytes: u64,
    /// The other agent involved: the holder that refused a write or was reclaimed.
    pub other: Option<String>,
    /// For writes, the condition they were made under.
    pub mode: Option<WriteMode>,
    /// The etcd revision of the operation, where the engine has one (a write's; a MISS's read
    /// revision): one key's writes are exactly ordered by it. `None` on shared memory, whose
    /// write times are already exact per key.
    pub revision: Option<u64>,
}

/// What one poll of a log reader found (on either backend).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogBatch {
    /// New records in the readers' order ([`crate::merge_order`]; on shared memory, by time,
    /// then agent, then seq). A run of HITs returned earlier that has grown since comes again
    /// with its `seq` and the additional `count`. Gaps come as [`LogOp::Lost`] records.
    pub records: Vec<LogRecord>,
    /// Records overwritten before they were read, in all (on etcd, the sum of the `lost`
    /// records' counts the reader made; `lost` records agents wrote for their own drops are
    /// among `records`).
    pub missed: u64,
    /// Values in the log that were not valid records, skipped (etcd; always 0 on shared
    /// memory, where a record that fails validation is an error).
    pub malformed: u64,
}

impl LogRecord {
    /// Whether this record is a write that created a version (`put`, `delete` or `commit`
    /// that succeeded).
    pub fn is_successful_write(&self) -> bool {
        matches!(self.op, LogOp::Put | LogOp::Delete | LogOp::Commit)
            && self.outcome == LogOutcome::Ok
    }

    /// This record on one line, times relative to `t0_ns`, as `ccs watch` prints it:
    ///
    /// ```text
    /// [t+0.000412] [MISS]      get     agent=executor key=task/spec v2 (held v1)
    /// [t+0.000977] [OK]        put     agent=reviewer key=task/spec v3 (held v1) mode=blind
    /// [t+0.001200] [HELD]      acquire agent=executor key=plan v4 other=planner
    /// [t+0.001302] [HIT]       get     agent=executor key=task/spec v2 (held v2) ×40
    /// ```
    ///
    /// The outcome in brackets, upper case, padded to the longest (`[NOT_FOUND]`); the op padded
    /// to the longest (`acquire`); `vN` (the version) when there is a key; `(held vN)` when the
    /// agent held a version; `mode=` for writes not conditional on the writer's view; `other=`
    /// when set; `rev=` when the record has an etcd revision; `×N` when the record stands for
    /// more than one operation.
    pub fn line(&self, t0_ns: u64) -> String {
        let record = self;
        let outcome = format!("[{}]", record.outcome.name().to_uppercase());
        let mut line = format!(
            "[{}] {outcome:<11} {:<7} agent={}",
            format_offset(record.t_ns, t0_ns),
            record.op.name(),
            record.agent
        );
        if let Some(key) = &record.key {
            let _ = write!(line, " key={key} v{}", record.version);
        }
        if record.held > 0 {
            let _ = write!(line, " (held v{})", record.held);
        }
        if let Some(mode) = record.mode
            && mode != WriteMode::View
        {
            let _ = write!(line, " mode={mode}");
        }
        if let Some(other) = &record.other {
            let _ = write!(line, " other={other}");
        }
        if let Some(revision) = record.revision {
            let _ = write!(line, " rev={revision}");
        }
        if record.count > 1 {
            let _ = write!(line, " ×{}", record.count);
        }
        line
    }
}

/// `t+0.000412`: seconds since `t0_ns`, to the microsecond (`t-...` before it).
pub fn format_offset(t_ns: u64, t0_ns: u64) -> String {
    let (sign, d) = if t_ns >= t0_ns {
        ('+', t_ns - t0_ns)
    } else {
        ('-', t0_ns - t_ns)
    };
    format!(
        "t{sign}{}.{:06}",
        d / 1_000_000_000,
        d % 1_000_000_000 / 1_000
    )
}

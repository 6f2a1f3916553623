//! The operation log, decoded: records, and the analyses run on them.

mod diagnose;
mod record;
mod stats;

pub use diagnose::{Diagnosis, Finding, FindingKind, diagnose};
pub use record::{LogOp, LogOutcome, LogRecord, WriteMode};
pub use stats::{BYTES_PER_TOKEN, Stats, StatsWindow, Usage, UsageRow, stats};

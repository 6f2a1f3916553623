//! The operation log, decoded: records, the live reader, and the analyses run on them.

mod diagnose;
mod reader;
mod record;
mod stats;

pub use diagnose::{Diagnosis, Finding, FindingKind, diagnose};
pub use reader::{LogBatch, LogReader};
pub use record::{LogOp, LogOutcome, LogRecord, WriteMode, format_offset};
pub use stats::{BYTES_PER_TOKEN, Stats, StatsWindow, Usage, UsageRow, stats};

//! The operation log, decoded: records, the live reader, and the analyses run on them.

mod diagnose;
mod reader;
mod stats;

pub use ccs_types::{LogBatch, LogOp, LogOutcome, LogRecord, WriteMode, format_offset};
pub use diagnose::{Diagnosis, Finding, FindingKind, diagnose};
pub use reader::LogReader;
pub use stats::{BYTES_PER_TOKEN, Stats, StatsWindow, Usage, UsageRow, stats};

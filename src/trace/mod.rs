//! The operation log, decoded: records, and the analyses run on them.

mod diagnose;
mod record;

pub use diagnose::{Diagnosis, Finding, FindingKind, diagnose};
pub use record::{LogOp, LogOutcome, LogRecord, WriteMode};

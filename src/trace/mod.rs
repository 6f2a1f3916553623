//! The operation log, decoded: records, and the analyses run on them.

mod record;

pub use record::{LogOp, LogOutcome, LogRecord, WriteMode};

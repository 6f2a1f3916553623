//! The operation log, decoded: records, the live reader, and the analyses run on them.

mod reader;
mod record;

pub use reader::{LogBatch, LogReader};
pub use record::{LogOp, LogOutcome, LogRecord, WriteMode};

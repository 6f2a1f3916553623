//! The values every agent-coherence backend speaks, defined once: what a read returns, an
//! agent's standing and MESI state on an artifact, freshness strategies, change events, and
//! the operation log's records and their merge order, and the refusals (`NotFound`,
//! `Conflict`, `Held`, `Fenced`, `LeaseLost`) both backends answer with.
//!
//! The shared-memory engine (`ccs-protocol`, through the facade), the etcd engine
//! (`ccs-etcd`) and the facade (`agent-coherence`) all use these types, so the facade hands a
//! backend's values to its caller without translating them. Where the shared-memory segment
//! stores narrower numbers (a lease's milliseconds), the facade's shared-memory backend
//! converts at its edge; versions are 64 bits everywhere. `docs/architecture.md` shows where
//! this crate sits.

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod events;
mod merge;
mod mesi;
mod opcodes;
mod record;
mod refusal;
mod status;
mod strategy;
mod values;

pub use events::{ChangeEvent, Events};
pub use merge::merge_order;
pub use mesi::Mesi;
pub use opcodes::{LogOp, LogOutcome, WriteMode};
pub use record::{LogBatch, LogRecord, format_offset};
pub use refusal::{Conflict, Fenced, Held, LeaseLost, NotFound};
pub use status::{AgentState, ArtifactStatus};
pub use strategy::{MAX_LEASE_MS, Strategy};
pub use values::{Check, Read};

/// An artifact version: starts at 1 and grows by exactly 1 per write (a delete counts as one).
pub type Version = u64;

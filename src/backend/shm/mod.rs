//! The shared-memory backend: one segment mapped by every process on this machine, the
//! lock-free directory of `ccs_protocol` on it, and `ccs_os` for the mapping, kernel-released
//! locks and futexes. A read HIT is a few atomic loads; nothing here is reached through a
//! virtual call (the facade's dispatch is one `match` on an enum).
//!
//! Everything here is crate-internal: the facade's [`crate::Segment`] and [`crate::Agent`]
//! hold these types in their shared-memory variants.

mod agent;
mod agents;
mod events;
mod fsck;
mod guard;
mod hold;
mod os_env;
mod segment;
mod segment_ref;
mod status;
mod strategy;

pub(crate) use agent::Agent;
pub(crate) use guard::PinnedRead;
pub(crate) use hold::Hold;
pub(crate) use segment::Shared;

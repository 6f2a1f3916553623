//! The protocol's typed errors.
//!
//! Agents are named by their slot here; the facade turns slots into names for people.

/// Result alias for protocol operations.
pub type Result<T, E = ProtocolError> = core::result::Result<T, E>;

/// Something a protocol operation refused or could not do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The segment holds a value no correct writer produces: an offset or length out of range,
    /// a bad magic, an impossible state.
    #[error("segment is corrupted: {what}; run `ccs destroy` and re-create it")]
    Corrupt {
        /// What was found wrong.
        what: String,
    },
    /// The segment was made by a different layout version of this library.
    #[error(
        "segment has layout version {found}, this library speaks {expected}; open it with a matching version of agent-coherence"
    )]
    LayoutVersion {
        /// Version found in the header.
        found: u64,
        /// Version this library implements.
        expected: u64,
    },
    /// The segment's creator has not finished initialising it (or died while doing so).
    #[error(
        "segment is not initialised (its creator may have died while creating it); destroy it and create it again"
    )]
    Uninitialised,
    /// A fixed-size table or the payload arena is full.
    #[error("segment is full: {what} (limit {limit}); {}", capacity_remedy(what))]
    CapacityExceeded {
        /// Which resource ran out.
        what: &'static str,
        /// Its configured limit.
        limit: u64,
    },
    /// A conditional write found the artifact at another version than expected.
    #[error(
        "stale write refused: the artifact is at version {current}, your view is version {yours}; read it again, then write"
    )]
    Conflict {
        /// The artifact's current version (0 if it has never been written).
        current: u64,
        /// The version the write was conditional on.
        yours: u64,
    },
    /// The agent to forget is attached by a live process.
    #[error(
        "agent slot {slot} is attached by a live process; detach it (or stop the process) first"
    )]
    AgentAlive {
        /// Its slot.
        slot: u32,
    },
    /// Another live agent holds the artifact exclusively.
    #[error("artifact is held exclusively by agent slot {by}; retry after it commits or releases")]
    Held {
        /// Slot of the holding agent.
        by: u32,
    },
    /// The caller's ownership was reclaimed (lease expired or identity re-attached).
    #[error(
        "ownership was reclaimed (lease expired or the agent re-attached elsewhere); nothing was written: acquire again"
    )]
    Fenced,
    /// The key's directory line was given to another key since the key was resolved
    /// (a [`crate::LineRef`] checked on use); nothing was read or written.
    #[error(
        "the key's directory line was reused for another key since the key was resolved; resolve the key again"
    )]
    LineReused,
    /// The key has never been written, or was deleted.
    #[error("no such artifact")]
    NotFound,
    /// A key longer than [`crate::MAX_KEY_BYTES`] or empty.
    #[error("key is {len} bytes; keys must be 1..={max} bytes of UTF-8")]
    BadKey {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An agent name longer than [`crate::MAX_NAME_BYTES`] or empty.
    #[error("agent name is {len} bytes; names must be 1..={max} bytes of UTF-8")]
    BadName {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A payload larger than the segment's maximum.
    #[error(
        "payload is {len} bytes, the segment's maximum is {max}; create the segment with a larger --max-payload"
    )]
    PayloadTooLarge {
        /// The payload's length.
        len: u64,
        /// The segment's limit.
        max: u64,
    },
    /// A configuration that cannot describe a segment.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The operating-system side of the environment failed (lock, liveness probe).
    #[error("operating system: {0}")]
    Os(String),
}

/// What frees `what` once a segment has run out of it: the remedy that actually works today
/// (see docs/capacity.md), for the messages of [`ProtocolError::CapacityExceeded`] and the
/// facade's error of the same name.
pub fn capacity_remedy(what: &str) -> &'static str {
    match what {
        "agents" => {
            "every slot belongs to a live agent (a dead agent's slot is reused automatically); detach some agents or create the segment with more --agents"
        }
        "artifacts" => {
            "delete artifacts that are no longer needed (their lines are reused), or create the segment with more --artifacts"
        }
        "payload arena bytes" => {
            "delete or shrink payloads (freed blocks merge with their free buddies into larger ones when an allocation needs it), run `ccs fsck --repair` on an idle segment to recover blocks leaked by killed writers, or create the segment with a larger --arena (docs/layout.md §7: how large never refuses a payload)"
        }
        "versions alive at once (slot descriptors)" => {
            "release pinned reads (guards) and let readers finish, or create the segment with more --artifacts (descriptors scale with it)"
        }
        "pins of one version" => "drop some read guards of this version",
        "subscriptions of one agent" => "unsubscribe from a prefix first",
        "versions of one artifact" => {
            "this key's version word reached 2^64 - 1, which no real sequence of writes does (584 years at 10^9 writes a second): the segment is corrupted; write under a new key, and check the segment with `ccs fsck`"
        }
        _ => "create the segment with a larger limit",
    }
}

impl ProtocolError {
    pub(crate) fn corrupt(what: impl Into<String>) -> Self {
        ProtocolError::Corrupt { what: what.into() }
    }
}

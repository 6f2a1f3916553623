//! What a read returns, and an agent's standing on an artifact.

use crate::Version;

/// The result of a read: the bytes, their version, and whether the agent's copy was already
/// current (a HIT, served locally) or had to be fetched (a MISS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// The payload.
    pub bytes: Vec<u8>,
    /// Its version.
    pub version: Version,
    /// The agent already held this version.
    pub hit: bool,
}

/// The agent's standing on one artifact, without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// The version the agent last read or wrote; `None` if it never did.
    pub held: Option<Version>,
    /// The artifact's current version (0: never written).
    pub current: Version,
    /// The agent's copy is current and registered: its next read would be a HIT.
    pub valid: bool,
}

impl Check {
    /// Whether the agent holds the current version.
    pub fn is_current(&self) -> bool {
        self.valid && self.held == Some(self.current)
    }
}

//! The rows of a status snapshot that every backend fills the same way.

use crate::{Mesi, Version};

/// One agent's standing on one artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentState {
    /// The agent.
    pub agent: String,
    /// Its MESI state.
    pub state: Mesi,
    /// The version it last read or wrote (`None`: never).
    pub held: Option<Version>,
}

/// One artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactStatus {
    /// Its key.
    pub key: String,
    /// Current version (0: created, never written).
    pub version: Version,
    /// Bytes of the current version.
    pub size: u64,
    /// Who wrote the current version.
    pub writer: Option<String>,
    /// The current version is a deletion.
    pub deleted: bool,
    /// Who holds its single-writer right now, if anyone.
    pub holder: Option<String>,
    /// Every registered agent's state on it, in agent order (registration order on shared
    /// memory, name order on etcd).
    pub states: Vec<AgentState>,
}

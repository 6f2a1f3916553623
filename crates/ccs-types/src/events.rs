//! What an eager agent receives: change events for the prefixes it subscribed to.

use crate::Version;

/// A write to an artifact an eager agent subscribed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    /// The artifact.
    pub key: String,
    /// The version written.
    pub version: Version,
    /// The agent that wrote it.
    pub writer: String,
    /// The write was a delete.
    pub deleted: bool,
}

/// Events taken from an inbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Events {
    /// Oldest first.
    pub events: Vec<ChangeEvent>,
    /// Events lost since the last receive: the inbox was full (its writers never wait), or (on
    /// shared memory) a writer died while pushing one. After a loss, re-read what matters.
    pub lost: u64,
}

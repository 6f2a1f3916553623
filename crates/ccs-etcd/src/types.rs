//! The values only this engine's calls take and return; those every backend speaks (reads,
//! checks, strategies, events, MESI states) are `ccs_types`'.

pub use ccs_types::{
    AgentState, ArtifactStatus, ChangeEvent, Check, Events, Mesi, Read, Strategy, Version,
};

/// What a write is conditional on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// The writer's own view: refused if it last read an older version than the current one
    /// (admitted if it never read or wrote the artifact).
    View,
    /// Exactly this current version (0: never written).
    Version(Version),
    /// Nothing: overwrite whatever is there.
    Blind,
}

/// How a blocking wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitResult {
    /// The artifact is now at this version, greater than the one waited past.
    Changed(Version),
    /// The timeout passed first; the version is still this one.
    TimedOut(Version),
}

/// An exclusive hold on an artifact (state E), from [`crate::EtcdAgent::acquire`]: a key in
/// the cluster attached to an etcd lease of the acquire's duration.
#[derive(Debug, PartialEq, Eq)]
pub struct Hold {
    pub(crate) key: String,
    /// The revision at which this holder last wrote the hold key: the fencing token.
    pub(crate) token: i64,
    pub(crate) lease: i64,
    pub(crate) version: Version,
    pub(crate) meta_rev: i64,
}

impl Hold {
    /// The key held.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The artifact's version when the hold was taken (0: never written).
    pub fn version(&self) -> Version {
        self.version
    }

    /// The fencing token: the revision at which this holder last wrote its hold key.
    pub fn token(&self) -> i64 {
        self.token
    }
}

/// What the last write of an agent waited for (observability and benchmarks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Agents that held a copy of an older version when the write was applied.
    pub holders: usize,
    /// Of those, the ones that did not acknowledge within the ack timeout and were revoked.
    pub revoked: usize,
    /// From the write's transaction answer to the last acknowledgement (or lease expiry).
    pub ack_wait: std::time::Duration,
}

/// One agent that has attached under the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStatus {
    /// Its name.
    pub name: String,
    /// Whether a live session holds the name now.
    pub alive: bool,
    /// Who the live session is (`host:pid`), if any.
    pub session: Option<String>,
}

/// A snapshot of one prefix, read at one etcd revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The etcd revision the snapshot was read at.
    pub revision: i64,
    /// Agents that have attached, sorted by name.
    pub agents: Vec<AgentStatus>,
    /// Artifacts, sorted by key.
    pub artifacts: Vec<ArtifactStatus>,
}

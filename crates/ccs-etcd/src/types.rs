//! The values the engine's calls take and return; they mirror the shared-memory facade's.

use std::time::Duration;

/// An artifact version: starts at 1 and grows by exactly 1 per write (a delete counts as one).
pub type Version = u64;

/// The result of a read: the bytes, their version, and whether the agent's copy was already
/// current (a HIT, served locally) or had to be fetched from the cluster (a MISS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// The payload.
    pub bytes: Vec<u8>,
    /// Its version.
    pub version: Version,
    /// The agent already held this version.
    pub hit: bool,
}

/// The agent's standing on one artifact.
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

/// How long an agent's valid copy is served as a HIT (as the facade's strategies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Until a peer writes; the next read is a MISS (the default).
    #[default]
    Lazy,
    /// As lazy, and the agent receives change events for the prefixes it subscribes to.
    Eager,
    /// Until a peer writes, or for at most this long after the fetch.
    Lease(Duration),
    /// Until a peer writes, or for this many HITs after the fetch (at least 1).
    AccessCount(u32),
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
    /// Events dropped since the last receive because the inbox was full (its writers never
    /// wait). After a loss, re-read what matters.
    pub lost: u64,
}

/// An agent's coherence state on one artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mesi {
    /// Modified: never observed on this engine (a write is one etcd transaction).
    Modified,
    /// Exclusive: the agent holds the artifact (`acquire`).
    Exclusive,
    /// Shared: the agent has a registered copy of the current version.
    Shared,
    /// Invalid: never read, or a newer version exists.
    Invalid,
}

impl Mesi {
    /// One letter: M, E, S or I.
    pub fn letter(self) -> char {
        match self {
            Mesi::Modified => 'M',
            Mesi::Exclusive => 'E',
            Mesi::Shared => 'S',
            Mesi::Invalid => 'I',
        }
    }
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
    /// Current version.
    pub version: Version,
    /// Bytes of the current version.
    pub size: u64,
    /// Who wrote the current version.
    pub writer: String,
    /// The current version is a deletion.
    pub deleted: bool,
    /// Who holds it exclusively now, if anyone.
    pub holder: Option<String>,
    /// Every registered agent's state on it, in name order.
    pub states: Vec<AgentState>,
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

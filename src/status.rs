//! A status snapshot for tools: agents, artifacts and each agent's MESI state on each.

use ccs_protocol::Config;

use crate::segment::Backend;

/// An agent's coherence state on one artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mesi {
    /// Modified: the agent is writing a new version right now (a `put` in progress; never
    /// seen on etcd, where a write is one transaction).
    Modified,
    /// Exclusive: the agent holds the artifact's single-writer right (`acquire`).
    Exclusive,
    /// Shared: the agent's copy is the current version.
    Shared,
    /// Invalid: the agent never read it, or a newer version exists.
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

/// One registered agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStatus {
    /// Its name.
    pub name: String,
    /// Pid of the attached process (`None`: detached). On shared memory, the process of the
    /// last attach; on etcd, of the live session, which may run on another machine (`host`).
    pub pid: Option<u32>,
    /// The machine of the live session on etcd; `None` on shared memory (this machine).
    pub host: Option<String>,
    /// Whether a live process is attached now (shared memory: its kernel lock is held; etcd:
    /// its session lease is alive).
    pub alive: bool,
    /// Attach generation (grows by one per attach); 0 on etcd, which does not count attaches.
    pub generation: u64,
    /// The freshness strategy of its last attach. Shared memory only: an etcd cluster does
    /// not record strategies, and reports [`crate::Strategy::Lazy`].
    pub strategy: crate::Strategy,
    /// The key prefixes it is subscribed to (an eager agent). Shared memory only: on etcd a
    /// subscription lives in the subscriber's process, and this is empty.
    pub subscriptions: Vec<String>,
}

/// One slot of a shared-memory segment's agent table, from [`crate::Segment::agent_slots`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSlot {
    /// Index in the agent table.
    pub slot: u32,
    /// The agent's name.
    pub name: String,
    /// A live process is attached (its kernel lock is held). A dead agent's slot is taken
    /// over by the next new name when the table is full.
    pub alive: bool,
    /// Pid of the attached process (`None`: detached).
    pub pid: Option<u32>,
    /// Attach generation (grows by one per attach or takeover).
    pub generation: u64,
    /// Milliseconds since its last attach or detach (`None`: never recorded).
    pub last_seen_ms_ago: Option<u64>,
    /// Artifacts it holds a view of (read or wrote a known version).
    pub views_held: u64,
    /// Artifacts whose view it holds as dropped: it must read them before a conditional write
    /// (see docs/protocol.md, "Agent slots").
    pub views_dropped: u64,
}

/// One agent's standing on one artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentState {
    /// The agent.
    pub agent: String,
    /// Its MESI state.
    pub state: Mesi,
    /// The version it last read or wrote (`None`: never).
    pub held: Option<u64>,
}

/// One artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactStatus {
    /// Its key.
    pub key: String,
    /// Current version (0: created, never written).
    pub version: u64,
    /// Bytes of the current version.
    pub size: u64,
    /// Who wrote the current version.
    pub writer: Option<String>,
    /// The current version is a deletion.
    pub deleted: bool,
    /// Who holds its single-writer right now, if anyone.
    pub holder: Option<String>,
    /// Every registered agent's state on it, in agent order.
    pub states: Vec<AgentState>,
}

/// A snapshot of a segment. On shared memory each row is read consistently and the whole is
/// not one atomic step; on etcd the whole is read at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The backend the segment is on.
    pub backend: Backend,
    /// The segment's sizes (on etcd, the engine's limits: see [`crate::Segment::config`]).
    pub config: Config,
    /// The etcd revision the snapshot was read at; `None` on shared memory.
    pub revision: Option<i64>,
    /// Registered agents: in registration order on shared memory, by name on etcd.
    pub agents: Vec<AgentStatus>,
    /// Artifacts that have a key, sorted by key.
    pub artifacts: Vec<ArtifactStatus>,
}

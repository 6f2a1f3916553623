//! A status snapshot for tools: agents, artifacts and each agent's MESI state on each.

use ccs_protocol::Config;

use crate::ArtifactStatus;
use crate::segment::Backend;

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

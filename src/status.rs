//! A status snapshot for tools: agents, artifacts and each agent's MESI state on each.

use ccs_protocol::Config;
pub use ccs_protocol::Mesi;

use crate::error::Result;
use crate::segment::Shared;

/// One registered agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStatus {
    /// Its name.
    pub name: String,
    /// Pid of the process attached at the last attach (`None`: detached).
    pub pid: Option<u32>,
    /// Whether a live process is attached now (its kernel lock is held).
    pub alive: bool,
    /// Attach generation (grows by one per attach).
    pub generation: u64,
    /// The freshness strategy of its last attach.
    pub strategy: crate::Strategy,
    /// The key prefixes it is subscribed to (an eager agent).
    pub subscriptions: Vec<String>,
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

/// A snapshot of a segment. Each row is read consistently; the whole is not one atomic step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The segment's sizes.
    pub config: Config,
    /// Registered agents, in registration order.
    pub agents: Vec<AgentStatus>,
    /// Artifacts that have a key, sorted by key.
    pub artifacts: Vec<ArtifactStatus>,
}

impl Status {
    pub(crate) fn read(shared: &Shared) -> Result<Status> {
        let dir = &shared.dir;
        let agent_rows = dir.agent_rows().map_err(|e| shared.general(e))?;
        let general = |e| shared.general(e);
        let agents = agent_rows
            .iter()
            .map(|row| {
                Ok(AgentStatus {
                    name: row.name.clone(),
                    pid: (row.pid != 0).then_some(row.pid),
                    alive: row.alive,
                    generation: row.generation,
                    strategy: crate::Strategy::from_wire(
                        dir.agent_strategy(row.slot).map_err(general)?,
                    ),
                    subscriptions: dir.subscriptions(row.slot).map_err(general)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut artifacts = Vec::new();
        for row in dir.artifact_rows().map_err(|e| shared.general(e))? {
            let mut states = Vec::with_capacity(agent_rows.len());
            for agent in &agent_rows {
                let cell = dir
                    .cell(agent.slot, row.line)
                    .map_err(|e| shared.general(e))?;
                states.push(AgentState {
                    agent: agent.name.clone(),
                    state: cell.state,
                    held: (cell.held != 0).then_some(u64::from(cell.held)),
                });
            }
            artifacts.push(ArtifactStatus {
                key: row.key,
                version: u64::from(row.version),
                size: row.size,
                writer: row.writer.map(|slot| shared.agent_name(slot)),
                deleted: row.deleted,
                holder: row.holder.map(|slot| shared.agent_name(slot)),
                states,
            });
        }
        Ok(Status {
            config: dir.geometry().config,
            agents,
            artifacts,
        })
    }
}

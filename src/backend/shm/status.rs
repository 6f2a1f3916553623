//! The status snapshot of a shared-memory segment: agent rows, artifact rows and every
//! agent's cell on every artifact, read row by row from the directory.

use crate::backend::shm::segment::Shared;
use crate::backend::shm::strategy;
use crate::error::Result;
use crate::status::{AgentStatus, Status};
use crate::{AgentState, ArtifactStatus, Backend};

impl Shared {
    pub(crate) fn status(&self) -> Result<Status> {
        let dir = &self.dir;
        let general = |e| self.general(e);
        let agent_rows = dir.agent_rows().map_err(general)?;
        let agents = agent_rows
            .iter()
            .map(|row| {
                Ok(AgentStatus {
                    name: row.name.clone(),
                    pid: (row.pid != 0).then_some(row.pid),
                    host: None,
                    alive: row.alive,
                    generation: row.generation,
                    strategy: strategy::from_wire(dir.agent_strategy(row.slot).map_err(general)?),
                    subscriptions: dir.subscriptions(row.slot).map_err(general)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut artifacts = Vec::new();
        for row in dir.artifact_rows().map_err(general)? {
            let mut states = Vec::with_capacity(agent_rows.len());
            for agent in &agent_rows {
                let cell = dir.cell(agent.slot, row.line).map_err(general)?;
                states.push(AgentState {
                    agent: agent.name.clone(),
                    state: cell.state,
                    held: (cell.held != 0 && cell.held != ccs_protocol::DROPPED_VIEW)
                        .then_some(cell.held),
                });
            }
            artifacts.push(ArtifactStatus {
                key: row.key,
                version: row.version,
                size: row.size,
                writer: row.writer.map(|slot| self.agent_name(slot)),
                deleted: row.deleted,
                holder: row.holder.map(|slot| self.agent_name(slot)),
                states,
            });
        }
        Ok(Status {
            backend: Backend::SharedMemory,
            config: dir.geometry().config,
            revision: None,
            agents,
            artifacts,
        })
    }
}

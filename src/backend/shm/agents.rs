//! The agent table of a shared-memory segment as `ccs agents` shows it, and forgetting an
//! agent. A slot is proven dead, and kept from attaching while it is changed, by taking its
//! kernel lock (see `os_env.rs`); the protocol side is `ccs_protocol`'s `agents` module.

use ccs_os::LockFile;
use ccs_protocol::{Env, ProtocolError};

use crate::backend::shm::os_env::AGENT_LOCK_BASE;
use crate::backend::shm::segment::{Shared, os_error};
use crate::error::{Error, Result};
use crate::status::AgentSlot;

impl Shared {
    /// See [`crate::Segment::agent_slots`].
    pub(crate) fn agent_slots(&self) -> Result<Vec<AgentSlot>> {
        let general = |e| self.general(e);
        let now = self.dir.env().now_ms();
        let mut slots = Vec::new();
        for row in self.dir.agent_rows().map_err(general)? {
            let (views_held, views_dropped) = self.dir.views_of(row.slot).map_err(general)?;
            let seen = self.dir.last_seen_ms(row.slot).map_err(general)?;
            slots.push(AgentSlot {
                slot: row.slot,
                name: row.name,
                alive: row.alive,
                pid: (row.pid != 0).then_some(row.pid),
                generation: row.generation,
                last_seen_ms_ago: (seen != 0).then(|| now.saturating_sub(seen)),
                views_held,
                views_dropped,
            });
        }
        Ok(slots)
    }

    /// See [`crate::Segment::forget_agent`].
    pub(crate) fn forget_agent(&self, name: &str) -> Result<bool> {
        let lock = LockFile::open_with(&self.location, self.access()).map_err(os_error)?;
        let result = self
            .dir
            .forget_agent(name, |slot| claim(&lock, slot))
            .map(|slot| slot.is_some());
        // Dropping `lock` releases the claimed slot: it is free for the next new name.
        drop(lock);
        match result {
            Err(ProtocolError::AgentAlive { slot }) => Err(Error::AgentAlive {
                name: name.to_owned(),
                pid: self.dir.agent_process(slot).map_or(0, |(pid, _)| pid),
            }),
            other => other.map_err(|e| self.general(e)),
        }
    }
}

/// Take `slot`'s kernel lock on `lock` if no live process holds it: whether the slot's agent
/// is dead and now unattachable by anyone else (for as long as `lock` lives).
pub(crate) fn claim(lock: &LockFile, slot: u32) -> ccs_protocol::Result<bool> {
    lock.try_lock(AGENT_LOCK_BASE + u64::from(slot))
        .map_err(|e| ProtocolError::Os(e.to_string()))
}

//! A snapshot of the directory for tools: agents, artifacts, and each agent's MESI state.
//!
//! The snapshot is read with the same atomics as everything else but not as one atomic step:
//! each row is consistent, the whole is "consistent enough" for display and diagnosis.

use crate::directory::Directory;
use crate::env::Env;
use crate::error::Result;
use crate::packing::{Head, Lease};
use crate::sync::Ordering;
use ccs_types::Mesi;

/// A registered agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    /// Slot in the agent table.
    pub slot: u32,
    /// Its name.
    pub name: String,
    /// Attach generation.
    pub generation: u64,
    /// Pid recorded at the last attach (0: detached cleanly).
    pub pid: u32,
    /// Whether a live process holds its attach lock now.
    pub alive: bool,
}

/// An artifact (a keyed line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRow {
    /// Directory line.
    pub line: u32,
    /// Key.
    pub key: String,
    /// Current version (0: created but never written).
    pub version: u64,
    /// Payload bytes of the current version.
    pub size: u64,
    /// Slot of the agent that wrote the current version.
    pub writer: Option<u32>,
    /// Monotonic ms of the current version's write.
    pub written_ms: u64,
    /// The current version is a deletion.
    pub deleted: bool,
    /// Slot of the agent holding the single-writer right, if any.
    pub holder: Option<u32>,
    /// The holder holds it exclusively (E) rather than mid-`put` (M).
    pub exclusive: bool,
    /// Monotonic ms when the holder's lease ends (if recorded).
    pub lease_deadline_ms: Option<u64>,
}

/// One agent's view of one artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    /// MESI state.
    pub state: Mesi,
    /// Version the agent last read or wrote (0: never).
    pub held: u64,
}

impl<E: Env> Directory<E> {
    /// Every registered agent.
    pub fn agent_rows(&self) -> Result<Vec<AgentRow>> {
        let mut rows = Vec::new();
        for slot in 0..self.agent_count()? {
            let Some(name) = self.agent_name(slot)? else {
                continue;
            };
            let (pid, generation) = self.agent_process(slot)?;
            let alive = self.env.agent_alive(slot)?;
            rows.push(AgentRow {
                slot,
                name,
                generation,
                pid,
                alive,
            });
        }
        Ok(rows)
    }

    /// Every keyed line, sorted by key.
    pub fn artifact_rows(&self) -> Result<Vec<ArtifactRow>> {
        let mut rows = Vec::new();
        for (line, key) in self.keyed_lines()? {
            rows.push(self.artifact_row(line, key)?);
        }
        rows.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(rows)
    }

    fn artifact_row(&self, line: u32, key: String) -> Result<ArtifactRow> {
        let current = self.current(line)?;
        let (mut size, mut writer, mut written_ms) = (0, None, 0);
        if let Some(desc) = current.head.desc_index()
            && let Some(info) = self.pin(desc, line)?
        {
            size = info.len as u64;
            let (slot, ms) = self.slot_writer(desc)?;
            writer = Some(slot);
            written_ms = ms;
            self.unpin(desc)?;
        }
        let lease = Lease::unpack(self.lease(line)?.load(Ordering::Acquire));
        let recorded = lease.epoch == current.head.epoch && current.head.holder != 0;
        Ok(ArtifactRow {
            line,
            key,
            version: current.version,
            size,
            writer,
            written_ms,
            deleted: current.deleted,
            holder: current.head.holder_slot(),
            exclusive: recorded && lease.exclusive,
            lease_deadline_ms: recorded.then_some(lease.deadline_ms),
        })
    }

    /// `slot`'s state on `line`.
    pub fn cell(&self, slot: u32, line: u32) -> Result<Cell> {
        self.check_line(line)?;
        let held = self.view(slot, line)?.load(Ordering::Relaxed);
        let head = Head::unpack(self.head(line)?.load(Ordering::Acquire));
        let state = if head.holder_slot() == Some(slot) {
            let lease = Lease::unpack(self.lease(line)?.load(Ordering::Acquire));
            if lease.epoch == head.epoch && lease.exclusive {
                Mesi::Exclusive
            } else {
                Mesi::Modified
            }
        } else {
            let (mask, bit) = self.valid_bit(slot, line)?;
            if held != 0 && mask.load(Ordering::SeqCst) & bit != 0 {
                Mesi::Shared
            } else {
                Mesi::Invalid
            }
        };
        Ok(Cell { state, held })
    }
}

//! The agent table: named identities that outlive the processes attached to them.
//!
//! A slot's state word is 0 while free, then `1 << 63 | name_len` once its name is written
//! (Release; pairs with the Acquire loads in [`Directory::find_agent`]). Registration is rare and
//! serialised by the environment's structural lock. Each attach bumps the slot's generation;
//! a handle whose generation is no longer the slot's is fenced.

use crate::directory::{AgentId, Directory};
use crate::env::Env;
use crate::error::{ProtocolError, Result};
use crate::freshness::Strategy;
use crate::layout::{A_ATTACHED_MS, A_GEN, A_NAME, A_PID, A_STATE, A_STRATEGY, MAX_NAME_BYTES};
use crate::opcodes::{LogOp, LogOutcome};
use crate::oplog::LogEntry;
use crate::packing::Head;
use crate::sync::Ordering;

const REGISTERED: u64 = 1 << 63;

/// Refuse names that are empty or longer than [`MAX_NAME_BYTES`].
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(ProtocolError::BadName {
            len: name.len(),
            max: MAX_NAME_BYTES,
        });
    }
    Ok(())
}

impl<E: Env> Directory<E> {
    fn agent_at(&self, slot: u32, field: usize) -> Result<&crate::sync::AtomicU64> {
        if slot >= self.geo.config.max_agents {
            return Err(ProtocolError::corrupt(format!(
                "agent slot {slot} out of range"
            )));
        }
        self.words.at(self.geo.agent_word(slot, field))
    }

    /// The registered name of `slot`, if any.
    pub fn agent_name(&self, slot: u32) -> Result<Option<String>> {
        // Pairs with the Release store of the state in `register_agent`.
        let state = self.agent_at(slot, A_STATE)?.load(Ordering::Acquire);
        if state == 0 {
            return Ok(None);
        }
        let len = (state & 0xff) as usize;
        if state & !0xff != REGISTERED || len == 0 || len > MAX_NAME_BYTES {
            return Err(ProtocolError::corrupt(format!(
                "agent slot {slot} has a bad state word"
            )));
        }
        let mut bytes = Vec::with_capacity(len);
        self.words
            .copy_out(self.geo.agent_word(slot, A_NAME), len, &mut bytes)?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| ProtocolError::corrupt(format!("agent slot {slot}: name is not UTF-8")))
    }

    /// The slot registered under `name`, if any.
    pub fn find_agent(&self, name: &str) -> Result<Option<u32>> {
        validate_name(name)?;
        for slot in 0..self.geo.config.max_agents {
            match self.agent_name(slot)? {
                Some(found) if found == name => return Ok(Some(slot)),
                Some(_) => {}
                None => return Ok(None), // slots fill in order and are never freed
            }
        }
        Ok(None)
    }

    /// The slot of `name`, registering it if it is new.
    pub fn register_agent(&self, name: &str) -> Result<u32> {
        if let Some(slot) = self.find_agent(name)? {
            return Ok(slot);
        }
        self.env.with_structure_lock(|| {
            for slot in 0..self.geo.config.max_agents {
                match self.agent_name(slot)? {
                    Some(found) if found == name => return Ok(slot),
                    Some(_) => {}
                    None => {
                        self.words
                            .copy_in(self.geo.agent_word(slot, A_NAME), name.as_bytes())?;
                        // Pairs with the Acquire load in `agent_name`.
                        self.agent_at(slot, A_STATE)?
                            .store(REGISTERED | name.len() as u64, Ordering::Release);
                        return Ok(slot);
                    }
                }
            }
            Err(ProtocolError::CapacityExceeded {
                what: "agents",
                limit: u64::from(self.geo.config.max_agents),
            })
        })?
    }

    /// Record that process `pid` now acts as `slot`, which the caller has exclusively locked.
    /// Bumps the generation (fencing any earlier handle) and frees every line a dead
    /// predecessor under the same name still held.
    pub fn begin_attach(&self, slot: u32, pid: u32) -> Result<AgentId> {
        self.begin_attach_with(slot, pid, Strategy::Lazy)
    }

    /// [`Directory::begin_attach`] with a freshness strategy other than lazy.
    pub fn begin_attach_with(&self, slot: u32, pid: u32, strategy: Strategy) -> Result<AgentId> {
        let strategy = strategy.validate()?;
        let generation = self
            .agent_at(slot, A_GEN)?
            .fetch_add(1, Ordering::AcqRel)
            .wrapping_add(1);
        self.agent_at(slot, A_PID)?
            .store(u64::from(pid), Ordering::Relaxed);
        self.agent_at(slot, A_ATTACHED_MS)?
            .store(self.env.now_ms(), Ordering::Relaxed);
        self.agent_at(slot, A_STRATEGY)?
            .store(strategy.pack(), Ordering::Relaxed);
        let agent = AgentId {
            slot,
            generation,
            strategy,
        };
        self.release_stale_holds(agent)?;
        self.release_recorded_pins(slot)?;
        self.log(agent, LogEntry::new(LogOp::Attach, LogOutcome::Ok));
        Ok(agent)
    }

    pub(crate) fn release_stale_holds(&self, agent: AgentId) -> Result<()> {
        for line in 0..self.geo.lines as u32 {
            let head_word = self.head(line)?;
            let raw = head_word.load(Ordering::Acquire);
            let head = Head::unpack(raw);
            if head.holder_slot() == Some(agent.slot) {
                // Free the slot the dead holder was filling first: while the line is still
                // held, no new holder can overwrite that record.
                self.discard_pending_of(line, head)?;
                let freed = Head { holder: 0, ..head };
                // A failed exchange means someone else reclaimed it first; either way it is free
                // of the dead holder.
                let _ = head_word.compare_exchange(
                    raw,
                    freed.pack(),
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                );
            }
        }
        Ok(())
    }

    /// Record that the process acting as `agent` left. Its coherence state stays.
    pub fn detach(&self, agent: AgentId) -> Result<()> {
        if self.agent_at(agent.slot, A_GEN)?.load(Ordering::Acquire) == agent.generation {
            self.log(agent, LogEntry::new(LogOp::Detach, LogOutcome::Ok));
            self.agent_at(agent.slot, A_PID)?
                .store(0, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Refuse with [`ProtocolError::Fenced`] if `agent`'s slot was re-attached since.
    #[inline]
    pub fn check_generation(&self, agent: AgentId) -> Result<()> {
        if self.agent_at(agent.slot, A_GEN)?.load(Ordering::Acquire) == agent.generation {
            Ok(())
        } else {
            Err(ProtocolError::Fenced)
        }
    }

    /// The pid last recorded for `slot` (0: detached), and its generation.
    pub fn agent_process(&self, slot: u32) -> Result<(u32, u64)> {
        let pid = self.agent_at(slot, A_PID)?.load(Ordering::Relaxed);
        let generation = self.agent_at(slot, A_GEN)?.load(Ordering::Relaxed);
        Ok((u32::try_from(pid).unwrap_or(0), generation))
    }

    /// The strategy `slot` last attached with (lazy if it never did, or if the word is not a
    /// strategy).
    pub fn agent_strategy(&self, slot: u32) -> Result<Strategy> {
        let word = self.agent_at(slot, A_STRATEGY)?.load(Ordering::Relaxed);
        Ok(Strategy::unpack(word).unwrap_or_default())
    }

    /// Number of registered agents (slots fill in order).
    pub fn agent_count(&self) -> Result<u32> {
        for slot in 0..self.geo.config.max_agents {
            if self.agent_at(slot, A_STATE)?.load(Ordering::Acquire) == 0 {
                return Ok(slot);
            }
        }
        Ok(self.geo.config.max_agents)
    }
}

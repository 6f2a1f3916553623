//! The agent table: named identities that outlive the processes attached to them, and the
//! reuse of dead agents' slots.
//!
//! A slot's state word is 0 while never used, [`FORGOTTEN`] once its name was freed, and
//! `1 << 63 | name_len` while a name owns it (Release; pairs with the Acquire loads in
//! [`Directory::agent_name`]). Registration is rare and serialised by the environment's
//! structural lock. Each attach bumps the slot's generation; a handle whose generation is no
//! longer the slot's is fenced.
//!
//! # Reuse and the dropped-view rule
//!
//! When no slot is free, a new name takes over the slot of the agent dead longest (its last
//! attach or detach is the oldest); a live agent is never evicted, and the caller proves a slot
//! dead by claiming it (on Linux, taking the agent's kernel lock, which also keeps its old name
//! from attaching meanwhile). Taking a slot over bumps its generation (fencing whatever the old
//! incarnation still held), releases its holds and pins, clears its valid and subscriber bits,
//! empties its subscriptions and inbox, and resets its views.
//!
//! A view of 0 means "never read", and a conditional write from it is admitted. A dropped name
//! can come back (its slot was reused or forgotten, then it attaches again) with a stale
//! decision in hand; if its new slot's views were 0 that stale write would be admitted. So once
//! any agent has been dropped (the header's drop counter is non-zero), a newly registered name
//! starts with the view [`DROPPED_VIEW`] on every line that has ever been written, and 0 only on
//! lines never written. A conditional write from a dropped view is refused as a conflict until
//! the agent reads the artifact again. Lines never written are safe at 0: versions never go
//! back, so a line at version 0 now was at version 0 whenever the dropped name last ran, and it
//! cannot have read it. A brand-new name in a segment that has dropped agents is treated the same
//! way (the segment cannot tell it from a returning one): it must read an existing artifact once
//! before a conditional write. `DROPPED_VIEW` is `u64::MAX`, a version no line ever publishes:
//! a write that would publish it is refused (`versions of one artifact`, see `write.rs`), and
//! it is never reached anyway (2^64 writes of one key at 10^9 a second take 584 years). So the
//! value can never equal a current version that a write would be checked against.

use crate::directory::{AgentId, Directory};
use crate::env::Env;
use crate::error::{ProtocolError, Result};
use crate::freshness::Strategy;
use crate::layout::{
    A_ATTACHED_MS, A_DETACHED_MS, A_GEN, A_NAME, A_PID, A_STATE, A_STRATEGY, H_AGENT_DROPS,
    MAX_NAME_BYTES,
};
use crate::opcodes::{LogOp, LogOutcome};
use crate::oplog::LogEntry;
use crate::packing::Head;
use crate::sync::Ordering;

const REGISTERED: u64 = 1 << 63;
/// The state of a slot whose name was freed: skipped by lookups, the first choice of the next
/// new name.
pub(crate) const FORGOTTEN: u64 = 1 << 62;

/// The view a newly registered name starts with on every written line once the segment has
/// dropped an agent: "read before, version unknown". See the module docs.
pub const DROPPED_VIEW: u64 = u64::MAX;

/// What an agent slot holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotState {
    /// Never used: this and every later slot are free.
    Free,
    /// Its name was forgotten; free for the next new name.
    Forgotten,
    /// Owned by this name.
    Named(String),
}

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
    pub(crate) fn agent_at(&self, slot: u32, field: usize) -> Result<&crate::sync::AtomicU64> {
        if slot >= self.geo.config.max_agents {
            return Err(ProtocolError::corrupt(format!(
                "agent slot {slot} out of range"
            )));
        }
        self.words.at(self.geo.agent_word(slot, field))
    }

    /// What `slot` holds.
    pub fn slot_state(&self, slot: u32) -> Result<SlotState> {
        // Pairs with the Release stores of the state in `name_slot` and `forget_agent`.
        let state = self.agent_at(slot, A_STATE)?.load(Ordering::Acquire);
        if state == 0 {
            return Ok(SlotState::Free);
        }
        if state == FORGOTTEN {
            return Ok(SlotState::Forgotten);
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
            .map(SlotState::Named)
            .map_err(|_| ProtocolError::corrupt(format!("agent slot {slot}: name is not UTF-8")))
    }

    /// The registered name of `slot`, if any.
    pub fn agent_name(&self, slot: u32) -> Result<Option<String>> {
        Ok(match self.slot_state(slot)? {
            SlotState::Named(name) => Some(name),
            SlotState::Free | SlotState::Forgotten => None,
        })
    }

    /// The slot registered under `name`, if any.
    pub fn find_agent(&self, name: &str) -> Result<Option<u32>> {
        validate_name(name)?;
        for slot in 0..self.geo.config.max_agents {
            match self.slot_state(slot)? {
                SlotState::Named(found) if found == name => return Ok(Some(slot)),
                SlotState::Named(_) | SlotState::Forgotten => {}
                SlotState::Free => return Ok(None), // slots are first used in order
            }
        }
        Ok(None)
    }

    /// The slot of `name`, registering it if it is new; when the table is full, taking over
    /// the slot of the agent dead longest, as told by the environment's liveness probe.
    ///
    /// The probe and the takeover are not atomic: use this where nothing can attach between
    /// them (in-memory environments, tests); a process-shared caller uses
    /// [`Directory::register_agent_claiming`] with a claim that locks the slot.
    pub fn register_agent(&self, name: &str) -> Result<u32> {
        self.register_agent_claiming(name, |slot| Ok(!self.env.agent_alive(slot)?))
    }

    /// The slot of `name`, registering it if it is new. When no slot is free, the registered
    /// slots are offered to `claim` in order of their last sighting (oldest first); `claim`
    /// returns true only for a slot whose agent is dead and which it has made unattachable by
    /// anyone else (the caller then owns it), and the first such slot is taken over for `name`
    /// (see the module docs). Fails with `CapacityExceeded { what: "agents" }` when every
    /// slot's agent is alive.
    pub fn register_agent_claiming(
        &self,
        name: &str,
        mut claim: impl FnMut(u32) -> Result<bool>,
    ) -> Result<u32> {
        if let Some(slot) = self.find_agent(name)? {
            return Ok(slot);
        }
        self.env.with_structure_lock(|| {
            let mut free = None;
            let mut taken = Vec::new();
            for slot in 0..self.geo.config.max_agents {
                match self.slot_state(slot)? {
                    SlotState::Named(found) if found == name => return Ok(slot),
                    SlotState::Named(_) => taken.push((self.last_seen_ms(slot)?, slot)),
                    SlotState::Forgotten => {
                        free.get_or_insert((slot, true));
                    }
                    SlotState::Free => {
                        free.get_or_insert((slot, false));
                        break;
                    }
                }
            }
            if let Some((slot, used)) = free {
                if used || self.drops()? > 0 {
                    self.reset_slot(slot)?;
                }
                self.name_slot(slot, name)?;
                return Ok(slot);
            }
            taken.sort_unstable();
            for (_, slot) in taken {
                // The mutant takes over a live agent's slot (loom: `live_agent_never_evicted`).
                #[cfg(ccs_mutant = "evict_live")]
                let claimed = {
                    let _ = &mut claim;
                    true
                };
                #[cfg(not(ccs_mutant = "evict_live"))]
                let claimed = claim(slot)?;
                if claimed {
                    #[cfg(not(ccs_mutant = "reuse_zeroed_views"))]
                    self.words.at(H_AGENT_DROPS)?.fetch_add(1, Ordering::AcqRel);
                    self.release_dead_slot(slot)?;
                    self.name_slot(slot, name)?;
                    return Ok(slot);
                }
            }
            Err(ProtocolError::CapacityExceeded {
                what: "agents",
                limit: u64::from(self.geo.config.max_agents),
            })
        })?
    }

    /// Free `name`'s slot for the next new name, with everything it held. `claim` as in
    /// [`Directory::register_agent_claiming`]: a slot it refuses is attached by a live process
    /// ([`ProtocolError::AgentAlive`]). Returns the slot, or `None` if no such agent.
    pub fn forget_agent(
        &self,
        name: &str,
        claim: impl FnOnce(u32) -> Result<bool>,
    ) -> Result<Option<u32>> {
        self.env.with_structure_lock(|| {
            let Some(slot) = self.find_agent(name)? else {
                return Ok(None);
            };
            if !claim(slot)? {
                return Err(ProtocolError::AgentAlive { slot });
            }
            self.words.at(H_AGENT_DROPS)?.fetch_add(1, Ordering::AcqRel);
            self.release_dead_slot(slot)?;
            self.agent_at(slot, A_STATE)?
                .store(FORGOTTEN, Ordering::Release);
            Ok(Some(slot))
        })?
    }

    /// Agents dropped (taken over or forgotten) in this segment's life.
    pub fn drops(&self) -> Result<u64> {
        Ok(self.words.at(H_AGENT_DROPS)?.load(Ordering::Acquire))
    }

    /// How many lines `slot` holds a view of (it read or wrote a version), and how many views
    /// it holds as [`DROPPED_VIEW`].
    pub fn views_of(&self, slot: u32) -> Result<(u64, u64)> {
        let (mut held, mut dropped) = (0, 0);
        for line in 0..self.geo.lines as u32 {
            match self.view(slot, line)?.load(Ordering::Relaxed) {
                0 => {}
                DROPPED_VIEW => dropped += 1,
                _ => held += 1,
            }
        }
        Ok((held, dropped))
    }

    /// When `slot`'s agent was last seen: its last attach or detach (monotonic ms).
    pub fn last_seen_ms(&self, slot: u32) -> Result<u64> {
        let attached = self.agent_at(slot, A_ATTACHED_MS)?.load(Ordering::Relaxed);
        let detached = self.agent_at(slot, A_DETACHED_MS)?.load(Ordering::Relaxed);
        Ok(attached.max(detached))
    }

    /// Release what the dead agent of `slot` held (its holds and pins: its successor must not
    /// inherit them), then reset its coherence state.
    fn release_dead_slot(&self, slot: u32) -> Result<()> {
        // Lookups skip the slot from now on. Pairs with the Acquire load in `slot_state`.
        self.agent_at(slot, A_STATE)?
            .store(FORGOTTEN, Ordering::Release);
        let generation = self
            .agent_at(slot, A_GEN)?
            .fetch_add(1, Ordering::AcqRel)
            .wrapping_add(1);
        let dead = AgentId {
            slot,
            generation,
            strategy: Strategy::Lazy,
        };
        self.recover_records(slot)?;
        self.release_stale_holds(dead)?;
        self.release_recorded_pins(slot)?;
        self.reset_slot(slot)
    }

    /// Give `slot` the coherence state of a name the segment knows nothing about: no valid or
    /// subscriber bit, no subscription, an empty inbox, and views under the dropped-view rule.
    /// The caller holds the structure lock, and nobody is attached as `slot`.
    fn reset_slot(&self, slot: u32) -> Result<()> {
        let dropped = self.drops()? > 0;
        for line in 0..self.geo.lines as u32 {
            let (mask, bit) = self.valid_bit(slot, line)?;
            // Pairs with the reader's SeqCst fetch_or: nobody sets this bit meanwhile, the slot
            // being unattached.
            mask.fetch_and(!bit, Ordering::SeqCst);
            #[cfg(not(ccs_mutant = "reuse_zeroed_views"))]
            let view = if dropped && self.current(line)?.version > 0 {
                DROPPED_VIEW
            } else {
                0
            };
            // The mutant clears the views, as if "never read" (loom: `dropped_view_refuses_stale_write`).
            #[cfg(ccs_mutant = "reuse_zeroed_views")]
            let view = {
                let _ = dropped;
                0
            };
            // The next owner reaches this word only after the Release store of the slot's
            // state in `name_slot` (or through the structure lock).
            self.view(slot, line)?.store(view, Ordering::Relaxed);
        }
        self.drop_subscriptions(slot)?;
        for field in [A_PID, A_STRATEGY, A_ATTACHED_MS, A_DETACHED_MS] {
            self.agent_at(slot, field)?.store(0, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Write `name` into `slot` and publish it.
    fn name_slot(&self, slot: u32, name: &str) -> Result<()> {
        validate_name(name)?;
        self.words
            .copy_in(self.geo.agent_word(slot, A_NAME), name.as_bytes())?;
        // Pairs with the Acquire load in `slot_state`.
        self.agent_at(slot, A_STATE)?
            .store(REGISTERED | name.len() as u64, Ordering::Release);
        Ok(())
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
        // A spare this process's earlier attach of the slot hinted at is the recovery's now.
        self.forget_spare(slot);
        self.recover_records(slot)?;
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
                self.discard_pending_of(line, head, agent.slot, None)?;
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

    /// Record that the process acting as `agent` left. Its coherence state stays; its spare
    /// descriptor goes back to the free lists.
    pub fn detach(&self, agent: AgentId) -> Result<()> {
        if self.agent_at(agent.slot, A_GEN)?.load(Ordering::Acquire) == agent.generation {
            self.release_spare(agent.slot)?;
            self.log(agent, LogEntry::new(LogOp::Detach, LogOutcome::Ok));
            self.agent_at(agent.slot, A_DETACHED_MS)?
                .store(self.env.now_ms(), Ordering::Relaxed);
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

    /// Number of slots ever used (slots are first used in order; some may be forgotten).
    pub fn agent_count(&self) -> Result<u32> {
        for slot in 0..self.geo.config.max_agents {
            if self.agent_at(slot, A_STATE)?.load(Ordering::Acquire) == 0 {
                return Ok(slot);
            }
        }
        Ok(self.geo.config.max_agents)
    }
}

//! Views that outlive their line: what an agent knew of a key whose line was given to another
//! key (docs/protocol.md §3.8, "Views of a moved key").
//!
//! A view is per (agent, line). When a deleted key's line is reused, every view of that key on
//! the line stops meaning anything (it is at or below the line's new base), and the key, once
//! re-created, lives on another line where the agent has no view: a `View`-conditional write of
//! an agent that read an earlier version would be admitted as a first write. So the reuser, as
//! it takes the line from the key, leaves in each agent's *ghost* word for the key's home line
//! (one word per agent and line, `ghosts_at` in docs/layout.md) the key's 48-bit hash, and
//! whether the agent's view was the tombstone (it saw the deletion). A first write of that key
//! by that agent is then admitted only if it re-creates the key after seeing it deleted or
//! absent; anything else needs a read first, as with a dropped view (§5).
//!
//! Encoding: bit 63 present; bit 62 "more than one key of this home" (`ANY`: then only a
//! re-creation is admitted, the conservative answer for either key); bit 48 the deletion was
//! seen; bits 0–47 the key's hash. 0: no ghost. A false match (two keys of one home with equal
//! 48-bit hashes) only asks for a read the agent did not need.

use crate::agents::DROPPED_VIEW;
use crate::directory::{AgentId, Directory};
use crate::env::Env;
use crate::error::Result;
use crate::keys::{HASH_MASK, hash_key, validate_key};
use crate::layout::L_KEYMETA;
use crate::sync::{AtomicU64, Ordering};

const PRESENT: u64 = 1 << 63;
const ANY: u64 = PRESENT | 1 << 62;
const SAW_DELETION: u64 = 1 << 48;

/// What a ghost word allows for a first write (the agent holds no view of the key's line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ghost {
    /// Nothing known: a first write is admitted.
    None,
    /// The agent's last knowledge of the key is that it was deleted or absent: a re-creation
    /// is admitted, a write over a version it never read is not.
    SawDeletion,
    /// The agent read a version that may be stale (or the home has two ghosts): it must read
    /// the key before writing it, except to re-create it when `ANY` is all that is known.
    Stale { recreate_ok: bool },
}

fn ghost_of(hash: u64, saw_deletion: bool) -> u64 {
    PRESENT | (hash & HASH_MASK) | if saw_deletion { SAW_DELETION } else { 0 }
}

fn is_of(word: u64, hash: u64) -> bool {
    word & PRESENT != 0 && word != ANY && word & HASH_MASK == hash & HASH_MASK
}

impl<E: Env> Directory<E> {
    fn ghost_word(&self, slot: u32, home: u32) -> Result<&AtomicU64> {
        self.words.at(self.geo.ghost_word(slot, home))
    }

    /// The key whose meta word is `meta` leaves `line` (the line is being reused; the caller
    /// holds it and the structure lock): every agent whose view of the line is of that key
    /// (above `base`, the line's base while the key owned it, or dropped) keeps a ghost of
    /// it. Called after the line's masks were swapped (SeqCst), so a reader whose view store
    /// precedes its SeqCst claim of the valid bit is seen here, and one that comes later
    /// fails its generation check and learns nothing of the old key.
    pub(crate) fn leave_ghosts(
        &self,
        line: u32,
        meta: u64,
        base: u64,
        tombstone: u64,
    ) -> Result<()> {
        #[cfg(ccs_mutant = "no_ghost_views")]
        {
            let _ = (line, meta, base, tombstone);
            return Ok(());
        }
        #[cfg(not(ccs_mutant = "no_ghost_views"))]
        {
            let home = self.home_of(meta);
            for slot in 0..self.agent_count()? {
                let held = self.view(slot, line)?.load(Ordering::Relaxed);
                if held == 0 || (held <= base && held != DROPPED_VIEW) {
                    continue;
                }
                let ghost = ghost_of(meta, held == tombstone);
                let word = self.ghost_word(slot, home)?;
                let mut current = word.load(Ordering::Relaxed);
                loop {
                    let next = if current == 0 || is_of(current, meta) {
                        ghost
                    } else {
                        ANY
                    };
                    // The agent may set its deletion bit meanwhile (`saw_absent`).
                    match word.compare_exchange_weak(
                        current,
                        next,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => break,
                        Err(seen) => current = seen,
                    }
                }
            }
            Ok(())
        }
    }

    /// What `agent` may know of the key on `line` that its view does not say (its view is 0 or
    /// of an earlier key of the line). Read by a writer holding the line.
    pub(crate) fn ghost(&self, agent: AgentId, line: u32) -> Result<Ghost> {
        let meta = self.line_word(line, L_KEYMETA)?.load(Ordering::Acquire);
        let word = self
            .ghost_word(agent.slot, self.home_of(meta))?
            .load(Ordering::Relaxed);
        Ok(if word == ANY {
            Ghost::Stale { recreate_ok: true }
        } else if !is_of(word, meta) {
            Ghost::None
        } else if word & SAW_DELETION != 0 {
            Ghost::SawDeletion
        } else {
            Ghost::Stale { recreate_ok: false }
        })
    }

    /// `agent` read `key` and found it absent (no line, or a line with no version of it):
    /// a ghost of the key now records that it saw the deletion, so it may re-create the key.
    pub fn saw_absent(&self, agent: AgentId, key: &str) -> Result<()> {
        validate_key(key)?;
        self.saw_absent_hash(agent, hash_key(key.as_bytes()))
    }

    /// [`Directory::saw_absent`] of the key on `line`.
    pub(crate) fn saw_absent_on(&self, agent: AgentId, line: u32) -> Result<()> {
        let meta = self.line_word(line, L_KEYMETA)?.load(Ordering::Acquire);
        self.saw_absent_hash(agent, meta)
    }

    fn saw_absent_hash(&self, agent: AgentId, hash: u64) -> Result<()> {
        let word = self.ghost_word(agent.slot, self.home_of(hash))?;
        let current = word.load(Ordering::Relaxed);
        if is_of(current, hash) && current & SAW_DELETION == 0 {
            // Only the agent sets the bit, and the reuser replaces the word whole: losing the
            // race to a reuser leaves the newer ghost, which needs one more read.
            let _ = word.compare_exchange(
                current,
                current | SAW_DELETION,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        Ok(())
    }
}

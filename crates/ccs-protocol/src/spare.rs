//! A writer's spare: the descriptor its publish just freed, kept with its block for the
//! writer's next put of the same size class instead of going back through the free lists.
//!
//! An overwrite frees the version it supersedes and the next overwrite takes a descriptor and
//! a block of the same size: four kill-safe free-list operations (a 16-byte compare-and-swap
//! each, with its records and acknowledgements, `free_list.rs`) that hand the same two entries
//! back and forth. A thread-caching allocator keeps such an entry private instead (Bonwick,
//! "The Slab Allocator", USENIX 1994, and its per-CPU magazines, Bonwick and Adams 2001); here
//! the privacy must survive a SIGKILL, so the spare is named in the segment by the same word
//! that names a free in flight: the descriptor's control word, FREE with the claim of the
//! writer's agent slot ([`desc_state::claim`]), which `try_free` leaves and which the recovery
//! of a dead agent already finishes (`records.rs`, `free_unpinned_retired`). Keeping a spare is
//! a free stopped after its winning compare-and-swap; taking it is the rest of a free and an
//! allocation done privately: the owner tag moves to the next incarnation (the seqlock readers'
//! proof, as `release_desc_as` does), the descriptor is recorded as FILLING in `A_TAKEN` with
//! that incarnation's tag, and only then does the control word leave the claim for FILLING. So
//! at every instruction the descriptor and its block have exactly one owner that a recovery
//! finds: the claim, or the tagged record (whose recovery drops a record whose descriptor is
//! not FILLING with its tag, and the claim's recovery frees it), or the record alone
//! (docs/protocol.md §3.9).
//!
//! Which descriptor is the spare lives in process memory ([`Directory::spares`], one word per
//! agent slot), a hint only: it is checked against the claim before use. An agent holds at most
//! one spare, of a block of at most [`SPARE_MAX_BYTES`]; it gives it back when it detaches, when
//! an allocation of its would otherwise be refused, and when a spare of another class comes.

use crate::directory::Directory;
use crate::env::Env;
use crate::error::{ProtocolError, Result};
use crate::layout::{A_PID, D_BLOCK, D_CTL, D_NEXT, D_OWNER, Geometry, class_bytes};
use crate::packing::{desc_state, freed_owner, incarnation, unpack_block_field};
use crate::records::{KillPoint, Moving, NO_RECORD};
use crate::sync::{AtomicU64, Ordering, fence};

/// The largest block an agent keeps as its spare: what one idle agent may hold back from the
/// arena (docs/layout.md, "The payload arena").
pub(crate) const SPARE_MAX_BYTES: u64 = 4096;

/// No spare in a hint word.
const NO_SPARE: u64 = 0;

/// A hint word for descriptor `desc`, whose block is of class `class`.
fn spare_hint(desc: u32, class: usize) -> u64 {
    (class as u64) << 32 | (u64::from(desc) + 1)
}

/// The control word of `slot`'s spare: FREE with the slot's claim, which names it for the
/// recovery. The mutant keeps it FREE with no claim, named only in process memory: a death
/// leaks it.
fn spare_ctl(slot: u32) -> u64 {
    #[cfg(ccs_mutant = "spare_unclaimed")]
    {
        let _ = slot;
        desc_state::FREE
    }
    #[cfg(not(ccs_mutant = "spare_unclaimed"))]
    desc_state::claim(slot)
}

/// One empty hint per agent slot of `geo`.
pub(crate) fn no_spares(geo: &Geometry) -> Box<[AtomicU64]> {
    (0..geo.config.max_agents)
        .map(|_| AtomicU64::new(NO_SPARE))
        .collect()
}

impl<E: Env> Directory<E> {
    /// After `slot`'s `try_free` won `desc` (its claim in the control word): keep it as the
    /// slot's spare if its block is small enough. Whether it was kept; if not, the caller
    /// finishes the free.
    pub(crate) fn keep_spare(&self, desc: u32, slot: u32) -> Result<bool> {
        let Some(hint) = self.spares.get(slot as usize) else {
            return Ok(false);
        };
        // An agent that has detached (a write guard committed after its agent was dropped)
        // keeps nothing: no detach would give it back.
        if self.agent_at(slot, A_PID)?.load(Ordering::Relaxed) == 0 {
            return Ok(false);
        }
        let block = self.desc_at(desc, D_BLOCK)?.load(Ordering::Relaxed);
        let (_, class) = unpack_block_field(block);
        if block == crate::alloc::NO_BLOCK
            || class >= self.geo.classes
            || class_bytes(class) > SPARE_MAX_BYTES
        {
            return Ok(false);
        }
        #[cfg(ccs_mutant = "spare_unclaimed")]
        self.desc_at(desc, D_CTL)?
            .store(spare_ctl(slot), Ordering::Relaxed);
        // The retire record is done with: the claim names the descriptor from here on.
        self.note_moving(slot, Moving::None)?;
        // A sibling thread's spare, kept meanwhile, goes back. AcqRel: the thread that takes
        // this hint sees the claim above (Release), and this one sees the previous keeper's.
        let previous = hint.swap(spare_hint(desc, class), Ordering::AcqRel);
        self.free_spare(previous, slot)?;
        Ok(true)
    }

    /// `slot`'s spare, if it is of class `class`, made a FILLING descriptor for a new version
    /// of `line`, as `alloc_slot` returns one (with the granule of its block), and recorded
    /// taken by `slot` with this use's tag.
    #[inline]
    pub(crate) fn take_spare(
        &self,
        slot: u32,
        line: u32,
        class: usize,
    ) -> Result<Option<(u32, u64)>> {
        let Some(hint) = self.spares.get(slot as usize) else {
            return Ok(None);
        };
        let entry = hint.load(Ordering::Relaxed);
        if entry == NO_SPARE || (entry >> 32) as usize != class {
            return Ok(None);
        }
        // Another thread of this agent may be taking it too: the exchange gives it to one.
        // Acquire: pairs with the AcqRel swap in `keep_spare` (the keeper's claim is seen).
        if hint
            .compare_exchange(entry, NO_SPARE, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Ok(None);
        }
        let desc = (entry as u32).wrapping_sub(1);
        let d = self.desc_words(desc)?;
        // Only this process changes a descriptor its slot claims (a recovery or repair of the
        // slot needs the slot's kernel lock, which this process holds); a hint that no longer
        // matches (a segment repaired under a live agent) is dropped.
        if d[D_CTL].load(Ordering::Relaxed) != spare_ctl(slot) {
            return Ok(None);
        }
        let block = d[D_BLOCK].load(Ordering::Relaxed);
        let (granule, block_class) = unpack_block_field(block);
        if block_class != class || granule + (1 << class) > self.geo.arena_granules() {
            return Err(ProtocolError::corrupt(format!(
                "spare descriptor {desc} of agent slot {slot} has a bad block"
            )));
        }
        // The rest of the free: the next incarnation, before any field or byte of the new use
        // is stored (seqlock write side; the Release fence pairs with the Acquire fence in
        // `copy_validated`, as the one in `release_desc_as` does). The mutant skips it: a
        // reader's copy of the superseded version validates against the refilled block.
        let owner_word = &d[D_OWNER];
        #[cfg(not(ccs_mutant = "spare_keeps_incarnation"))]
        owner_word.store(
            freed_owner(owner_word.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        fence(Ordering::Release);
        // As `alloc_slot` leaves a descriptor: its line in the link field, FILLING with this
        // use's tag, recorded tagged before the claim goes (one name at a time).
        d[D_NEXT].store(u64::from(line) + 1, Ordering::Relaxed);
        let tag = desc_state::tag(incarnation(owner_word.load(Ordering::Relaxed)));
        let filling = (desc_state::FILLING << desc_state::SHIFT) | tag;
        // The mutant lets the claim go before the record names the descriptor: a death
        // between the two leaves it named by nothing.
        #[cfg(ccs_mutant = "spare_taken_unrecorded")]
        d[D_CTL].store(filling, Ordering::Relaxed);
        #[cfg(not(ccs_mutant = "spare_taken_unrecorded"))]
        self.note_filling(slot, desc, tag)?;
        self.env.kill_point(slot, KillPoint::SpareTaking);
        #[cfg(ccs_mutant = "spare_taken_unrecorded")]
        self.note_filling(slot, desc, tag)?;
        #[cfg(not(ccs_mutant = "spare_taken_unrecorded"))]
        d[D_CTL].store(filling, Ordering::Relaxed);
        Ok(Some((desc, granule)))
    }

    /// Give `slot`'s spare back to the free lists (its agent detaches, or an allocation of its
    /// would be refused). Whether it had one.
    pub(crate) fn release_spare(&self, slot: u32) -> Result<bool> {
        let Some(hint) = self.spares.get(slot as usize) else {
            return Ok(false);
        };
        // Acquire: as in `take_spare`.
        let entry = hint.swap(NO_SPARE, Ordering::Acquire);
        self.free_spare(entry, slot)?;
        Ok(entry != NO_SPARE)
    }

    /// For models and tests: give every spare this process keeps back to the free lists, as
    /// the agents' detaches would. How many there were.
    #[doc(hidden)]
    pub fn give_back_spares(&self) -> Result<u32> {
        let mut given = 0;
        for slot in 0..self.geo.config.max_agents {
            given += u32::from(self.release_spare(slot)?);
        }
        Ok(given)
    }

    /// Forget `slot`'s hint without touching the segment: the slot is being attached, and a
    /// spare a previous attach left is the recovery's (its claim).
    pub(crate) fn forget_spare(&self, slot: u32) {
        if let Some(hint) = self.spares.get(slot as usize) {
            hint.store(NO_SPARE, Ordering::Relaxed);
        }
    }

    /// Finish the free of the spare in hint word `entry`, if it is still `slot`'s.
    fn free_spare(&self, entry: u64, slot: u32) -> Result<()> {
        if entry == NO_SPARE || slot == NO_RECORD {
            return Ok(());
        }
        let desc = (entry as u32).wrapping_sub(1);
        if self.desc_at(desc, D_CTL)?.load(Ordering::Relaxed) != spare_ctl(slot) {
            return Ok(());
        }
        self.note_moving(slot, Moving::Freeing(desc))?;
        self.release_desc_as(desc, slot)
    }
}

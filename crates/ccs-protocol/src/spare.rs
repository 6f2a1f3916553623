//! A writer's spare: the descriptor its overwrite just freed, kept with its block for the
//! writer's next put of the same size class instead of going back through the free lists.
//!
//! An overwrite frees the version it supersedes and the next overwrite takes a descriptor and
//! a block of the same size: four kill-safe free-list operations (a 16-byte compare-and-swap
//! each, with its records and acknowledgements, `free_list.rs`) that hand the same two entries
//! back and forth. A thread-caching allocator keeps such an entry private instead (Bonwick and
//! Adams, "Magazines and Vmem", USENIX 2001); here the privacy must survive a SIGKILL and must
//! never cost another agent room, so the spare is named in the segment by the descriptor's
//! control word: FREE with the writer's *spare claim*, [`desc_state::claim`] of its agent slot
//! with the tag of the use it held ([`spare_claim`]). A delete, whose writer may never write
//! that size again, keeps nothing.
//!
//! * **Keeping** is `try_free`'s winning compare-and-swap with the spare claim for its target
//!   (`alloc.rs`): the free stops there.
//! * **Taking** (`take_spare`) is a compare-and-swap from the spare claim to the writer's plain
//!   claim, the mark of a free in flight that nobody else touches; then the rest of the free
//!   and the allocation, privately: the owner tag moves to the next incarnation (the seqlock
//!   readers' proof, as `release_desc_as` does), the descriptor is recorded FILLING in
//!   `A_TAKEN` with that incarnation's tag, and only then does the control word leave the claim
//!   for FILLING.
//! * **Giving back**, by the writer (`release_spare`: its detach, its put of another class) or
//!   by anyone whose allocation would otherwise be refused (`reclaim_spares`, a scan), is the
//!   same first compare-and-swap to the giver's plain claim, then the rest of the free. So a
//!   spare goes to exactly one of its taker and its givers, and no agent is refused room that
//!   another keeps.
//!
//! At every instruction the descriptor and its block have an owner a recovery finds: the spare
//! claim or the plain claim (the recovery of a dead slot finishes both, `records.rs`), or the
//! tagged record (whose recovery drops it if the descriptor is not FILLING at its tag, and the
//! claim's recovery frees it), or the record alone (docs/protocol.md §3.9).
//!
//! Which descriptor is the spare lives in process memory ([`Directory::spares`], one word per
//! agent slot, with the claim's tag), a hint only: the compare-and-swap that takes it checks it
//! against the segment. An agent keeps at most one spare, of a block of at most
//! [`SPARE_MAX_BYTES`].

use crate::directory::Directory;
use crate::env::Env;
use crate::error::{ProtocolError, Result};
use crate::layout::{A_PID, D_BLOCK, D_CTL, D_NEXT, D_OWNER, Geometry, H_DESC_BUMP, class_bytes};
use crate::packing::{desc_state, freed_owner, incarnation, unpack_block_field};
use crate::records::{KillPoint, Moving, NO_RECORD};
use crate::sync::{AtomicU64, Ordering, fence};

/// The largest block an agent keeps as its spare: what one idle agent may hold back from
/// another until that one's allocation finds no other room (docs/layout.md §7).
pub(crate) const SPARE_MAX_BYTES: u64 = 4096;

/// No spare in a hint word.
const NO_SPARE: u64 = 0;

/// The control word of `slot`'s spare taken from a use whose control word carried `tag`
/// (nonzero): FREE, claimed by the slot, and tagged, which a free in flight never is. The
/// mutant keeps the spare FREE and unclaimed, named only in process memory: a death leaks it.
pub(crate) fn spare_claim(slot: u32, tag: u64) -> u64 {
    #[cfg(ccs_mutant = "spare_unclaimed")]
    {
        let _ = slot;
        desc_state::FREE | (tag & desc_state::TAG)
    }
    #[cfg(not(ccs_mutant = "spare_unclaimed"))]
    {
        desc_state::claim(slot) | (tag & desc_state::TAG)
    }
}

/// Whether control word `ctl` is a spare claim (of any slot).
pub(crate) fn is_spare_claim(ctl: u64) -> bool {
    ctl >> desc_state::SHIFT == desc_state::FREE
        && ctl & desc_state::CLAIM != 0
        && ctl & desc_state::TAG != 0
}

/// A hint word: the spare's claim tag, its block's class and its descriptor.
fn spare_hint(desc: u32, class: usize, tag: u64) -> u64 {
    (tag & desc_state::TAG) | (class as u64 & 0xff) << 24 | (u64::from(desc) + 1)
}

/// The descriptor, class and claim tag of hint word `entry` (not [`NO_SPARE`]).
fn unpack_hint(entry: u64) -> (u32, usize, u64) {
    (
        ((entry & 0xff_ffff) as u32).wrapping_sub(1),
        ((entry >> 24) & 0xff) as usize,
        entry & desc_state::TAG,
    )
}

/// One empty hint per agent slot of `geo`: [`spare_hint`] of the slot's spare, or
/// [`NO_SPARE`], exchanged by whoever takes or replaces it.
pub(crate) fn no_spares(geo: &Geometry) -> Box<[AtomicU64]> {
    (0..geo.config.max_agents)
        .map(|_| AtomicU64::new(NO_SPARE))
        .collect()
}

impl<E: Env> Directory<E> {
    /// Whether `slot`'s `try_free` of `desc`, whose control word carries `tag`, may keep it as
    /// the slot's spare for payloads of class `class`: an attached agent (a write guard
    /// committed after its agent was dropped keeps nothing, since no detach would give it
    /// back), a nonzero tag, a small block of that class (a writer whose sizes change keeps
    /// nothing that it would hold back unused).
    pub(crate) fn may_keep_spare(
        &self,
        desc: u32,
        slot: u32,
        tag: u64,
        class: usize,
    ) -> Result<bool> {
        if (slot as usize) >= self.spares.len() || tag & desc_state::TAG == 0 {
            return Ok(false);
        }
        if self.agent_at(slot, A_PID)?.load(Ordering::Relaxed) == 0 {
            return Ok(false);
        }
        let block = self.desc_at(desc, D_BLOCK)?.load(Ordering::Relaxed);
        Ok(block != crate::alloc::NO_BLOCK
            && unpack_block_field(block).1 == class
            && class < self.geo.classes
            && class_bytes(class) <= SPARE_MAX_BYTES)
    }

    /// After `slot`'s `try_free` won `desc` (its block of class `class`, as
    /// [`Directory::may_keep_spare`] found it) with its spare claim of `tag`: the slot's hint
    /// names it, and a spare the hint named before goes back.
    pub(crate) fn keep_spare(&self, desc: u32, slot: u32, tag: u64, class: usize) -> Result<()> {
        // The retire record is done with: the claim names the descriptor from here on.
        self.note_moving(slot, Moving::None)?;
        let Some(hint) = self.spares.get(slot as usize) else {
            return Ok(());
        };
        // A sibling thread's spare, kept meanwhile, goes back.
        let previous = hint.swap(spare_hint(desc, class, tag), Ordering::Relaxed);
        self.give_back(previous, slot)
    }

    /// The descriptor of `slot`'s spare if it is of class `class`: the one
    /// [`Directory::take_spare`] would take. Only a hint (a prefetch's address): another thread
    /// of the agent may take it first.
    #[cfg(not(loom))]
    pub(crate) fn spare_for(&self, slot: u32, class: usize) -> Option<u32> {
        let entry = self.spares.get(slot as usize)?.load(Ordering::Relaxed);
        let (desc, spare_class, _) = unpack_hint(entry);
        (entry != NO_SPARE && spare_class == class).then_some(desc)
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
        if entry == NO_SPARE {
            return Ok(None);
        }
        if unpack_hint(entry).1 != class {
            // The writer's size changed: a spare kept longer would only be room held back from
            // others (more splits of larger blocks meanwhile).
            self.release_spare(slot)?;
            return Ok(None);
        }
        // Another thread of this agent may be taking it too: the exchange gives it to one.
        if hint
            .compare_exchange(entry, NO_SPARE, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return Ok(None);
        }
        let (desc, _, tag) = unpack_hint(entry);
        #[cfg(not(ccs_mutant = "spare_taken_by_store"))]
        if !self.claim_spare(desc, slot, tag, slot)? {
            return Ok(None);
        }
        // The mutant checks the spare claim and then stores its own: a reclaimer's exchange
        // between the two gives the spare to both.
        #[cfg(ccs_mutant = "spare_taken_by_store")]
        {
            let ctl = self.desc_at(desc, D_CTL)?;
            if ctl.load(Ordering::Acquire) != spare_claim(slot, tag) {
                return Ok(None);
            }
            ctl.store(desc_state::claim(slot), Ordering::Relaxed);
        }
        let d = self.desc_words(desc)?;
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
        // A plain store: the plain claim is this slot's alone, and no pinner touches a FREE word.
        #[cfg(not(ccs_mutant = "spare_taken_unrecorded"))]
        d[D_CTL].store(filling, Ordering::Relaxed);
        Ok(Some((desc, granule)))
    }

    /// Turn `owner`'s spare claim of `tag` on `desc` into `by`'s plain claim (a free in flight,
    /// which only `by` and its recovery touch). Whether it was still that spare: a taker and
    /// any number of givers race here, and one wins.
    fn claim_spare(&self, desc: u32, owner: u32, tag: u64, by: u32) -> Result<bool> {
        // Acquire: the block field and owner word the keeper left (its claiming exchange in
        // `try_free` was AcqRel); Release is not needed, the winner alone goes on.
        Ok(self
            .desc_at(desc, D_CTL)?
            .compare_exchange(
                spare_claim(owner, tag),
                desc_state::claim(by),
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_ok())
    }

    /// Finish the free of `owner`'s spare `desc` (claim tag `tag`) as `by`, if it is still
    /// that spare (the recovery of a dead `owner` passes `by` = `owner`). Whether it was.
    pub(crate) fn give_spare_back(&self, desc: u32, owner: u32, tag: u64, by: u32) -> Result<bool> {
        if !self.claim_spare(desc, owner, tag, by)? {
            return Ok(false);
        }
        self.note_moving(by, Moving::Freeing(desc))?;
        self.release_desc_as(desc, by)?;
        Ok(true)
    }

    /// Finish the free of the spare named by hint word `entry`, if it is still `slot`'s.
    fn give_back(&self, entry: u64, slot: u32) -> Result<()> {
        if entry == NO_SPARE || slot == NO_RECORD {
            return Ok(());
        }
        let (desc, _, tag) = unpack_hint(entry);
        self.give_spare_back(desc, slot, tag, slot).map(drop)
    }

    /// Give `slot`'s spare back to the free lists (its agent detaches).
    pub(crate) fn release_spare(&self, slot: u32) -> Result<()> {
        if let Some(hint) = self.spares.get(slot as usize) {
            self.give_back(hint.swap(NO_SPARE, Ordering::Relaxed), slot)?;
        }
        Ok(())
    }

    /// Forget `slot`'s hint without touching the segment: the slot is being attached, and a
    /// spare a previous attach left is the recovery's (its claim).
    pub(crate) fn forget_spare(&self, slot: u32) {
        if let Some(hint) = self.spares.get(slot as usize) {
            hint.store(NO_SPARE, Ordering::Relaxed);
        }
    }

    /// Give every agent's spare back to the free lists, as `slot` (recorded under it): an
    /// allocation is about to be refused. A scan of the descriptors handed out. How many.
    pub(crate) fn reclaim_spares(&self, slot: u32) -> Result<u32> {
        let bump = self.words.at(H_DESC_BUMP)?.load(Ordering::Relaxed);
        let mut reclaimed = 0;
        for desc in 0..(bump as usize).min(self.geo.descs) as u32 {
            let ctl = self.desc_at(desc, D_CTL)?.load(Ordering::Relaxed);
            if !is_spare_claim(ctl) {
                continue;
            }
            let owner = ((ctl & desc_state::PINS) as u32).wrapping_sub(1);
            reclaimed += u32::from(self.give_spare_back(desc, owner, ctl, slot)?);
        }
        Ok(reclaimed)
    }

    /// For models and tests: give every spare back to the free lists, as an allocation about
    /// to be refused would. How many there were.
    #[doc(hidden)]
    pub fn give_back_spares(&self) -> Result<u32> {
        self.reclaim_spares(NO_RECORD)
    }
}

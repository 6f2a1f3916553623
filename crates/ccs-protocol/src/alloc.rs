//! Payload slots: descriptors and arena blocks, and their reclamation.
//!
//! A version's payload lives in an arena block described by a fixed-size descriptor. Blocks
//! come in power-of-two size classes (64 B << k); each class and the descriptor table keep a
//! Treiber stack of free entries whose head carries a 32-bit ABA tag, refilled by bump
//! allocation from the untouched end, so memory in use grows with live data. The blocks are a
//! binary buddy system with merging (`arena.rs`). A writer's overwrite keeps the version it
//! frees as its spare for its next put of that size instead (`spare.rs`).
//!
//! A descriptor goes FREE → FILLING → LIVE (published) → RETIRED (superseded) → FREE. Readers
//! either copy optimistically and validate the descriptor's owner tag afterwards (a seqlock
//! whose sequence is the owner word: Boehm 2012, "Can seqlocks get along with programming
//! language memory models?"), or pin it: a pinned descriptor is never freed, so its block is
//! immutable and may be lent out as bytes. Whoever brings a RETIRED descriptor to zero pins
//! frees it, exactly once (a compare-and-swap to FREE).

use crate::directory::Directory;
use crate::env::Env;
use crate::error::{ProtocolError, Result};
use crate::free_list::{FreeList, Popper, Pusher};
use crate::layout::{
    D_BLOCK, D_CTL, D_FLAGS, D_LEN, D_NEXT, D_OWNER, D_VERSION, D_WRITTEN_MS, DESC_WORDS,
    H_DESC_BUMP, class_bytes, class_for,
};
use crate::packing::{
    DESC_LINK, block_field, bump_claim, desc_state, freed_owner, incarnation, is_bump_claim, owner,
    superseding_mark, unpack_block_field,
};
use crate::records::{KillPoint, Moving, NO_RECORD, incarnation_of};
use crate::sync::{AtomicU64, Ordering, fence};

/// Descriptor flag: the version is a deletion (tombstone), with no payload.
pub(crate) const FLAG_DELETED: u64 = 1;
/// The flag bits of `D_FLAGS` (the writer's slot is above them).
pub(crate) const FLAGS_MASK: u64 = 0xffff_ffff;
/// `D_BLOCK` of a descriptor without a block.
pub(crate) const NO_BLOCK: u64 = u64::MAX;

/// A payload with the granule of the block [`Directory::alloc_slot`] took for it, for
/// [`Directory::fill_slot`] to copy it into (`None`: a tombstone, no block).
pub(crate) type Filling<'p> = Option<(&'p [u8], u64)>;

/// Move the bump pointer `bump` from `from` to `from + count`, past a claimed entry, unless
/// another bumper or a recovery already did (the pointer leaves a claimed position only this
/// way, so a failed exchange means it is past). Relaxed: the claim, not the pointer, decides
/// who owns the entry.
pub(crate) fn move_bump_past(bump: &AtomicU64, from: u64, count: u64) {
    let _ = bump.compare_exchange(from, from + count, Ordering::Relaxed, Ordering::Relaxed);
}

/// The bump pointer `bump` after a claim at its position `from` was refused: that entry was
/// claimed since this bumper read the pointer, and the pointer moved past it before the claim
/// was let go. Read with a read-modify-write, which reads the latest value in the pointer's
/// modification order (a load could return the old position again); should the old position
/// still come back (a segment whose entry at the pointer is in use without a claim: corrupt),
/// a few yields, then an error naming `what`, never a spin.
pub(crate) fn bump_after_refused_claim(bump: &AtomicU64, from: u64, what: &str) -> Result<u64> {
    for _ in 0..BUMP_WAIT_YIELDS {
        let current = bump.fetch_add(0, Ordering::Relaxed);
        if current != from {
            return Ok(current);
        }
        crate::sync::yield_now();
    }
    Err(ProtocolError::corrupt(format!(
        "the {what} at the bump pointer ({from}) is in use but not claimed"
    )))
}

/// How often [`bump_after_refused_claim`] reads the pointer before it reports corruption.
const BUMP_WAIT_YIELDS: u32 = 64;

/// Where a published version's bytes are, read from its descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlotInfo {
    pub version: u64,
    pub len: usize,
    /// First word of the payload, if it has one.
    pub first_word: Option<usize>,
    pub deleted: bool,
}

impl<E: Env> Directory<E> {
    /// The words of descriptor `desc`, checked once against the number of descriptors.
    #[inline]
    #[allow(unsafe_code)] // checked against the geometry, which the words cover
    pub(crate) fn desc_words(&self, desc: u32) -> Result<&[AtomicU64; DESC_WORDS]> {
        if desc as usize >= self.geo.descs {
            return Err(desc_out_of_range(desc));
        }
        // SAFETY: `desc < descs`: its words are inside the descriptor region, which lies
        // inside the words (`Directory`'s invariant).
        Ok(unsafe { self.words.array_unchecked(self.geo.desc_word(desc, 0)) })
    }

    #[inline]
    pub(crate) fn desc_at(&self, desc: u32, field: usize) -> Result<&AtomicU64> {
        self.desc_words(desc)?
            .get(field)
            .ok_or_else(|| ProtocolError::corrupt("descriptor field"))
    }

    /// A descriptor from the untouched end, claimed by `slot` (its owner word is
    /// [`bump_claim`]`(slot)` until the caller records it and lets the claim go,
    /// [`Directory::unclaim_bumped`]); `None` once every descriptor was handed out.
    ///
    /// The claim comes before the bump pointer moves (docs/protocol.md §3.9): a compare-and-swap
    /// from owner word 0, which only a descriptor never handed out has (`freed_owner` skips
    /// it), so exactly one bumper wins each position, even one that read the pointer long ago.
    /// Whoever finds a claim at the pointer moves the pointer past it, so a bumper killed right
    /// after its claim stops nobody, and its recovery finds the descriptor by its claim.
    fn bump_desc(&self, slot: u32) -> Result<Option<u32>> {
        let limit = self.geo.descs as u64;
        let bump = self.words.at(H_DESC_BUMP)?;
        let mut current = bump.load(Ordering::Relaxed);
        loop {
            if current >= limit {
                return Ok(None);
            }
            let desc = current as u32;
            let owner_word = self.desc_at(desc, D_OWNER)?;
            // The mutant bumps without a claim, as before: a death right after the bump leaves
            // the descriptor named by nothing.
            #[cfg(ccs_mutant = "unclaimed_desc_bump")]
            {
                let _ = owner_word;
                match bump.compare_exchange(
                    current,
                    current + 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        self.env.kill_point(slot, KillPoint::DescClaimed);
                        return Ok(Some(desc));
                    }
                    Err(seen) => {
                        current = seen;
                        continue;
                    }
                }
            }
            // Relaxed: the claim orders nothing but itself (a read-modify-write reads the
            // latest owner word, so two claims of one position cannot both win); the recovery
            // that reads it holds the dead claimer's kernel lock.
            match owner_word.compare_exchange(
                0,
                bump_claim(slot),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.env.kill_point(slot, KillPoint::DescClaimed);
                    move_bump_past(bump, current, 1);
                    return Ok(Some(desc));
                }
                Err(seen) => {
                    if is_bump_claim(seen) {
                        move_bump_past(bump, current, 1);
                    }
                    current = bump_after_refused_claim(bump, current, "descriptor")?;
                }
            }
        }
    }

    /// Let the bump claim on `desc` go, once `slot`'s `A_TAKEN` records it (one name at a time,
    /// `records.rs`): its owner word becomes that of a descriptor freed once, its block field
    /// "no block" first (a descriptor never handed out reads 0 there, granule 0, which
    /// `frees_in_flight` would take for a block being freed).
    fn unclaim_bumped(&self, desc: u32) -> Result<()> {
        self.desc_at(desc, D_BLOCK)?
            .store(NO_BLOCK, Ordering::Relaxed);
        let owner_word = self.desc_at(desc, D_OWNER)?;
        owner_word.store(
            freed_owner(owner_word.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        Ok(())
    }

    /// A descriptor off the free list (or the untouched end), recorded at once as taken by
    /// `slot` (`records.rs`).
    fn alloc_desc(&self, slot: u32) -> Result<u32> {
        let limit = self.geo.descs as u64;
        let popped = self.pop_free(FreeList::Descs, limit, Popper::Agent(slot), |d| {
            Ok(self
                .words
                .at(self.geo.desc_word(d as u32, D_NEXT))?
                .load(Ordering::Relaxed)
                & DESC_LINK)
        })?;
        // A popped descriptor is recorded by the pop (`free_list.rs`), a bumped one here.
        let (desc, bumped) = match popped {
            Some(desc) => (desc as u32, false),
            None => {
                let desc = self
                    .bump_desc(slot)?
                    .ok_or(ProtocolError::CapacityExceeded {
                        what: "versions alive at once (slot descriptors)",
                        limit,
                    })?;
                self.note_taken(slot, Some(desc))?;
                (desc, true)
            }
        };
        self.env.kill_point(slot, KillPoint::Taken);
        if bumped {
            self.unclaim_bumped(desc)?;
        }
        if self.desc_at(desc, D_CTL)?.load(Ordering::Relaxed) != desc_state::FREE {
            self.note_taken(slot, None)?;
            return Err(ProtocolError::corrupt(format!(
                "free slot descriptor {desc} is in use"
            )));
        }
        Ok(desc)
    }

    /// A fresh descriptor for a new version of `line`, in state FILLING, with a block for
    /// `payload` (`None`: a tombstone, no block), returned paired with the block's granule:
    /// reachable by no reader until [`Directory::fill_slot`] fills it and a writer publishes
    /// it. Recorded as taken by `slot`, with this use's tag, until the caller clears that record
    /// ([`Directory::note_taken`]) once the line's pending word names the descriptor; its next
    /// word names the line meanwhile, for the recovery of that record (`records.rs`).
    ///
    /// The block is taken first and moves into the descriptor's block field while the
    /// descriptor is still private and tagged in the record: the block's own record (`Block`)
    /// is cleared only after that store, and its recovery leaves a block that the recorded
    /// FILLING descriptor names to that descriptor's discard, so no store between two names
    /// leaves the block named by neither (docs/protocol.md §3.9).
    pub(crate) fn alloc_slot<'p>(
        &self,
        slot: u32,
        line: u32,
        payload: Option<&'p [u8]>,
    ) -> Result<(u32, Filling<'p>)> {
        let block = match payload {
            Some(bytes) => {
                let class = class_for(bytes.len() as u64);
                if let Some((desc, granule)) = self.take_spare(slot, line, class)? {
                    return Ok((desc, Some((bytes, granule))));
                }
                Some((
                    self.or_after_spare(slot, || self.alloc_block(class, slot))?,
                    class,
                ))
            }
            None => None,
        };
        let desc = match self.or_after_spare(slot, || self.alloc_desc(slot)) {
            Ok(desc) => desc,
            Err(e) => {
                if let Some((granule, class)) = block {
                    // One name at a time: a death between the two leaks the block.
                    self.note_moving(slot, Moving::None)?;
                    self.free_block(granule, class)?;
                }
                return Err(e);
            }
        };
        // Seqlock write side for the descriptor's own fields: a reader that sees any field
        // stored below also sees, after its Acquire fence, that the descriptor's previous owner
        // tag was cleared (cleared in `release_desc` before the Release push that `alloc_desc`
        // popped). Pairs with the Acquire fence in `copy_validated`.
        fence(Ordering::Release);
        // No block until the record below is tagged: the untagged record's recovery gives the
        // descriptor back without looking at its block field.
        let d = self.desc_words(desc)?;
        d[D_BLOCK].store(NO_BLOCK, Ordering::Relaxed);
        // The line, in the link field (unused while the descriptor is off the free lists; a
        // stale superseder's mark keeps it): the recovery of the record below finds the
        // pending word there. The mark bits of the previous use go: they meant that use.
        d[D_NEXT].store(u64::from(line) + 1, Ordering::Relaxed);
        // Tagged with this use's incarnation (the one `release_desc` left, which `fill_slot`
        // keeps): a compare-and-swap expecting an earlier use fails (`discard_as`).
        let tag = desc_state::tag(incarnation(d[D_OWNER].load(Ordering::Relaxed)));
        d[D_CTL].store(
            (desc_state::FILLING << desc_state::SHIFT) | tag,
            Ordering::Relaxed,
        );
        self.note_filling(slot, desc, tag)?;
        if let Some((granule, class)) = block {
            let field = block_field(granule, class);
            // The mutant clears the block's record first, as before: a death between the two
            // stores leaves the block named by nothing.
            #[cfg(not(ccs_mutant = "block_record_cleared_first"))]
            d[D_BLOCK].store(field, Ordering::Relaxed);
            #[cfg(ccs_mutant = "block_record_cleared_first")]
            self.note_moving(slot, Moving::None)?;
            self.env.kill_point(slot, KillPoint::BlockNamed);
            #[cfg(not(ccs_mutant = "block_record_cleared_first"))]
            self.note_moving(slot, Moving::None)?;
            #[cfg(ccs_mutant = "block_record_cleared_first")]
            d[D_BLOCK].store(field, Ordering::Relaxed);
        }
        Ok((desc, payload.zip(block.map(|(granule, _)| granule))))
    }

    /// `alloc`, and once more after every agent's spare went back if it was refused for
    /// capacity: a segment whose live data fits is not refused for what writers keep
    /// (`spare.rs`).
    fn or_after_spare<T>(&self, slot: u32, alloc: impl Fn() -> Result<T>) -> Result<T> {
        match alloc() {
            Err(ProtocolError::CapacityExceeded { .. }) if self.reclaim_spares(slot)? > 0 => {
                alloc()
            }
            other => other,
        }
    }

    /// Fill `desc` for `line` at `version` with `payload` and the granule of its block, as
    /// [`Directory::alloc_slot`] returned them (`None`: a tombstone), and make it LIVE.
    pub(crate) fn fill_slot(
        &self,
        desc: u32,
        line: u32,
        version: u64,
        payload: Filling<'_>,
        writer: u32,
    ) -> Result<()> {
        let d = self.desc_words(desc)?;
        if let Some((bytes, granule)) = payload {
            // Seqlock write side: a reader that sees any byte stored below also sees, after
            // its Acquire fence, that the block's previous owner tag was cleared (pairs with
            // the Acquire fence in `copy_validated`).
            fence(Ordering::Release);
            self.words.copy_in(self.geo.granule_word(granule), bytes)?;
        }
        d[D_LEN].store(
            payload.map_or(0, |(b, _)| b.len() as u64),
            Ordering::Relaxed,
        );
        d[D_VERSION].store(version, Ordering::Relaxed);
        d[D_WRITTEN_MS].store(self.env.now_ms(), Ordering::Relaxed);
        let flags = if payload.is_none() { FLAG_DELETED } else { 0 };
        d[D_FLAGS].store(u64::from(writer) << 32 | flags, Ordering::Relaxed);
        // The owner tag goes on last, once every field and byte is in place: it is the seqlock
        // sequence, so while the descriptor fills its line field reads 0 (left so by
        // `release_desc`) and a reader holding a stale head discards the descriptor instead of
        // copying a half-written version of its own line. The incarnation is the one
        // `release_desc` left (this writer owns the descriptor: it popped it, Acquire, after
        // that store), so the tag differs from every tag this descriptor carried before
        // (`packing.rs`). Pairs with the Acquire loads of the owner in `copy_validated`,
        // `current` and `pin`.
        let freed = d[D_OWNER].load(Ordering::Relaxed);
        d[D_OWNER].store(owner(line, incarnation(freed)), Ordering::Release);
        // Pairs with the Acquire compare-exchange in `pin`: a pinner sees the owner tag.
        self.desc_at(desc, D_CTL)?.store(
            (desc_state::LIVE << desc_state::SHIFT) | desc_state::tag(incarnation(freed)),
            Ordering::Release,
        );
        Ok(())
    }

    /// Free a descriptor that was never published (a fenced write, or a dead writer's). A
    /// reader may hold a transient pin on it (it pins, then finds it unpublished and lets go):
    /// the pins are kept and the last one frees it. Recorded under `slot` until done.
    pub(crate) fn discard_slot(&self, desc: u32, slot: u32) -> Result<()> {
        self.discard_as(desc, incarnation_of(self, desc)?, slot, false)
            .map(|_| ())
    }

    /// The incarnation of `desc`'s owner word (see [`Directory::discard_slot_known`]).
    pub(crate) fn incarnation_of(&self, desc: u32) -> Result<u32> {
        incarnation_of(self, desc)
    }

    /// [`Directory::discard_slot`] of `desc` at `incarnation`, read before the caller took it
    /// (a dead holder's pending slot, or a dead process's recorded discard: `records.rs`).
    /// Another discarder of the same use may have been first (the recovery of a reclaimer that
    /// recorded its discard and lost the pending record to another): `false` if the
    /// descriptor has moved on (freed since, perhaps reused), and nothing is done.
    pub(crate) fn discard_slot_known(
        &self,
        desc: u32,
        incarnation: u32,
        slot: u32,
    ) -> Result<bool> {
        self.discard_as(desc, incarnation, slot, true)
    }

    /// Discard `desc`, taken at `incarnation`: FILLING (keeping its pins), freed now if it has
    /// none. Every compare-and-swap expects the control word's tag of that incarnation, so a
    /// descriptor freed meanwhile (by a reader's last unpin) and reused by another writer is
    /// never taken for this one: a check of the incarnation before an untagged exchange would
    /// leave a window between the two (docs/protocol.md §3.9). Unless `shared`, a descriptor
    /// that is not this use's is corrupt (its discarder owns it).
    fn discard_as(&self, desc: u32, incarnation: u32, slot: u32, shared: bool) -> Result<bool> {
        self.note_moving(slot, Moving::Discard { desc, incarnation })?;
        let ctl = self.desc_at(desc, D_CTL)?;
        let tag = desc_state::tag(incarnation);
        // Acquire: a recoverer reads a word another process wrote.
        let mut current = ctl.load(Ordering::Acquire);
        loop {
            let state = current >> desc_state::SHIFT;
            // The mutant (with the recovery's check of the incarnation before this call, as
            // before the tag) compares the state alone.
            #[cfg(not(ccs_mutant = "two_step_discard"))]
            let foreign = current & desc_state::TAG != tag;
            #[cfg(ccs_mutant = "two_step_discard")]
            let foreign = {
                let _ = tag;
                false
            };
            if (state != desc_state::FILLING && state != desc_state::LIVE) || foreign {
                if shared {
                    self.note_moving(slot, Moving::None)?;
                    return Ok(false);
                }
                return Err(ProtocolError::corrupt(format!(
                    "unpublished slot descriptor {desc} is in state {state} (control word \
                     {current:#x}, taken at incarnation {incarnation})"
                )));
            }
            let discarded =
                (desc_state::FILLING << desc_state::SHIFT) | (current & desc_state::BODY);
            match ctl.compare_exchange_weak(current, discarded, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) if current & desc_state::PINS == 0 => {
                    self.try_free(desc, discarded, slot)?;
                    return Ok(true);
                }
                Ok(_) => {
                    self.env.kill_point(slot, KillPoint::Discarded);
                    self.note_moving(slot, Moving::None)?;
                    return Ok(true);
                }
                Err(seen) => current = seen,
            }
        }
    }

    /// The descriptor a publish supersedes (if any) and its incarnation, for
    /// [`Directory::retire_known`].
    pub(crate) fn superseded(&self, old: Option<u32>) -> Result<Option<(u32, u32)>> {
        old.map(|desc| Ok((desc, incarnation_of(self, desc)?)))
            .transpose()
    }

    /// Before the compare-and-swap that supersedes `old` (a publish, or the emptying of a
    /// reused line) by `slot`'s hold at `epoch`: record the step (`Superseding`) and leave the
    /// hold's mark in `old`'s next word, the witness that tells this agent's recovery whether
    /// the supersede happened (docs/protocol.md §3.9). Every superseder marks first, so a mark
    /// that is still this hold's once the head has moved on from `old` is proof that this hold
    /// moved it. A compare-and-swap that keeps the link field: `old` is on no free list while
    /// it is published, but a writer fenced meanwhile may mark it after it was freed.
    pub(crate) fn mark_superseding(&self, old: u32, slot: u32, epoch: u32) -> Result<()> {
        self.note_moving(slot, Moving::Superseding { desc: old, epoch })?;
        #[cfg(not(ccs_mutant = "unmarked_supersede"))]
        {
            let mark = superseding_mark(slot, epoch);
            let next = self.desc_at(old, D_NEXT)?;
            let mut current = next.load(Ordering::Relaxed);
            // Relaxed: the publishing compare-and-swap that follows (SeqCst) releases it, and
            // the recovery reads it after an Acquire load of the head that saw that exchange.
            while let Err(seen) = next.compare_exchange_weak(
                current,
                mark | (current & DESC_LINK),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                current = seen;
            }
        }
        Ok(())
    }

    /// Mark a superseded descriptor RETIRED, the use of it at `incarnation` (read before it
    /// was superseded); free it now if no one pins it. `slot` (the agent whose publish
    /// superseded it) records the step until done, so that if its process dies first, its
    /// recovery retires it (`records.rs`).
    ///
    /// A compare-and-swap that expects the control word of that use (LIVE with the
    /// incarnation's tag), so a retire is done once per use however many claim it: a second
    /// retirer (a stalled writer's recovery whose mark overwrote its reclaimer's, docs/protocol.md
    /// §3.9) finds it RETIRED, or freed and taken again with another tag, and changes nothing.
    /// A descriptor RETIRED at that tag with no pins is freed (its retirer died before its
    /// `try_free`; the exchange there frees it once). Whether this call retired or freed it.
    pub(crate) fn retire_known(&self, desc: u32, incarnation: u32, slot: u32) -> Result<bool> {
        self.retire_as(desc, incarnation, slot, None)
    }

    /// [`Directory::retire_known`] by the overwrite that superseded `desc` with a payload of
    /// class `class`: a descriptor it frees whose block is of that class may stay with `slot`
    /// as its spare (`spare.rs`).
    pub(crate) fn retire_superseded(
        &self,
        desc: u32,
        incarnation: u32,
        slot: u32,
        class: usize,
    ) -> Result<bool> {
        self.retire_as(desc, incarnation, slot, Some(class))
    }

    /// [`Directory::retire_known`], keeping what it frees as `slot`'s spare if its block is of
    /// class `spare`.
    fn retire_as(
        &self,
        desc: u32,
        incarnation: u32,
        slot: u32,
        spare: Option<usize>,
    ) -> Result<bool> {
        self.note_moving(slot, Moving::Retire { desc, incarnation })?;
        self.env.kill_point(slot, KillPoint::Retiring);
        let retired = desc_state::RETIRED << desc_state::SHIFT;
        let ctl = self.desc_at(desc, D_CTL)?;
        // The mutant ORs the state in whatever the word holds: a retire that comes after the
        // version was freed marks a free (or another use's) descriptor RETIRED and frees it.
        #[cfg(ccs_mutant = "untagged_retire")]
        let unpinned = {
            let before = ctl.fetch_or(retired, Ordering::AcqRel);
            (before & desc_state::PINS == 0).then_some(before | retired)
        };
        #[cfg(not(ccs_mutant = "untagged_retire"))]
        let unpinned = {
            let this_use = desc_state::tag(incarnation);
            // Acquire, and AcqRel below: pairs with the Release store of LIVE in `fill_slot`
            // and with the Acquire load in `was_published_at`.
            let mut current = ctl.load(Ordering::Acquire);
            loop {
                if current & desc_state::TAG != this_use {
                    break None;
                }
                let state = current >> desc_state::SHIFT;
                if state == desc_state::RETIRED {
                    break (current & desc_state::PINS == 0).then_some(current);
                }
                if state != desc_state::LIVE {
                    break None;
                }
                let next = (current & desc_state::BODY) | retired;
                match ctl.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) if next & desc_state::PINS == 0 => break Some(next),
                    // Retired by this call; the last unpinner frees it.
                    Ok(_) => {
                        self.note_moving(slot, Moving::None)?;
                        return Ok(true);
                    }
                    Err(seen) => current = seen,
                }
            }
        };
        match unpinned {
            Some(word) => self
                .try_free_keeping(desc, word, slot, spare)
                .map(|()| true),
            None => self.note_moving(slot, Moving::None).map(|()| false),
        }
    }

    /// Whether a free is in flight: a FREE descriptor whose free was won and not finished,
    /// claimed (`try_free`) or still holding its block (`release_desc_as` clears the claim
    /// first and the block field only once the block is pushed), so the block may not be back
    /// on a list yet. A scan of the descriptors handed out, for an allocation about to be
    /// refused. A descriptor still claimed by a bumper is no free: its block field was never
    /// a block (the claim is let go only once the field says so).
    pub(crate) fn frees_in_flight(&self) -> Result<bool> {
        let bump = self.words.at(H_DESC_BUMP)?.load(Ordering::Relaxed);
        for desc in 0..(bump as usize).min(self.geo.descs) as u32 {
            let d = self.desc_words(desc)?;
            // Acquire: a claim or a block field another process wrote.
            let ctl = d[D_CTL].load(Ordering::Acquire);
            // Acquire: pairs with the Release store that clears the field in `release_desc_as`
            // once the block is pushed (and in the recovery of a `PushBlock`).
            if ctl >> desc_state::SHIFT == desc_state::FREE
                && !crate::spare::is_spare_claim(ctl)
                && (ctl & desc_state::CLAIM != 0
                    || (d[D_BLOCK].load(Ordering::Acquire) != NO_BLOCK
                        && !is_bump_claim(d[D_OWNER].load(Ordering::Relaxed))))
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// For models and tests: the descriptor of `line`'s published version and its
    /// incarnation, as a publish reads them before superseding it.
    #[doc(hidden)]
    pub fn published_slot(&self, line: u32) -> Result<Option<(u32, u32)>> {
        let head = crate::packing::Head::unpack(self.head(line)?.load(Ordering::Acquire));
        self.superseded(head.desc_index())
    }

    /// For models and tests: retire `desc` at `incarnation` once more, as a second claimant
    /// of its supersede would (a stalled writer's recovery, docs/protocol.md §3.9). Whether
    /// it retired or freed anything.
    #[doc(hidden)]
    pub fn retire_again(&self, desc: u32, incarnation: u32, slot: u32) -> Result<bool> {
        self.retire_known(desc, incarnation, slot)
    }

    /// Free `desc` if its control word is still `unpinned` (RETIRED, or FILLING for a discarded
    /// one, with its tag and no pins); only one caller can win. The winner's compare-and-swap leaves its claim in the control
    /// word (FREE, [`desc_state::claim`] of `slot`), so if it dies before its record of the
    /// free, its recovery finds the claim and finishes the free (`records.rs`).
    pub(crate) fn try_free(&self, desc: u32, unpinned: u64, slot: u32) -> Result<()> {
        self.try_free_keeping(desc, unpinned, slot, None)
    }

    /// [`Directory::try_free`]; if its block is of class `spare`, the winner may stop at its
    /// claim and keep the descriptor as `slot`'s spare (`spare.rs`).
    fn try_free_keeping(
        &self,
        desc: u32,
        unpinned: u64,
        slot: u32,
        spare: Option<usize>,
    ) -> Result<()> {
        let keep = match spare {
            Some(class) => self
                .may_keep_spare(desc, slot, unpinned, class)?
                .then_some(class),
            None => None,
        };
        #[cfg(not(ccs_mutant = "unclaimed_free"))]
        let claimed = if keep.is_some() {
            crate::spare::spare_claim(slot, unpinned)
        } else {
            desc_state::claim(slot)
        };
        // The mutant: a winning free that names nobody.
        #[cfg(ccs_mutant = "unclaimed_free")]
        let claimed = 0;
        let ctl = self.desc_at(desc, D_CTL)?;
        #[cfg(not(ccs_mutant = "free_while_pinned"))]
        let won = ctl
            .compare_exchange(unpinned, claimed, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok();
        #[cfg(ccs_mutant = "free_while_pinned")]
        let won = {
            let _ = unpinned;
            ctl.store(claimed, Ordering::Release);
            true
        };
        if won {
            self.env.kill_point(slot, KillPoint::Claimed);
            if let Some(class) = keep {
                return self.keep_spare(desc, slot, unpinned, class);
            }
            self.note_moving(slot, Moving::Freeing(desc))?;
            self.env.kill_point(slot, KillPoint::Freeing);
            self.release_desc_as(desc, slot)
        } else {
            self.note_moving(slot, Moving::None)
        }
    }

    /// Return a descriptor (now FREE) and its block to the free lists, unrecorded (its owner
    /// records it elsewhere, or nothing else runs: fsck's repair).
    pub(crate) fn release_desc(&self, desc: u32) -> Result<()> {
        self.release_desc_as(desc, NO_RECORD)
    }

    /// [`Directory::release_desc`], each step recorded under `slot` (`records.rs`): the
    /// descriptor keeps its block field until the block's push is done, so a recovery from
    /// `Freeing` knows the block was not given back yet.
    pub(crate) fn release_desc_as(&self, desc: u32, slot: u32) -> Result<()> {
        self.desc_at(desc, D_CTL)?.store(0, Ordering::Relaxed);
        // The owner tag changes before the block is reusable: the seqlock readers' proof (see
        // `fill_slot`) needs it changed before the Release push below. It moves to the next
        // incarnation, never back to a value a reader may have seen (`packing.rs`).
        let owner_word = self.desc_at(desc, D_OWNER)?;
        owner_word.store(
            freed_owner(owner_word.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        // Seqlock write side: whoever pops the block (Acquire, after the Release push below,
        // directly or through a split or a merge) and fills it does so after this store, so a
        // reader that copies its bytes sees the tag changed after its Acquire fence and
        // discards its copy. Pairs with the Acquire fence in `copy_validated`.
        fence(Ordering::Release);
        let block_field = self.desc_at(desc, D_BLOCK)?;
        let block = block_field.load(Ordering::Relaxed);
        if block != NO_BLOCK {
            let (granule, class) = unpack_block_field(block);
            if class >= self.geo.classes || granule + (1 << class) > self.geo.arena_granules() {
                return Err(ProtocolError::corrupt(format!(
                    "slot descriptor {desc} has a bad block"
                )));
            }
            self.check_used_block(granule, class)?;
            self.push_block(granule, class, Pusher::Freeing { slot, desc })?;
        }
        self.finish_pushed_block(desc, slot)
    }

    /// The rest of a descriptor's free once its block is pushed (or it had none): its block
    /// field cleared, the descriptor pushed.
    pub(crate) fn finish_pushed_block(&self, desc: u32, slot: u32) -> Result<()> {
        // Release: pairs with the Acquire load in `frees_in_flight`, so an allocation that
        // sees the field cleared also sees the block on its list.
        self.desc_at(desc, D_BLOCK)?
            .store(NO_BLOCK, Ordering::Release);
        self.push_desc_as(desc, slot)
    }

    /// Push a FREE descriptor without a block on the free list, recorded under `slot`.
    pub(crate) fn push_desc_as(&self, desc: u32, slot: u32) -> Result<()> {
        let next = self.desc_at(desc, D_NEXT)?;
        // Recorded made (`None`) by the push itself, or by whoever acknowledges it first.
        self.push_free(
            FreeList::Descs,
            u64::from(desc),
            next,
            |link| link,
            Pusher::Freeing { slot, desc },
        )
    }

    /// Read a descriptor's fields, bounds-checked. Not yet validated against concurrent reuse.
    #[inline]
    pub(crate) fn slot_info(&self, desc: u32, owner_word: u64) -> Result<SlotInfo> {
        self.slot_info_of(desc, self.desc_words(desc)?, owner_word)
    }

    /// [`Directory::slot_info`] of descriptor `desc`'s words `d`, already bounds-checked (the
    /// read path checks them once).
    #[inline(always)]
    pub(crate) fn slot_info_of(
        &self,
        desc: u32,
        d: &[AtomicU64; DESC_WORDS],
        owner_word: u64,
    ) -> Result<SlotInfo> {
        if crate::packing::unpack_owner(owner_word).is_none() {
            return Err(ProtocolError::corrupt(format!(
                "slot descriptor {desc} is free"
            )));
        }
        let version = d[D_VERSION].load(Ordering::Relaxed);
        let len = d[D_LEN].load(Ordering::Relaxed);
        let block = d[D_BLOCK].load(Ordering::Relaxed);
        let flags = d[D_FLAGS].load(Ordering::Relaxed) & FLAGS_MASK;
        let deleted = flags & FLAG_DELETED != 0;
        let first_word = if block == NO_BLOCK {
            if len != 0 {
                return Err(ProtocolError::corrupt(format!(
                    "slot descriptor {desc} has bytes but no block"
                )));
            }
            None
        } else {
            let (granule, class) = unpack_block_field(block);
            if class >= self.geo.classes
                || granule + (1 << class) > self.geo.arena_granules()
                || len > class_bytes(class)
                || len > self.geo.config.max_payload
            {
                return Err(ProtocolError::corrupt(format!(
                    "slot descriptor {desc} has an out-of-range block"
                )));
            }
            Some(self.geo.granule_word(granule))
        };
        Ok(SlotInfo {
            version,
            len: len as usize,
            first_word,
            deleted,
        })
    }

    /// Who wrote a pinned descriptor's version, and when (monotonic ms): for status only, so
    /// kept off the read path.
    pub(crate) fn slot_writer(&self, desc: u32) -> Result<(u32, u64)> {
        let writer = self.desc_at(desc, D_FLAGS)?.load(Ordering::Relaxed) >> 32;
        let written_ms = self.desc_at(desc, D_WRITTEN_MS)?.load(Ordering::Relaxed);
        Ok((u32::try_from(writer).unwrap_or(u32::MAX), written_ms))
    }

    /// Whether `desc`, just seen tagged for `line`, was ever published: the line's head points
    /// at it, or it was superseded (only published descriptors are RETIRED). A slot that a
    /// writer is still filling, or a fenced writer's, is neither: its version does not exist
    /// yet (or ever), and a reader that reached it through a stale head must not return it.
    #[inline]
    pub(crate) fn was_published(&self, desc: u32, line: u32) -> Result<bool> {
        Ok(was_published_at(
            desc,
            &self.desc_words(desc)?[D_CTL],
            self.head(line)?,
        ))
    }

    /// Pin `desc` if it is published (LIVE or RETIRED) and belongs to `line`. On success the
    /// descriptor cannot be freed until [`Directory::unpin`].
    pub(crate) fn pin(&self, desc: u32, line: u32) -> Result<Option<SlotInfo>> {
        self.pin_as(desc, line, NO_RECORD)
    }

    /// [`Directory::pin`], recording under `slot` a free its own unpin may do.
    pub(crate) fn pin_as(&self, desc: u32, line: u32, slot: u32) -> Result<Option<SlotInfo>> {
        let ctl = self.desc_at(desc, D_CTL)?;
        let mut current = ctl.load(Ordering::Relaxed);
        loop {
            let state = current >> desc_state::SHIFT;
            if state != desc_state::LIVE && state != desc_state::RETIRED {
                return Ok(None);
            }
            if current & desc_state::PINS == desc_state::PINS {
                return Err(ProtocolError::CapacityExceeded {
                    what: "pins of one version",
                    limit: desc_state::PINS,
                });
            }
            // Pairs with the Release store of LIVE in `fill_slot`.
            match ctl.compare_exchange_weak(
                current,
                current + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(seen) => current = seen,
            }
        }
        let owner_word = self.desc_at(desc, D_OWNER)?.load(Ordering::Acquire);
        let ours = matches!(crate::packing::unpack_owner(owner_word), Some((owner_line, _)) if owner_line == line);
        #[cfg(not(ccs_mutant = "no_publish_check"))]
        let ours = ours && self.was_published(desc, line)?;
        if !ours {
            self.unpin_as(desc, slot)?;
            return Ok(None);
        }
        match self.slot_info(desc, owner_word) {
            Ok(info) => Ok(Some(info)),
            Err(e) => {
                self.unpin_as(desc, slot)?;
                Err(e)
            }
        }
    }

    /// Drop one pin; the last pin of a RETIRED (or discarded) descriptor frees it.
    ///
    /// Checked: a descriptor with no pins is left as it is and the call is refused, so a stray
    /// unpin can never borrow from the state bits (LIVE|0 - 1 would read FILLING with every pin
    /// bit set: a descriptor no reader could use and no one would free).
    pub(crate) fn unpin(&self, desc: u32) -> Result<()> {
        self.unpin_as(desc, NO_RECORD)
    }

    /// [`Directory::unpin`], recording a free it does under `slot`.
    pub(crate) fn unpin_as(&self, desc: u32, slot: u32) -> Result<()> {
        let ctl = self.desc_at(desc, D_CTL)?;
        #[cfg(ccs_mutant = "unchecked_unpin")]
        let before = ctl.fetch_sub(1, Ordering::AcqRel);
        #[cfg(not(ccs_mutant = "unchecked_unpin"))]
        let before = {
            let mut current = ctl.load(Ordering::Relaxed);
            loop {
                if current & desc_state::PINS == 0 {
                    break current;
                }
                // AcqRel: the pinner's reads of the block happen before whoever frees it.
                match ctl.compare_exchange_weak(
                    current,
                    current - 1,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break current,
                    Err(seen) => current = seen,
                }
            }
        };
        if before & desc_state::PINS == 0 {
            return Err(ProtocolError::corrupt(format!(
                "slot descriptor {desc} unpinned more than pinned"
            )));
        }
        for state in [desc_state::RETIRED, desc_state::FILLING] {
            if before & !desc_state::TAG == (state << desc_state::SHIFT) | 1 {
                self.try_free(desc, before - 1, slot)?;
            }
        }
        Ok(())
    }
}

/// The error of a descriptor index beyond the table, out of the hot paths' line.
#[cold]
#[inline(never)]
fn desc_out_of_range(desc: u32) -> ProtocolError {
    ProtocolError::corrupt(format!("slot descriptor {desc} out of range"))
}

/// [`Directory::was_published`] of descriptor `desc`, given its control word and its line's
/// head word (bounds-checked by the caller).
#[inline(always)]
pub(crate) fn was_published_at(desc: u32, ctl: &AtomicU64, head: &AtomicU64) -> bool {
    // Pairs with the AcqRel compare-and-swap in `retire_known`.
    let ctl = ctl.load(Ordering::Acquire);
    if ctl >> desc_state::SHIFT == desc_state::RETIRED {
        return true;
    }
    // Pairs with the publishing compare-exchange in `write.rs`.
    crate::packing::Head::unpack(head.load(Ordering::Acquire)).desc == desc + 1
}

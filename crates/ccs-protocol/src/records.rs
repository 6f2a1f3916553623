//! Allocation records: what an agent's process was doing with a descriptor or an arena block
//! when it died, so that whoever next holds the agent's kernel lock (its next attach, the
//! takeover of its slot, `fsck --repair`) completes or rolls the operation back. This is the
//! precedent of the pin records (`read.rs`) applied to allocation: ownership that exists only
//! in a process's registers is written down in its agent slot first.
//!
//! Two words per agent slot (docs/layout.md §3): `A_TAKEN`, a descriptor popped off the free
//! list, until a line's pending word names it (from then on the pending word and the dead
//! holder's reclaimer take over, `write.rs`), or the push of a split's upper half, and
//! `A_MOVING`, one [`Moving`] step: a block taken and not yet given to a descriptor, a
//! descriptor being freed, a version about to be superseded, a superseded version not yet
//! retired, a never-published slot being discarded.
//!
//! Rules that make recovery sound (the argument per kill point is in docs/protocol.md §7):
//!
//! * **One name per entry.** A record is cleared *before* the word that takes the entry over is
//!   written, never after: a death between the two leaks the entry, where the other order
//!   could free it twice. Two exceptions, made safe by the descriptor's tag: `A_TAKEN` across
//!   the compare-and-swap that records the descriptor in the line's pending word (its recovery
//!   takes the record back from the pending word before it frees anything, `release_filling`),
//!   and `Block` across the store of the block in the block field of the FILLING descriptor
//!   tagged in `A_TAKEN` (its recovery leaves a block that descriptor names to the
//!   descriptor's discard, `filling_slot_holds`): either way the two names free it once.
//! * **Never guess about a free list.** A record names an entry only while no free list can
//!   hold it, or while it is being pushed: then the record carries the list head's ABA tag read
//!   before the compare-and-swap. Every push and pop changes the tag, so an unchanged tag
//!   proves the push did not happen and recovery does it; a changed one leaves the entry (a
//!   leak, never a double free). A split's push of an upper half is recorded that way, in
//!   `A_TAKEN`, and a bump's alignment piece. The pushes of a free (`PushBlock`, `PushDesc`)
//!   are named by the list head as pops are (below), so their recovery knows.
//! * **A witness where a record cannot tell** whether a compare-and-swap happened: a won
//!   `try_free` leaves its claim (the winner's slot) in the control word, which the winner's
//!   recovery finds (tagged, it names a writer's spare for as long as it is kept, `spare.rs`);
//!   a publisher records [`Moving::Superseding`] and marks the version it supersedes (its next
//!   word) before its CAS, and every superseder does, so the recovery retires it only if the
//!   head moved on *and* the mark is still this hold's.
//!
//!   A bumper claims the entry at a bump pointer (its owner or block word, from 0) before it
//!   moves the pointer, so the claim names it until a record does (`alloc.rs`, `arena.rs`).
//!
//!   A popper records `Popping` before its compare-and-swap, and the list head names it after
//!   (`free_list.rs`): every later push or pop turns that record into the entry's before it
//!   moves the head on, so the recovery finds the pop named by the head, or recorded, or never
//!   made ([`Directory::settle_pop`]). A free's pusher names itself in the head the same way,
//!   and its record is turned into the push made ([`Directory::push_made`]).
//!
//!   The leaks left: the few frees nobody records (a reader's unpin, the pin `ccs status` takes
//!   to size a version: their claim names no slot), a merger's pushes back onto the lists, and
//!   a split half's or alignment piece's push whose list tag changed before its recovery
//!   (docs/protocol.md §3.9).
//! * **Validated before use.** A record of a descriptor that may have been freed since carries
//!   its incarnation (`packing.rs`), which every free changes; a record whose descriptor moved
//!   on is dropped. A `Discard` is validated by its compare-and-swaps themselves, which expect
//!   the control word's tag of that incarnation: a check before them would let the descriptor
//!   be freed (a reader's last unpin) and reused in between. A reclaimer records its `Discard`
//!   before it takes a dead holder's pending record, so two discarders of one use can meet;
//!   the tagged exchanges free it once.
//! * **Exclusive steps stay exclusive.** Recovery frees a descriptor only through the same
//!   compare-and-swaps as everyone else (`try_free`, `discard_slot`), so a racing unpinner or
//!   reclaimer and the recoverer free it once.
//!
//! Several threads of one agent overwrite each other's records: the word then describes the
//! latest step of one of them (each thread writes its own steps in order), so a record is never
//! false, only missing — which leaks, never frees twice.

use crate::alloc::move_bump_past;
use crate::directory::Directory;
use crate::env::Env;
use crate::error::{ProtocolError, Result};
use crate::free_list::{FreeList, Pusher};
use crate::layout::{A_MOVING, A_TAKEN, D_BLOCK, D_CTL, D_NEXT, D_OWNER, H_DESC_BUMP};
use crate::packing::{
    DESC_LINK, Head, agent_popper, block_field, bump_claim, desc_state, incarnation,
    superseding_mark, unpack_block_field, unpack_owner,
};
use crate::sync::{AtomicU64, Ordering};

/// The slot argument of an operation that records nothing (fsck's repair, readers' unpins,
/// status).
pub(crate) const NO_RECORD: u32 = u32::MAX;

/// Where a loom model kills a process inside an allocation step ([`Env::kill_point`]).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillPoint {
    /// Right after recording a descriptor taken off the free list.
    Taken,
    /// Inside a split, right after pushing an upper half.
    SplitPushed,
    /// In `retire_known`, right after recording the step.
    Retiring,
    /// Right after winning `try_free` and recording it.
    Freeing,
    /// Right after winning `try_free`, before recording it (only the claim names it).
    Claimed,
    /// In a publish, after recording the supersede and marking the superseded descriptor,
    /// before the publishing compare-and-swap.
    Publishing,
    /// Right after the publishing compare-and-swap, before the retire is recorded.
    Published,
    /// Inside a split, pushing an upper half: recorded, before its compare-and-swap.
    SplitPushing,
    /// In a discard that left the descriptor pinned (its last unpinner frees it), right after
    /// the compare-and-swap, before the record is cleared.
    Discarded,
    /// Right after a reclaimer took a dead holder's pending record, before its discard.
    TookPending,
    /// In a put, the descriptor recorded with its tag in `A_TAKEN`, before the compare-and-swap
    /// that records it in the line's pending word.
    Pending,
    /// In a put, right after that compare-and-swap, before `A_TAKEN` is cleared.
    Pended,
    /// Right after claiming a descriptor at the bump pointer, before moving the pointer.
    DescClaimed,
    /// Right after claiming granules at the arena's bump pointer, before moving the pointer.
    BlockClaimed,
    /// Pushing a bump's alignment piece: recorded, before its compare-and-swap.
    PiecePushing,
    /// Right after that compare-and-swap, before the piece's block record is cleared.
    PiecePushed,
    /// In a put, between the block's two names: after storing it in the tagged FILLING
    /// descriptor's block field, before clearing the block's own record.
    BlockNamed,
    /// Right after a pop's compare-and-swap, before the popper records the entry (its
    /// `Popping` record and the list head name the pop).
    Popped,
    /// In a merge's drain, right after a block is popped and recorded, before it is STASHED.
    Drained,
    /// Right after a named push's compare-and-swap (a freed descriptor or its block), before
    /// the pusher records it done (its push record and the list head name the push).
    Pushed,
    /// Right after a named push's compare-and-swap failed, its record holding the tag it
    /// expected.
    PushLost,
    /// Taking a spare (`spare.rs`): the descriptor recorded FILLING with its tag in `A_TAKEN`,
    /// its control word still the plain claim its exchange left.
    SpareTaking,
}

/// `A_TAKEN` while the upper half of a split is pushed: this bit, the half's class << 32 and
/// the list head's ABA tag read before the push's compare-and-swap. The half is the upper
/// buddy of the block `A_MOVING` records, once that record has shrunk to the half's class.
const SPLIT_PUSH: u64 = 1 << 63;

/// `A_TAKEN` while a bump's alignment piece (the block `A_MOVING` records) is pushed: this bit
/// and the list head's ABA tag read before the push's compare-and-swap.
const PIECE_PUSH: u64 = 1 << 61;

/// `A_TAKEN` once the descriptor is FILLING: this bit, the control word's tag of this use
/// ([`desc_state::tag`], bits 32–60) and the descriptor + 1. Kept across the compare-and-swap
/// that records the descriptor in its line's pending word (whose line the descriptor's next
/// word names meanwhile), so a death on either side of it is recovered (`release_taken`).
const TAGGED: u64 = 1 << 62;

/// `A_TAKEN` while a descriptor is popped: this bit, the popping thread's nonce << 32 and the
/// list head's ABA tag read before the pop's compare-and-swap (`free_list.rs`).
const DESC_POPPING: u64 = 1 << 60;

/// The record word of a pop from `list`: `A_TAKEN` for a descriptor, `A_MOVING` for a block
/// (whose `A_TAKEN` may hold the put's descriptor, or a split's push, later; and a put takes
/// its block before its descriptor).
#[inline]
pub(crate) fn record_field(list: FreeList) -> usize {
    match list {
        FreeList::Descs => A_TAKEN,
        FreeList::Blocks(_) => A_MOVING,
    }
}

/// The record of a pop from `list` by thread `nonce`, whose head's tag was `tag` before it.
#[inline]
pub(crate) fn popping_record(list: FreeList, tag: u32, nonce: u16) -> u64 {
    match list {
        FreeList::Descs => DESC_POPPING | (u64::from(nonce) << 32) | u64::from(tag),
        FreeList::Blocks(class) => Moving::Popping { class, nonce, tag }.pack(),
    }
}

/// Whether `word` is the record of a pop from `list` at head tag `tag`, by any thread.
#[cfg(ccs_mutant = "acknowledged_by_slot")]
pub(crate) fn is_popping(list: FreeList, tag: u32, word: u64) -> bool {
    (0..=u16::MAX).any(|nonce| popping_record(list, tag, nonce) == word)
}

/// The record of `entry`, popped from `list`: what the popper stores once it won, and what an
/// acknowledgement writes in its place.
#[inline]
pub(crate) fn entry_record(list: FreeList, entry: u64) -> u64 {
    match list {
        FreeList::Descs => entry.wrapping_add(1),
        FreeList::Blocks(class) => Moving::Block {
            granule: entry,
            class,
        }
        .pack(),
    }
}

/// The record of the push named by the head (`free_list.rs`) of descriptor `desc` onto
/// `list` (the descriptor itself, or its block onto a block list), at head tag `tag`.
#[inline]
pub(crate) fn pushing_record(list: FreeList, desc: u32, tag: u32) -> u64 {
    match list {
        FreeList::Descs => Moving::PushDesc { desc, tag }.pack(),
        FreeList::Blocks(_) => Moving::PushBlock { desc, tag }.pack(),
    }
}

/// What the record of a push of descriptor `desc` onto `list` becomes once the push is made:
/// the pusher's next step (a descriptor's push is its last).
#[inline]
pub(crate) fn pushed_record(list: FreeList, desc: u32) -> u64 {
    match list {
        FreeList::Descs => Moving::None.pack(),
        FreeList::Blocks(_) => Moving::PushedBlock(desc).pack(),
    }
}

/// The descriptor whose push onto `list` at head tag `tag` the record `word` holds, if it
/// holds one.
pub(crate) fn pushing_desc(list: FreeList, tag: u32, word: u64) -> Option<u32> {
    match (list, Moving::unpack(word)?) {
        (FreeList::Descs, Moving::PushDesc { desc, tag: at })
        | (FreeList::Blocks(_), Moving::PushBlock { desc, tag: at })
            if at == tag =>
        {
            Some(desc)
        }
        _ => None,
    }
}

/// One step an agent is taking with an entry that no free list and no descriptor holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Moving {
    /// Nothing.
    None,
    /// A block taken (popped, split or bumped) and not yet stored in a descriptor.
    Block { granule: u64, class: usize },
    /// A descriptor won by `try_free` (state FREE); its block, if any, still in its block
    /// field; nothing pushed yet.
    Freeing(u32),
    /// Pushing the block of a descriptor being freed, onto a list head whose tag was `tag`:
    /// pushed iff the head names this push or an acknowledgement turned this record into
    /// `PushedBlock` (`free_list.rs`).
    PushBlock { desc: u32, tag: u32 },
    /// Pushing a descriptor being freed (its block already given back), onto a list head whose
    /// tag was `tag`: pushed iff the head names this push or an acknowledgement turned this
    /// record into `None`.
    PushDesc { desc: u32, tag: u32 },
    /// The block of a descriptor being freed is pushed; the descriptor is not yet (its block
    /// field may still name the block).
    PushedBlock(u32),
    /// A version superseded by this agent's publish, not yet retired (at this incarnation).
    Retire { desc: u32, incarnation: u32 },
    /// A never-published slot (a fenced write's, or a dead holder's) being discarded.
    Discard { desc: u32, incarnation: u32 },
    /// A published version this agent's hold at `epoch` is about to supersede (or has just
    /// superseded): its next word carries the hold's mark (`Directory::mark_superseding`).
    Superseding { desc: u32, epoch: u32 },
    /// Claiming the granules at `granule` for a block of class `class` at the arena's bump
    /// pointer: this agent's if the granule's block word is still its claim
    /// (`Directory::claim_at_bump`).
    Bumping { granule: u64, class: usize },
    /// Popping a block of class `class` off its free list, whose head's tag was `tag`, by the
    /// thread `nonce` (`free_list.rs`): the pop happened iff the head names it or an
    /// acknowledgement turned this record into the block's.
    Popping { class: usize, nonce: u16, tag: u32 },
}

const KIND_SHIFT: u32 = 60;
const LOW: u64 = 0xffff_ffff;

impl Moving {
    #[inline]
    fn pack(self) -> u64 {
        let (kind, body) = match self {
            Moving::None => (0, 0),
            Moving::Block { granule, class } => (1, ((class as u64 & 0xff) << 32) | granule),
            Moving::Freeing(desc) => (2, u64::from(desc)),
            Moving::PushBlock { desc, tag } => (3, (u64::from(desc) << 32) | u64::from(tag)),
            Moving::PushDesc { desc, tag } => (4, (u64::from(desc) << 32) | u64::from(tag)),
            Moving::Retire { desc, incarnation } => {
                (5, (u64::from(desc) << 32) | u64::from(incarnation))
            }
            Moving::Discard { desc, incarnation } => {
                (6, (u64::from(desc) << 32) | u64::from(incarnation))
            }
            Moving::Superseding { desc, epoch } => (7, (u64::from(desc) << 32) | u64::from(epoch)),
            Moving::Bumping { granule, class } => (8, ((class as u64 & 0xff) << 32) | granule),
            Moving::Popping { class, nonce, tag } => (
                9,
                ((class as u64 & 0xff) << 48) | (u64::from(nonce) << 32) | u64::from(tag),
            ),
            Moving::PushedBlock(desc) => (10, u64::from(desc)),
        };
        (kind << KIND_SHIFT) | body
    }

    pub(crate) fn unpack(word: u64) -> Option<Moving> {
        let body = word & ((1 << KIND_SHIFT) - 1);
        let (high, low) = ((body >> 32) as u32, (body & LOW) as u32);
        Some(match word >> KIND_SHIFT {
            0 if body == 0 => Moving::None,
            1 if high <= 0xff => Moving::Block {
                granule: u64::from(low),
                class: high as usize,
            },
            2 if high == 0 => Moving::Freeing(low),
            3 => Moving::PushBlock {
                desc: high,
                tag: low,
            },
            4 => Moving::PushDesc {
                desc: high,
                tag: low,
            },
            5 => Moving::Retire {
                desc: high,
                incarnation: low,
            },
            6 => Moving::Discard {
                desc: high,
                incarnation: low,
            },
            7 => Moving::Superseding {
                desc: high,
                epoch: low,
            },
            8 if high <= 0xff => Moving::Bumping {
                granule: u64::from(low),
                class: high as usize,
            },
            9 if high >> 24 == 0 => Moving::Popping {
                class: (high >> 16) as usize,
                nonce: high as u16,
                tag: low,
            },
            10 if high == 0 => Moving::PushedBlock(low),
            _ => return None,
        })
    }
}

impl<E: Env> Directory<E> {
    #[inline]
    pub(crate) fn record_word(&self, slot: u32, field: usize) -> Result<&AtomicU64> {
        if slot >= self.geo.config.max_agents {
            return Err(ProtocolError::corrupt(format!(
                "agent slot {slot} out of range"
            )));
        }
        self.words.at(self.geo.agent_word(slot, field))
    }

    /// Record the step `moving` of `slot`'s process (nothing for [`NO_RECORD`]). Release:
    /// whoever reads it later holds the agent's kernel lock, taken after this process died.
    #[inline]
    pub(crate) fn note_moving(&self, slot: u32, moving: Moving) -> Result<()> {
        if slot != NO_RECORD {
            self.record_word(slot, A_MOVING)?
                .store(moving.pack(), Ordering::Release);
        }
        Ok(())
    }

    /// Record that `slot`'s process took `desc` off the free list (`None`: handed over).
    #[inline]
    pub(crate) fn note_taken(&self, slot: u32, desc: Option<u32>) -> Result<()> {
        if slot != NO_RECORD {
            self.record_word(slot, A_TAKEN)?
                .store(desc.map_or(0, |d| u64::from(d) + 1), Ordering::Release);
        }
        Ok(())
    }

    /// Record that `slot`'s process holds `desc` as FILLING with the control word's tag `tag`
    /// (the record kept across the pending compare-and-swap, [`TAGGED`]).
    #[inline]
    pub(crate) fn note_filling(&self, slot: u32, desc: u32, tag: u64) -> Result<()> {
        if slot != NO_RECORD {
            self.record_word(slot, A_TAKEN)?.store(
                TAGGED | (tag & desc_state::TAG) | (u64::from(desc) + 1),
                Ordering::Release,
            );
        }
        Ok(())
    }

    /// Record that `slot`'s process is pushing the upper half of class `class` of the block its
    /// `A_MOVING` record names, onto a list head whose tag was `tag`.
    #[inline]
    pub(crate) fn note_split_push(&self, slot: u32, class: usize, tag: u32) -> Result<()> {
        if slot != NO_RECORD {
            self.record_word(slot, A_TAKEN)?.store(
                SPLIT_PUSH | ((class as u64 & 0xff) << 32) | u64::from(tag),
                Ordering::Release,
            );
        }
        Ok(())
    }

    /// Record that `slot`'s process is pushing the alignment piece its `A_MOVING` record names
    /// (a bump's), onto a list head whose tag was `tag`.
    #[inline]
    pub(crate) fn note_piece_push(&self, slot: u32, tag: u32) -> Result<()> {
        if slot != NO_RECORD {
            self.record_word(slot, A_TAKEN)?
                .store(PIECE_PUSH | u64::from(tag), Ordering::Release);
        }
        Ok(())
    }

    /// Descriptors on the free list or never handed out, walked without a bound check of
    /// progress (for tests, on a quiescent segment).
    #[doc(hidden)]
    pub fn free_descriptors(&self) -> Result<u64> {
        let bump = self.words.at(H_DESC_BUMP)?.load(Ordering::Acquire);
        let mut free = (self.geo.descs as u64).saturating_sub(bump);
        let mut link = self.list_tag_and_top(FreeList::Descs)?.1;
        while link != 0 && free <= self.geo.descs as u64 {
            free += 1;
            link = self
                .desc_at((link - 1) as u32, crate::layout::D_NEXT)?
                .load(Ordering::Acquire)
                & DESC_LINK;
        }
        Ok(free)
    }

    /// Complete or roll back what `slot`'s dead process was doing with descriptors and blocks,
    /// and free every superseded version left unpinned and unfreed (a retirer or unpinner that
    /// died before its `try_free`). The caller holds `slot`'s kernel lock, so no live process
    /// writes its records. Returns how many entries were given back.
    pub(crate) fn recover_records(&self, slot: u32) -> Result<u32> {
        let mut recovered = 0;
        // A split's push first: it is judged by the block `A_MOVING` still names, and by a list
        // tag that the recovery of that block would change.
        let taken_word = self.record_word(slot, A_TAKEN)?;
        let mut taken = taken_word.load(Ordering::Acquire);
        if taken & (SPLIT_PUSH | TAGGED | PIECE_PUSH | DESC_POPPING) == DESC_POPPING {
            let (nonce, tag) = ((taken >> 32) as u16, (taken & LOW) as u32);
            taken = self.settle_popping(slot, FreeList::Descs, taken, nonce, tag)?;
        }
        if taken & SPLIT_PUSH != 0 {
            recovered += self.finish_split_push(slot, taken)?;
        } else if taken & PIECE_PUSH != 0 {
            recovered += self.finish_piece_push(slot, taken)?;
        }
        let moving = self.record_word(slot, A_MOVING)?;
        // Pairs with the Release stores in `note_moving`.
        let mut word = moving.load(Ordering::Acquire);
        if let Some(Moving::Popping { class, nonce, tag }) = Moving::unpack(word) {
            if class >= self.geo.classes {
                moving.store(0, Ordering::Release);
                return Err(ProtocolError::corrupt(format!(
                    "agent slot {slot} records a pop from block class {class}"
                )));
            }
            word = self.settle_popping(slot, FreeList::Blocks(class), word, nonce, tag)?;
        }
        if word != 0 {
            let Some(step) = Moving::unpack(word) else {
                moving.store(0, Ordering::Release);
                return Err(ProtocolError::corrupt(format!(
                    "agent slot {slot} has a bad allocation record {word:#x}"
                )));
            };
            recovered += self.finish_moving(slot, step)?;
        }
        let taken = taken_word.load(Ordering::Acquire);
        if taken != 0 {
            recovered += self.release_taken(slot, taken)?;
        }
        recovered += self.free_unpinned_retired(slot)?;
        Ok(recovered)
    }

    /// Settle `slot`'s dead process's `Popping` record `record` of a pop from `list` by its
    /// thread `nonce` at head tag `tag` ([`Directory::settle_pop`]).
    fn settle_popping(
        &self,
        slot: u32,
        list: FreeList,
        record: u64,
        nonce: u16,
        tag: u32,
    ) -> Result<u64> {
        let word = self.record_word(slot, record_field(list))?;
        self.settle_pop(list, word, record, agent_popper(slot, nonce), tag)
    }

    /// Finish the push of a split's upper half that `slot`'s dead process recorded in `taken`
    /// ([`SPLIT_PUSH`]): if `A_MOVING` has shrunk to the half's class, the half is the upper
    /// buddy of the block it names; the list's tag unchanged proves the push did not happen,
    /// and it is done now (a changed tag leaves it: a leak, never a second push). If the
    /// record has not shrunk yet, the whole block is still recorded and nothing was pushed.
    fn finish_split_push(&self, slot: u32, taken: u64) -> Result<u32> {
        let taken_word = self.record_word(slot, A_TAKEN)?;
        let (half, tag) = (((taken >> 32) & 0xff) as usize, (taken & LOW) as u32);
        let word = self.record_word(slot, A_MOVING)?.load(Ordering::Acquire);
        let mut pushed = 0;
        if let Some(Moving::Block { granule, class }) = Moving::unpack(word)
            && class == half
        {
            // Checked before any shift: the record is segment data.
            if half + 1 >= self.geo.classes
                || granule % (2 << half) != 0
                || granule + (2 << half) > self.geo.arena_granules()
            {
                taken_word.store(0, Ordering::Release);
                return Err(ProtocolError::corrupt(format!(
                    "agent slot {slot} records the push of a bad split half (the upper half of \
                     granule {granule}, class {half})"
                )));
            }
            let upper = granule + (1 << half);
            if self.list_tag(FreeList::Blocks(half))? == tag {
                self.free_block_noting(upper, half, |tag| self.note_split_push(slot, half, tag))?;
                pushed = 1;
            }
        }
        taken_word.store(0, Ordering::Release);
        Ok(pushed)
    }

    /// Finish the push of a bump's alignment piece that `slot`'s dead process recorded in
    /// `taken` ([`PIECE_PUSH`]): the piece is the block `A_MOVING` names. The list's tag
    /// unchanged proves the push did not happen, and it is done now; changed, it may have
    /// happened, and the piece is left (a leak, never a second push). Either way the block
    /// record goes, then the push's (the other order would free the piece again as a block).
    fn finish_piece_push(&self, slot: u32, taken: u64) -> Result<u32> {
        let moving = self.record_word(slot, A_MOVING)?;
        let mut pushed = 0;
        if let Some(Moving::Block { granule, class }) =
            Moving::unpack(moving.load(Ordering::Acquire))
        {
            let tag = (taken & LOW) as u32;
            if class < self.geo.classes && self.list_tag(FreeList::Blocks(class))? == tag {
                self.check_block_record(slot, granule, class)?;
                self.free_block_noting(granule, class, |tag| self.note_piece_push(slot, tag))?;
                pushed = 1;
            }
            self.note_moving(slot, Moving::None)?;
        }
        self.record_word(slot, A_TAKEN)?.store(0, Ordering::Release);
        Ok(pushed)
    }

    /// Check a recorded block before any shift or index: the record is segment data.
    fn check_block_record(&self, slot: u32, granule: u64, class: usize) -> Result<()> {
        if class >= self.geo.classes
            || !granule.is_multiple_of(1 << class)
            || granule + (1 << class) > self.geo.arena_granules()
        {
            self.note_moving(slot, Moving::None)?;
            return Err(ProtocolError::corrupt(format!(
                "agent slot {slot} records a bad block (granule {granule}, class {class})"
            )));
        }
        Ok(())
    }

    /// Whether the descriptor that `slot`'s tagged `A_TAKEN` record names is still FILLING at
    /// that use and names the block (`granule`, `class`) in its block field: the process died
    /// in `alloc_slot` after moving its recorded block into that field and before clearing the
    /// block's record. The descriptor is private until the line's pending word names it, and
    /// the block's record is cleared before that, so nobody else can have freed the descriptor
    /// (and the block with it) since: the tag still matching proves the field is this use's.
    fn filling_slot_holds(&self, slot: u32, granule: u64, class: usize) -> Result<bool> {
        let taken = self.record_word(slot, A_TAKEN)?.load(Ordering::Acquire);
        if taken & (TAGGED | SPLIT_PUSH | PIECE_PUSH) != TAGGED {
            return Ok(false);
        }
        let Some(d) = (taken & LOW)
            .checked_sub(1)
            .and_then(|desc| u32::try_from(desc).ok())
            .and_then(|desc| self.desc_words(desc).ok())
        else {
            // `release_taken` reports the bad record.
            return Ok(false);
        };
        let ctl = d[D_CTL].load(Ordering::Acquire);
        Ok(ctl >> desc_state::SHIFT == desc_state::FILLING
            && ctl & desc_state::TAG == taken & desc_state::TAG
            && d[D_BLOCK].load(Ordering::Acquire) == block_field(granule, class))
    }

    /// Whether `slot`'s hold at `epoch` superseded `desc`, as recorded by
    /// [`Moving::Superseding`]: `desc` is still LIVE, its line's head has moved on from it, and
    /// its mark is still this hold's (every superseder marks before its compare-and-swap, so a
    /// head moved on by another hold carries that hold's mark). Then nobody else retires it.
    fn superseded_by(&self, slot: u32, desc: u32, epoch: u32) -> Result<Option<u32>> {
        let d = self.desc_words(desc)?;
        let Some((line, incarnation)) = unpack_owner(d[D_OWNER].load(Ordering::Acquire)) else {
            return Ok(None);
        };
        if d[D_CTL].load(Ordering::Acquire) >> desc_state::SHIFT != desc_state::LIVE {
            return Ok(None);
        }
        // Pairs with the publishing compare-and-swap (SeqCst): the mark stored before the
        // exchange that moved the head on is visible below.
        let head = Head::unpack(self.head(line)?.load(Ordering::Acquire));
        if head.desc == desc + 1 {
            return Ok(None);
        }
        let mark = d[D_NEXT].load(Ordering::Acquire) & !DESC_LINK;
        // The mutant trusts the moved head alone: a version another hold superseded (and
        // retires) is retired a second time.
        #[cfg(ccs_mutant = "supersede_without_witness")]
        let _ = (mark, slot, epoch);
        #[cfg(not(ccs_mutant = "supersede_without_witness"))]
        if mark != superseding_mark(slot, epoch) {
            return Ok(None);
        }
        Ok(Some(incarnation))
    }

    /// Give back the descriptor named by a dead process's `A_TAKEN` record (`desc + 1`): it
    /// was popped, perhaps initialised as FILLING, never recorded in a pending word (the
    /// record is cleared first), so nothing else names it and it has no block.
    fn release_taken(&self, slot: u32, taken: u64) -> Result<u32> {
        if taken & TAGGED != 0 {
            return self.release_filling(slot, taken);
        }
        let taken_word = self.record_word(slot, A_TAKEN)?;
        let desc = u32::try_from(taken - 1).unwrap_or(u32::MAX);
        let d = self.desc_words(desc)?;
        let ctl = d[D_CTL].load(Ordering::Acquire);
        if ctl != 0 && ctl & !desc_state::TAG != desc_state::FILLING << desc_state::SHIFT {
            taken_word.store(0, Ordering::Release);
            return Err(ProtocolError::corrupt(format!(
                "descriptor {desc}, recorded as taken by agent slot {slot}, is in use \
                 (control word {ctl:#x})"
            )));
        }
        d[D_BLOCK].store(crate::alloc::NO_BLOCK, Ordering::Relaxed);
        d[D_CTL].store(0, Ordering::Relaxed);
        // One name at a time: the recovery's own death between these two stores leaks it.
        taken_word.store(0, Ordering::Release);
        self.note_moving(slot, Moving::Freeing(desc))?;
        self.release_desc_as(desc, slot)?;
        Ok(1)
    }

    /// Give back the FILLING descriptor named by a dead process's tagged `A_TAKEN` record
    /// ([`TAGGED`]): the process died around the compare-and-swap that records it in its line's
    /// pending word, so that word may name it too. If it does, the record is taken from it as a
    /// reclaimer takes a dead holder's (`discard_pending_of`: an exchange that leaves it, the
    /// `Discard` recorded, the taking exchange), so that no later reader of that word acts on a
    /// descriptor freed under it; if it does not (the exchange never happened, or a reclaimer
    /// or a later holder took or overwrote it since), it is discarded directly. Either way by
    /// the discard's exchanges, which expect this use's tag: a reclaimer discarding the same
    /// use frees it once, and a descriptor freed and taken again since is left alone.
    fn release_filling(&self, slot: u32, taken: u64) -> Result<u32> {
        let taken_word = self.record_word(slot, A_TAKEN)?;
        // Checked: the record is segment data.
        let Some((desc, d)) = (taken & LOW)
            .checked_sub(1)
            .and_then(|desc| u32::try_from(desc).ok())
            .and_then(|desc| Some((desc, self.desc_words(desc).ok()?)))
        else {
            taken_word.store(0, Ordering::Release);
            return Err(ProtocolError::corrupt(format!(
                "agent slot {slot} has a bad allocation record {taken:#x}"
            )));
        };
        let ctl = d[D_CTL].load(Ordering::Acquire);
        let incarnation = incarnation(d[D_OWNER].load(Ordering::Acquire));
        let tag = taken & desc_state::TAG;
        if ctl >> desc_state::SHIFT != desc_state::FILLING
            || ctl & desc_state::TAG != tag
            || desc_state::tag(incarnation) != tag
        {
            // Discarded (freed) since, perhaps taken again: nothing of this process's is left.
            taken_word.store(0, Ordering::Release);
            return Ok(0);
        }
        // The line this process stored before its record (Acquire: the record's load
        // synchronised with its Release store), or a later link if the descriptor was freed
        // since: no line (gone, nothing to do), or a line whose pending word names it only for
        // a later use, which `discard_pending_of` refuses by the tag.
        let line_plus_one = d[D_NEXT].load(Ordering::Acquire) & DESC_LINK;
        let Some(line) = line_plus_one
            .checked_sub(1)
            .filter(|&line| line < self.geo.lines as u64)
        else {
            taken_word.store(0, Ordering::Release);
            return Ok(0);
        };
        let line = line as u32;
        let pending = self.pending(line)?.load(Ordering::Acquire);
        let named = (pending >> 32) as u32 == desc + 1;
        // The mutant frees the descriptor while the pending word may still name it.
        #[cfg(ccs_mutant = "untaken_pending")]
        let named = {
            let _ = named;
            false
        };
        let freed = if named {
            let recorded_by = Head {
                desc: 0,
                holder: 0,
                epoch: (pending & 0xff_ffff) as u32,
            };
            self.discard_pending_of(line, recorded_by, slot, Some(tag))?
        } else {
            self.discard_slot_known(desc, incarnation, slot)?
        };
        // Cleared last: a death before this is recovered again, by the same tagged exchanges.
        taken_word.store(0, Ordering::Release);
        Ok(u32::from(freed))
    }

    /// Finish the recorded step of a dead process.
    fn finish_moving(&self, slot: u32, step: Moving) -> Result<u32> {
        match step {
            Moving::None => Ok(0),
            Moving::Block { granule, class } => {
                self.check_block_record(slot, granule, class)?;
                // Named by the descriptor the dead process was filling: that descriptor's
                // discard (`release_filling`, after this) frees it. The mutant frees it here too.
                #[cfg(not(ccs_mutant = "block_freed_by_both_names"))]
                let in_slot = self.filling_slot_holds(slot, granule, class)?;
                #[cfg(ccs_mutant = "block_freed_by_both_names")]
                let in_slot = false;
                self.note_moving(slot, Moving::None)?;
                if in_slot {
                    return Ok(0);
                }
                self.free_block(granule, class)?;
                Ok(1)
            }
            Moving::Bumping { granule, class } => {
                self.check_block_record(slot, granule, class)?;
                self.release_bump_claim(granule, class, slot)
            }
            // Settled before (`recover_records`): a record still popping is another's, stale.
            Moving::Popping { .. } => {
                self.note_moving(slot, Moving::None)?;
                Ok(0)
            }
            Moving::Freeing(desc) => {
                self.release_desc_as(desc, slot)?;
                Ok(1)
            }
            Moving::PushBlock { desc, tag } => {
                // Pushed now unless the head or the record shows the push made
                // (`push_made`): never lost, never twice. Either way the descriptor is given
                // back.
                let block = self.desc_at(desc, D_BLOCK)?.load(Ordering::Relaxed);
                if block != crate::alloc::NO_BLOCK {
                    let (granule, class) = unpack_block_field(block);
                    self.check_block_record(slot, granule, class)?;
                    let list = FreeList::Blocks(class);
                    if !self.push_made(list, slot, step.pack(), granule, tag)? {
                        self.push_block(granule, class, Pusher::Freeing { slot, desc })?;
                    }
                }
                self.finish_pushed_block(desc, slot)?;
                Ok(1)
            }
            Moving::PushedBlock(desc) => {
                self.finish_pushed_block(desc, slot)?;
                Ok(1)
            }
            Moving::PushDesc { desc, tag } => {
                // As for a block: pushed now unless the push was made.
                if self.push_made(FreeList::Descs, slot, step.pack(), u64::from(desc), tag)? {
                    self.note_moving(slot, Moving::None)?;
                    return Ok(0);
                }
                self.push_desc_as(desc, slot)?;
                Ok(1)
            }
            Moving::Superseding { desc, epoch } => match self.superseded_by(slot, desc, epoch)? {
                Some(incarnation) => {
                    self.retire_known(desc, incarnation, slot)?;
                    Ok(1)
                }
                None => {
                    self.note_moving(slot, Moving::None)?;
                    Ok(0)
                }
            },
            // The incarnation is checked by the compare-and-swaps themselves (the control word's
            // tag): a check here, before them, would let the descriptor be freed (a reader's last
            // unpin, a second retirer) and reused in between, and the step would then free or
            // retire that use. The mutant restores that two-step check for a discard.
            Moving::Retire { desc, incarnation } => {
                Ok(u32::from(self.retire_known(desc, incarnation, slot)?))
            }
            #[cfg(not(ccs_mutant = "two_step_discard"))]
            Moving::Discard { desc, incarnation } => Ok(u32::from(self.discard_slot_known(
                desc,
                incarnation,
                slot,
            )?)),
            #[cfg(ccs_mutant = "two_step_discard")]
            Moving::Discard { desc, incarnation } => {
                let owner = self.desc_at(desc, D_OWNER)?.load(Ordering::Acquire);
                let state = self.desc_at(desc, D_CTL)?.load(Ordering::Acquire) >> desc_state::SHIFT;
                if crate::packing::incarnation(owner) == incarnation
                    && (state == desc_state::FILLING || state == desc_state::LIVE)
                {
                    self.discard_slot(desc, slot)?;
                    return Ok(1);
                }
                self.note_moving(slot, Moving::None)?;
                Ok(0)
            }
        }
    }

    /// Free every RETIRED descriptor with no pins: its retirer or last unpinner died between
    /// bringing it there and its `try_free`. Anyone may do this at any time: `try_free` is the
    /// same compare-and-swap they would have run, and only one caller wins it. And finish
    /// every free that `slot`'s dead process won and did not record: the descriptors still
    /// carrying its claim ([`desc_state::claim`]), which nobody else touches, and its spare
    /// (`spare.rs`); and give back every descriptor it claimed at the bump pointer and did not
    /// record ([`bump_claim`]).
    fn free_unpinned_retired(&self, slot: u32) -> Result<u32> {
        let bump_word = self.words.at(H_DESC_BUMP)?;
        let bump = bump_word.load(Ordering::Relaxed);
        // One past the pointer: a claim there is a bump whose pointer move never happened.
        let descs = (bump as usize).saturating_add(1).min(self.geo.descs) as u32;
        let unpinned = desc_state::RETIRED << desc_state::SHIFT;
        let claimed = desc_state::claim(slot);
        let bumped = bump_claim(slot);
        let mut freed = 0;
        for desc in 0..descs {
            // A descriptor this process claimed at the bump pointer and did not record: nobody
            // else touches a claimed descriptor. The pointer is moved past it first (as any
            // bumper that found the claim would), then it is given back like a freed one, with
            // no block (the block field of a descriptor never handed out is not one).
            let d = self.desc_words(desc)?;
            if d[D_OWNER].load(Ordering::Acquire) == bumped {
                move_bump_past(bump_word, u64::from(desc), 1);
                d[D_BLOCK].store(crate::alloc::NO_BLOCK, Ordering::Relaxed);
                self.note_moving(slot, Moving::Freeing(desc))?;
                self.release_desc_as(desc, slot)?;
                freed += 1;
                continue;
            }
            // Acquire pairs with the claiming compare-and-swap (AcqRel) in `try_free`.
            let ctl = d[D_CTL].load(Ordering::Acquire);
            if ctl & !desc_state::TAG == unpinned {
                self.try_free(desc, ctl, slot)?;
                freed += 1;
            } else if ctl == claimed {
                self.note_moving(slot, Moving::Freeing(desc))?;
                self.release_desc_as(desc, slot)?;
                freed += 1;
            } else if crate::spare::is_spare_claim(ctl) && ctl & !desc_state::TAG == claimed {
                // Its spare: taken from the spare claim by an exchange, as a giver would (an
                // allocation about to be refused may be reclaiming it at the same time).
                if self.give_spare_back(desc, slot, ctl, slot)? {
                    freed += 1;
                }
            }
        }
        Ok(freed)
    }
}

/// The incarnation of descriptor `desc`'s owner word, for a record that may outlive its use.
pub(crate) fn incarnation_of<E: Env>(dir: &Directory<E>, desc: u32) -> Result<u32> {
    Ok(incarnation(
        dir.desc_at(desc, D_OWNER)?.load(Ordering::Relaxed),
    ))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::Moving;

    #[test]
    fn records_round_trip() {
        for step in [
            Moving::None,
            Moving::Block {
                granule: u64::from(u32::MAX),
                class: 31,
            },
            Moving::Freeing(7),
            Moving::PushBlock { desc: 0, tag: 5 },
            Moving::PushDesc {
                desc: (1 << 24) - 2,
                tag: u32::MAX,
            },
            Moving::Retire {
                desc: 3,
                incarnation: u32::MAX,
            },
            Moving::Discard {
                desc: 9,
                incarnation: 0,
            },
            Moving::Superseding {
                desc: (1 << 24) - 2,
                epoch: (1 << 24) - 1,
            },
            Moving::Bumping {
                granule: u64::from(u32::MAX),
                class: 31,
            },
            Moving::Popping {
                class: 31,
                nonce: u16::MAX,
                tag: u32::MAX,
            },
            Moving::PushedBlock(u32::MAX),
        ] {
            assert_eq!(Moving::unpack(step.pack()), Some(step));
        }
        assert_eq!(Moving::unpack(u64::MAX), None);
    }
}

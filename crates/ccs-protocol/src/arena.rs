//! The payload arena: a binary buddy allocator (Knowlton 1965, "A fast storage allocator";
//! Knuth, TAOCP vol. 1, §2.5) over 64-byte granules, lock-free to allocate and to free, with
//! merging done lazily under the structure lock.
//!
//! Blocks come in power-of-two classes (64 B << k) and start on a multiple of their own size, so
//! the buddy of the class-k block at granule g is at g ^ 2^k. Each class keeps a Treiber stack
//! of free blocks (`alloc.rs`). An allocation pops its class, else splits the first larger free
//! block (keeping the lower part, freeing the upper halves to their classes), else takes aligned
//! granules from the untouched end (the bump pointer, each position claimed before the pointer
//! moves past it, docs/protocol.md §3.9; the granules skipped to align become free blocks). A
//! free pushes its block. Neither merges: removing a buddy from the middle of a lock-free stack
//! is not possible without a lock, and a stale stack entry for a block that was merged away
//! would corrupt the stack.
//!
//! **Merging** happens when an allocation finds no block of its class or larger and no untouched
//! granules: that allocation takes the structure lock (one merger at a time; the kernel releases
//! it if the merger dies), pops *every* free block off the lists, marking each `STASHED` (now
//! owned by the merger and on no list), merges stashed buddies bottom-up over the arena, and
//! pushes the results back. Only an allocation that would otherwise fail ever takes the lock;
//! allocations and frees running meanwhile go on lock-free (an allocation that finds the lists
//! drained waits for the lock and retries). docs/layout.md §7 states the fragmentation bound.
//!
//! **The block table.** A block's state and its free-list link live in one word per granule
//! *outside* the arena (`BlockMeta` below), never in payload bytes: the only stores into a
//! block's bytes are its writer's, after the Release fence that follows its pop, which is what
//! the seqlock argument of `fill_slot` needs (a split or a merge by a thread that did not free
//! the block writes nothing a reader of the block's previous version could copy).
//!
//! **A SIGKILL never wedges the allocator:** the only lock is kernel-released, and a merger that
//! dies leaves its blocks marked `STASHED` and, in the middle of merging a pair, the pair in
//! header word `H_ARENA_MERGING`; the next merger finishes that pair and gives every stashed
//! block back. What a dead merger can lose is the one block it had popped but not yet marked,
//! which `ccs fsck --repair` returns. An allocation records the block it takes in its agent
//! slot until a descriptor holds it (`records.rs`), so a dead allocator's block is given back
//! by the agent's next attach.

use crate::alloc::{bump_after_refused_claim, move_bump_past};
use crate::directory::Directory;
use crate::env::Env;
use crate::error::{ProtocolError, Result};
use crate::free_list::{FreeList, Popper, Pusher};
use crate::layout::{H_ARENA_BUMP, H_ARENA_DRAINING, H_ARENA_MERGING};
use crate::packing::MERGER_POPPER;
use crate::records::{KillPoint, Moving};
use crate::sync::{AtomicU64, Ordering};

/// The block-table word of a granule: `state:2 | 0:22 | class:8 | link:32`.
///
/// Only the word of a block's first granule means anything; the words of the other granules
/// of a block are NONE (0 if never handed out, else [`block_meta::INSIDE`], which a merge
/// leaves in the upper buddy's). `link` is the free-list successor
/// (granule + 1, 0 = end) while the block is FREE.
pub(crate) mod block_meta {
    /// Not the start of a block (inside one, or never handed out). The word of a granule
    /// never handed out is 0; a NONE word with a body is one of the two below.
    pub const NONE: u64 = 0;
    /// In a NONE word: the granule at the bump pointer, claimed by a bumper for a block of the
    /// class in the class field, its agent slot in the link field ([`bump_claim`]).
    pub const BUMP_CLAIM: u64 = 1 << 40;
    /// A NONE word inside a block, below the bump pointer: a merged-away upper buddy, or a
    /// granule of a run `fsck --repair` gave back. Never 0: a word once claimed by a bumper
    /// never reads 0 again, so a bumper that read the pointer long ago cannot claim it.
    pub const INSIDE: u64 = 1 << 41;
    /// On the free list of its class.
    pub const FREE: u64 = 1;
    /// Holds a payload (or is being filled).
    pub const USED: u64 = 2;
    /// Taken off its free list by a merger, which owns it until it pushes it back.
    pub const STASHED: u64 = 3;

    const STATE_SHIFT: u32 = 62;
    const CLASS_SHIFT: u32 = 32;
    /// The free-list link field.
    pub const LINK: u64 = 0xffff_ffff;

    /// Pack a block-table word.
    pub const fn pack(state: u64, class: usize, link: u64) -> u64 {
        (state << STATE_SHIFT) | (((class as u64) & 0xff) << CLASS_SHIFT) | (link & LINK)
    }

    /// The state field.
    pub const fn state(word: u64) -> u64 {
        word >> STATE_SHIFT
    }

    /// The class field.
    pub const fn class(word: u64) -> usize {
        ((word >> CLASS_SHIFT) & 0xff) as usize
    }

    /// The word of a granule at the bump pointer that `slot` claimed for a block of class
    /// `class` (docs/protocol.md §3.9).
    pub const fn bump_claim(class: usize, slot: u32) -> u64 {
        BUMP_CLAIM | pack(NONE, class, slot as u64)
    }

    /// Whether `word` is a bump claim (of any slot).
    pub const fn is_bump_claim(word: u64) -> bool {
        state(word) == NONE && word & BUMP_CLAIM != 0
    }
}

use block_meta::{FREE, LINK, NONE, STASHED, USED};

/// How long a refused allocation waits for frees in flight (`Directory::alloc_block`), in
/// yields of the time slice: a free takes a few hundred nanoseconds once it runs, so this
/// waits out a freer that was descheduled, not a dead one (whose claim stays until its
/// recovery).
const FREE_WAIT_YIELDS: u32 = 64;

/// The class of the largest aligned block that starts at `granule` and fits in `remaining`
/// granules (`remaining` > 0), at most `top`.
pub(crate) fn aligned_class(granule: u64, remaining: u64, top: usize) -> usize {
    let by_alignment = if granule == 0 {
        63
    } else {
        granule.trailing_zeros()
    };
    let by_length = 63 - remaining.leading_zeros();
    by_alignment.min(by_length).min(top as u32) as usize
}

impl<E: Env> Directory<E> {
    /// The block-table word of `granule`, bounds-checked.
    pub(crate) fn block_meta(&self, granule: u64) -> Result<&AtomicU64> {
        if granule >= self.geo.arena_granules() {
            return Err(ProtocolError::corrupt(format!(
                "arena granule {granule} out of range"
            )));
        }
        self.words.at(self.geo.block_word(granule))
    }

    /// The free-list link of a free block (for `pop_free`).
    fn block_link(&self, granule: u64) -> Result<u64> {
        Ok(self.block_meta(granule)?.load(Ordering::Relaxed) & LINK)
    }

    /// A block of class `class`: its first granule. Lock-free unless the arena has no block of
    /// that class or larger left, when it merges free buddies under the structure lock first.
    /// The block stays recorded as `slot`'s ([`Moving::Block`]) until the caller hands it to a
    /// descriptor.
    ///
    /// A free that another thread has won and not finished (`try_free`'s claim, its block not
    /// yet pushed) is room no merge can see: an allocation about to be refused yields while one
    /// is in flight (a bounded wait: a claim left by a dead process stays until its recovery)
    /// and merges once more, so a segment whose live data fits is not refused because a free
    /// was a few instructions short of done.
    pub(crate) fn alloc_block(&self, class: usize, slot: u32) -> Result<u64> {
        if let Some(granule) = self.take_block(class, slot)? {
            return Ok(granule);
        }
        if let Some(granule) = self.merge_and_take(class, slot)? {
            return Ok(granule);
        }
        // Once more after any free in flight is done: one that finished since the merge began
        // is on its list now. The mutant gives up at once, as before.
        #[cfg(not(ccs_mutant = "no_wait_for_frees"))]
        {
            self.wait_for_frees_in_flight()?;
            if let Some(granule) = self.merge_and_take(class, slot)? {
                return Ok(granule);
            }
        }
        Err(ProtocolError::CapacityExceeded {
            what: "payload arena bytes",
            limit: self.geo.config.arena_bytes,
        })
    }

    /// Under the structure lock: a block of `class` after merging free buddies.
    fn merge_and_take(&self, class: usize, slot: u32) -> Result<Option<u64>> {
        self.env.with_structure_lock(|| {
            // A merger that held the lock before us may have made room already.
            if let Some(granule) = self.take_block(class, slot)? {
                return Ok(Some(granule));
            }
            self.merge_free_blocks(slot)?;
            self.take_block(class, slot)
        })?
    }

    /// Yield while a free is in flight, at most [`FREE_WAIT_YIELDS`] times.
    fn wait_for_frees_in_flight(&self) -> Result<()> {
        for _ in 0..FREE_WAIT_YIELDS {
            if !self.frees_in_flight()? {
                break;
            }
            crate::sync::yield_now();
        }
        Ok(())
    }

    /// Pop a block of class `class` (splitting a larger one) or take one from the untouched end.
    ///
    /// Best fit by class, counting the untouched end as the partly used block of each class
    /// that contains the bump pointer: at each class from `class` up, the untouched part of
    /// that block is used before a whole free block of the class is split. So small payloads
    /// fill the region the bump pointer is in before they break up a large freed block.
    fn take_block(&self, class: usize, slot: u32) -> Result<Option<u64>> {
        for source in class..self.geo.classes {
            if source > class
                && let Some(granule) = self.bump_block(class, source, slot)?
            {
                return Ok(Some(granule));
            }
            if let Some(granule) = self.pop_block(source, Popper::Agent(slot))? {
                // The pop made this thread the block's only owner: no list holds it any more.
                self.block_meta(granule)?
                    .store(block_meta::pack(USED, class, 0), Ordering::Relaxed);
                // Split: keep the lower 2^class granules, free the upper halves, largest
                // first. Before each push's compare-and-swap, the push is recorded in
                // `A_TAKEN` (the half's class and the list's tag), then the `Block` record
                // shrinks to the part kept: a recovery that finds the record shrunk pushes
                // the half if the tag proves the push did not happen (`records.rs`), one that
                // finds it whole frees the whole block. Only their block-table words are
                // written, never their bytes, which a reader of the block's previous version
                // may still be copying (see the module doc).
                for half in (class..source).rev() {
                    self.free_block_noting(granule + (1 << half), half, |tag| {
                        // The mutant leaves the push unrecorded: a death before its
                        // compare-and-swap leaks the half.
                        #[cfg(not(ccs_mutant = "unrecorded_split_push"))]
                        self.note_split_push(slot, half, tag)?;
                        #[cfg(ccs_mutant = "unrecorded_split_push")]
                        let _ = tag;
                        // The mutant keeps the whole block recorded while its halves are
                        // pushed.
                        #[cfg(not(ccs_mutant = "unshrunk_split_record"))]
                        self.note_moving(
                            slot,
                            Moving::Block {
                                granule,
                                class: half,
                            },
                        )?;
                        self.env.kill_point(slot, KillPoint::SplitPushing);
                        Ok(())
                    })?;
                    self.env.kill_point(slot, KillPoint::SplitPushed);
                }
                if source > class {
                    // Every push done (each changed its list's tag): the record goes.
                    self.note_taken(slot, None)?;
                }
                return Ok(Some(granule));
            }
        }
        self.bump_block(class, usize::MAX, slot)
    }

    /// Pop the free list of `class`, checking the block's table word; the block is recorded
    /// as `popper`'s by the pop.
    fn pop_block(&self, class: usize, popper: Popper) -> Result<Option<u64>> {
        let granules = self.geo.arena_granules();
        let popped = self.pop_free(FreeList::Blocks(class), granules, popper, |g| {
            self.block_link(g)
        })?;
        let Some(granule) = popped else {
            return Ok(None);
        };
        let meta = self.block_meta(granule)?.load(Ordering::Relaxed);
        if granule % (1 << class) != 0
            || granule + (1 << class) > granules
            || block_meta::state(meta) != FREE
            || block_meta::class(meta) != class
        {
            return Err(ProtocolError::corrupt(format!(
                "free block at granule {granule} of class {class} is not a free block of that \
                 class (block word {meta:#x})"
            )));
        }
        Ok(Some(granule))
    }

    /// Take an aligned block of class `class` from the untouched end of the arena, if it lies
    /// in the same aligned region of class `within` as the bump pointer (`usize::MAX`: any),
    /// recorded as `slot`'s at once.
    ///
    /// The granules skipped to align the block become free blocks, taken and freed one aligned
    /// piece at a time. Each piece is claimed before the pointer moves past it
    /// ([`Directory::claim_at_bump`]), and each push of a piece is recorded with its list's tag,
    /// as a split's halves are: a death anywhere in a bump is recovered.
    fn bump_block(&self, class: usize, within: usize, slot: u32) -> Result<Option<u64>> {
        let size = 1u64 << class;
        let granules = self.geo.arena_granules();
        let bump = self.words.at(H_ARENA_BUMP)?;
        let mut current = bump.load(Ordering::Relaxed);
        loop {
            let start = current.div_ceil(size) * size;
            if current > granules || start > granules || granules - start < size {
                return Ok(None);
            }
            if within < 63 && (start + size - 1) >> within != current >> within {
                return Ok(None);
            }
            let piece = if start == current {
                class
            } else {
                aligned_class(current, start - current, self.geo.classes - 1)
            };
            if let Some(moved) = self.claim_at_bump(bump, current, piece, slot)? {
                current = moved;
                continue;
            }
            if start == current {
                self.note_moving(
                    slot,
                    Moving::Block {
                        granule: start,
                        class,
                    },
                )?;
                self.block_meta(start)?
                    .store(block_meta::pack(USED, class, 0), Ordering::Relaxed);
                return Ok(Some(start));
            }
            self.push_claimed_piece(current, piece, slot)?;
            current += 1 << piece;
        }
    }

    /// Push the block of class `class` at `granule`, claimed by `slot` at the bump pointer and
    /// now past it (an alignment piece, or a dead bumper's block given back): recorded as the
    /// slot's block, pushed with its push recorded (the list's tag), the block record cleared
    /// once pushed, then the push's (`records.rs`, `finish_piece_push`).
    fn push_claimed_piece(&self, granule: u64, class: usize, slot: u32) -> Result<()> {
        self.note_moving(slot, Moving::Block { granule, class })?;
        self.free_block_noting(granule, class, |tag| {
            // The mutant records no push: a recovery after the push's compare-and-swap frees
            // the piece again as the recorded block.
            #[cfg(not(ccs_mutant = "unrecorded_piece_push"))]
            self.note_piece_push(slot, tag)?;
            #[cfg(ccs_mutant = "unrecorded_piece_push")]
            let _ = tag;
            self.env.kill_point(slot, KillPoint::PiecePushing);
            Ok(())
        })?;
        self.env.kill_point(slot, KillPoint::PiecePushed);
        self.note_moving(slot, Moving::None)?;
        self.note_taken(slot, None)
    }

    /// Claim the `2^class` granules at `at`, where `slot` read the bump pointer `bump`, then
    /// move the pointer past them: `None` once they are `slot`'s (recorded as
    /// [`Moving::Bumping`] until the caller records them as its block), else where the
    /// pointer has moved to.
    ///
    /// The claim is a compare-and-swap of the block word of the granule at `at` from 0, the
    /// word of a granule never handed out (a word once claimed never reads 0 again: merges and
    /// repairs leave [`block_meta::INSIDE`]), so one bumper wins each position, even one that
    /// read the pointer long ago. The pointer moves only past a claim, by the claimer or by
    /// any bumper that finds the claim, so a bumper killed right after its claim stops nobody;
    /// the word stays the claim until the pointer is past it, and the claimer's recovery finds
    /// the granules by their claim (docs/protocol.md §3.9). Without the claim, a death between
    /// the pointer's move and the record left the granules named by nothing.
    fn claim_at_bump(
        &self,
        bump: &AtomicU64,
        at: u64,
        class: usize,
        slot: u32,
    ) -> Result<Option<u64>> {
        let size = 1u64 << class;
        // The mutant moves the pointer with no claim and no record, as before.
        #[cfg(ccs_mutant = "unclaimed_block_bump")]
        {
            return match bump.compare_exchange(at, at + size, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.env.kill_point(slot, KillPoint::BlockClaimed);
                    Ok(None)
                }
                Err(seen) => Ok(Some(seen)),
            };
        }
        self.note_moving(slot, Moving::Bumping { granule: at, class })?;
        let meta = self.block_meta(at)?;
        // Relaxed: the claim orders nothing but itself (a read-modify-write reads the latest
        // word, so two claims of one position cannot both win); a recovery that reads it
        // holds the dead claimer's kernel lock. Untouched granules hold no bytes anyone reads.
        match meta.compare_exchange(
            NONE,
            block_meta::bump_claim(class, slot),
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => {
                self.env.kill_point(slot, KillPoint::BlockClaimed);
                move_bump_past(bump, at, size);
                Ok(None)
            }
            Err(seen) => {
                if block_meta::is_bump_claim(seen) {
                    let theirs = block_meta::class(seen);
                    if theirs >= self.geo.classes || at + (1 << theirs) > self.geo.arena_granules()
                    {
                        return Err(ProtocolError::corrupt(format!(
                            "the granule at the bump pointer ({at}) is claimed for a bad block \
                             (block word {seen:#x})"
                        )));
                    }
                    move_bump_past(bump, at, 1 << theirs);
                }
                bump_after_refused_claim(bump, at, "arena granule").map(Some)
            }
        }
    }

    /// Give back the granules a dead `slot` claimed at `granule` for a block of class `class`
    /// ([`Moving::Bumping`]), if the claim is still there: the pointer moved past them first
    /// (as any bumper that found the claim would), then the block pushed on its list. A claim
    /// that is not there was never made, or was already turned into the slot's block (then
    /// recorded as its `Block`, or in a descriptor). Either way the step's record goes.
    pub(crate) fn release_bump_claim(&self, granule: u64, class: usize, slot: u32) -> Result<u32> {
        let meta = self.block_meta(granule)?;
        if meta.load(Ordering::Acquire) != block_meta::bump_claim(class, slot) {
            self.note_moving(slot, Moving::None)?;
            return Ok(0);
        }
        move_bump_past(self.words.at(H_ARENA_BUMP)?, granule, 1 << class);
        // As an alignment piece is pushed: a recovery killed in turn is recovered by the next.
        self.push_claimed_piece(granule, class, slot)?;
        Ok(1)
    }

    /// Free granules `first..end` as the largest aligned blocks that tile them.
    #[cfg(not(loom))]
    pub(crate) fn free_run(&self, first: u64, end: u64) -> Result<()> {
        let mut granule = first;
        while granule < end {
            let class = aligned_class(granule, end - granule, self.geo.classes - 1);
            self.free_block(granule, class)?;
            granule += 1 << class;
        }
        Ok(())
    }

    /// Push the block of class `class` at `granule` on its free list, unrecorded.
    pub(crate) fn free_block(&self, granule: u64, class: usize) -> Result<()> {
        self.push_block(granule, class, Pusher::Nobody)
    }

    /// [`Directory::free_block`], telling `before_push` the list head's tag before each
    /// attempt (`Pusher::Tagged`).
    pub(crate) fn free_block_noting(
        &self,
        granule: u64,
        class: usize,
        before_push: impl Fn(u32) -> Result<()>,
    ) -> Result<()> {
        self.push_block(granule, class, Pusher::Tagged(&before_push))
    }

    /// Push the block of class `class` at `granule` on its free list, recorded as `pusher`
    /// says (`push_free`).
    pub(crate) fn push_block(&self, granule: u64, class: usize, pusher: Pusher<'_>) -> Result<()> {
        let meta = self.block_meta(granule)?;
        #[cfg(ccs_mutant = "links_in_payload")]
        let first_word = self.words.at(self.geo.granule_word(granule))?;
        self.push_free(
            FreeList::Blocks(class),
            granule,
            meta,
            |link| {
                // The old layout: the link in the block's first payload word.
                #[cfg(ccs_mutant = "links_in_payload")]
                first_word.store(link, Ordering::Relaxed);
                block_meta::pack(FREE, class, link)
            },
            pusher,
        )
    }

    /// Check that the block of a descriptor being freed is in use, so a block freed twice is
    /// reported instead of corrupting a free list.
    pub(crate) fn check_used_block(&self, granule: u64, class: usize) -> Result<()> {
        let meta = self.block_meta(granule)?.load(Ordering::Relaxed);
        if block_meta::state(meta) != USED || block_meta::class(meta) != class {
            return Err(ProtocolError::corrupt(format!(
                "block at granule {granule} of class {class} is freed but not in use (block \
                 word {meta:#x})"
            )));
        }
        Ok(())
    }

    /// Merge every pair of free buddies, for `slot`'s allocation. The caller holds the
    /// structure lock.
    fn merge_free_blocks(&self, slot: u32) -> Result<()> {
        self.finish_dead_merge()?;
        let granules = self.geo.arena_granules();
        // Take every free block off its list: from here on this thread owns them and no list
        // holds them, so a merged-away block leaves no stale list entry. Frees running
        // meanwhile push on the emptied lists and are merged next time. Bounded, in case frees
        // keep coming. Each pop is recorded in header word `H_ARENA_DRAINING` until the block
        // is STASHED, which names it from then on: whoever merges next finishes a dead merger's
        // drain (`finish_dead_merge`) and adopts its stashed blocks (`coalesce`). The mutant
        // drains unrecorded, as before: a merger killed between a pop and the STASHED store
        // leaks the block.
        let popper = if cfg!(ccs_mutant = "unrecorded_drain") {
            Popper::Nobody
        } else {
            Popper::Merger(slot)
        };
        for class in 0..self.geo.classes {
            for _ in 0..(granules >> class) {
                let Some(granule) = self.pop_block(class, popper)? else {
                    break;
                };
                self.env.kill_point(slot, KillPoint::Drained);
                self.block_meta(granule)?
                    .store(block_meta::pack(STASHED, class, 0), Ordering::Relaxed);
            }
        }
        // Every drained block is STASHED: the record goes. Relaxed: read under the structure
        // lock, which orders it; no acknowledgement turns a record that is not `Popping`.
        self.words.at(H_ARENA_DRAINING)?.store(0, Ordering::Relaxed);
        let top = self.geo.classes - 1;
        let end = self
            .words
            .at(H_ARENA_BUMP)?
            .load(Ordering::Relaxed)
            .min(granules);
        let mut region = 0;
        while region < end {
            if self.coalesce(region, top, end)? {
                self.free_block(region, top)?;
            }
            region += 1 << top;
        }
        Ok(())
    }

    /// Whether the aligned region of class `class` at `granule` is one stashed block, after
    /// merging the stashed buddies inside it; the stashed blocks inside a region that does not
    /// become one are pushed back on their lists.
    ///
    /// Blocks this merger did not stash may change under it (other threads allocate, split and
    /// free lock-free): their words only ever make it answer "not one stashed block", and
    /// STASHED words belong to this merger alone.
    fn coalesce(&self, granule: u64, class: usize, end: u64) -> Result<bool> {
        if granule >= end {
            return Ok(false);
        }
        let meta = self.block_meta(granule)?.load(Ordering::Relaxed);
        let (state, found) = (block_meta::state(meta), block_meta::class(meta));
        // The bug the drain prevents: joining a buddy that is still on a free list.
        #[cfg(ccs_mutant = "merge_listed_buddy")]
        if state == FREE && found == class {
            return Ok(true);
        }
        match state {
            STASHED if found == class => return Ok(true),
            STASHED if found > class => {
                return Err(ProtocolError::corrupt(format!(
                    "stashed block at granule {granule} of class {found} is not aligned"
                )));
            }
            // Inside a block that covers the region.
            NONE => return Ok(false),
            FREE | USED if found >= class => return Ok(false),
            _ => {}
        }
        if class == 0 {
            return Ok(false);
        }
        let upper = granule + (1 << (class - 1));
        let lower_whole = self.coalesce(granule, class - 1, end)?;
        let upper_whole = self.coalesce(upper, class - 1, end)?;
        if lower_whole && upper_whole {
            self.merge_pair(granule, class - 1)?;
            return Ok(true);
        }
        if lower_whole {
            self.free_block(granule, class - 1)?;
        }
        if upper_whole {
            self.free_block(upper, class - 1)?;
        }
        Ok(false)
    }

    /// Merge the stashed buddies of class `class` at `lower` and `lower + 2^class` into one
    /// stashed block of class `class + 1`. Recorded first, so that the next merger finishes it
    /// if this process dies between the two stores.
    fn merge_pair(&self, lower: u64, class: usize) -> Result<()> {
        let merging = self.words.at(H_ARENA_MERGING)?;
        merging.store(((lower + 1) << 8) | class as u64, Ordering::Relaxed);
        // Not 0 (a granule never handed out, which a bumper may claim): the mutant stores 0,
        // and a bumper that read the pointer before the buddy was handed out claims it.
        #[cfg(not(ccs_mutant = "merged_words_zeroed"))]
        let inside = block_meta::INSIDE;
        #[cfg(ccs_mutant = "merged_words_zeroed")]
        let inside = NONE;
        self.block_meta(lower + (1 << class))?
            .store(inside, Ordering::Relaxed);
        self.block_meta(lower)?
            .store(block_meta::pack(STASHED, class + 1, 0), Ordering::Relaxed);
        merging.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Finish the drain a dead merger left (see `merge_free_blocks`): the block its record
    /// names (once settled: a `Popping` record becomes the popped block's if the class's list
    /// head still names the pop) is STASHED if it is still FREE, off every list, as the merger
    /// left it; the merge under way adopts it with the rest. The caller holds the structure
    /// lock, and nobody else touches a block no list holds and no descriptor names.
    fn finish_dead_drain(&self) -> Result<()> {
        let word = self.words.at(H_ARENA_DRAINING)?;
        let record = word.load(Ordering::Acquire);
        if record == 0 {
            return Ok(());
        }
        let settled = match Moving::unpack(record) {
            Some(Moving::Popping { class, nonce, tag })
                if class < self.geo.classes && u32::from(nonce) == MERGER_POPPER =>
            {
                self.settle_pop(FreeList::Blocks(class), word, record, MERGER_POPPER, tag)?
            }
            _ => record,
        };
        match Moving::unpack(settled) {
            Some(Moving::None) => {}
            Some(Moving::Block { granule, class }) if self.is_block(granule, class) => {
                if self.drained_and_free(granule, class) {
                    self.block_meta(granule)?
                        .store(block_meta::pack(STASHED, class, 0), Ordering::Relaxed);
                }
            }
            _ => {
                word.store(0, Ordering::Relaxed);
                return Err(ProtocolError::corrupt(format!(
                    "header word {H_ARENA_DRAINING} records a bad drain step ({settled:#x})"
                )));
            }
        }
        word.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// The block a dead merger's drain record names and left FREE off every list, if any (for
    /// fsck, which counts it as free: the next merger stashes it). Read only: a `Popping`
    /// record names the block its class's list head names for this pop.
    #[cfg(not(loom))]
    pub(crate) fn drained_block(&self) -> Result<Option<(u64, usize)>> {
        let record = self.words.at(H_ARENA_DRAINING)?.load(Ordering::Acquire);
        let block = match Moving::unpack(record) {
            Some(Moving::Block { granule, class }) => Some((granule, class)),
            Some(Moving::Popping { class, tag, .. }) if class < self.geo.classes => self
                .pop_still_named(FreeList::Blocks(class), MERGER_POPPER, tag)?
                .map(|granule| (granule, class)),
            _ => None,
        };
        Ok(block.filter(|&(granule, class)| {
            self.is_block(granule, class) && self.drained_and_free(granule, class)
        }))
    }

    /// Whether (`granule`, `class`), read from the segment, is an aligned block inside the arena.
    fn is_block(&self, granule: u64, class: usize) -> bool {
        class < self.geo.classes
            && granule.is_multiple_of(1 << class)
            && granule + (1 << class) <= self.geo.arena_granules()
    }

    /// Whether the block (`granule`, `class`) that a drain record names is still as the dead
    /// merger's pop left it: FREE at that class (off every list), not yet STASHED.
    fn drained_and_free(&self, granule: u64, class: usize) -> bool {
        self.block_meta(granule).is_ok_and(|meta| {
            meta.load(Ordering::Relaxed) & !block_meta::LINK == block_meta::pack(FREE, class, 0)
        })
    }

    /// Finish the pair merge a dead merger left half-done (see `merge_pair`).
    fn finish_dead_merge(&self) -> Result<()> {
        self.finish_dead_drain()?;
        let merging = self.words.at(H_ARENA_MERGING)?;
        let record = merging.load(Ordering::Relaxed);
        if record == 0 {
            return Ok(());
        }
        let (lower, class) = ((record >> 8).wrapping_sub(1), (record & 0xff) as usize);
        let size = 1u64 << class.min(63);
        if class + 1 >= self.geo.classes
            || lower % (2 * size) != 0
            || lower >= self.geo.arena_granules()
            || self.geo.arena_granules() - lower < 2 * size
        {
            return Err(ProtocolError::corrupt(format!(
                "header word {H_ARENA_MERGING} records a merge of a bad pair ({record:#x})"
            )));
        }
        let lower_meta = self.block_meta(lower)?;
        if lower_meta.load(Ordering::Relaxed) == block_meta::pack(STASHED, class, 0)
            && self.block_meta(lower + size)?.load(Ordering::Relaxed) == block_meta::INSIDE
        {
            lower_meta.store(block_meta::pack(STASHED, class + 1, 0), Ordering::Relaxed);
        }
        merging.store(0, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::aligned_class;

    #[test]
    fn aligned_runs_tile_with_aligned_blocks() {
        assert_eq!(aligned_class(0, 5, 20), 2);
        assert_eq!(aligned_class(4, 1, 20), 0);
        assert_eq!(aligned_class(6, 10, 20), 1);
        assert_eq!(aligned_class(8, 64, 2), 2);
        assert_eq!(aligned_class(0, u64::MAX, 31), 31);
    }
}

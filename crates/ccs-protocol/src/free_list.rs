//! The free lists of descriptors and of arena blocks: Treiber stacks (R. K. Treiber, "Systems
//! Programming: Coping with Parallelism", IBM RJ 5118, 1986) whose 16-byte head carries a
//! 32-bit ABA tag and names the winner of the last pop, so that no pop is ever named by
//! nothing (docs/protocol.md §3.9).
//!
//! A popper that records (an agent's thread, or a merger) first records `Popping { list, tag,
//! nonce }` (in its agent slot; a merger's in a header word), then pops with one
//! compare-and-swap of the head that also names it (slot and thread nonce, or the merger) and
//! the entry, then records the entry and says so beside the head (the list's *recorded* word,
//! in the head's cache line). Every later push or pop of the list *acknowledges* the pop the
//! head names before its own compare-and-swap: unless *recorded* says the pop is recorded, if
//! the popper's record is still that `Popping`, it exchanges it for the entry's record, the
//! value the popper writes itself. So once the head has moved on from a pop, the pop is recorded, and the
//! recovery of a dead popper ([`Directory::settle_pop`]: an agent's in `records.rs`, a
//! merger's by the next merger in `arena.rs`) finds its pop either still named by the head
//! (the entry is its own) or recorded as its entry, or it never happened.
//!
//! A push by an agent freeing a descriptor (the descriptor, or its block) is named the same
//! way: its record (`PushDesc`, `PushBlock`, with the head's tag) goes before each attempt,
//! the head names the pusher's slot with [`PUSH_MARK`] and the entry, the pusher then records
//! the push made (`None`, `PushedBlock`) and says so in *recorded*, and an acknowledgement
//! turns a push record the head names into that value. So the recovery
//! ([`Directory::push_made`]) tells a push made from one never made, even after a failed
//! compare-and-swap left the record's tag stale.

use crate::directory::Directory;
use crate::env::Env;
use crate::error::{ProtocolError, Result};
use crate::layout::{A_MOVING, D_BLOCK, H_ARENA_DRAINING, H_DESC_FREE, LIST_RECORDED, arena_free};
use crate::packing::{
    MERGER_POPPER, PUSH_MARK, agent_popper, agent_pusher, block_field, free_head, pop_mark,
    pusher_slot, unpack_free_head, unpack_pop_mark,
};
use crate::records::{
    KillPoint, NO_RECORD, entry_record, popping_record, pushed_record, pushing_desc,
    pushing_record, record_field,
};
use crate::sync::{AtomicPair, AtomicU64, Ordering, thread_nonce};

/// One of a segment's free lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FreeList {
    /// The descriptors' (entries: descriptor indices).
    Descs,
    /// The arena blocks' of one class (entries: granules).
    Blocks(usize),
}

#[cfg(not(loom))]
std::thread_local! {
    /// This thread's last recorded pop as an agent, or named push: its popper id << 32 | the
    /// head's tag right after it (0: none).
    static LAST_POP: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
}
#[cfg(loom)]
loom::thread_local! {
    static LAST_POP: core::cell::Cell<u64> = core::cell::Cell::new(0);
}

/// What [`LAST_POP`] holds after the exchange that left `head`: the popper id (the high word's
/// upper half) << 32 | the tag.
#[inline(always)]
fn last_pop_key(head: (u64, u64)) -> u64 {
    (head.1 & !0xffff_ffff) | (head.0 >> 32)
}

/// Who pops, for the record of the pop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Popper {
    /// Unrecorded ([`NO_RECORD`] as a slot is the same).
    Nobody,
    /// The calling thread of the process in this agent slot, recorded in the slot.
    Agent(u32),
    /// A merger's drain, for the allocation of this agent slot (under the structure lock),
    /// recorded in header word [`H_ARENA_DRAINING`].
    Merger(u32),
}

/// Who pushes, and how the push is recorded.
#[derive(Clone, Copy)]
pub(crate) enum Pusher<'a> {
    /// Unrecorded: a merger, fsck's repair, a recovery that records nothing.
    Nobody,
    /// Recorded by the closure, told the head's tag before each attempt (the tag rule: an
    /// unchanged tag proves the push was not made; a changed one leaves the entry).
    Tagged(&'a dyn Fn(u32) -> Result<()>),
    /// Named by the head: the process in agent slot `slot` freeing descriptor `desc` pushes
    /// the descriptor (the descriptors' list) or its block (a block list), recorded in
    /// `A_MOVING`. [`NO_RECORD`] as a slot is `Nobody`.
    Freeing { slot: u32, desc: u32 },
}

/// The nonce of a merger's pops (one merger at a time: the structure lock).
const MERGER_NONCE: u16 = MERGER_POPPER as u16;

impl FreeList {
    /// The header word of the list's head (the first of its pair).
    pub(crate) fn head_index(self) -> usize {
        match self {
            FreeList::Descs => H_DESC_FREE,
            FreeList::Blocks(class) => arena_free(class),
        }
    }
}

impl<E: Env> Directory<E> {
    /// The head of `list`, checked against the segment's classes.
    #[inline(always)]
    pub(crate) fn list_head(&self, list: FreeList) -> Result<AtomicPair<'_>> {
        if let FreeList::Blocks(class) = list
            && class >= self.geo.classes
        {
            return Err(ProtocolError::corrupt(format!(
                "free list of block class {class} beyond the segment's {}",
                self.geo.classes
            )));
        }
        self.words.pair(list.head_index())
    }

    /// The word that says which pop of `list` is recorded (see `layout.rs`).
    #[inline]
    fn list_recorded(&self, list: FreeList) -> Result<&AtomicU64> {
        self.words.at(list.head_index() + LIST_RECORDED)
    }

    /// The ABA tag and the top (entry + 1, 0: empty) of `list`'s head.
    pub(crate) fn list_tag_and_top(&self, list: FreeList) -> Result<(u32, u64)> {
        Ok(unpack_free_head(
            self.list_head(list)?.load(Ordering::Acquire).0,
        ))
    }

    /// The ABA tag of `list`'s head.
    pub(crate) fn list_tag(&self, list: FreeList) -> Result<u32> {
        Ok(self.list_tag_and_top(list)?.0)
    }

    /// The record word of `popper`'s pops from `list`, with its popper id and nonce (`None`:
    /// unrecorded).
    #[inline]
    fn pop_record(&self, list: FreeList, popper: Popper) -> Result<Option<PopRecord<'_>>> {
        Ok(match popper {
            Popper::Agent(slot) if slot != NO_RECORD => {
                let nonce = thread_nonce();
                Some(PopRecord {
                    word: self.record_word(slot, record_field(list))?,
                    popper: agent_popper(slot, nonce),
                    nonce,
                    slot,
                })
            }
            Popper::Merger(slot) => Some(PopRecord {
                word: self.words.at(H_ARENA_DRAINING)?,
                popper: MERGER_POPPER,
                nonce: MERGER_NONCE,
                slot,
            }),
            _ => None,
        })
    }

    /// The record word of the pop from `list` by popper id `popper`, and that popper's nonce.
    fn record_of_popper(&self, list: FreeList, popper: u32) -> Result<(&AtomicU64, u16)> {
        match (popper >> 16, list) {
            (0, FreeList::Blocks(_)) if popper == MERGER_POPPER => {
                Ok((self.words.at(H_ARENA_DRAINING)?, MERGER_NONCE))
            }
            (0, _) => Err(ProtocolError::corrupt(format!(
                "free list head names popper {popper:#x}, neither an agent nor a merger"
            ))),
            (slot_plus_one, _) => Ok((
                self.record_word(slot_plus_one - 1, record_field(list))?,
                popper as u16,
            )),
        }
    }

    /// Pop an entry off `list`, recorded as `popper`'s; `link_of` reads an entry's successor
    /// link, and entries above `limit` are corruption. Returns the entry (index, not + 1),
    /// recorded in its record word as `records.rs`'s [`entry_record`] has it.
    pub(crate) fn pop_free(
        &self,
        list: FreeList,
        limit: u64,
        popper: Popper,
        link_of: impl Fn(u64) -> Result<u64>,
    ) -> Result<Option<u64>> {
        let head = self.list_head(list)?;
        let record = self.pop_record(list, popper)?;
        let mut popping = false;
        loop {
            // Pairs with the Release exchanges below and in `push_free`: the successor link,
            // and the popper's `Popping` record that `acknowledge` may turn, are visible.
            let current = head.load(Ordering::Acquire);
            self.acknowledge(list, current)?;
            let (tag, top) = unpack_free_head(current.0);
            if top == 0 {
                if let Some(record) = record.filter(|_| popping) {
                    // A lost attempt's record: no head names it, so no one else touches it.
                    record.word.store(0, Ordering::Relaxed);
                }
                return Ok(None);
            }
            if top > limit {
                return Err(ProtocolError::corrupt(format!(
                    "free list head {top} out of range"
                )));
            }
            let next = link_of(top - 1)?;
            if next > limit {
                // Either a racing pop reused the entry (the exchange below would fail) or the
                // segment is corrupt; re-read to tell which.
                if head.load(Ordering::Acquire) == current {
                    return Err(ProtocolError::corrupt(format!(
                        "free list link {next} out of range"
                    )));
                }
                continue;
            }
            let mark = match record {
                Some(record) => {
                    // Relaxed: published by the exchange's Release, for the acknowledgement.
                    record
                        .word
                        .store(popping_record(list, tag, record.nonce), Ordering::Relaxed);
                    popping = true;
                    pop_mark(record.popper, top - 1)
                }
                None => 0,
            };
            let popped = (free_head(tag.wrapping_add(1), next as u32), mark);
            if head
                .compare_exchange(current, popped, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                if let Some(record) = record {
                    self.env.kill_point(record.slot, KillPoint::Popped);
                    // Release, as every record store: read by a recovery after this process
                    // died. An acknowledgement may have written the same value already.
                    record
                        .word
                        .store(entry_record(list, top - 1), Ordering::Release);
                    // Then say so beside the head, in the line this exchange just took: an
                    // acknowledgement that reads this tag there (Acquire) needs no look at
                    // the record. Pairs with the Acquire load in `acknowledge_other`.
                    self.list_recorded(list)?
                        .store(u64::from(tag.wrapping_add(1)), Ordering::Release);
                    if let Popper::Agent(_) = popper {
                        LAST_POP.with(|last| last.set(last_pop_key(popped)));
                    }
                }
                return Ok(Some(top - 1));
            }
        }
    }

    /// Push `entry` on `list`, storing `with_link(successor link)` into `next_word` first,
    /// recorded as `pusher` says.
    pub(crate) fn push_free(
        &self,
        list: FreeList,
        entry: u64,
        next_word: &AtomicU64,
        with_link: impl Fn(u64) -> u64,
        pusher: Pusher<'_>,
    ) -> Result<()> {
        let head = self.list_head(list)?;
        let named = match pusher {
            Pusher::Freeing { slot, desc } if slot != NO_RECORD => Some(NamedPush {
                word: self.record_word(slot, A_MOVING)?,
                id: agent_pusher(slot),
                desc,
                slot,
            }),
            _ => None,
        };
        // Acquire (and on a failed exchange): the acknowledgement must see the `Popping` record
        // of the pop the head names (pairs with the popping exchange's Release).
        let mut current = head.load(Ordering::Acquire);
        loop {
            self.acknowledge(list, current)?;
            let (tag, top) = unpack_free_head(current.0);
            // Before the link store: for a block, that store marks it FREE, which a recovery
            // that still sees the step before (`Freeing`) would take for a block freed twice.
            match (named, pusher) {
                // Release, as every record store. Published to an acknowledger by the
                // exchange's Release.
                (Some(push), _) => push
                    .word
                    .store(pushing_record(list, push.desc, tag), Ordering::Release),
                (None, Pusher::Tagged(before_push)) => before_push(tag)?,
                _ => {}
            }
            next_word.store(with_link(top), Ordering::Relaxed);
            let mark = named.map_or(0, |push| pop_mark(push.id, entry));
            let pushed = (free_head(tag.wrapping_add(1), (entry + 1) as u32), mark);
            // Pairs with the Acquire load in `pop_free`.
            match head.compare_exchange(current, pushed, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    if let Some(push) = named {
                        self.record_push_made(list, push, pushed)?;
                    }
                    return Ok(());
                }
                Err(seen) => {
                    if let Some(push) = named {
                        self.env.kill_point(push.slot, KillPoint::PushLost);
                    }
                    current = seen;
                }
            }
        }
    }

    /// A named push won the head (now `pushed`): record it made, then say so beside the head.
    /// In that order: an acknowledgement that reads *recorded* skips the record, so a record
    /// still naming the push then would make the recovery push it again (mutant
    /// `recorded_before_pushed`).
    fn record_push_made(
        &self,
        list: FreeList,
        push: NamedPush<'_>,
        pushed: (u64, u64),
    ) -> Result<()> {
        let tag = unpack_free_head(pushed.0).0;
        let recorded = self.list_recorded(list)?;
        #[cfg(ccs_mutant = "recorded_before_pushed")]
        recorded.store(u64::from(tag), Ordering::Release);
        self.env.kill_point(push.slot, KillPoint::Pushed);
        push.word
            .store(pushed_record(list, push.desc), Ordering::Release);
        // Pairs with the Acquire load in `acknowledge_other`.
        #[cfg(not(ccs_mutant = "recorded_before_pushed"))]
        recorded.store(u64::from(tag), Ordering::Release);
        LAST_POP.with(|last| last.set(last_pop_key(pushed)));
        Ok(())
    }

    /// Whether the named push of `entry` onto `list` that agent slot `slot`'s dead process
    /// recorded as `record` (the head's tag `tag` before it) was made: the head still names it
    /// (at tag `tag + 1`), or the record no longer holds it. The head is read first (Acquire):
    /// a head that moved on from the push was moved by an exchange preceded by an
    /// acknowledgement that turned the record (or by the pusher's own record of it made), so
    /// a record still unchanged after that read proves the push was never made — a failed
    /// exchange, or none. The mutant judges by the tag alone, as before layout 12: a record
    /// whose tag went stale in a lost exchange is taken for a push made, and the entry leaks.
    pub(crate) fn push_made(
        &self,
        list: FreeList,
        slot: u32,
        record: u64,
        entry: u64,
        tag: u32,
    ) -> Result<bool> {
        if self.pop_still_named(list, agent_pusher(slot), tag)? == Some(entry) {
            return Ok(true);
        }
        if cfg!(ccs_mutant = "tag_rule_pushes") {
            return Ok(self.list_tag(list)? != tag);
        }
        // Pairs with the acknowledgement's exchange (AcqRel) and the pusher's Release store.
        Ok(self.record_word(slot, A_MOVING)?.load(Ordering::Acquire) != record)
    }

    /// Make sure the pop that `head` (just read from `list`) names is recorded before anyone
    /// moves the head on from it: if the popper's record word still holds the `Popping` record
    /// of that pop (its slot, its thread's nonce, the tag before the pop), exchange it for the
    /// popped entry's record. A load first, so a popper that recorded its entry itself (the
    /// usual case) costs one shared read; the exchange fails harmlessly if the popper, or
    /// another acknowledger, wrote it meanwhile. The nonce keeps a sibling thread's record
    /// (same slot, same tag, a lost pop) from being turned into this pop's entry: that would
    /// be a false record, freed under the winner by a recovery.
    #[inline]
    fn acknowledge(&self, list: FreeList, head: (u64, u64)) -> Result<()> {
        // The mutant never acknowledges: a popper killed before recording its entry leaks it
        // once the list moves on.
        if head.1 == 0 || cfg!(ccs_mutant = "unacknowledged_pops") {
            return Ok(());
        }
        // Nothing to do for this thread's own last pop (as an agent) or named push, which it
        // recorded before it returned: the head still at the tag that operation left, naming
        // this thread's popper id, is that operation (the popper id alone is not: a process
        // that let its slot go keeps its threads' last pops, and another process attached to
        // that slot may have a thread with the same nonce). Inline: in a run of one thread's
        // operations on a list, this is every acknowledgement.
        if LAST_POP.with(core::cell::Cell::get) == last_pop_key(head) {
            return Ok(());
        }
        self.acknowledge_other(list, head)
    }

    /// [`Directory::acknowledge`] once the head names another thread's pop or push.
    fn acknowledge_other(&self, list: FreeList, head: (u64, u64)) -> Result<()> {
        let Some((popper, popped)) = unpack_pop_mark(head.1) else {
            return Ok(());
        };
        let tag = unpack_free_head(head.0).0;
        // The popper said it recorded this pop (the tag right after it): nothing to do, and
        // its agent slot's line, which it writes on every pop, stays in its cache. Pairs with
        // the Release store after the popper's record.
        if self.list_recorded(list)?.load(Ordering::Acquire) == u64::from(tag) {
            return Ok(());
        }
        let before = tag.wrapping_sub(1);
        if popper & PUSH_MARK != 0 {
            return self.acknowledge_push(list, popper, before, popped);
        }
        let (word, nonce) = self.record_of_popper(list, popper)?;
        let seen = word.load(Ordering::Acquire);
        let expected = popping_record(list, before, nonce);
        // The mutant matches the slot and the tag only: a sibling thread's stale record of a
        // lost pop becomes this pop's entry.
        #[cfg(ccs_mutant = "acknowledged_by_slot")]
        let expected = if crate::records::is_popping(list, before, seen) {
            seen
        } else {
            expected
        };
        if seen == expected {
            let _ = word.compare_exchange(
                expected,
                entry_record(list, popped),
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
        Ok(())
    }

    /// [`Directory::acknowledge_other`] of a push, by `pusher` of `entry` at tag `before`: if
    /// the pusher's record still holds that push, exchange it for the push made. A sibling
    /// thread's record of another push at the same tag (lost) names another descriptor, and a
    /// block's push is told apart by the descriptor's block field, which names the block until
    /// its push is recorded made.
    #[cold]
    fn acknowledge_push(&self, list: FreeList, pusher: u32, before: u32, entry: u64) -> Result<()> {
        let Some(slot) = pusher_slot(pusher) else {
            return Err(ProtocolError::corrupt(format!(
                "free list head names pusher {pusher:#x}, no agent slot"
            )));
        };
        let word = self.record_word(slot, A_MOVING)?;
        let seen = word.load(Ordering::Acquire);
        let Some(desc) = pushing_desc(list, before, seen) else {
            return Ok(());
        };
        let this_push = match list {
            FreeList::Descs => u64::from(desc) == entry,
            FreeList::Blocks(class) => {
                self.desc_at(desc, D_BLOCK)?.load(Ordering::Relaxed) == block_field(entry, class)
            }
        };
        if this_push {
            let _ = word.compare_exchange(
                seen,
                pushed_record(list, desc),
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
        Ok(())
    }

    /// The entry `popper` popped off `list` when its head's tag was `tag`, if the head still
    /// names that pop (at tag `tag + 1`): nobody has moved on from it. A push id
    /// ([`agent_pusher`]) asks the same of a push. Acquire: pairs with the popping (or
    /// pushing) exchange (AcqRel) and with every exchange that moved on from it, each
    /// preceded by its acknowledgement.
    pub(crate) fn pop_still_named(
        &self,
        list: FreeList,
        popper: u32,
        tag: u32,
    ) -> Result<Option<u64>> {
        let (low, high) = self.list_head(list)?.load(Ordering::Acquire);
        Ok(unpack_pop_mark(high)
            .filter(|&(by, _)| by == popper && unpack_free_head(low).0 == tag.wrapping_add(1))
            .map(|(_, popped)| popped))
    }

    /// Settle the `Popping` record `record` (the head's tag `tag` before the pop) that a dead
    /// `popper` left in `word` on `list`, returning what the word holds afterwards. If the head
    /// still names this pop (at tag `tag + 1`, this popper), the pop happened and nobody has
    /// moved on from it: the record becomes the entry's, as an acknowledgement would make it.
    /// Otherwise the pop never happened (the exchange failed, or the popper died before it), or
    /// the list moved on from it, which acknowledged it first: the record is cleared with a
    /// compare-and-swap from `Popping`, so an acknowledgement that got there first is kept, and
    /// the caller recovers its entry.
    pub(crate) fn settle_pop(
        &self,
        list: FreeList,
        word: &AtomicU64,
        record: u64,
        popper: u32,
        tag: u32,
    ) -> Result<u64> {
        let settled = self
            .pop_still_named(list, popper, tag)?
            .map_or(0, |popped| entry_record(list, popped));
        // The mutant clears the record with a store: an acknowledgement that landed between
        // the record's load and the head's is lost, and its entry with it.
        if cfg!(ccs_mutant = "popping_cleared_by_store") && settled == 0 {
            word.store(0, Ordering::Release);
            return Ok(0);
        }
        Ok(
            match word.compare_exchange(record, settled, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => settled,
                Err(now) => now,
            },
        )
    }
}

/// Where a named push is recorded: the pusher's `A_MOVING`, the id the head will carry, the
/// descriptor being freed, and the agent slot for the models' kill points.
#[derive(Clone, Copy)]
struct NamedPush<'a> {
    word: &'a AtomicU64,
    id: u32,
    desc: u32,
    slot: u32,
}

/// Where a recorded pop goes: the record word, the popper id the head will carry, its nonce
/// (in the `Popping` record), and the agent slot for the models' kill points.
#[derive(Clone, Copy)]
struct PopRecord<'a> {
    word: &'a AtomicU64,
    popper: u32,
    nonce: u16,
    slot: u32,
}

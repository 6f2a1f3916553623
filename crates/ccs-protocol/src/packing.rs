//! Bit layouts of the words that must change in one atomic step.
//!
//! * A line's **head**: `desc:24 | holder:16 | epoch:24`. `desc` is the published slot
//!   descriptor + 1 (0: never written), `holder` the slot + 1 of the agent holding the line's
//!   single-writer right (0: free), `epoch` counts acquisitions. Publishing a version and
//!   giving up the right is one compare-and-swap on this word, so a holder whose right was
//!   reclaimed (its epoch is gone) can never publish: that is the fence.
//! * A line's **lease**: `deadline_ms:38 | exclusive:1 | spare:1 | epoch:24`, written by the
//!   holder right after it wins the head; trusted only while its epoch matches the head's.
//! * A descriptor's **owner**: `(line + 1):32 | incarnation:32`, the seqlock sequence of the
//!   descriptor. `incarnation` counts how often the descriptor was freed: `release_desc` bumps it
//!   (and zeroes the line field; never back to 0, the owner word of a descriptor never handed
//!   out, which a bumper claims: [`bump_claim`]), `fill_slot` keeps it. So the owner word of
//!   one descriptor never takes the same value twice in two different uses (until 2^32 reuses
//!   of that one descriptor while a reader sleeps between two loads), whoever fills it: a
//!   fenced writer, a dead one or two writers that both took the line at the same version. The version is not in the tag: it
//!   has its own word (`D_VERSION`), 64 bits like every version in the segment.
//! * A descriptor's **control** word: `state:2 | spare:1 | tag:29 | pins:32` while in use,
//!   `tag` the low 29 bits of the incarnation it was taken at ([`desc_state::tag`]), so that a
//!   compare-and-swap expecting one use of the descriptor fails on any later use (a dead
//!   discarder's recovery, docs/protocol.md §3.9); FREE is 0, or while a free is under way the
//!   claim bit and the freeing agent's slot + 1 ([`desc_state::claim`]).
//! * A descriptor's **next** word: `mark:40 | link:24`. `link` is the free-list successor
//!   (index + 1) while the descriptor is on the free list; `mark` is the last superseding
//!   hold's `holder:16 | epoch:24`, written by a publisher before its publishing
//!   compare-and-swap ([`superseding_mark`]): the witness that tells the publisher's recovery
//!   whether its publish superseded the descriptor (docs/protocol.md §3.9).

/// Fields of a line's head word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Published descriptor + 1; 0 if the line was never written.
    pub desc: u32,
    /// Holding agent's slot + 1; 0 if no one holds the line.
    pub holder: u32,
    /// Acquisition counter (wraps at 2^24).
    pub epoch: u32,
}

const EPOCH_MASK: u64 = (1 << 24) - 1;

impl Head {
    /// Unpack a head word.
    pub fn unpack(word: u64) -> Head {
        Head {
            desc: (word >> 40) as u32,
            holder: ((word >> 24) & 0xffff) as u32,
            epoch: (word & EPOCH_MASK) as u32,
        }
    }

    /// Pack into a head word.
    pub fn pack(self) -> u64 {
        (u64::from(self.desc) << 40)
            | (u64::from(self.holder & 0xffff) << 24)
            | (u64::from(self.epoch) & EPOCH_MASK)
    }

    /// The holding agent's slot, if any.
    pub fn holder_slot(self) -> Option<u32> {
        self.holder.checked_sub(1)
    }

    /// The published descriptor index, if any.
    pub fn desc_index(self) -> Option<u32> {
        self.desc.checked_sub(1)
    }

    /// The head after `slot` takes the line.
    pub fn taken_by(self, slot: u32) -> Head {
        Head {
            desc: self.desc,
            holder: slot + 1,
            epoch: (self.epoch + 1) & EPOCH_MASK as u32,
        }
    }
}

/// Fields of a line's lease word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// Monotonic milliseconds after which the hold may be reclaimed.
    pub deadline_ms: u64,
    /// An `acquire` (E), not a `put` in progress (M).
    pub exclusive: bool,
    /// The head epoch this lease belongs to.
    pub epoch: u32,
}

const DEADLINE_MASK: u64 = (1 << 38) - 1;

impl Lease {
    /// Unpack a lease word.
    pub fn unpack(word: u64) -> Lease {
        Lease {
            deadline_ms: word >> 26,
            exclusive: word & (1 << 25) != 0,
            epoch: (word & EPOCH_MASK) as u32,
        }
    }

    /// Pack into a lease word (deadlines saturate at 2^38 ms, about 8.7 years of uptime).
    pub fn pack(self) -> u64 {
        (self.deadline_ms.min(DEADLINE_MASK) << 26)
            | (u64::from(self.exclusive) << 25)
            | (u64::from(self.epoch) & EPOCH_MASK)
    }
}

/// Pack a descriptor owner word: `line` claims the descriptor in its `incarnation`.
pub fn owner(line: u32, incarnation: u32) -> u64 {
    (u64::from(line + 1) << 32) | u64::from(incarnation)
}

/// Unpack a descriptor owner word into (line, incarnation); `None` for a free descriptor.
pub fn unpack_owner(word: u64) -> Option<(u32, u32)> {
    let line = (word >> 32) as u32;
    line.checked_sub(1).map(|line| (line, word as u32))
}

/// The incarnation of a descriptor whose owner word is `word`.
pub fn incarnation(word: u64) -> u32 {
    word as u32
}

/// The owner word of a descriptor just freed, whose owner word was `word`: no line, and the
/// next incarnation, so no later fill can give it back a value a reader saw before. Never 0:
/// only a descriptor never handed out has owner word 0, which a bumper claims
/// ([`bump_claim`]); the wrap skips it.
pub fn freed_owner(word: u64) -> u64 {
    #[cfg(ccs_mutant = "reused_tags")]
    return u64::from(incarnation(word)).max(1);
    #[cfg(not(ccs_mutant = "reused_tags"))]
    u64::from(incarnation(word).wrapping_add(1).max(1))
}

/// The line field of a bump claim: far above every line (lines fit in 24 bits).
const BUMP_CLAIM_LINE: u64 = 1 << 31;

/// The owner word a bumper writes into the descriptor at the bump pointer (owner word 0, never
/// handed out) before it moves the pointer past it, naming its agent slot (`slot + 1` wraps to
/// 0 for the unrecorded slot `u32::MAX`): the claim makes the bump exclusive, lets a racing
/// bumper finish the move, and tells a dead bumper's recovery that the descriptor is its own
/// (docs/protocol.md §3.9). Its line field names no line, so no reader takes it for a
/// version; [`freed_owner`] of it is incarnation 1.
pub const fn bump_claim(slot: u32) -> u64 {
    (BUMP_CLAIM_LINE | slot.wrapping_add(1) as u64) << 32
}

/// Whether owner word `word` is a bump claim (of any slot).
pub const fn is_bump_claim(word: u64) -> bool {
    word as u32 == 0 && (word >> 32) & BUMP_CLAIM_LINE != 0
}

/// Descriptor states (the top two bits of its control word).
pub mod desc_state {
    /// On a free list or never used.
    pub const FREE: u64 = 0;
    /// Being filled by a writer; not yet published.
    pub const FILLING: u64 = 1;
    /// Published and current.
    pub const LIVE: u64 = 2;
    /// Superseded; freed when its last pin goes.
    pub const RETIRED: u64 = 3;
    /// Shift of the state in the control word.
    pub const SHIFT: u32 = 62;
    /// Mask of the pin count.
    pub const PINS: u64 = (1 << 32) - 1;
    /// Mask of the incarnation tag of a descriptor in use ([`tag`]).
    pub const TAG: u64 = ((1 << 29) - 1) << 32;
    /// Everything below the state: tag and pins.
    pub const BODY: u64 = (1 << SHIFT) - 1;
    /// In a FREE control word: a free won by `try_free` and not finished yet; the low bits
    /// hold the winner's agent slot + 1 (0: a free nobody records).
    pub const CLAIM: u64 = 1 << 61;

    /// The control word of a descriptor whose free `slot` won (`slot + 1` wraps to 0 for the
    /// unrecorded slot `u32::MAX`).
    pub const fn claim(slot: u32) -> u64 {
        CLAIM | slot.wrapping_add(1) as u64
    }

    /// The tag bits of a descriptor taken at `incarnation` (its owner word's): the control word
    /// of each use differs from the previous 2^29 - 1 uses' words.
    pub const fn tag(incarnation: u32) -> u64 {
        ((incarnation as u64) << 32) & TAG
    }
}

/// The free-list link field of a descriptor's next word (index + 1, 0 = end).
pub const DESC_LINK: u64 = (1 << 24) - 1;

/// The mark a publisher holding a line as `slot` at `epoch` leaves in the next word of the
/// descriptor its publish supersedes (above the link field, which it keeps).
pub fn superseding_mark(slot: u32, epoch: u32) -> u64 {
    ((u64::from(slot.wrapping_add(1) & 0xffff) << 24) | (u64::from(epoch) & EPOCH_MASK)) << 24
}

/// A descriptor's block field (`D_BLOCK`) naming the block of `class` at `granule`.
pub const fn block_field(granule: u64, class: usize) -> u64 {
    (granule << 8) | class as u64
}

/// Unpack a block field other than `NO_BLOCK` into (granule, class); the class is unchecked.
pub const fn unpack_block_field(field: u64) -> (u64, usize) {
    (field >> 8, (field & 0xff) as usize)
}

/// Pack a free-list head: ABA tag and index + 1.
pub fn free_head(tag: u32, index_plus_one: u32) -> u64 {
    (u64::from(tag) << 32) | u64::from(index_plus_one)
}

/// Unpack a free-list head into (ABA tag, top entry's index + 1; 0 for an empty list).
pub fn unpack_free_head(word: u64) -> (u32, u64) {
    ((word >> 32) as u32, word & 0xffff_ffff)
}

/// The popper id of thread `nonce` (`< PUSH_MARK`, `sync::thread_nonce`) of the process in
/// agent slot `slot` (`slot < 65_535`, `MAX_AGENTS_LIMIT`), as a free-list head names it:
/// `(slot + 1) << 16 | nonce`.
pub fn agent_popper(slot: u32, nonce: u16) -> u32 {
    ((slot.wrapping_add(1) & 0xffff) << 16) | u32::from(nonce & !PUSH_MARK as u16)
}

/// The bit of a free-list head's popper id that says the last exchange was a push, not a pop
/// (docs/protocol.md §3.9 "The push").
pub const PUSH_MARK: u32 = 0x8000;

/// The id by which a free-list head names a push recorded in agent slot `slot`'s `A_MOVING`:
/// `(slot + 1) << 16 | PUSH_MARK`. No thread nonce: the pushed entry is held by one thread.
pub fn agent_pusher(slot: u32) -> u32 {
    ((slot.wrapping_add(1) & 0xffff) << 16) | PUSH_MARK
}

/// The agent slot whose push a head's popper id `id` names, if it names a push.
pub fn pusher_slot(id: u32) -> Option<u32> {
    if id & PUSH_MARK == 0 {
        return None;
    }
    (id >> 16).checked_sub(1)
}

/// The popper id of a merger's drain (no agent slot: the slot field is 0), whose record is a
/// header word (docs/layout.md §2).
pub const MERGER_POPPER: u32 = 1;

/// A free-list head's high word after a pop of entry `popped` by `popper` (docs/protocol.md
/// §3.9): `popper << 32 | (popped + 1)`.
pub fn pop_mark(popper: u32, popped: u64) -> u64 {
    (u64::from(popper) << 32) | (popped.wrapping_add(1) & 0xffff_ffff)
}

/// Unpack a free-list head's high word into (popper, popped entry); `None` for 0 (no pop to
/// acknowledge) or a word that names no popper or no entry.
pub fn unpack_pop_mark(word: u64) -> Option<(u32, u64)> {
    let (popper, popped_plus_one) = ((word >> 32) as u32, word & 0xffff_ffff);
    if popper == 0 || popped_plus_one == 0 {
        return None;
    }
    Some((popper, popped_plus_one - 1))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn pop_marks_round_trip() {
        let popper = agent_popper(65_534, 0x3eef);
        assert_eq!(popper, 0xffff_3eef);
        assert_eq!(pusher_slot(popper), None);
        assert_eq!(pusher_slot(agent_pusher(65_534)), Some(65_534));
        assert_eq!(pusher_slot(agent_pusher(0)), Some(0));
        assert_eq!(pusher_slot(PUSH_MARK), None);
        assert_eq!(unpack_pop_mark(pop_mark(popper, 7)), Some((popper, 7)));
        assert_eq!(
            unpack_pop_mark(pop_mark(MERGER_POPPER, 0)),
            Some((MERGER_POPPER, 0))
        );
        assert_eq!(unpack_pop_mark(0), None);
    }

    #[test]
    fn head_round_trips() {
        let head = Head {
            desc: (1 << 24) - 1,
            holder: 65_535,
            epoch: (1 << 24) - 1,
        };
        assert_eq!(Head::unpack(head.pack()), head);
        let taken = head.taken_by(3);
        assert_eq!(
            taken,
            Head {
                desc: head.desc,
                holder: 4,
                epoch: 0
            }
        );
        assert_eq!(Head::unpack(0).holder_slot(), None);
    }

    #[test]
    fn lease_round_trips() {
        let lease = Lease {
            deadline_ms: 123_456_789,
            exclusive: true,
            epoch: 77,
        };
        assert_eq!(Lease::unpack(lease.pack()), lease);
    }

    #[test]
    fn owner_round_trips() {
        assert_eq!(unpack_owner(owner(7, 9)), Some((7, 9)));
        assert_eq!(unpack_owner(0), None);
        let freed = freed_owner(owner(7, 9));
        assert_eq!(unpack_owner(freed), None);
        assert_eq!(incarnation(freed), 10);
        assert_ne!(owner(7, incarnation(freed)), owner(7, 9));
    }
}

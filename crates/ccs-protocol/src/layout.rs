//! The segment layout: where every table lives, computed from a [`Config`] and validated on open.
//!
//! All positions are word indices from the start of the segment (offsets, never pointers), so
//! every process can map the segment at a different address. See `docs/layout.md`.
//!
//! ```text
//! header | agent table | directory lines | views (agent × line) | stamps (agent × line)
//!        | slot descriptors | operation logs (one ring per agent) | inboxes (one per agent) | subscriptions
//!        | block table (one word per arena granule) | arena
//! ```

use crate::error::{ProtocolError, Result};
use crate::sync::Ordering;
use crate::words::Words;

/// `b"CCSSEG\0\x01"` read as a little-endian word: the header's first word once initialised.
pub const MAGIC: u64 = u64::from_le_bytes(*b"CCSSEG\0\x01");
/// Version of this layout; an opener of any other version is refused.
pub const LAYOUT_VERSION: u64 = 16;
/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// Longest agent name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// Most agents a segment can be made for (the holder field of a line is 16 bits).
pub const MAX_AGENTS_LIMIT: u32 = 65_535;
/// Most slot descriptors (the descriptor field of a line is 24 bits).
pub const MAX_DESCS_LIMIT: u64 = (1 << 24) - 1;
/// Granule of the payload arena: every block is a power-of-two multiple of it.
pub const GRANULE: u64 = 64;
/// Size classes of the arena: blocks of 64 B << k, k < 32 (up to 128 GiB).
pub const MAX_CLASSES: usize = 32;
/// Most records in one agent's log ring.
pub const MAX_LOG_RECORDS: u32 = 1 << 20;
/// Most events in one agent's inbox.
pub const MAX_INBOX_EVENTS: u32 = 1 << 20;
/// Prefixes one eager agent can subscribe to at once.
pub const MAX_SUBSCRIPTIONS: usize = 8;

/// Sizes fixed when a segment is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Most agents that can ever register (≤ 65,535).
    pub max_agents: u32,
    /// Most distinct keys the directory holds.
    pub max_artifacts: u32,
    /// Bytes of payload storage.
    pub arena_bytes: u64,
    /// Largest single payload.
    pub max_payload: u64,
    /// Lease of a plain `put`'s transient hold, after which a stuck writer is reclaimed.
    pub write_lease_ms: u64,
    /// Records in each agent's operation log ring (a power of two; 0: no log).
    pub log_records: u32,
    /// Change events each eager agent's inbox holds (a power of two; 0: no eager agents).
    pub inbox_events: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_agents: 256,
            max_artifacts: 4096,
            arena_bytes: 256 << 20,
            max_payload: 64 << 20,
            write_lease_ms: 10_000,
            log_records: 1024,
            inbox_events: 256,
        }
    }
}

// Header words.
pub(crate) const H_MAGIC: usize = 0;
const H_LAYOUT_VERSION: usize = 1;
const H_TOTAL_BYTES: usize = 2;
const H_MAX_AGENTS: usize = 3;
const H_MAX_ARTIFACTS: usize = 4;
const H_ARENA_BYTES: usize = 5;
const H_MAX_PAYLOAD: usize = 6;
const H_WRITE_LEASE_MS: usize = 7;
const H_CHECKSUM: usize = 8;
/// Creation time (monotonic ms): the epoch of lease strategies' fetch stamps.
pub(crate) const H_CREATED_MS: usize = 9;
const H_LOG_RECORDS: usize = 10;
const H_INBOX_EVENTS: usize = 11;
/// Run-time switches, see [`SWITCH_LOG_OFF`] and [`SWITCH_NO_INVALIDATION`].
pub(crate) const H_SWITCHES: usize = 12;
/// Logging paused on this segment.
pub(crate) const SWITCH_LOG_OFF: u64 = 1;
/// Writers do not clear peers' valid bits: the demonstration of what goes wrong without
/// coherence. Never set it on a segment that matters.
pub(crate) const SWITCH_NO_INVALIDATION: u64 = 2;
/// Agents whose slot was taken over or forgotten so far (see `agents.rs`): once non-zero, a
/// newly registered name may be a returning one, so it starts with dropped views.
pub(crate) const H_AGENT_DROPS: usize = 15;
/// Lines ever given a key (only grows; a reused line is not counted again): while it is below
/// `max_artifacts` a new key may take an empty line, after that only a reusable tombstone.
pub(crate) const H_KEY_COUNT: usize = 16;
/// Descriptors handed out by bump allocation so far.
pub(crate) const H_DESC_BUMP: usize = 17;
/// Granules of the arena handed out by bump allocation so far.
pub(crate) const H_ARENA_BUMP: usize = 19;
/// The buddy merge a process was doing when it died, if any: `(granule + 1) << 8 | class` of
/// the lower buddy of the pair being merged (see `alloc.rs`); 0 = none. Written under the
/// structure lock only.
pub(crate) const H_ARENA_MERGING: usize = 20;
/// A merger's record of its drain's latest pop (`records.rs`'s `Moving` encoding: `Popping`
/// before the pop's compare-and-swap, `Block` after it), 0 = none; written by the merger under
/// the structure lock and turned by acknowledgements (`free_list.rs`); the next merger
/// finishes a dead merger's (`arena.rs`).
pub(crate) const H_ARENA_DRAINING: usize = 21;
/// The free lists (docs/protocol.md §3.9): [`LIST_WORDS`] words each, from here. The first
/// two are the head, 16-byte aligned, read and compare-and-swapped only as one 16-byte pair
/// ([`crate::words::Words::pair`]): the low word is `tag << 32 | (top + 1)`, the high word
/// names the winner of the last pop, for the next operation on the list to acknowledge:
/// `popper << 32 | (popped + 1)`, where `popper` is `(slot + 1) << 16 | nonce` (0: nothing to
/// acknowledge). The third ([`LIST_RECORDED`]) is the head's tag right after the last pop
/// whose popper has recorded its entry, in the head's cache line, so that an acknowledgement
/// of a recorded pop reads no other process's line. The fourth is unused.
pub(crate) const H_FREE_LISTS: usize = 32;
/// Words per free list.
pub(crate) const LIST_WORDS: usize = 4;
/// The word of a free list, after its head, that says which pop is recorded.
pub(crate) const LIST_RECORDED: usize = 2;
/// The free list of descriptors (entries: descriptor indices).
pub(crate) const H_DESC_FREE: usize = H_FREE_LISTS;
/// The free list of arena blocks of class `class` (entries: granules).
pub(crate) const fn arena_free(class: usize) -> usize {
    H_FREE_LISTS + LIST_WORDS * (1 + class)
}
/// Header length in words.
pub(crate) const HEADER_WORDS: usize = arena_free(MAX_CLASSES);

// Agent slot words.
pub(crate) const AGENT_WORDS: usize = 32;
pub(crate) const A_STATE: usize = 0; // 0 never used; FORGOTTEN; else REGISTERED | name_len
pub(crate) const A_GEN: usize = 1;
pub(crate) const A_PID: usize = 2;
pub(crate) const A_ATTACHED_MS: usize = 3;
/// The freshness strategy chosen at attach (see `freshness.rs`).
pub(crate) const A_STRATEGY: usize = 4;
/// When the agent was last seen leaving (monotonic ms, stored at detach; 0: never detached):
/// with the attach time, the "last seen" that orders dead slots for reuse.
pub(crate) const A_DETACHED_MS: usize = 5;
/// The descriptor the agent took off the free list and has not yet recorded in a line's pending
/// word (`desc + 1`, 0: none): see `records.rs`.
pub(crate) const A_TAKEN: usize = 6;
/// The block or descriptor the agent is moving between a free list and a descriptor, or
/// retiring (0: none): see `records.rs`.
pub(crate) const A_MOVING: usize = 7;
pub(crate) const A_NAME: usize = 8; // 8 words = 64 bytes
/// The agent's pin records: `desc + 1` of each version a zero-copy guard of its process pins
/// (0: free), so that whoever next holds the agent's lock can release a dead process's pins.
pub(crate) const A_PINS: usize = 16;
/// Pin records per agent; a process holding more guards at once pins the rest untracked.
pub(crate) const PIN_RECORDS: usize = 16;

// Line words. The first cache line (words 0–7) holds what every read loads (the head, the
// generation, the base) and what resolving a key loads first; a write in flight records its
// lease, its pending slot and its wake-up on a cache line of their own (words 8–15), so that a
// reader spinning on the head for the publication does not take that line back between the
// writer's records (docs/layout.md §4).
pub(crate) const L_KEYMETA: usize = 0;
pub(crate) const L_HEAD: usize = 1;
/// The version the line's last publication published: only a hint, stored by the publisher
/// right after its publishing CAS, from which a writer guesses, before it takes the line,
/// whether its condition will admit it (`write.rs`, `invalidate_before_take`). No read
/// trusts it.
pub(crate) const L_PUBLISHED: usize = 2;
pub(crate) const L_LEASE: usize = 8;
/// Two 32-bit words: the futex word (changes counter) and the waiter flag (`wait.rs`).
pub(crate) const L_WAIT: usize = 9;
/// The slot the holder is filling: `(desc + 1) << 32 | epoch`, so the reclaimer of a dead
/// holder can free it.
pub(crate) const L_PENDING: usize = 10;
/// The line's generation: even while a key owns the line, odd while the line is being given to
/// another key (a seqlock over the key words, see `keys.rs`); bumped twice by every reuse.
pub(crate) const L_GEN: usize = 5;
/// The line's base version: every version of the line's current key is above it (the version
/// of the tombstone it was reused from, or the floor of its key's home line).
pub(crate) const L_BASE: usize = 6;
/// The version floor of keys whose home (first probed) line this is: the highest tombstone
/// version of such a key whose line was reused. A new key starts above its home's floor.
pub(crate) const L_FLOOR: usize = 7;
pub(crate) const L_KEY: usize = 16; // 32 words = 256 bytes
pub(crate) const L_MASK: usize = L_KEY + MAX_KEY_BYTES / 8;
// The subscriber mask (one bit per eager agent subscribed to this key) follows the valid mask.

// Log ring header words (one cache line per agent), then the records.
pub(crate) const RING_HEADER_WORDS: usize = 8;
/// Records claimed so far (the next record's sequence number).
pub(crate) const R_NEXT: usize = 0;
/// The line of the open run of HITs: `line + 1`, or 0 (no run).
pub(crate) const R_RUN: usize = 1;
/// The sequence number of the record counting that run.
pub(crate) const R_RUN_SEQ: usize = 2;
/// The version of the open run of HITs.
pub(crate) const R_RUN_VERSION: usize = 3;
/// HITs of the open run not yet in its record's count: a HIT counts here, on the line whose
/// run and version it has just compared, and the run's end folds the sum into the record.
pub(crate) const R_RUN_HITS: usize = 4;
pub(crate) const RECORD_WORDS: usize = 8;

// Inbox header words (one cache line per agent), then the events.
pub(crate) const INBOX_HEADER_WORDS: usize = 8;
/// Events pushed so far (producers claim with a fetch_add).
pub(crate) const I_TAIL: usize = 0;
/// Events consumed so far (the owner only).
pub(crate) const I_HEAD: usize = 1;
/// Two 32-bit words: the futex word (events counter) and the waiter flag (`wait.rs`).
pub(crate) const I_WAIT: usize = 2;
/// The event a reader found half-written, and since when: `n << 32 | ms` (both truncated).
pub(crate) const I_STUCK: usize = 3;
pub(crate) const EVENT_WORDS: usize = 4;

// One subscription: a length word (0: unused) and the prefix's bytes.
pub(crate) const SUB_WORDS: usize = 1 + MAX_KEY_BYTES / 8;

// Descriptor words.
pub(crate) const DESC_WORDS: usize = 8;
pub(crate) const D_CTL: usize = 0;
pub(crate) const D_OWNER: usize = 1;
pub(crate) const D_BLOCK: usize = 2;
pub(crate) const D_LEN: usize = 3;
/// The version the descriptor holds (64 bits, like every version in the segment).
pub(crate) const D_VERSION: usize = 4;
pub(crate) const D_NEXT: usize = 5;
pub(crate) const D_WRITTEN_MS: usize = 6;
/// `writer slot:32 | flags:32`.
pub(crate) const D_FLAGS: usize = 7;

/// Where everything is, in words, for one configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// The sizes it was computed from.
    pub config: Config,
    /// Directory lines (a power of two, about 1.25 × max_artifacts).
    pub lines: usize,
    /// Slot descriptors.
    pub descs: usize,
    /// Words of agent bitmask per line.
    pub mask_words: usize,
    /// Words per directory line.
    pub line_words: usize,
    /// Size classes of the arena.
    pub classes: usize,
    /// First word of the agent table.
    pub agents_at: usize,
    /// First word of the directory.
    pub lines_at: usize,
    /// First word of the views table.
    pub views_at: usize,
    /// First word of the stamps table (the strategies' expiry state, indexed like the views).
    pub stamps_at: usize,
    /// First word of the ghosts table (`ghosts.rs`): one word per agent and home line.
    pub ghosts_at: usize,
    /// First word of the descriptor table.
    pub descs_at: usize,
    /// First word of the operation log rings.
    pub logs_at: usize,
    /// Words per agent's log ring (header and records; 0 with no log).
    pub ring_words: usize,
    /// First word of the inboxes.
    pub inboxes_at: usize,
    /// Words per agent's inbox (header and events; 0 with no inboxes).
    pub inbox_words: usize,
    /// First word of the subscription tables.
    pub subs_at: usize,
    /// First word of the arena.
    pub arena_at: usize,
    /// Total size in bytes.
    pub total_bytes: u64,
    /// First word of the block table: one word per arena granule (`arena.rs`, `block_meta`).
    pub blocks_at: usize,
}

/// Refuse a processor without a lock-free 16-byte compare-and-swap: the free-list heads need
/// one shared by every process (a lock inside one process would not exclude the others).
fn check_machine() -> Result<()> {
    if crate::sync::pair_is_lock_free() {
        return Ok(());
    }
    Err(ProtocolError::Os(
        "this processor has no lock-free 16-byte compare-and-swap (x86-64 `cmpxchg16b`), which \
         the segment's free lists need; run on a machine that has it"
            .into(),
    ))
}

fn round_up(value: usize, to: usize) -> usize {
    value.div_ceil(to) * to
}

impl Geometry {
    /// Compute the layout for `config`, refusing sizes that cannot work.
    pub fn new(config: Config) -> Result<Geometry> {
        check_machine()?;
        let bad = |why: String| Err(ProtocolError::InvalidConfig(why));
        if config.max_agents == 0 || config.max_agents > MAX_AGENTS_LIMIT {
            return bad(format!(
                "max agents must be 1..={MAX_AGENTS_LIMIT}, not {}",
                config.max_agents
            ));
        }
        if config.max_artifacts == 0 || config.max_artifacts > (1 << 22) {
            return bad(format!(
                "max artifacts must be 1..={}, not {}",
                1 << 22,
                config.max_artifacts
            ));
        }
        if config.max_payload == 0 || config.max_payload > config.arena_bytes {
            return bad(format!(
                "max payload must be 1..=arena bytes ({}), not {}",
                config.arena_bytes, config.max_payload
            ));
        }
        let max_class_bytes = GRANULE << (MAX_CLASSES - 1);
        if config.max_payload > max_class_bytes
            || config.arena_bytes > GRANULE * u64::from(u32::MAX)
        {
            return bad(format!(
                "arena and payload must be at most {max_class_bytes} bytes"
            ));
        }
        if config.arena_bytes < GRANULE {
            return bad(format!("arena must be at least {GRANULE} bytes"));
        }
        if config.write_lease_ms == 0 || config.write_lease_ms > 1 << 30 {
            return bad("write lease must be 1 ms ..= about 12 days".into());
        }
        for (what, value, max) in [
            ("log records per agent", config.log_records, MAX_LOG_RECORDS),
            (
                "inbox events per agent",
                config.inbox_events,
                MAX_INBOX_EVENTS,
            ),
        ] {
            if value > max || (value != 0 && !value.is_power_of_two()) {
                return bad(format!(
                    "{what} must be 0 or a power of two up to {max}, not {value}"
                ));
            }
        }
        let artifacts = config.max_artifacts as usize;
        let lines = (artifacts + artifacts / 4 + 1).next_power_of_two();
        let agents = config.max_agents as usize;
        let descs = 2 * artifacts + 4 * agents;
        if descs as u64 > MAX_DESCS_LIMIT {
            return bad("too many artifacts and agents for 24-bit slot descriptors".into());
        }
        let mask_words = agents.div_ceil(64);
        let line_words = round_up(L_MASK + 2 * mask_words, 8);
        let class_of_max = class_for(config.max_payload);
        let classes = class_of_max + 1;
        let agents_at = round_up(HEADER_WORDS, 8);
        let lines_at = agents_at + agents * AGENT_WORDS;
        let views_at = lines_at + lines * line_words;
        let stamps_at = round_up(views_at + agents * lines, 8);
        let ghosts_at = stamps_at + agents * lines;
        let descs_at = round_up(ghosts_at + agents * lines, 8);
        let logs_at = descs_at + descs * DESC_WORDS;
        let ring_words = match config.log_records {
            0 => 0,
            n => RING_HEADER_WORDS + n as usize * RECORD_WORDS,
        };
        let inboxes_at = logs_at + agents * ring_words;
        let inbox_words = match config.inbox_events {
            0 => 0,
            n => INBOX_HEADER_WORDS + n as usize * EVENT_WORDS,
        };
        let subs_at = inboxes_at + agents * inbox_words;
        let subs_end = subs_at + agents * MAX_SUBSCRIPTIONS * SUB_WORDS;
        let blocks_at = round_up(subs_end, 8);
        let granules = usize::try_from(config.arena_bytes / GRANULE)
            .map_err(|_| ProtocolError::InvalidConfig("arena too large for this machine".into()))?;
        // The arena starts on a page so big payloads are page-aligned too (loom models keep
        // their heap layout small instead).
        let arena_align = if cfg!(loom) { 8 } else { 512 };
        let arena_at = round_up(blocks_at + granules, arena_align);
        let arena_words = usize::try_from(config.arena_bytes.div_ceil(GRANULE) * GRANULE / 8)
            .map_err(|_| ProtocolError::InvalidConfig("arena too large for this machine".into()))?;
        let total_words = arena_at
            .checked_add(arena_words)
            .ok_or_else(|| ProtocolError::InvalidConfig("segment too large".into()))?;
        // Every region ends before the next starts and the arena ends the segment: computed
        // again without overflow, because the directory indexes the regions without checking
        // each word against the segment once their arguments are checked against these sizes
        // (`Directory`'s invariant).
        let wide = |n: usize| n as u128;
        let regions = [
            (wide(agents_at) + wide(agents) * wide(AGENT_WORDS), lines_at),
            (wide(lines_at) + wide(lines) * wide(line_words), views_at),
            (wide(views_at) + wide(agents) * wide(lines), stamps_at),
            (wide(stamps_at) + wide(agents) * wide(lines), ghosts_at),
            (wide(ghosts_at) + wide(agents) * wide(lines), descs_at),
            (wide(descs_at) + wide(descs) * wide(DESC_WORDS), logs_at),
            (wide(logs_at) + wide(agents) * wide(ring_words), inboxes_at),
            (wide(inboxes_at) + wide(agents) * wide(inbox_words), subs_at),
            (
                wide(subs_at) + wide(agents) * wide(MAX_SUBSCRIPTIONS * SUB_WORDS),
                blocks_at,
            ),
            (wide(blocks_at) + wide(granules), arena_at),
            (wide(arena_at) + wide(arena_words), total_words),
        ];
        if regions.iter().any(|&(end, next)| end > wide(next)) {
            return bad("segment too large".into());
        }
        Ok(Geometry {
            config,
            lines,
            descs,
            mask_words,
            line_words,
            classes,
            agents_at,
            lines_at,
            views_at,
            stamps_at,
            ghosts_at,
            descs_at,
            logs_at,
            ring_words,
            inboxes_at,
            inbox_words,
            subs_at,
            arena_at,
            total_bytes: total_words as u64 * 8,
            blocks_at,
        })
    }

    /// Granules in the arena.
    pub(crate) fn arena_granules(&self) -> u64 {
        self.config.arena_bytes / GRANULE
    }

    pub(crate) fn agent_word(&self, slot: u32, field: usize) -> usize {
        self.agents_at + slot as usize * AGENT_WORDS + field
    }

    pub(crate) fn line_word(&self, line: u32, field: usize) -> usize {
        self.lines_at + line as usize * self.line_words + field
    }

    pub(crate) fn view_word(&self, slot: u32, line: u32) -> usize {
        self.views_at + slot as usize * self.lines + line as usize
    }

    /// The stamp word of `slot` on `line`: the same index as its view word, in the stamps
    /// table. Only lease and access-count agents ever touch theirs (`freshness.rs`).
    pub(crate) fn stamp_word(&self, slot: u32, line: u32) -> usize {
        self.stamps_at + slot as usize * self.lines + line as usize
    }

    pub(crate) fn ghost_word(&self, slot: u32, home: u32) -> usize {
        self.ghosts_at + slot as usize * self.lines + home as usize
    }

    pub(crate) fn desc_word(&self, desc: u32, field: usize) -> usize {
        self.descs_at + desc as usize * DESC_WORDS + field
    }

    /// First word of `slot`'s log ring (its header).
    pub(crate) fn ring_word(&self, slot: u32, field: usize) -> usize {
        self.logs_at + slot as usize * self.ring_words + field
    }

    /// First word of record `seq` of `slot`'s ring.
    pub(crate) fn record_word(&self, slot: u32, seq: u64) -> usize {
        let index = (seq & u64::from(self.config.log_records.saturating_sub(1))) as usize;
        self.ring_word(slot, RING_HEADER_WORDS + index * RECORD_WORDS)
    }

    pub(crate) fn inbox_word(&self, slot: u32, field: usize) -> usize {
        self.inboxes_at + slot as usize * self.inbox_words + field
    }

    /// First word of event `n` of `slot`'s inbox.
    pub(crate) fn event_word(&self, slot: u32, n: u64) -> usize {
        let index = (n & u64::from(self.config.inbox_events.saturating_sub(1))) as usize;
        self.inbox_word(slot, INBOX_HEADER_WORDS + index * EVENT_WORDS)
    }

    /// First word of subscription `index` of `slot`.
    pub(crate) fn sub_word(&self, slot: u32, index: usize) -> usize {
        self.subs_at + (slot as usize * MAX_SUBSCRIPTIONS + index) * SUB_WORDS
    }

    /// Word index of the block-table word of arena granule `granule`.
    pub(crate) fn block_word(&self, granule: u64) -> usize {
        self.blocks_at + granule as usize
    }

    /// Word index of arena granule `granule`.
    pub(crate) fn granule_word(&self, granule: u64) -> usize {
        self.arena_at + (granule * (GRANULE / 8)) as usize
    }

    fn constants(&self) -> [(usize, u64); 9] {
        let c = &self.config;
        [
            (H_LAYOUT_VERSION, LAYOUT_VERSION),
            (H_TOTAL_BYTES, self.total_bytes),
            (H_MAX_AGENTS, u64::from(c.max_agents)),
            (H_MAX_ARTIFACTS, u64::from(c.max_artifacts)),
            (H_ARENA_BYTES, c.arena_bytes),
            (H_MAX_PAYLOAD, c.max_payload),
            (H_WRITE_LEASE_MS, c.write_lease_ms),
            (H_LOG_RECORDS, u64::from(c.log_records)),
            (H_INBOX_EVENTS, u64::from(c.inbox_events)),
        ]
    }

    /// Write the header of a fresh, zeroed segment, magic last: an opener that sees the magic
    /// sees every other header word (pairs with the Acquire load in [`Geometry::read`]).
    pub fn initialise(&self, words: &Words, now_ms: u64) -> Result<()> {
        if (words.len() as u64) * 8 < self.total_bytes {
            return Err(ProtocolError::corrupt("segment is smaller than its layout"));
        }
        for (index, value) in self.constants() {
            words.at(index)?.store(value, Ordering::Relaxed);
        }
        words
            .at(H_CHECKSUM)?
            .store(checksum(&self.constants()), Ordering::Relaxed);
        words.at(H_CREATED_MS)?.store(now_ms, Ordering::Relaxed);
        words.at(H_MAGIC)?.store(MAGIC, Ordering::Release);
        Ok(())
    }

    /// Read and validate the header of an initialised segment of `len_bytes` bytes.
    /// Returns [`ProtocolError::Uninitialised`] if the magic is not there yet.
    pub fn read(words: &Words, len_bytes: u64) -> Result<Geometry> {
        check_machine()?;
        if words.len() < HEADER_WORDS {
            return Err(ProtocolError::corrupt(format!(
                "segment is only {len_bytes} bytes, smaller than a header"
            )));
        }
        // Pairs with the Release store of the magic in `initialise`.
        match words.at(H_MAGIC)?.load(Ordering::Acquire) {
            MAGIC => {}
            0 => return Err(ProtocolError::Uninitialised),
            other => {
                return Err(ProtocolError::corrupt(format!(
                    "bad magic {other:#018x}: not an agent-coherence segment"
                )));
            }
        }
        let get = |index: usize| -> Result<u64> { Ok(words.at(index)?.load(Ordering::Relaxed)) };
        let version = get(H_LAYOUT_VERSION)?;
        if version != LAYOUT_VERSION {
            return Err(ProtocolError::LayoutVersion {
                found: version,
                expected: LAYOUT_VERSION,
            });
        }
        let small = |index: usize| -> Result<u32> {
            u32::try_from(get(index)?)
                .map_err(|_| ProtocolError::corrupt(format!("header word {index} out of range")))
        };
        let config = Config {
            max_agents: small(H_MAX_AGENTS)?,
            max_artifacts: small(H_MAX_ARTIFACTS)?,
            arena_bytes: get(H_ARENA_BYTES)?,
            max_payload: get(H_MAX_PAYLOAD)?,
            write_lease_ms: get(H_WRITE_LEASE_MS)?,
            log_records: small(H_LOG_RECORDS)?,
            inbox_events: small(H_INBOX_EVENTS)?,
        };
        let geometry = Geometry::new(config)
            .map_err(|e| ProtocolError::corrupt(format!("inconsistent header sizes: {e}")))?;
        let stored = get(H_TOTAL_BYTES)?;
        if stored != geometry.total_bytes {
            return Err(ProtocolError::corrupt(format!(
                "header says {stored} bytes, its sizes need {}",
                geometry.total_bytes
            )));
        }
        if get(H_CHECKSUM)? != checksum(&geometry.constants()) {
            return Err(ProtocolError::corrupt("header checksum mismatch"));
        }
        if len_bytes < geometry.total_bytes || (words.len() as u64) * 8 < geometry.total_bytes {
            return Err(ProtocolError::corrupt(format!(
                "segment is {len_bytes} bytes, its header needs {}",
                geometry.total_bytes
            )));
        }
        Ok(geometry)
    }
}

/// Smallest size class whose blocks hold `len` bytes.
pub(crate) fn class_for(len: u64) -> usize {
    let granules = len.max(1).div_ceil(GRANULE);
    granules.next_power_of_two().trailing_zeros() as usize
}

/// Bytes in a block of class `class`.
pub(crate) fn class_bytes(class: usize) -> u64 {
    GRANULE << class
}

/// FNV-1a over the header's constant words.
fn checksum(words: &[(usize, u64)]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for (_, value) in words {
        for byte in value.to_le_bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::words::HeapWords;

    fn small() -> Config {
        Config {
            max_agents: 8,
            max_artifacts: 16,
            arena_bytes: 1 << 16,
            max_payload: 4096,
            write_lease_ms: 1000,
            log_records: 16,
            inbox_events: 8,
        }
    }

    #[test]
    fn classes_cover_payloads() {
        assert_eq!(class_for(0), 0);
        assert_eq!(class_for(64), 0);
        assert_eq!(class_for(65), 1);
        assert_eq!(class_for(4096), 6);
        assert!(class_bytes(class_for(64 << 20)) >= 64 << 20);
    }

    /// The invariant the directory's unchecked accessors rely on (`Directory`): the last word
    /// each reaches, for the largest arguments the geometry admits, is inside the segment,
    /// and the regions do not overlap, over configurations from the smallest to the largest.
    #[test]
    fn the_largest_indices_of_every_region_are_inside_the_segment() {
        let mut configs = vec![small()];
        for (agents, artifacts, log_records) in [
            (1, 1, 0),
            (1, 1, 1),
            (63, 7, 4),
            (64, 100, 64),
            (65, 1000, 1024),
            (200, 5000, 256),
            (MAX_AGENTS_LIMIT, 1, 1),
        ] {
            configs.push(Config {
                max_agents: agents,
                max_artifacts: artifacts,
                log_records,
                ..small()
            });
        }
        for config in configs {
            let g = Geometry::new(config).expect("valid");
            let total = (g.total_bytes / 8) as usize;
            let last_agent = config.max_agents - 1;
            let last_line = (g.lines - 1) as u32;
            let mut lasts = vec![
                (H_SWITCHES, g.agents_at),
                (g.line_word(last_line, g.line_words - 1), g.views_at),
                (
                    g.line_word(last_line, L_MASK + last_agent as usize / 64),
                    g.views_at,
                ),
                (g.view_word(last_agent, last_line), g.stamps_at),
                (g.desc_word((g.descs - 1) as u32, DESC_WORDS - 1), g.logs_at),
            ];
            if g.ring_words != 0 {
                lasts.push((g.ring_word(last_agent, g.ring_words - 1), g.inboxes_at));
                lasts.push((
                    g.record_word(last_agent, u64::MAX) + RECORD_WORDS - 1,
                    g.inboxes_at,
                ));
            }
            for (last, next_region) in lasts {
                assert!(
                    last < next_region,
                    "{config:?}: word {last} reaches the next region at {next_region}"
                );
                assert!(next_region <= total, "{config:?}");
            }
        }
    }

    #[test]
    fn header_round_trips() {
        let geometry = Geometry::new(small()).expect("valid");
        let heap = HeapWords::new(geometry.total_bytes as usize);
        let words = heap.words();
        assert_eq!(
            Geometry::read(&words, geometry.total_bytes),
            Err(ProtocolError::Uninitialised)
        );
        geometry.initialise(&words, 5).expect("init");
        assert_eq!(
            Geometry::read(&words, geometry.total_bytes).expect("read"),
            geometry
        );
    }

    #[test]
    fn corrupted_headers_are_refused() {
        let geometry = Geometry::new(small()).expect("valid");
        let heap = HeapWords::new(geometry.total_bytes as usize);
        let words = heap.words();
        geometry.initialise(&words, 5).expect("init");
        let len = geometry.total_bytes;
        let poke = |index: usize, value: u64| {
            words
                .at(index)
                .expect("in range")
                .store(value, Ordering::Relaxed)
        };

        poke(H_LAYOUT_VERSION, 99);
        assert!(matches!(
            Geometry::read(&words, len),
            Err(ProtocolError::LayoutVersion { found: 99, .. })
        ));
        poke(H_LAYOUT_VERSION, LAYOUT_VERSION);

        poke(H_MAX_PAYLOAD, 4097);
        assert!(matches!(
            Geometry::read(&words, len),
            Err(ProtocolError::Corrupt { .. })
        ));
        poke(H_MAX_PAYLOAD, 4096);

        poke(H_MAX_AGENTS, u64::MAX);
        assert!(matches!(
            Geometry::read(&words, len),
            Err(ProtocolError::Corrupt { .. })
        ));
        poke(H_MAX_AGENTS, 8);

        assert!(matches!(
            Geometry::read(&words, len - 8),
            Err(ProtocolError::Corrupt { .. })
        ));
        poke(H_MAGIC, 0x1234);
        assert!(matches!(
            Geometry::read(&words, len),
            Err(ProtocolError::Corrupt { .. })
        ));
    }

    #[test]
    fn bad_configs_are_refused() {
        for config in [
            Config {
                max_agents: 0,
                ..small()
            },
            Config {
                max_agents: 70_000,
                ..small()
            },
            Config {
                max_payload: 1 << 20,
                ..small()
            },
            Config {
                arena_bytes: 8,
                max_payload: 8,
                ..small()
            },
        ] {
            assert!(
                matches!(Geometry::new(config), Err(ProtocolError::InvalidConfig(_))),
                "{config:?}"
            );
        }
    }
}

//! The directory: one segment's words, its validated geometry and its environment.
//!
//! Every protocol operation is a method on [`Directory`], split by concept over `keys.rs`,
//! `agents.rs`, `alloc.rs`, `read.rs`, `write.rs`, `wait.rs` and `status.rs`.

use crate::env::Env;
use crate::error::Result;
use crate::freshness::Strategy;
use crate::layout::{
    Config, Geometry, H_SWITCHES, L_GEN, L_HEAD, L_LEASE, L_MASK, L_PENDING, SWITCH_LOG_OFF,
    SWITCH_NO_INVALIDATION,
};
use crate::sync::{AtomicU64, Ordering};
use crate::words::{HeapWords, Words};

/// An agent as the protocol knows it: its slot and the generation it attached at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AgentId {
    /// Index in the agent table.
    pub slot: u32,
    /// Attach generation; a mismatch means this handle was fenced.
    pub generation: u64,
    /// The freshness strategy it attached with.
    pub strategy: Strategy,
}

/// The words a HIT reads of one line for one agent ([`Directory::hit_words`]).
pub(crate) struct HitWords<'a> {
    /// The agent's view: the version it last read or wrote.
    pub(crate) view: &'a AtomicU64,
    /// The mask word holding the agent's valid bit, and the bit.
    pub(crate) mask: &'a AtomicU64,
    pub(crate) bit: u64,
    /// The line's head: the published descriptor, or its holder.
    pub(crate) head: &'a AtomicU64,
    /// The line's generation: which key it belongs to (`keys.rs`).
    pub(crate) generation: &'a AtomicU64,
}

/// A segment's run-time switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switches {
    /// Operations are logged (if the segment has a log).
    pub logging: bool,
    /// Writers invalidate peers' copies. Off only for demonstrations.
    pub invalidation: bool,
}

/// A segment's directory, reached through atomics only.
///
/// Invariant: `words` covers `geo.total_bytes` (`create` and `open` check it), and every
/// region of `geo` lies inside (`Geometry::new` checks that). So an index computed by `geo`
/// from arguments checked against its sizes (a line below `lines`, a slot below
/// `max_agents`, a descriptor below `descs`) needs no second check against the words: the
/// HIT's accessors ([`Directory::hit_words`], `desc_words`, `ring_header`) rely on it, and
/// everything read from the segment is still checked against those sizes first.
pub struct Directory<E: Env> {
    /// `'static` as far as the type goes; really as long as `heap` (for a heap segment) or the
    /// mapping its creator keeps alive (contract of [`Words::from_mapping`]).
    pub(crate) words: Words<'static>,
    pub(crate) geo: Geometry,
    pub(crate) env: E,
    /// The storage of a heap segment, owned so the words cannot outlive it.
    heap: Option<HeapWords>,
    /// Per agent slot, this process's hint of the slot's spare descriptor (`spare.rs`): private
    /// memory, validated against the segment before use.
    pub(crate) spares: Box<[AtomicU64]>,
}

impl<E: Env> Directory<E> {
    /// Lay out a fresh, zero-filled segment for `config`. The caller must be its only user
    /// (it was just created with `O_EXCL`).
    ///
    /// `words` must stay valid as long as the directory (a mapping its owner keeps: the
    /// unsafe constructors of [`Words`] say so); a heap segment goes through
    /// [`Directory::create_on_heap`], which owns its storage.
    pub fn create(words: Words<'static>, config: Config, env: E) -> Result<Self> {
        let geo = Geometry::new(config)?;
        geo.initialise(&words, env.now_ms())?;
        Ok(Directory {
            spares: crate::spare::no_spares(&geo),
            words,
            geo,
            env,
            heap: None,
        })
    }

    /// [`Directory::create`] on heap storage (tests, loom models, examples), which the
    /// directory owns: its words cannot outlive it.
    pub fn create_on_heap(heap: HeapWords, config: Config, env: E) -> Result<Self> {
        Self::owning(heap, |words| Directory::create(words, config, env))
    }

    /// The directory `build` makes of `heap`'s words, owning `heap`.
    #[allow(unsafe_code)] // a view of storage the directory owns
    fn owning(heap: HeapWords, build: impl FnOnce(Words<'static>) -> Result<Self>) -> Result<Self> {
        // SAFETY: the directory owns `heap` (moved into it below; its buffers do not move) and
        // hands out views of its words only borrowed from itself (`words`, `&self` methods).
        let words = unsafe { heap.words_unbounded() };
        let mut dir = build(words)?;
        dir.heap = Some(heap);
        Ok(dir)
    }

    /// Validate and adopt an initialised segment of `len_bytes` bytes; `words` as for
    /// [`Directory::create`].
    pub fn open(words: Words<'static>, len_bytes: u64, env: E) -> Result<Self> {
        let geo = Geometry::read(&words, len_bytes)?;
        Ok(Directory {
            spares: crate::spare::no_spares(&geo),
            words,
            geo,
            env,
            heap: None,
        })
    }

    /// [`Directory::open`] on heap storage, which the directory owns.
    pub fn open_on_heap(heap: HeapWords, len_bytes: u64, env: E) -> Result<Self> {
        Self::owning(heap, |words| Directory::open(words, len_bytes, env))
    }

    /// The segment's geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geo
    }

    /// The segment's words, borrowed from the directory.
    pub fn words(&self) -> Words<'_> {
        self.words
    }

    /// Whether the directory owns heap storage (from [`Directory::create_on_heap`]).
    pub fn on_heap(&self) -> bool {
        self.heap.is_some()
    }

    /// The segment's run-time switches.
    pub fn switches(&self) -> Result<Switches> {
        let word = self.switch_word().load(Ordering::Acquire);
        Ok(Switches {
            logging: word & SWITCH_LOG_OFF == 0,
            invalidation: word & SWITCH_NO_INVALIDATION == 0,
        })
    }

    /// Pause or resume logging on the whole segment.
    pub fn set_logging(&self, on: bool) -> Result<()> {
        self.set_switch(SWITCH_LOG_OFF, !on)
    }

    /// Turn invalidation off (writers stop clearing peers' valid bits, so private copies go
    /// stale unnoticed: the world without coherence, for demonstrations) or back on.
    pub fn set_invalidation(&self, on: bool) -> Result<()> {
        self.set_switch(SWITCH_NO_INVALIDATION, !on)
    }

    fn set_switch(&self, bit: u64, set: bool) -> Result<()> {
        let word = self.switch_word();
        // Pairs with the Acquire load in `switches` and the loads of writers and loggers.
        if set {
            word.fetch_or(bit, Ordering::AcqRel);
        } else {
            word.fetch_and(!bit, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Whether writers clear peers' valid bits (they do unless the demonstration switch is on).
    #[inline]
    pub(crate) fn invalidating(&self) -> bool {
        self.switch_word().load(Ordering::Relaxed) & SWITCH_NO_INVALIDATION == 0
    }

    /// The environment.
    pub fn env(&self) -> &E {
        &self.env
    }

    /// The words of `line` that a HIT of `slot` reads, found with two comparisons against
    /// the geometry instead of one against the segment for each; `None` if `slot` or `line`
    /// is out of range.
    #[inline(always)]
    #[allow(unsafe_code)] // indices checked against the geometry, which the words cover
    pub(crate) fn hit_words(&self, slot: u32, line: u32) -> Option<HitWords<'_>> {
        if line as usize >= self.geo.lines || slot >= self.geo.config.max_agents {
            return None;
        }
        let word = |field| self.geo.line_word(line, field);
        // Checked above: `line < lines`, `slot < max_agents`. So the view word is in the views
        // region and the others in `line`'s line (`L_MASK + slot / 64 < L_MASK + mask_words
        // <= line_words`, by `line_words`' definition in `Geometry::new`).
        // SAFETY: both regions lie inside the words (`Directory`'s invariant).
        unsafe {
            Some(HitWords {
                view: self.words.at_unchecked(self.geo.view_word(slot, line)),
                mask: self.words.at_unchecked(word(L_MASK + slot as usize / 64)),
                bit: 1u64 << (slot % 64),
                head: self.words.at_unchecked(word(L_HEAD)),
                generation: self.words.at_unchecked(word(L_GEN)),
            })
        }
    }

    /// The run-time switches word, a header word.
    #[inline(always)]
    #[allow(unsafe_code)] // a header word: the words cover the header
    pub(crate) fn switch_word(&self) -> &AtomicU64 {
        // SAFETY: `H_SWITCHES` is a header word, below `agents_at`, inside `total_bytes`,
        // which `create` and `open` checked the words to cover.
        unsafe { self.words.at_unchecked(H_SWITCHES) }
    }

    #[inline]
    pub(crate) fn head(&self, line: u32) -> Result<&AtomicU64> {
        self.words.at(self.geo.line_word(line, L_HEAD))
    }

    pub(crate) fn pending(&self, line: u32) -> Result<&AtomicU64> {
        self.words.at(self.geo.line_word(line, L_PENDING))
    }

    pub(crate) fn lease(&self, line: u32) -> Result<&AtomicU64> {
        self.words.at(self.geo.line_word(line, L_LEASE))
    }

    #[inline]
    pub(crate) fn view(&self, slot: u32, line: u32) -> Result<&AtomicU64> {
        self.words.at(self.geo.view_word(slot, line))
    }

    /// `slot`'s stamp word on `line`: its strategy's expiry state (`freshness.rs`).
    pub(crate) fn stamp(&self, slot: u32, line: u32) -> Result<&AtomicU64> {
        self.words.at(self.geo.stamp_word(slot, line))
    }

    /// The mask word holding `slot`'s valid bit on `line`, and the bit.
    #[inline]
    pub(crate) fn valid_bit(&self, slot: u32, line: u32) -> Result<(&AtomicU64, u64)> {
        let word = self
            .words
            .at(self.geo.line_word(line, L_MASK + slot as usize / 64))?;
        Ok((word, 1u64 << (slot % 64)))
    }

    pub(crate) fn mask_word(&self, line: u32, index: usize) -> Result<&AtomicU64> {
        self.words.at(self.geo.line_word(line, L_MASK + index))
    }

    pub(crate) fn check_line(&self, line: u32) -> Result<()> {
        if (line as usize) < self.geo.lines {
            Ok(())
        } else {
            Err(crate::error::ProtocolError::corrupt(format!(
                "line {line} out of range"
            )))
        }
    }
}

//! The directory: one segment's words, its validated geometry and its environment.
//!
//! Every protocol operation is a method on [`Directory`], split by concept over `keys.rs`,
//! `agents.rs`, `alloc.rs`, `read.rs`, `write.rs`, `wait.rs` and `status.rs`.

use crate::env::Env;
use crate::error::Result;
use crate::layout::{Config, Geometry, L_HEAD, L_LEASE, L_MASK, L_PENDING};
use crate::sync::AtomicU64;
use crate::words::Words;

/// An agent as the protocol knows it: its slot and the generation it attached at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AgentId {
    /// Index in the agent table.
    pub slot: u32,
    /// Attach generation; a mismatch means this handle was fenced.
    pub generation: u64,
}

/// A segment's directory, reached through atomics only.
pub struct Directory<E: Env> {
    pub(crate) words: Words,
    pub(crate) geo: Geometry,
    pub(crate) env: E,
}

impl<E: Env> Directory<E> {
    /// Lay out a fresh, zero-filled segment for `config`. The caller must be its only user
    /// (it was just created with `O_EXCL`).
    pub fn create(words: Words, config: Config, env: E) -> Result<Self> {
        let geo = Geometry::new(config)?;
        geo.initialise(&words, env.now_ms())?;
        Ok(Directory { words, geo, env })
    }

    /// Validate and adopt an initialised segment of `len_bytes` bytes.
    pub fn open(words: Words, len_bytes: u64, env: E) -> Result<Self> {
        let geo = Geometry::read(&words, len_bytes)?;
        Ok(Directory { words, geo, env })
    }

    /// The segment's geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geo
    }

    /// The segment's words.
    pub fn words(&self) -> &Words {
        &self.words
    }

    /// The environment.
    pub fn env(&self) -> &E {
        &self.env
    }

    pub(crate) fn head(&self, line: u32) -> Result<&AtomicU64> {
        self.words.at(self.geo.line_word(line, L_HEAD))
    }

    pub(crate) fn pending(&self, line: u32) -> Result<&AtomicU64> {
        self.words.at(self.geo.line_word(line, L_PENDING))
    }

    pub(crate) fn lease(&self, line: u32) -> Result<&AtomicU64> {
        self.words.at(self.geo.line_word(line, L_LEASE))
    }

    pub(crate) fn view(&self, slot: u32, line: u32) -> Result<&AtomicU64> {
        self.words.at(self.geo.view_word(slot, line))
    }

    /// The mask word holding `slot`'s valid bit on `line`, and the bit.
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

//! The side channel: a small shared mapping of atomics, separate from the segment under test,
//! through which a bench parent and its children coordinate (ready, done, start) and the floor
//! measurements hand off their timestamps.
//!
//! Shared memory is data: the mapping is viewed only as `ccs_protocol::sync` atomics, one named
//! word per 64-byte cache line so that coordination words never share a line with each other.

#![allow(unsafe_code)] // viewing mapped words as atomics, in `word` and `word32` only

use ccs_os::{Location, Mapping};
use ccs_protocol::sync::{AtomicU32, AtomicU64};

use crate::error::CliError;

/// Bytes per cache line: each line holds one named word (or a tightly coupled pair).
const LINE: usize = 64;

// Line 0 is reserved (it shares a page with nothing else of interest, but keeps the hot
// handoff line away from the mapping's first bytes).
/// Line 1: the floor handoff (invalidation) or the start signal (scale).
pub const HANDOFF: usize = 1;
/// Lines from here on: one per child (its ready or done counter).
pub const PER_CHILD: usize = 2;

/// A mapping of `lines` cache lines, shared between a bench parent and its children.
#[derive(Debug)]
pub struct Side {
    mapping: Mapping,
}

impl Side {
    /// Create the side mapping for `children` children (the parent does this).
    pub fn create(name: &str, children: usize) -> Result<Side, CliError> {
        let bytes = (PER_CHILD + children) * LINE;
        let mapping = Mapping::create(&location(name)?, bytes as u64, 0o600)?;
        Ok(Side { mapping })
    }

    /// Open the parent's side mapping (a child does this).
    pub fn open(name: &str) -> Result<Side, CliError> {
        Ok(Side {
            mapping: Mapping::open(&location(name)?)?,
        })
    }

    /// The 64-bit word at the start of cache line `line`.
    pub fn word(&self, line: usize) -> Result<&AtomicU64, CliError> {
        let offset = self.offset(line, 0, 8)?;
        // The borrow is tied to `self`, which keeps the mapping alive; every process touches
        // these bytes only through atomics.
        // SAFETY: `offset` is 8-aligned with 8 bytes before the end (checked by `offset`) of a
        // page-aligned mapping; `AtomicU64` is a transparent std atomic of u64's layout.
        Ok(unsafe { &*self.mapping.as_ptr().add(offset).cast::<AtomicU64>() })
    }

    /// The 32-bit word at byte 8 of cache line `line` (a futex word beside `word(line)`).
    pub fn word32(&self, line: usize) -> Result<&AtomicU32, CliError> {
        let offset = self.offset(line, 8, 4)?;
        // SAFETY: as in `word`: 4-byte aligned (line start + 8), in bounds, alive as long as
        // `self`, accessed only atomically.
        Ok(unsafe { &*self.mapping.as_ptr().add(offset).cast::<AtomicU32>() })
    }

    fn offset(&self, line: usize, within: usize, size: usize) -> Result<usize, CliError> {
        let offset = line
            .checked_mul(LINE)
            .and_then(|o| o.checked_add(within))
            .filter(|o| {
                o.checked_add(size)
                    .is_some_and(|end| end <= self.mapping.len())
            });
        offset.ok_or_else(|| {
            CliError::Bench(format!(
                "side mapping has no line {line} ({} bytes)",
                self.mapping.len()
            ))
        })
    }
}

fn location(name: &str) -> Result<Location, CliError> {
    Ok(Location::parse(name)?)
}

//! A zero-copy read on shared memory: one version's slot, pinned while the facade's
//! [`crate::ReadGuard`] lives, its bytes lent straight out of the mapping.

#![allow(unsafe_code)] // lending the bytes of a pinned, immutable slot

use ccs_protocol::{Pinned, ReadInfo};

use crate::backend::shm::segment_ref::SegmentRef;

/// A pinned, published slot of the segment, with the segment of the agent that pinned it (its
/// owner, the facade's guard, keeps that agent alive: [`SegmentRef`]).
pub(crate) struct PinnedRead {
    segment: SegmentRef,
    pub(crate) info: ReadInfo,
    pin: Pinned,
}

impl PinnedRead {
    pub(crate) fn new(segment: SegmentRef, info: ReadInfo, pin: Pinned) -> PinnedRead {
        PinnedRead { segment, info, pin }
    }

    /// The pinned version's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        let Some(first) = self.pin.first_word else {
            return &[];
        };
        let words = self.segment.get().dir_words();
        // The range was bounds-checked when the slot was pinned and is checked again inside.
        // SAFETY: `pin` pins a published slot, which no protocol-abiding process writes until
        // `drop` releases it; the slice borrows `self`, so it cannot outlive the pin or the
        // mapping (which outlives `self`: `SegmentRef`).
        let bytes = unsafe { words.pinned_bytes(first, self.pin.len) };
        bytes.unwrap_or(&[])
    }

    pub(crate) fn len(&self) -> usize {
        self.pin.len
    }
}

impl Drop for PinnedRead {
    fn drop(&mut self) {
        let _ = self.segment.get().dir.release_pin(self.pin);
    }
}

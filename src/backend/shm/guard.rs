//! A zero-copy read on shared memory: one version's slot, pinned while the facade's
//! [`crate::ReadGuard`] lives, its bytes lent straight out of the mapping.

#![allow(unsafe_code)] // lending the bytes of a pinned, immutable slot

use std::sync::Arc;

use ccs_protocol::{Pinned, ReadInfo};

use crate::backend::shm::segment::Shared;

/// A pinned, published slot of the segment.
pub(crate) struct PinnedRead {
    shared: Arc<Shared>,
    pub(crate) info: ReadInfo,
    pin: Pinned,
}

impl PinnedRead {
    pub(crate) fn new(shared: Arc<Shared>, info: ReadInfo, pin: Pinned) -> PinnedRead {
        PinnedRead { shared, info, pin }
    }

    /// The pinned version's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        let Some(first) = self.pin.first_word else {
            return &[];
        };
        let words = self.shared.dir_words();
        // The range was bounds-checked when the slot was pinned and is checked again inside.
        // SAFETY: `pin` pins a published slot, which no protocol-abiding process writes until
        // `drop` releases it; the slice borrows `self`, so it cannot outlive the pin or the
        // mapping (which `shared` keeps alive).
        let bytes = unsafe { words.pinned_bytes(first, self.pin.len) };
        bytes.unwrap_or(&[])
    }

    pub(crate) fn len(&self) -> usize {
        self.pin.len
    }
}

impl Drop for PinnedRead {
    fn drop(&mut self) {
        let _ = self.shared.dir.release_pin(self.pin);
    }
}

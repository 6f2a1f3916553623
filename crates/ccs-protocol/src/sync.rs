//! The one place atomics come from.
//!
//! Under `cfg(loom)` every atomic, fence and spin hint is loom's, so the model checker sees every
//! access the protocol makes; otherwise they are `std`'s. Nothing else in the crate names
//! `std::sync::atomic` (clippy's `disallowed-types` enforces it), after tokio's `src/loom/` and
//! crossbeam-utils' private `cfg(crossbeam_loom)` re-exports.

#[cfg(loom)]
pub use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

#[cfg(not(loom))]
#[allow(clippy::disallowed_types)]
pub use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

/// Tell the processor (or loom) that this thread is busy-waiting on another.
#[inline]
pub fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// Give up the rest of this time slice (or, under loom, let another thread run).
#[inline]
pub fn yield_now() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::thread::yield_now();
}

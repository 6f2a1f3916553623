//! The one place atomics come from.
//!
//! Under `cfg(loom)` every atomic, fence and spin hint is loom's, so the model checker sees every
//! access the protocol makes; otherwise they are thin `repr(transparent)` wrappers over `std`'s
//! (after tokio's `src/loom/` and crossbeam-utils' `cfg(crossbeam_loom)` re-exports). The
//! wrappers exist so that `clippy.toml`'s `disallowed-types` can forbid the std atomics
//! everywhere else in the workspace, as iceoryx2 does: an atomic that bypasses this module is
//! a lint error, not a silent hole in the loom models.

#![allow(clippy::disallowed_types)] // the one module allowed to name std's atomics

#[cfg(loom)]
pub use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering, fence};

#[cfg(not(loom))]
pub use std::sync::atomic::{Ordering, fence};

#[cfg(not(loom))]
macro_rules! atomic_wrapper {
    ($name:ident, $std:ty, $int:ty) => {
        /// A `std` atomic behind the loom switch (same layout, same operations).
        #[repr(transparent)]
        #[derive(Debug, Default)]
        pub struct $name($std);

        #[allow(missing_docs)]
        impl $name {
            #[inline]
            pub const fn new(value: $int) -> Self {
                Self(<$std>::new(value))
            }
            #[inline]
            pub fn load(&self, order: Ordering) -> $int {
                self.0.load(order)
            }
            #[inline]
            pub fn store(&self, value: $int, order: Ordering) {
                self.0.store(value, order)
            }
            #[inline]
            pub fn swap(&self, value: $int, order: Ordering) -> $int {
                self.0.swap(value, order)
            }
            #[inline]
            pub fn compare_exchange(
                &self,
                current: $int,
                new: $int,
                success: Ordering,
                failure: Ordering,
            ) -> Result<$int, $int> {
                self.0.compare_exchange(current, new, success, failure)
            }
            #[inline]
            pub fn compare_exchange_weak(
                &self,
                current: $int,
                new: $int,
                success: Ordering,
                failure: Ordering,
            ) -> Result<$int, $int> {
                self.0.compare_exchange_weak(current, new, success, failure)
            }
            #[inline]
            pub fn fetch_add(&self, value: $int, order: Ordering) -> $int {
                self.0.fetch_add(value, order)
            }
            #[inline]
            pub fn fetch_sub(&self, value: $int, order: Ordering) -> $int {
                self.0.fetch_sub(value, order)
            }
            #[inline]
            pub fn fetch_or(&self, value: $int, order: Ordering) -> $int {
                self.0.fetch_or(value, order)
            }
            #[inline]
            pub fn fetch_and(&self, value: $int, order: Ordering) -> $int {
                self.0.fetch_and(value, order)
            }
            /// The underlying std atomic, for system calls that take one (futex).
            #[inline]
            pub fn as_std(&self) -> &$std {
                &self.0
            }
        }
    };
}

/// A `std` atomic flag behind the loom switch (same layout, same operations).
#[cfg(not(loom))]
#[repr(transparent)]
#[derive(Debug, Default)]
pub struct AtomicBool(std::sync::atomic::AtomicBool);

#[cfg(not(loom))]
#[allow(missing_docs)]
impl AtomicBool {
    #[inline]
    pub const fn new(value: bool) -> Self {
        Self(std::sync::atomic::AtomicBool::new(value))
    }
    #[inline]
    pub fn load(&self, order: Ordering) -> bool {
        self.0.load(order)
    }
    #[inline]
    pub fn store(&self, value: bool, order: Ordering) {
        self.0.store(value, order)
    }
    #[inline]
    pub fn swap(&self, value: bool, order: Ordering) -> bool {
        self.0.swap(value, order)
    }
    #[inline]
    pub fn compare_exchange(
        &self,
        current: bool,
        new: bool,
        success: Ordering,
        failure: Ordering,
    ) -> Result<bool, bool> {
        self.0.compare_exchange(current, new, success, failure)
    }
}

#[cfg(not(loom))]
atomic_wrapper!(AtomicU64, std::sync::atomic::AtomicU64, u64);
#[cfg(not(loom))]
atomic_wrapper!(AtomicU32, std::sync::atomic::AtomicU32, u32);

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

/// Ask for the cache line holding `word` ahead of a read-modify-write of it: `prefetchw`
/// fetches the line exclusive, so a line another core just wrote moves once, while the caller
/// does other work, instead of when the read-modify-write stalls on it (or twice: shared for a
/// load, then exclusive for the write). A hint: no effect on what the program computes; nothing
/// under loom or Miri, or off x86-64.
#[inline(always)]
#[allow(unsafe_code)] // one hint instruction
pub fn prefetch_write(word: &AtomicU64) {
    #[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
    // SAFETY: `prefetchw` reads and writes no memory the program sees, cannot fault, and runs as
    // a no-op on x86-64 processors without it; the address is that of a live reference.
    unsafe {
        core::arch::asm!(
            "prefetchw [{0}]",
            in(reg) core::ptr::from_ref(word),
            options(nostack, preserves_flags, readonly)
        );
    }
    #[cfg(not(all(target_arch = "x86_64", not(loom), not(miri))))]
    let _ = word;
}

/// Ask for the cache line holding `word` ahead of reading it (`prefetcht0`), so that its
/// transfer overlaps the caller's other work. A hint, as [`prefetch_write`].
#[inline(always)]
#[allow(unsafe_code)] // one hint instruction
pub fn prefetch_read(word: &AtomicU64) {
    #[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
    // SAFETY: as in `prefetch_write`; `prefetcht0` is part of SSE, which every x86-64 has.
    unsafe {
        core::arch::asm!(
            "prefetcht0 [{0}]",
            in(reg) core::ptr::from_ref(word),
            options(nostack, preserves_flags, readonly)
        );
    }
    #[cfg(not(all(target_arch = "x86_64", not(loom), not(miri))))]
    let _ = word;
}

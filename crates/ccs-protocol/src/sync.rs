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

/// Two adjacent words that are read and compare-and-swapped as one 16-byte value: the
/// free-list heads (docs/protocol.md §3.9), whose second word names the last pop's winner.
/// Values are `(low, high)`: the word at the lower address first.
///
/// Outside loom, one `lock cmpxchg16b` (and, for a load, one 16-byte load where the processor
/// makes it atomic) through `portable-atomic`; a machine where that is not lock-free is refused
/// ([`pair_is_lock_free`]), since a lock inside one process would not exclude another. Loom has
/// no 16-byte atomic: there the pair is its two words behind one loom mutex, so that every
/// operation on a head is one step of the model.
#[derive(Clone, Copy)]
pub struct AtomicPair<'a> {
    #[cfg(not(loom))]
    wide: &'a portable_atomic::AtomicU128,
    #[cfg(loom)]
    words: &'a [AtomicU64; 2],
    #[cfg(loom)]
    lock: &'a loom::sync::Mutex<()>,
}

/// Whether this machine compare-and-swaps 16 bytes without a lock (`cmpxchg16b`).
#[cfg(not(loom))]
pub fn pair_is_lock_free() -> bool {
    portable_atomic::AtomicU128::is_lock_free()
}

/// Loom's stand-in is always one step.
#[cfg(loom)]
pub fn pair_is_lock_free() -> bool {
    true
}

#[cfg(not(loom))]
#[allow(unsafe_code, missing_docs)] // a 16-byte view of two words; operations as std's
impl<'a> AtomicPair<'a> {
    /// The pair at `words`, if it is 16-byte aligned.
    ///
    /// # Safety
    /// The two words must never be accessed as 8-byte atomics while the pair is (mixed-size
    /// atomic accesses are outside the memory model): the layout reaches them only through
    /// this type.
    pub unsafe fn new(words: &'a [AtomicU64; 2]) -> Option<Self> {
        let ptr = core::ptr::from_ref(words).cast_mut().cast::<u128>();
        if !(ptr as usize).is_multiple_of(16) {
            return None;
        }
        // SAFETY: 16-byte aligned (checked above), valid for reads and writes for `'a` (the
        // words are atomics borrowed for `'a`, so interior mutability is allowed), and only
        // ever accessed atomically, at this width (the caller's contract).
        let wide = unsafe { portable_atomic::AtomicU128::from_ptr(ptr) };
        Some(Self { wide })
    }

    #[inline]
    pub fn load(&self, order: Ordering) -> (u64, u64) {
        split(self.wide.load(order))
    }

    #[inline]
    pub fn store(&self, value: (u64, u64), order: Ordering) {
        self.wide.store(join(value), order)
    }

    #[inline]
    pub fn compare_exchange(
        &self,
        current: (u64, u64),
        new: (u64, u64),
        success: Ordering,
        failure: Ordering,
    ) -> Result<(u64, u64), (u64, u64)> {
        self.wide
            .compare_exchange(join(current), join(new), success, failure)
            .map(split)
            .map_err(split)
    }
}

#[cfg(not(loom))]
#[inline]
fn split(value: u128) -> (u64, u64) {
    (value as u64, (value >> 64) as u64)
}

#[cfg(not(loom))]
#[inline]
fn join((low, high): (u64, u64)) -> u128 {
    u128::from(low) | (u128::from(high) << 64)
}

#[cfg(loom)]
#[allow(missing_docs, clippy::missing_safety_doc, unsafe_code)]
impl<'a> AtomicPair<'a> {
    /// The pair at `words`, guarded by `lock` (one lock for every pair of a segment).
    ///
    /// # Safety
    /// As outside loom: the words are reached only through pairs that share `lock`.
    pub unsafe fn with_lock(
        words: &'a [AtomicU64; 2],
        lock: &'a loom::sync::Mutex<()>,
    ) -> Option<Self> {
        Some(Self { words, lock })
    }

    fn locked<R>(&self, f: impl FnOnce(&[AtomicU64; 2]) -> R) -> R {
        // A poisoned lock means a modelled kill panicked elsewhere while holding it: it held
        // it for one step only, so the words are consistent.
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(self.words)
    }

    pub fn load(&self, order: Ordering) -> (u64, u64) {
        self.locked(|w| (w[0].load(order), w[1].load(order)))
    }

    pub fn store(&self, value: (u64, u64), order: Ordering) {
        self.locked(|w| {
            w[0].store(value.0, order);
            w[1].store(value.1, order);
        })
    }

    pub fn compare_exchange(
        &self,
        current: (u64, u64),
        new: (u64, u64),
        success: Ordering,
        failure: Ordering,
    ) -> Result<(u64, u64), (u64, u64)> {
        let (load, store) = match success {
            Ordering::AcqRel | Ordering::SeqCst => (Ordering::Acquire, Ordering::Release),
            Ordering::Acquire => (Ordering::Acquire, Ordering::Relaxed),
            Ordering::Release => (Ordering::Relaxed, Ordering::Release),
            _ => (Ordering::Relaxed, Ordering::Relaxed),
        };
        self.locked(|w| {
            let seen = (w[0].load(load), w[1].load(load));
            if seen != current {
                let _ = failure;
                return Err(seen);
            }
            w[0].store(new.0, store);
            w[1].store(new.1, store);
            Ok(seen)
        })
    }
}

/// This thread's 15-bit name among the threads of its process, taken once per thread: a pop
/// names its thread in the list head and in its record, so that the records of two threads
/// sharing an agent slot are never taken for each other's (docs/protocol.md §3.9; the 16th
/// bit of the head's popper id marks a push). A thread's nonce goes back to the process's pool
/// when the thread exits, so the live threads' nonces are distinct while fewer than 32,768
/// threads live at once, however many come and go (an orchestrator's thread pools, over
/// months).
#[cfg(not(loom))]
#[inline]
pub fn thread_nonce() -> u16 {
    match nonces::NONCE.with(core::cell::Cell::get) {
        0 => nonces::take(),
        held => (held - 1) as u16,
    }
}

/// The pool of thread nonces ([`thread_nonce`]): those of exited threads, handed out again
/// first, and the next never handed out.
#[cfg(not(loom))]
mod nonces {
    use core::cell::Cell;
    use std::sync::Mutex;

    /// Nonces take 15 bits.
    const LIMIT: u32 = 1 << 15;

    std::thread_local! {
        /// The calling thread's nonce + 1 once taken (0: not yet, or given back), so the slot
        /// needs no lazy initialisation.
        pub(super) static NONCE: Cell<u32> = const { Cell::new(0) };
        /// Gives the nonce back when the thread exits.
        static HELD: Cell<Option<Held>> = const { Cell::new(None) };
    }

    struct Pool {
        next: u32,
        free: Vec<u16>,
    }

    static POOL: Mutex<Pool> = Mutex::new(Pool {
        next: 0,
        free: Vec::new(),
    });

    fn pool() -> std::sync::MutexGuard<'static, Pool> {
        // A panic while the lock was held leaves the pool consistent (each step is one push
        // or pop), so a poisoned lock is taken as it is.
        POOL.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    struct Held(u16);

    impl Drop for Held {
        fn drop(&mut self) {
            // The thread forgets the nonce before it goes back: a pop in a later destructor of
            // this thread takes a fresh one (which `take` cannot give back then: spent).
            let _ = NONCE.try_with(|nonce| nonce.set(0));
            pool().free.push(self.0);
        }
    }

    /// A nonce for the calling thread, kept in [`NONCE`] and given back when the thread exits.
    #[cold]
    pub(super) fn take() -> u16 {
        let nonce = {
            let mut pool = pool();
            match pool.free.pop() {
                Some(nonce) => nonce,
                None => {
                    // With more than 32,768 threads alive at once the nonces repeat, and two
                    // threads of one agent could share one: the case the nonce is for (a
                    // sibling's record of a lost pop taken for the winner's) is then open
                    // between those two.
                    let nonce = (pool.next % LIMIT) as u16;
                    pool.next = pool.next.wrapping_add(1);
                    nonce
                }
            }
        };
        let _ = NONCE.try_with(|held| held.set(u32::from(nonce) + 1));
        // A thread already exiting (its destructors running) cannot register the give-back:
        // its nonce is not reused (spent, not shared).
        let _ = HELD.try_with(|held| held.set(Some(Held(nonce))));
        nonce
    }
}

/// Loom's: the same for each thread of a model execution, from a counter loom does not model
/// (only whether two nonces are equal matters, and they never are).
#[cfg(loom)]
pub fn thread_nonce() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    loom::thread_local! {
        static NONCE: u16 = (NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) & 0x7fff) as u16;
    }
    NONCE.with(|nonce| *nonce)
}

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

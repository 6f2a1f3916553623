//! A segment seen as an array of atomic words.
//!
//! Every shared location is an `AtomicU64`, except the futex words, which are `AtomicU32`s at
//! addresses the layout never touches as 64-bit words. Payload bytes are copied in and out with
//! relaxed atomic word accesses (the `atomic-memcpy` idea), or from 256 bytes up on x86-64 with
//! one `rep movsb` that means the same (module `bulk`), so racing with a hostile or broken
//! process is a wrong value at worst, never undefined behaviour. Indices that come from the
//! segment itself are untrusted: every access is bounds-checked and a bad index is an error.
//!
//! Under `cfg(loom)` the words live on the heap (see [`HeapWords`]) so loom can model them.

#![allow(unsafe_code)] // raw views of the mapping; each use says why it is sound

use core::marker::PhantomData;

use crate::error::{ProtocolError, Result};
use crate::sync::{AtomicPair, AtomicU32, AtomicU64, Ordering};

/// A view of a segment as atomic words, valid for `'a`. Cheap to copy; does not own the memory.
/// The lifetime is the storage's: a view of [`HeapWords`] borrows it; a view of a mapping made
/// with the unsafe constructors has whatever lifetime their caller vouches for.
#[derive(Clone, Copy)]
pub struct Words<'a> {
    w64: *const AtomicU64,
    n64: usize,
    w32: *const AtomicU32,
    n32: usize,
    /// Loom's stand-in for the 16-byte compare-and-swap: one lock for every pair.
    #[cfg(loom)]
    pair_lock: *const loom::sync::Mutex<()>,
    storage: PhantomData<&'a [AtomicU64]>,
}

// SAFETY: `Words` only hands out shared references to atomics, which are `Sync`; the memory it
// points at is kept alive by its owner for as long as any copy exists (contract of `from_raw`).
unsafe impl Send for Words<'_> {}
// SAFETY: as for `Send`: all access is through atomics.
unsafe impl Sync for Words<'_> {}

impl<'a> Words<'a> {
    /// A view of `n64` 64-bit words at `w64` and `n32` 32-bit words at `w32`.
    ///
    /// # Safety
    /// Both ranges must be valid, suitably aligned memory that stays mapped (or allocated) for
    /// `'a` (as long as this value or any copy of it is used), and that is only ever accessed
    /// atomically. The two ranges may overlap (in a mapped segment they are the same bytes)
    /// provided no address is used at both widths; the layout guarantees that.
    pub unsafe fn from_raw(
        w64: *const AtomicU64,
        n64: usize,
        w32: *const AtomicU32,
        n32: usize,
    ) -> Words<'a> {
        Words {
            w64,
            n64,
            w32,
            n32,
            #[cfg(loom)]
            pair_lock: core::ptr::null(),
            storage: PhantomData,
        }
    }

    /// A view of a mapped region of `len` bytes at `base`, as both widths.
    ///
    /// # Safety
    /// `base` must be 8-byte aligned, `len` bytes long, and stay mapped for `'a` (while the view
    /// is used); all access to it from every process must be atomic (the protocol's rule).
    #[cfg(not(loom))]
    pub unsafe fn from_mapping(base: *mut u8, len: usize) -> Words<'a> {
        Words {
            w64: base.cast::<AtomicU64>(),
            n64: len / 8,
            w32: base.cast::<AtomicU32>(),
            n32: len / 4,
            storage: PhantomData,
        }
    }

    /// Number of 64-bit words in the view.
    pub fn len(&self) -> usize {
        self.n64
    }

    /// Whether the view is empty.
    pub fn is_empty(&self) -> bool {
        self.n64 == 0
    }

    /// The 64-bit word at `index`, or a corruption error if it is out of range.
    #[inline]
    pub fn at(&self, index: usize) -> Result<&'a AtomicU64> {
        if index < self.n64 {
            // SAFETY: in bounds (checked above) of memory valid for the view's lifetime, aligned
            // and only accessed atomically (contract of the constructors).
            Ok(unsafe { &*self.w64.add(index) })
        } else {
            Err(self.out_of_range(index, 1))
        }
    }

    /// The 16-byte pair of words at `index` (a free-list head), or an error if it is out of
    /// range or not 16-byte aligned (the layout aligns every pair).
    #[inline]
    pub fn pair(&self, index: usize) -> Result<AtomicPair<'a>> {
        let words = self.array::<2>(index)?;
        #[cfg(not(loom))]
        // SAFETY: the layout reaches the words of a free-list head only through this method,
        // never as 8-byte atomics.
        let pair = unsafe { AtomicPair::new(words) };
        #[cfg(loom)]
        // SAFETY: as above; the lock, when set, is owned by the `HeapWords` this view borrows.
        let pair = unsafe { self.pair_lock.as_ref() }
            // SAFETY: as above.
            .and_then(|lock| unsafe { AtomicPair::with_lock(words, lock) });
        pair.ok_or_else(|| {
            ProtocolError::corrupt(format!("word pair {index} is not 16-byte aligned"))
        })
    }

    /// The 32-bit word at 32-bit `index`, or a corruption error if it is out of range.
    #[inline]
    pub fn at32(&self, index: usize) -> Result<&'a AtomicU32> {
        if index < self.n32 {
            // SAFETY: as in `at`.
            Ok(unsafe { &*self.w32.add(index) })
        } else {
            Err(ProtocolError::corrupt(format!(
                "word32 {index} is outside the segment"
            )))
        }
    }

    #[inline(always)]
    fn range(&self, first: usize, count: usize) -> Result<()> {
        match first.checked_add(count) {
            Some(end) if end <= self.n64 => Ok(()),
            _ => Err(self.out_of_range(first, count)),
        }
    }

    #[cold]
    #[inline(never)]
    fn out_of_range(&self, first: usize, count: usize) -> ProtocolError {
        ProtocolError::corrupt(format!(
            "words {first}..+{count} are outside the segment ({} words)",
            self.n64
        ))
    }

    /// The `count` words starting at `first`, bounds-checked once.
    #[inline(always)]
    pub fn slice(&self, first: usize, count: usize) -> Result<&'a [AtomicU64]> {
        self.range(first, count)?;
        // SAFETY: the range is in bounds (checked above) of memory valid for the view's
        // lifetime, aligned, and only accessed atomically (contract of the constructors); a
        // shared slice of atomics permits concurrent modification.
        Ok(unsafe { core::slice::from_raw_parts(self.w64.add(first), count) })
    }

    /// The word at `index`, unchecked: for a caller that proved the index in range once,
    /// against a geometry the segment was checked to cover (`Directory`'s invariant), rather
    /// than against the segment at every word. In a bounds-checked word read, the comparison
    /// with the segment's length is reloaded after every Acquire load; a HIT did eleven of
    /// them (1.9 ns of its 11.8, measured with them all removed).
    ///
    /// # Safety
    /// `index < self.len()`.
    #[inline(always)]
    pub(crate) unsafe fn at_unchecked(&self, index: usize) -> &'a AtomicU64 {
        debug_assert!(index < self.n64, "word {index} outside {} words", self.n64);
        // SAFETY: in bounds (the caller's contract) of memory valid for the view's lifetime,
        // aligned and only accessed atomically (contract of the constructors).
        unsafe { &*self.w64.add(index) }
    }

    /// The `N` words starting at `first`, unchecked (see [`Words::at_unchecked`]).
    ///
    /// # Safety
    /// `first + N <= self.len()`.
    #[inline(always)]
    pub(crate) unsafe fn array_unchecked<const N: usize>(
        &self,
        first: usize,
    ) -> &'a [AtomicU64; N] {
        debug_assert!(
            first.checked_add(N).is_some_and(|end| end <= self.n64),
            "words {first}..+{N} outside {} words",
            self.n64
        );
        // SAFETY: in bounds (the caller's contract), as in `at_unchecked`; an array of atomics
        // has their alignment.
        unsafe { &*self.w64.add(first).cast::<[AtomicU64; N]>() }
    }

    /// The `N` words starting at `first`, bounds-checked once, as an array whose constant
    /// indices need no further checks.
    #[inline]
    pub fn array<const N: usize>(&self, first: usize) -> Result<&'a [AtomicU64; N]> {
        self.slice(first, N)?
            .try_into()
            .map_err(|_| ProtocolError::corrupt("word array length"))
    }

    /// Store `bytes` into the words starting at `first`, little-endian, zero-padding the last
    /// word. Relaxed: the caller publishes with a Release operation afterwards.
    pub fn copy_in(&self, first: usize, bytes: &[u8]) -> Result<()> {
        let words = self.slice(first, bytes.len().div_ceil(8))?;
        #[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
        if bytes.len() >= BULK_COPY_BYTES {
            let whole = bytes.len() & !7;
            // SAFETY: `words` is in bounds and covers `whole` bytes (at least `bytes.len()`
            // rounded down); `bytes` is private memory of at least `whole` bytes; the copy is a
            // sequence of relaxed atomic stores to the shared words (see `bulk`).
            unsafe {
                bulk::copy(
                    words.as_ptr().cast::<u8>().cast_mut(),
                    bytes.as_ptr(),
                    whole,
                )
            };
            if let (Some(last), false) = (words.last(), whole == bytes.len()) {
                let mut value = [0u8; 8];
                value[..bytes.len() - whole].copy_from_slice(&bytes[whole..]);
                last.store(u64::from_le_bytes(value), Ordering::Relaxed);
            }
            return Ok(());
        }
        let mut chunks = bytes.chunks_exact(8);
        for (word, chunk) in words.iter().zip(&mut chunks) {
            let mut value = [0u8; 8];
            value.copy_from_slice(chunk);
            word.store(u64::from_le_bytes(value), Ordering::Relaxed);
        }
        let tail = chunks.remainder();
        if let (false, Some(last)) = (tail.is_empty(), words.last()) {
            let mut value = [0u8; 8];
            value[..tail.len()].copy_from_slice(tail);
            last.store(u64::from_le_bytes(value), Ordering::Relaxed);
        }
        Ok(())
    }

    /// Load `len` bytes from the words starting at `first` into `out` (replacing its
    /// contents). Relaxed: the caller validates the copy afterwards (see `read.rs`).
    #[inline(always)]
    pub fn copy_out(&self, first: usize, len: usize, out: &mut Vec<u8>) -> Result<()> {
        let words = self.slice(first, len.div_ceil(8))?;
        // Every byte is overwritten below: only a buffer of another length needs resizing
        // (a reused buffer of the same length, the common case, skips the zero fill).
        if out.len() != len {
            out.clear();
            out.resize(len, 0);
        }
        #[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
        if len >= WIDE_COPY_BYTES {
            let src = words.as_ptr().cast::<u8>();
            if len >= BULK_COPY_BYTES {
                // SAFETY: `words` is in bounds and covers `len` bytes (rounded up to a word);
                // `out` is private memory of exactly `len` bytes; the copy is a sequence of
                // relaxed atomic loads of the shared words (see `bulk`).
                unsafe { bulk::copy(out.as_mut_ptr(), src, len) };
            } else {
                // SAFETY: as for `bulk::copy`, with `len` at least 16 (checked above): the
                // loads are of `len` bytes inside `words` (see `wide`).
                unsafe { wide::copy_out(out.as_mut_ptr(), src, len) };
            }
            return Ok(());
        }
        let mut chunks = out.chunks_exact_mut(8);
        for (chunk, word) in (&mut chunks).zip(words) {
            chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
        }
        let tail = chunks.into_remainder();
        if let Some(last) = words.last().filter(|_| !tail.is_empty()) {
            let value = last.load(Ordering::Relaxed).to_le_bytes();
            let n = tail.len();
            tail.copy_from_slice(&value[..n]);
        }
        Ok(())
    }

    /// The bytes of `len` at word `first`, as a slice.
    ///
    /// # Safety
    /// The words must be a pinned, published payload slot: no protocol-abiding process writes
    /// them until the pin is dropped, and the returned slice must not outlive that pin.
    #[cfg(not(loom))]
    pub unsafe fn pinned_bytes(&self, first: usize, len: usize) -> Result<&'a [u8]> {
        self.range(first, len.div_ceil(8))?;
        // SAFETY: the range is in bounds (checked above); the caller guarantees the bytes are
        // immutable while the slice lives (pinned published slot).
        Ok(unsafe { core::slice::from_raw_parts(self.w64.add(first).cast::<u8>(), len) })
    }
}

/// Payloads from this size up are copied with [`bulk::copy`]; shorter ones word by word, where
/// a few plain loads beat the start-up of a string instruction.
#[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
const BULK_COPY_BYTES: usize = 256;

/// Payloads from this size up (and below [`BULK_COPY_BYTES`]) are copied out 16 bytes at a
/// time with [`wide::copy_out`]; shorter ones word by word.
#[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
const WIDE_COPY_BYTES: usize = 16;

/// A copy out of shared words 16 bytes per load (SSE2, which every x86-64 has), for payloads
/// too short for `rep movsb`'s start-up: half the loads and stores of the word-by-word loop.
/// Sound for the same reason as [`bulk`] (docs/protocol.md §3.3, "How the bytes move"): each
/// load is an opaque `asm!` block whose effect on the shared side is one the Rust program
/// "for each byte, a relaxed atomic load of the `AtomicU64` that holds it" could have (x86
/// does not promise a 16-byte load untorn, and the argument needs no more than bytes), so a
/// race with another process's atomic stores is a wrong value at worst, never undefined
/// behaviour; the caller validates the copy (seqlock) or holds a pin, as for every copy out.
#[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
mod wide {
    /// Copy `len` bytes (at least 16) from shared `src` to private `dst`.
    ///
    /// # Safety
    /// `len >= 16`; `src` readable and `dst` writable for `len` bytes; `src` 8-byte aligned
    /// and, as the segment's rule says, accessed by everyone else only atomically; the ranges
    /// do not overlap.
    #[inline(always)]
    pub(super) unsafe fn copy_out(dst: *mut u8, src: *const u8, len: usize) {
        if len <= 64 {
            // Two (or four) loads that may overlap, and no loop: the start and the end, as a
            // libc `memcpy` copies a short block; most payloads of a HIT are this short.
            if len <= 32 {
                // SAFETY: `16 <= len <= 32`: both blocks are inside both ranges.
                unsafe {
                    copy16(dst, src);
                    copy16(dst.add(len - 16), src.add(len - 16));
                }
            } else {
                // SAFETY: `32 < len <= 64`: both 32-byte blocks are inside both ranges.
                unsafe {
                    copy32(dst, src);
                    copy32(dst.add(len - 32), src.add(len - 32));
                }
            }
            return;
        }
        let mut at = 0;
        while at + 16 <= len {
            // SAFETY: `at + 16 <= len`: inside both ranges (the caller's contract).
            unsafe { copy16(dst.add(at), src.add(at)) };
            at += 16;
        }
        if at < len {
            // The last 16 bytes, overlapping what was copied; at any byte offset, which the
            // per-byte argument of the module covers (a misaligned load is still a load of
            // each byte of words inside `src`'s range).
            // SAFETY: `len >= 16`, so `len - 16 .. len` is inside both ranges.
            unsafe { copy16(dst.add(len - 16), src.add(len - 16)) };
        }
    }

    /// Two 16-byte loads from shared `src`, then their stores to private `dst`.
    ///
    /// # Safety
    /// As [`copy_out`], for 32 bytes.
    #[inline(always)]
    unsafe fn copy32(dst: *mut u8, src: *const u8) {
        // SAFETY: as in `copy16`, for the 32 bytes at `src` and `dst`.
        unsafe {
            core::arch::asm!(
                "movdqu {x}, xmmword ptr [{src}]",
                "movdqu {y}, xmmword ptr [{src} + 16]",
                "movdqu xmmword ptr [{dst}], {x}",
                "movdqu xmmword ptr [{dst} + 16], {y}",
                src = in(reg) src,
                dst = in(reg) dst,
                x = out(xmm_reg) _,
                y = out(xmm_reg) _,
                options(nostack, preserves_flags)
            );
        }
    }

    /// One 16-byte load from shared `src` and its store to private `dst`.
    ///
    /// # Safety
    /// As [`copy_out`], for 16 bytes.
    #[inline(always)]
    unsafe fn copy16(dst: *mut u8, src: *const u8) {
        // SAFETY: the caller's contract; `movdqu` needs no alignment; the block touches no
        // stack and no flags, and its only memory effects are the 16-byte load and store.
        unsafe {
            core::arch::asm!(
                "movdqu {x}, xmmword ptr [{src}]",
                "movdqu xmmword ptr [{dst}], {x}",
                src = in(reg) src,
                dst = in(reg) dst,
                x = out(xmm_reg) _,
                options(nostack, preserves_flags)
            );
        }
    }
}

/// A copy between shared words and private bytes at `memcpy` speed, sound under the memory
/// model. Argued in docs/protocol.md §3.3 ("How the bytes move"), after the inline-assembly
/// argument of the `atomic-maybe-uninit` crate and the per-byte atomic copy of Rust RFC 3301.
///
/// One `rep movsb` (fast on every x86-64 with ERMSB/FSRM: it moves whole cache lines). The
/// compiler sees an opaque block; its effect on the shared side is one that the Rust program
/// "for each byte, a relaxed atomic load (or read-modify-write) of the `AtomicU64` that holds
/// it" could have, so a race with another process's atomic accesses is a wrong value at worst,
/// exactly as for the word-by-word loop, and never undefined behaviour: the copy is validated
/// (seqlock) or pinned by its caller, as before.
#[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
mod bulk {
    /// Copy `len` bytes from `src` to `dst`.
    ///
    /// # Safety
    /// `src` must be readable and `dst` writable for `len` bytes; on the side that is shared,
    /// every other access must be atomic (the segment's rule); the ranges must not overlap.
    #[inline]
    pub(super) unsafe fn copy(dst: *mut u8, src: *const u8, len: usize) {
        // SAFETY: the caller's contract; the direction flag is clear at any asm boundary (the
        // ABI guarantees it) so the copy runs forwards; `rep movsb` touches no stack or flags.
        unsafe {
            core::arch::asm!(
                "rep movsb",
                inout("rcx") len => _,
                inout("rdi") dst => _,
                inout("rsi") src => _,
                options(nostack, preserves_flags)
            );
        }
    }
}

/// Heap-allocated words for loom models and in-process tests: the layout "on the heap".
pub struct HeapWords {
    /// 16-byte aligned, as a mapping is, for the free-list heads ([`Words::pair`]).
    w64: Vec<AlignedPair>,
    n64: usize,
    w32: Vec<AtomicU32>,
    #[cfg(loom)]
    pair_lock: Box<loom::sync::Mutex<()>>,
}

/// Two words at a 16-byte boundary.
#[repr(C, align(16))]
struct AlignedPair([AtomicU64; 2]);

impl HeapWords {
    /// Zeroed storage for a segment of `bytes` bytes.
    pub fn new(bytes: usize) -> HeapWords {
        let n64 = bytes / 8;
        HeapWords {
            w64: (0..n64.div_ceil(2))
                .map(|_| AlignedPair([AtomicU64::new(0), AtomicU64::new(0)]))
                .collect(),
            n64,
            w32: (0..n64 * 2).map(|_| AtomicU32::new(0)).collect(),
            #[cfg(loom)]
            pair_lock: Box::new(loom::sync::Mutex::new(())),
        }
    }

    /// A view of this storage, borrowing it.
    pub fn words(&self) -> Words<'_> {
        // SAFETY: both vectors are allocated, aligned for their element types and hold only
        // atomics; the view borrows `self`, so it cannot outlive them.
        unsafe { self.words_unbounded() }
    }

    /// A view of this storage with any lifetime.
    ///
    /// # Safety
    /// The view and its copies must not be used after `self` is dropped. Moving `self` is
    /// fine: the words live in the vectors' heap buffers, which do not move.
    pub(crate) unsafe fn words_unbounded<'a>(&self) -> Words<'a> {
        // SAFETY: both vectors are allocated, aligned for their element types and hold only
        // atomics (`AlignedPair` is two `AtomicU64`s, `repr(C)`, so `n64` of them start at its
        // buffer); the caller keeps them alive while the view is used.
        let words = unsafe {
            Words::from_raw(
                self.w64.as_ptr().cast::<AtomicU64>(),
                self.n64,
                self.w32.as_ptr(),
                self.w32.len(),
            )
        };
        #[cfg(loom)]
        let words = Words {
            pair_lock: &raw const *self.pair_lock,
            ..words
        };
        words
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Every length across the bulk threshold, at an odd word offset: what goes in comes out,
    /// and the last word is zero-padded.
    #[test]
    fn copies_round_trip_at_every_length() -> Result<()> {
        let heap = HeapWords::new(8 * 1024);
        let words = heap.words();
        let max = if cfg!(miri) { 300 } else { 1100 };
        for len in 0..=max {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            words.copy_in(3, &bytes)?;
            let mut out = vec![0xff; 5];
            words.copy_out(3, len, &mut out)?;
            assert_eq!(out, bytes, "length {len}");
            if len % 8 != 0 {
                let last = words.at(3 + len / 8)?.load(Ordering::Relaxed).to_le_bytes();
                assert!(last[len % 8..].iter().all(|&b| b == 0), "length {len}");
            }
        }
        Ok(())
    }

    /// A copy out racing a writer's copies in: every byte read is one some writer wrote (no
    /// value out of thin air), and under Miri the race itself is checked to be no data race
    /// (Miri runs the word-by-word path; natively this exercises `rep movsb` at 1000 bytes and
    /// the 16-byte loads at 100).
    #[test]
    fn a_racing_copy_reads_only_written_bytes() -> Result<()> {
        for len in [40, 100, 1000] {
            racing_copy(len)?;
        }
        Ok(())
    }

    fn racing_copy(len: usize) -> Result<()> {
        let heap = HeapWords::new(4096);
        let words = heap.words();
        let rounds = if cfg!(miri) { 3 } else { 2000 };
        std::thread::scope(|s| -> Result<()> {
            let writer = s.spawn(move || -> Result<()> {
                for round in 0..rounds {
                    words.copy_in(0, &vec![if round % 2 == 0 { 0x11 } else { 0x22 }; len])?;
                }
                Ok(())
            });
            let mut out = Vec::new();
            for _ in 0..rounds {
                words.copy_out(0, len, &mut out)?;
                assert!(out.iter().all(|&b| matches!(b, 0 | 0x11 | 0x22)));
            }
            writer
                .join()
                .map_err(|_| ProtocolError::corrupt("writer panicked"))?
        })
    }
}

//! A segment seen as an array of atomic words.
//!
//! Every shared location is an `AtomicU64`, except the futex words, which are `AtomicU32`s at
//! addresses the layout never touches as 64-bit words. Payload bytes are copied in and out with
//! relaxed atomic word accesses (the `atomic-memcpy` idea), so racing with a hostile or broken
//! process is a wrong value at worst, never undefined behaviour. Indices that come from the
//! segment itself are untrusted: every access is bounds-checked and a bad index is an error.
//!
//! Under `cfg(loom)` the words live on the heap (see [`HeapWords`]) so loom can model them.

#![allow(unsafe_code)] // raw views of the mapping; each use says why it is sound

use core::marker::PhantomData;

use crate::error::{ProtocolError, Result};
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// A view of a segment as atomic words, valid for `'a`. Cheap to copy; does not own the memory.
/// The lifetime is the storage's: a view of [`HeapWords`] borrows it; a view of a mapping made
/// with the unsafe constructors has whatever lifetime their caller vouches for.
#[derive(Clone, Copy)]
pub struct Words<'a> {
    w64: *const AtomicU64,
    n64: usize,
    w32: *const AtomicU32,
    n32: usize,
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

    #[inline]
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
    #[inline]
    pub fn slice(&self, first: usize, count: usize) -> Result<&'a [AtomicU64]> {
        self.range(first, count)?;
        // SAFETY: the range is in bounds (checked above) of memory valid for the view's
        // lifetime, aligned, and only accessed atomically (contract of the constructors); a
        // shared slice of atomics permits concurrent modification.
        Ok(unsafe { core::slice::from_raw_parts(self.w64.add(first), count) })
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
    pub fn copy_out(&self, first: usize, len: usize, out: &mut Vec<u8>) -> Result<()> {
        let words = self.slice(first, len.div_ceil(8))?;
        // Every byte is overwritten below: only a buffer of another length needs resizing
        // (a reused buffer of the same length, the common case, skips the zero fill).
        if out.len() != len {
            out.clear();
            out.resize(len, 0);
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

/// Heap-allocated words for loom models and in-process tests: the layout "on the heap".
pub struct HeapWords {
    w64: Vec<AtomicU64>,
    w32: Vec<AtomicU32>,
}

impl HeapWords {
    /// Zeroed storage for a segment of `bytes` bytes.
    pub fn new(bytes: usize) -> HeapWords {
        let n64 = bytes / 8;
        HeapWords {
            w64: (0..n64).map(|_| AtomicU64::new(0)).collect(),
            w32: (0..n64 * 2).map(|_| AtomicU32::new(0)).collect(),
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
        // atomics; the caller keeps them alive while the view is used.
        unsafe {
            Words::from_raw(
                self.w64.as_ptr(),
                self.w64.len(),
                self.w32.as_ptr(),
                self.w32.len(),
            )
        }
    }
}

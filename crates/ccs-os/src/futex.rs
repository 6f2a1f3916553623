//! Process-shared futexes on 32-bit words inside a segment.
//!
//! `FUTEX_WAIT` / `FUTEX_WAKE` *without* `FUTEX_PRIVATE_FLAG`: the kernel keys the wait queue
//! on the physical page (inode and offset for a shared mapping), so a waiter in one process is
//! woken by a waker in another even though the word sits at different addresses in each.
//!
//! The usual protocol: the waiter loads the word, decides to sleep, and calls
//! [`futex_wait`] with the value it saw; the waker changes the word, then calls [`futex_wake`].
//! The kernel compares the word with `expected` atomically with queueing the waiter, so a
//! change made in between is never missed ([`WaitOutcome::ValueChanged`]). Every outcome can
//! also be spurious: re-check the word after any return.
//!
//! See [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html) and
//! [futex(7)](https://man7.org/linux/man-pages/man7/futex.7.html).
//!
//! ```
//! use std::sync::atomic::AtomicU32;
//! use std::time::Duration;
//! use ccs_os::{WaitOutcome, futex_wait, futex_wake};
//!
//! let word = AtomicU32::new(1);
//! // The word is not 0, so the kernel returns at once.
//! assert_eq!(futex_wait(&word, 0, None)?, WaitOutcome::ValueChanged);
//! assert_eq!(futex_wait(&word, 1, Some(Duration::from_millis(1)))?, WaitOutcome::TimedOut);
//! assert_eq!(futex_wake(&word, 1)?, 0); // nobody was waiting
//! # Ok::<(), ccs_os::OsError>(())
//! ```

// The kernel waits on a real 32-bit word, so this OS boundary names std's `AtomicU32` (what
// `ccs_protocol::sync` re-exports outside loom; loom cannot model a futex anyway).
#![allow(clippy::disallowed_types)]

use std::sync::atomic::AtomicU32;
use std::time::Duration;

use rustix::io::Errno;
use rustix::thread::futex;

use crate::OsError;

/// Outcome of a [`futex_wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// The wait returned normally: woken by [`futex_wake`] (or spuriously).
    Woken,
    /// The word did not hold `expected` when the wait began (`EAGAIN`).
    ValueChanged,
    /// The timeout elapsed (`ETIMEDOUT`).
    TimedOut,
    /// A signal interrupted the wait (`EINTR`).
    Interrupted,
}

/// Sleep while `word` holds `expected`, for at most `timeout` (relative; `None` = forever).
///
/// `FUTEX_WAIT`, process-shared. `word` may live in a [`Mapping`](crate::Mapping) shared with
/// other processes.
///
/// See [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html).
///
/// # Errors
///
/// [`OsError::Io`] if the kernel rejects the call (e.g. `EFAULT`, `EINVAL`, `ENOSYS`).
pub fn futex_wait(
    word: &AtomicU32,
    expected: u32,
    timeout: Option<Duration>,
) -> Result<WaitOutcome, OsError> {
    let timeout = timeout.map(|d| futex::Timespec {
        // Durations past ~292 billion years are "forever" in practice.
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: d.subsec_nanos().into(),
    });
    match futex::wait(word, futex::Flags::empty(), expected, timeout.as_ref()) {
        Ok(()) => Ok(WaitOutcome::Woken),
        Err(Errno::AGAIN) => Ok(WaitOutcome::ValueChanged),
        Err(Errno::TIMEDOUT) => Ok(WaitOutcome::TimedOut),
        Err(Errno::INTR) => Ok(WaitOutcome::Interrupted),
        Err(e) => Err(io_error("futex(FUTEX_WAIT)", word, e)),
    }
}

/// Wake up to `count` waiters sleeping on `word`; returns how many were woken.
///
/// `FUTEX_WAKE`, process-shared. `count` above `i32::MAX` means "all" (the kernel takes an
/// `int`).
///
/// See [futex(2)](https://man7.org/linux/man-pages/man2/futex.2.html).
///
/// # Errors
///
/// [`OsError::Io`] if the kernel rejects the call (e.g. `EFAULT`, `EINVAL`).
pub fn futex_wake(word: &AtomicU32, count: u32) -> Result<usize, OsError> {
    let count = count.min(i32::MAX as u32);
    futex::wake(word, futex::Flags::empty(), count)
        .map_err(|e| io_error("futex(FUTEX_WAKE)", word, e))
}

fn io_error(op: &'static str, word: &AtomicU32, e: Errno) -> OsError {
    OsError::Io {
        op,
        location: format!("futex word at {:p}", word.as_ptr()),
        source: e.into(),
    }
}

#[cfg(test)]
mod tests {
    // One test builds an `AtomicU32` over mapped bytes, the way the protocol layer does.
    #![allow(unsafe_code)]

    use std::sync::atomic::Ordering;
    use std::thread;

    use super::*;
    use crate::Mapping;
    use crate::testutil::{Segment, unique_shm};

    fn must<T>(r: Result<T, OsError>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    /// Wake `word` until a sleeper is actually woken, so the waiter's outcome is `Woken`
    /// rather than a race-dependent `ValueChanged`.
    fn wake_one_sleeper(word: &AtomicU32) {
        while must(futex_wake(word, 1)) == 0 {
            thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn waiter_is_woken() {
        let word = AtomicU32::new(0);
        thread::scope(|s| {
            let waiter = s.spawn(|| must(futex_wait(&word, 0, None)));
            wake_one_sleeper(&word);
            // Release pairs with the waiter's Acquire load below.
            word.store(1, Ordering::Release);
            let outcome = waiter.join().unwrap_or_else(|_| panic!("waiter panicked"));
            assert_eq!(outcome, WaitOutcome::Woken);
        });
        assert_eq!(word.load(Ordering::Acquire), 1);
    }

    #[test]
    fn change_then_wake_is_never_missed() {
        let word = AtomicU32::new(0);
        thread::scope(|s| {
            s.spawn(|| {
                // Acquire pairs with the Release store by the waker.
                while word.load(Ordering::Acquire) == 0 {
                    let outcome = must(futex_wait(&word, 0, None));
                    assert!(matches!(
                        outcome,
                        WaitOutcome::Woken | WaitOutcome::ValueChanged
                    ));
                }
            });
            word.store(1, Ordering::Release);
            must(futex_wake(&word, u32::MAX));
        });
    }

    #[test]
    fn wrong_expected_value_is_value_changed() {
        let word = AtomicU32::new(5);
        assert_eq!(must(futex_wait(&word, 4, None)), WaitOutcome::ValueChanged);
    }

    #[test]
    fn timeout_returns() {
        let word = AtomicU32::new(0);
        let outcome = must(futex_wait(&word, 0, Some(Duration::from_millis(10))));
        assert_eq!(outcome, WaitOutcome::TimedOut);
    }

    #[test]
    fn wake_through_a_second_mapping() {
        let seg = Segment::new(unique_shm("futex"));
        let a = must(Mapping::create(&seg.loc, 4096, 0o600));
        let b = must(Mapping::open(&seg.loc));
        // SAFETY: both bases are page aligned, valid for 4096 bytes while `a` and `b` live
        // (to the end of this test, past the scope below), and accessed only atomically.
        let (wa, wb) = unsafe {
            (
                AtomicU32::from_ptr(a.as_ptr().cast::<u32>()),
                AtomicU32::from_ptr(b.as_ptr().cast::<u32>()),
            )
        };
        thread::scope(|s| {
            let waiter = s.spawn(|| must(futex_wait(wa, 0, None)));
            // Different virtual address, same page: only a shared futex finds the waiter.
            wake_one_sleeper(wb);
            let outcome = waiter.join().unwrap_or_else(|_| panic!("waiter panicked"));
            assert_eq!(outcome, WaitOutcome::Woken);
        });
    }
}

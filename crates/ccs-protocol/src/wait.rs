//! Blocking until an artifact moves past a version, across processes.
//!
//! Each line has a 32-bit change counter (the futex word) and a waiter count. A waiter
//! registers, re-reads the version, and sleeps only if the counter still holds the value it
//! read before the check; a writer bumps the counter after publishing and calls the kernel only
//! if someone is registered. The two SeqCst pairs (waiter: count++ then load; writer:
//! counter++ then load count) are a Dekker handshake: at least one side sees the other, so a
//! wake is never lost and a writer with no waiters makes no system call.

use crate::directory::Directory;
use crate::env::Env;
use crate::error::Result;
use crate::layout::L_WAIT;
use crate::sync::Ordering;

/// Why [`Directory::wait_changed`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitResult {
    /// The artifact is now at this version, greater than the one waited past.
    Changed(u32),
    /// The timeout passed first; the version is still this one.
    TimedOut(u32),
}

impl<E: Env> Directory<E> {
    /// Block until `line`'s version exceeds `since`, or `timeout_ms` passes.
    pub fn wait_changed(
        &self,
        line: u32,
        since: u32,
        timeout_ms: Option<u64>,
    ) -> Result<WaitResult> {
        self.check_line(line)?;
        let base = self.geo.line_word(line, L_WAIT) * 2;
        let change = self.words.at32(base)?;
        let waiters = self.words.at32(base + 1)?;
        let deadline = timeout_ms.map(|ms| self.env.now_ms().saturating_add(ms));
        loop {
            let seen = change.load(Ordering::SeqCst);
            let version = self.version(line)?;
            if version > since {
                return Ok(WaitResult::Changed(version));
            }
            let remaining = match deadline {
                Some(deadline) => {
                    let now = self.env.now_ms();
                    if now >= deadline {
                        return Ok(WaitResult::TimedOut(version));
                    }
                    Some(deadline - now)
                }
                None => None,
            };
            // Pairs with the SeqCst load of the waiter count in `notify` (write.rs).
            waiters.fetch_add(1, Ordering::SeqCst);
            let result = if self.version(line)? > since {
                Ok(())
            } else {
                self.env.wait(change, seen, remaining)
            };
            waiters.fetch_sub(1, Ordering::SeqCst);
            result?;
        }
    }
}

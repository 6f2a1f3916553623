//! Blocking until an artifact moves past a version, across processes.
//!
//! Each line has a 32-bit change counter (the futex word) and a 32-bit waiter flag. A waiter
//! raises the flag, re-reads the version, and sleeps only if the counter still holds the value
//! it read before the check; a writer bumps the counter after publishing, then takes the flag
//! down (a swap) and calls the kernel only if it was up, waking every sleeper, each of which
//! raises it again before it sleeps again. The two SeqCst pairs (waiter: flag up then load;
//! writer: counter++ then swap the flag) are a Dekker handshake: at least one side sees the
//! other, so a wake is never lost, and a writer with no waiters makes no system call.
//!
//! A flag, not a count: a waiter killed in its sleep cannot leave a count that never returns
//! to zero (which made every later write pay a wake system call); it leaves the flag up, and
//! the next writer takes it down with one wake.

use crate::directory::Directory;
use crate::env::Env;
use crate::error::Result;
use crate::layout::L_WAIT;
use crate::sync::{AtomicU32, Ordering};

/// Why [`Directory::wait_changed`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitResult {
    /// The artifact is now at this version, greater than the one waited past.
    Changed(u64),
    /// The timeout passed first; the version is still this one.
    TimedOut(u64),
}

/// Waiter side of the handshake: raise the flag before the last check.
pub(crate) fn raise_waiter_flag(flag: &AtomicU32) {
    // Pairs with the SeqCst swap in `bump_and_wake`.
    flag.store(1, Ordering::SeqCst);
}

impl<E: Env> Directory<E> {
    /// Writer side of the handshake: count a change on `change`, and wake its sleepers if the
    /// waiter `flag` was up (taking it down).
    pub(crate) fn bump_and_wake(&self, change: &AtomicU32, flag: &AtomicU32) {
        change.fetch_add(1, Ordering::SeqCst);
        // Pairs with the SeqCst store in `raise_waiter_flag`: either the waiter's check sees
        // the new change, or this swap sees its flag.
        if flag.swap(0, Ordering::SeqCst) != 0 {
            self.env.wake(change);
        }
    }

    /// Block until `line`'s version exceeds `since`, or `timeout_ms` passes.
    pub fn wait_changed(
        &self,
        line: u32,
        since: u64,
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
            raise_waiter_flag(waiters);
            if self.version(line)? <= since {
                self.env.wait(change, seen, remaining)?;
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::testing::MemEnv;
    use crate::{Condition, Config, Directory, Geometry, HeapWords};

    /// A waiter killed in its sleep leaves the flag up: the next write wakes once and takes
    /// it down, and later writes make no wake call at all.
    #[test]
    fn a_killed_waiter_costs_one_wake() {
        let config = Config {
            max_agents: 1,
            max_artifacts: 1,
            arena_bytes: 1024,
            max_payload: 64,
            write_lease_ms: 1000,
            log_records: 0,
            inbox_events: 0,
        };
        let heap = HeapWords::new(Geometry::new(config).unwrap().total_bytes as usize);
        let dir = Directory::create_on_heap(heap, config, MemEnv::new(1)).unwrap();
        let line = dir.find_or_insert_key("k").unwrap();
        let agent = dir
            .begin_attach(dir.register_agent("a").unwrap(), 1)
            .unwrap();
        dir.put(agent, line, b"v1", Condition::Blind).unwrap();
        assert_eq!(dir.env().wakes(), 0, "no waiter, no wake");
        // What a waiter killed inside its futex wait leaves behind.
        let base = dir.geo.line_word(line, crate::layout::L_WAIT) * 2;
        super::raise_waiter_flag(dir.words.at32(base + 1).unwrap());
        dir.put(agent, line, b"v2", Condition::Blind).unwrap();
        dir.put(agent, line, b"v3", Condition::Blind).unwrap();
        dir.put(agent, line, b"v4", Condition::Blind).unwrap();
        assert_eq!(
            dir.env().wakes(),
            1,
            "the dead waiter must cost one wake, not one a write"
        );
    }
}

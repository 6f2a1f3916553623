//! What the protocol needs from its surroundings: a clock, a liveness probe, a wake-up call and
//! one cross-process lock for the rare structural changes (registering an agent, adding a key).
//!
//! The facade implements it with kernel-released `fcntl` locks and futexes; loom models and
//! unit tests implement it in memory.

use crate::error::Result;
use crate::records::KillPoint;
use crate::sync::AtomicU32;

/// The protocol's view of the operating system.
pub trait Env {
    /// Monotonic milliseconds, comparable between all processes on the machine.
    fn now_ms(&self) -> u64;
    /// Monotonic nanoseconds on the same clock, for log records.
    fn now_ns(&self) -> u64 {
        self.now_ms().saturating_mul(1_000_000)
    }
    /// Whether a process is attached as the agent in `slot` right now.
    fn agent_alive(&self, slot: u32) -> Result<bool>;
    /// Wake every process blocked on `word` (the futex of a line).
    fn wake(&self, word: &AtomicU32);
    /// Block while `word` holds `expected`, for at most `timeout_ms` (forever if `None`).
    /// May return early (spuriously, or on a signal); callers re-check.
    fn wait(&self, word: &AtomicU32, expected: u32, timeout_ms: Option<u64>) -> Result<()>;
    /// Run `f` while holding the segment's structural lock (released by the kernel if the
    /// holder dies).
    fn with_structure_lock<R>(&self, f: impl FnOnce() -> R) -> Result<R>;
    /// Test hook: the loom models of allocation recovery kill a process here (the in-memory
    /// environment panics when told to); a no-op everywhere else.
    #[doc(hidden)]
    #[inline(always)]
    fn kill_point(&self, _slot: u32, _point: KillPoint) {}
}

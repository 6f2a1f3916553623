//! Where each word of the torture run's side mapping lives.
//!
//! The side mapping ([`crate::bench::side::Side`]: one 64-bit word per 64-byte line) outlives
//! every worker, so whatever a worker writes there survives its SIGKILL. Lines:
//!
//! ```text
//! 0                 reserved
//! STOP              supervisor → workers: 1 = finish the current operation and exit 0
//! INJECTED          a worker with --inject-fault sets it once the fault is in the segment
//! per worker w, from worker_base(w):
//!   +FAIL_KIND .. +FAIL_EXPECTED   the worker's first failure (kind, artifact, seen, expected)
//!   +IN_WRITE       1 while the worker is inside a write call (sampled by the supervisor)
//!   +ATTACH_RETRIES attaches refused with AgentBusy and retried
//!   +OPS ..         one counter per `Op`, summed over the worker's lives
//!   +LAST ..        the last version this agent observed, per artifact (payloads, then counters)
//! per counter c: ACKED(c)   increments acknowledged (put/commit returned Ok), all workers
//! ```

use super::worker::Op;

/// Supervisor → workers: stop.
pub const STOP: usize = 1;
/// Set once a deliberate fault is in the segment.
pub const INJECTED: usize = 2;
const FIRST_WORKER: usize = 3;

/// Offsets within a worker's block.
pub const FAIL_KIND: usize = 0;
/// The artifact index of the first failure (payloads first, then counters).
pub const FAIL_ARTIFACT: usize = 1;
/// The version or value seen.
pub const FAIL_SEEN: usize = 2;
/// The version or value expected.
pub const FAIL_EXPECTED: usize = 3;
/// 1 while inside a write.
pub const IN_WRITE: usize = 4;
/// Attach retries after `AgentBusy`.
pub const ATTACH_RETRIES: usize = 5;
const OPS: usize = 6;

/// The geometry of one run's side mapping.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Worker slots.
    pub workers: usize,
    /// Payload artifacts plus counters.
    pub artifacts: usize,
    /// Counters (the last `counters` of `artifacts`).
    pub counters: usize,
}

impl Layout {
    fn per_worker(&self) -> usize {
        OPS + Op::ALL.len() + self.artifacts
    }

    /// First line of worker `w`'s block.
    pub fn worker(&self, w: usize, offset: usize) -> usize {
        FIRST_WORKER + w * self.per_worker() + offset
    }

    /// Worker `w`'s counter of `op`.
    pub fn op(&self, w: usize, op: Op) -> usize {
        self.worker(w, OPS + op as usize)
    }

    /// Worker `w`'s last observed version of artifact `a`.
    pub fn last(&self, w: usize, a: usize) -> usize {
        self.worker(w, OPS + Op::ALL.len() + a)
    }

    /// Acknowledged increments of counter `c`.
    pub fn acked(&self, c: usize) -> usize {
        FIRST_WORKER + self.workers * self.per_worker() + c
    }

    /// Lines in the mapping (the argument `Side::create` takes is this minus its own offset).
    pub fn lines(&self) -> usize {
        self.acked(self.counters)
    }
}

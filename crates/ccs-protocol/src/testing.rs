//! An in-memory [`Env`] for unit tests, loom models and examples: agents are alive until
//! marked dead, the clock moves only when told, and the structural lock is a mutex.

use crate::env::Env;
use crate::error::{ProtocolError, Result};
use crate::records::KillPoint;
use crate::sync::{AtomicU32, AtomicU64, Ordering};

#[cfg(loom)]
use loom::sync::Mutex;
#[cfg(not(loom))]
use std::sync::Mutex;

/// A process-local environment.
pub struct MemEnv {
    dead: Vec<AtomicU64>,
    clock_ms: AtomicU64,
    ticks: AtomicU64,
    wakes: AtomicU64,
    lock: Mutex<()>,
    /// `(slot + 1) << 8 | point + 1` of the one kill point armed (0: none).
    kill_at: AtomicU64,
}

impl MemEnv {
    /// An environment for up to `agents` agents, all alive, at time 1 ms.
    pub fn new(agents: u32) -> MemEnv {
        MemEnv {
            dead: (0..agents.div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
            clock_ms: AtomicU64::new(1),
            ticks: AtomicU64::new(0),
            wakes: AtomicU64::new(0),
            lock: Mutex::new(()),
            kill_at: AtomicU64::new(0),
        }
    }

    /// Mark `slot`'s process dead (as the kernel would on its exit) or alive again.
    pub fn set_alive(&self, slot: u32, alive: bool) {
        if let Some(word) = self.dead.get(slot as usize / 64) {
            let bit = 1u64 << (slot % 64);
            if alive {
                word.fetch_and(!bit, Ordering::SeqCst);
            } else {
                word.fetch_or(bit, Ordering::SeqCst);
            }
        }
    }

    /// Kill `slot`'s process the next time it passes `point`: it is marked dead and the
    /// thread panics with "killed at ..." (catch it with `std::panic::catch_unwind`).
    #[doc(hidden)]
    pub fn kill_at(&self, slot: u32, point: KillPoint) {
        self.kill_at.store(
            (u64::from(slot) + 1) << 8 | (point as u64 + 1),
            Ordering::SeqCst,
        );
    }

    /// Disarm [`MemEnv::kill_at`] if no process got there.
    #[doc(hidden)]
    pub fn disarm_kills(&self) {
        self.kill_at.store(0, Ordering::SeqCst);
    }

    /// How many wake calls writers have made (each a system call on a real segment).
    pub fn wakes(&self) -> u64 {
        self.wakes.load(Ordering::SeqCst)
    }

    /// Move the clock forward.
    pub fn advance_ms(&self, ms: u64) {
        self.clock_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Env for MemEnv {
    fn now_ms(&self) -> u64 {
        self.clock_ms.load(Ordering::SeqCst)
    }

    /// The millisecond clock plus a tick per call, so that records are strictly ordered.
    fn now_ns(&self) -> u64 {
        let tick = self.ticks.fetch_add(1, Ordering::SeqCst) % 1_000_000;
        self.now_ms().saturating_mul(1_000_000).saturating_add(tick)
    }

    fn agent_alive(&self, slot: u32) -> Result<bool> {
        let word = self
            .dead
            .get(slot as usize / 64)
            .ok_or_else(|| ProtocolError::Os(format!("no agent {slot}")))?;
        Ok(word.load(Ordering::SeqCst) & (1u64 << (slot % 64)) == 0)
    }

    fn wake(&self, _word: &AtomicU32) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
    }

    fn wait(&self, _word: &AtomicU32, _expected: u32, _timeout_ms: Option<u64>) -> Result<()> {
        // No kernel here: let the writer run, and move time so timeouts end.
        crate::sync::yield_now();
        self.advance_ms(1);
        Ok(())
    }

    fn kill_point(&self, slot: u32, point: KillPoint) {
        let armed = (u64::from(slot) + 1) << 8 | (point as u64 + 1);
        if self.kill_at.load(Ordering::SeqCst) == armed {
            self.kill_at.store(0, Ordering::SeqCst);
            self.set_alive(slot, false);
            panic!("killed at {point:?}");
        }
    }

    fn with_structure_lock<R>(&self, f: impl FnOnce() -> R) -> Result<R> {
        // A holder that panics is a modelled kill: the kernel releases a dead process's lock,
        // so the lock is let go before the panic goes on, unpoisoned (loom's mutex cannot be
        // taken once poisoned), and the next taker finishes what the holder left half-done.
        let guard = self
            .lock
            .lock()
            .map_err(|_| ProtocolError::Os("structure lock poisoned".into()))?;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        drop(guard);
        result.map_err(|killed| std::panic::resume_unwind(killed))
    }
}

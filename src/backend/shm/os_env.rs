//! The protocol's environment on Linux: the monotonic clock, kernel-released `fcntl` locks for
//! liveness and structural changes, and process-shared futexes.
//!
//! Lock bytes (open-file-description locks, which may lie beyond the end of the file):
//! byte [`STRUCTURE_LOCK`] serialises agent registration and key insertion; byte
//! [`AGENT_LOCK_BASE`] + slot is held by the process attached as that agent for as long as it
//! is attached, so a peer's `F_OFD_GETLK` tells at once whether it is alive.

use std::sync::Mutex;

use ccs_os::{Access, Location, LockFile};
use ccs_protocol::sync::AtomicU32;
use ccs_protocol::{Env, ProtocolError};

/// Lock byte serialising agent registration and key insertion.
pub(crate) const STRUCTURE_LOCK: u64 = 0;
/// Lock byte of agent slot 0; slot `n` uses this + `n`.
pub(crate) const AGENT_LOCK_BASE: u64 = 1 << 32;

/// The Linux environment of one open segment.
pub(crate) struct OsEnv {
    /// Holds no lock of its own, so it can see every other description's locks.
    probe: LockFile,
    /// Takes the structure lock; the mutex keeps this process's threads out of each other's way,
    /// since locks of one open file description do not exclude each other.
    structure: Mutex<LockFile>,
}

impl OsEnv {
    /// Open the two lock descriptions, with the same owner policy as the mapping.
    pub(crate) fn new(location: &Location, access: Access) -> Result<OsEnv, ccs_os::OsError> {
        Ok(OsEnv {
            probe: LockFile::open_with(location, access)?,
            structure: Mutex::new(LockFile::open_with(location, access)?),
        })
    }
}

fn os(error: ccs_os::OsError) -> ProtocolError {
    ProtocolError::Os(error.to_string())
}

impl Env for OsEnv {
    fn now_ms(&self) -> u64 {
        ccs_os::monotonic_ns() / 1_000_000
    }

    #[inline]
    fn now_ns(&self) -> u64 {
        ccs_os::monotonic_ns()
    }

    fn agent_alive(&self, slot: u32) -> ccs_protocol::Result<bool> {
        self.probe
            .is_held_elsewhere(AGENT_LOCK_BASE + u64::from(slot))
            .map_err(os)
    }

    fn wake(&self, word: &AtomicU32) {
        // A failed wake can only mean a bad address, which cannot happen for a mapped word;
        // the waiters' timeouts bound the damage if it ever did.
        let _ = ccs_os::futex_wake(word.as_std(), u32::MAX);
    }

    fn wait(
        &self,
        word: &AtomicU32,
        expected: u32,
        timeout_ms: Option<u64>,
    ) -> ccs_protocol::Result<()> {
        let timeout = timeout_ms.map(std::time::Duration::from_millis);
        ccs_os::futex_wait(word.as_std(), expected, timeout)
            .map(|_| ())
            .map_err(os)
    }

    fn with_structure_lock<R>(&self, f: impl FnOnce() -> R) -> ccs_protocol::Result<R> {
        // A panic in `f` poisons nothing that matters: the guard releases the kernel lock.
        let file = self
            .structure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        file.lock(STRUCTURE_LOCK).map_err(os)?;
        let _unlock = Unlock(&file);
        Ok(f())
    }
}

/// Releases the structure lock when dropped, also while unwinding.
struct Unlock<'a>(&'a LockFile);

impl Drop for Unlock<'_> {
    fn drop(&mut self) {
        // Unlocking a lock this description holds fails only on a bad descriptor; the kernel
        // drops the lock with the description in any case.
        let _ = self.0.unlock(STRUCTURE_LOCK);
    }
}

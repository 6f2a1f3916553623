//! `fsck` for a segment: check every structure, and repair what is safe to repair.
//!
//! The checks are `ccs_protocol`'s (see its `fsck` module); this adds what only the operating
//! system can prove. An agent is dead when this process can take its kernel lock (byte
//! 2^32 + slot): holding that lock for the whole repair also keeps any process from attaching
//! as that agent meanwhile. The segment is quiescent when, besides, this process holds the
//! structure lock (byte 0) and every registered agent's lock; only then are leaked slots
//! returned to the free lists. A plain check takes no lock and writes nothing.

use std::time::{Duration, Instant};

use ccs_os::LockFile;

use ccs_protocol::FsckReport;

use crate::backend::shm::os_env::{AGENT_LOCK_BASE, STRUCTURE_LOCK};
use crate::backend::shm::segment::Shared;
use crate::error::Result;

/// Pause between a pass that found problems and the pass that confirms them, so that writers
/// finish the few instructions in which their slots look leaked.
const SETTLE: Duration = Duration::from_millis(50);

/// How long a repair tries for the structure lock before repairing without it (no leaks then).
const STRUCTURE_WAIT: Duration = Duration::from_secs(2);

impl Shared {
    /// See [`crate::Segment::fsck`].
    pub(crate) fn fsck(&self, repair: bool) -> Result<FsckReport> {
        let shared = self;
        let pause = || std::thread::sleep(SETTLE);
        if !repair {
            return shared
                .dir
                .fsck_settled(pause)
                .map_err(|e| shared.general(e));
        }
        // One description for every lock: dropping it releases them all, on any return.
        let locks = LockFile::open(&shared.location)?;
        let structure = lock_within(&locks, STRUCTURE_LOCK, STRUCTURE_WAIT)?;
        let registered = shared.dir.agent_count().map_err(|e| shared.general(e))?;
        let mut dead = Vec::new();
        for slot in 0..registered {
            if locks.try_lock(AGENT_LOCK_BASE + u64::from(slot))? {
                dead.push(slot);
            }
        }
        let quiescent = structure && dead.len() == registered as usize;
        let report = shared.dir.fsck_repair(&dead, quiescent, pause);
        drop(locks);
        report.map_err(|e| shared.general(e))
    }
}

/// Try to take `byte` for up to `wait`; whether it was taken.
fn lock_within(locks: &LockFile, byte: u64, wait: Duration) -> Result<bool> {
    let started = Instant::now();
    loop {
        if locks.try_lock(byte)? {
            return Ok(true);
        }
        if started.elapsed() >= wait {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

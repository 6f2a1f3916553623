//! `fsck` for a segment: check every structure, and repair what is safe to repair.
//!
//! The checks are `ccs_protocol`'s (see its `fsck` module); this adds what only the operating
//! system can prove. An agent is dead when this process can take its kernel lock (byte
//! 2^32 + slot): holding that lock for the whole repair also keeps any process from attaching
//! as that agent meanwhile. The segment is quiescent when, besides, this process holds the
//! structure lock (byte 0) and every registered agent's lock; only then are leaked slots
//! returned to the free lists. A plain check takes no lock and writes nothing.
//!
//! ```
//! use agent_coherence::{Config, Segment};
//! # let name = format!("doc-fsck-{}", std::process::id());
//! let seg = Segment::create(&name, Config { arena_bytes: 1 << 20, max_payload: 1 << 16, ..Config::default() })?;
//! seg.attach("planner")?.put("task/spec", b"v1")?;
//! let report = seg.fsck(false)?;
//! assert!(report.is_clean());
//! assert_eq!(report.descriptors.live, 1);
//! # drop(seg);
//! # Segment::destroy(&name)?;
//! # Ok::<(), agent_coherence::Error>(())
//! ```

use std::time::{Duration, Instant};

use ccs_os::LockFile;

pub use ccs_protocol::{ArenaUsage, DescriptorUsage, FsckKind, FsckProblem, FsckReport};

use crate::error::Result;
use crate::os_env::{AGENT_LOCK_BASE, STRUCTURE_LOCK};
use crate::segment::Segment;

/// Pause between a pass that found problems and the pass that confirms them, so that writers
/// finish the few instructions in which their slots look leaked.
const SETTLE: Duration = Duration::from_millis(50);

/// How long a repair tries for the structure lock before repairing without it (no leaks then).
const STRUCTURE_WAIT: Duration = Duration::from_secs(2);

impl Segment {
    /// Check every structure of the segment; with `repair`, also repair what is safe.
    ///
    /// Without `repair` nothing is written and no lock is taken: live agents are not disturbed.
    /// With `repair`, the agents whose processes are gone are released (the lines they hold,
    /// the pins they recorded, their pid), each while holding its kernel lock; while that
    /// lock is held, attaching as that agent fails with [`crate::Error::AgentBusy`]. Leaked
    /// descriptors and arena blocks are returned only if no agent is attached at all; the
    /// report's `not_repaired` says so otherwise.
    pub fn fsck(&self, repair: bool) -> Result<FsckReport> {
        let shared = &self.shared;
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

//! Guards: a pinned version lent without copying, and an exclusive hold on an artifact.

#![allow(unsafe_code)] // lending the bytes of a pinned, immutable slot

use std::ops::Deref;
use std::time::Duration;

use ccs_protocol::{Hold, Pinned, ReadInfo};

use crate::agent::{Agent, Version};
use crate::error::{Error, Result};
use crate::segment::Segment;

/// A zero-copy read: one version's bytes, pinned in the segment while the guard lives.
///
/// Newer versions can be written meanwhile; this one stays intact until the guard drops.
pub struct ReadGuard {
    segment: Segment,
    info: ReadInfo,
    pin: Pinned,
}

impl ReadGuard {
    pub(crate) fn new(segment: Segment, info: ReadInfo, pin: Pinned) -> ReadGuard {
        ReadGuard { segment, info, pin }
    }

    /// The pinned version's bytes.
    pub fn bytes(&self) -> &[u8] {
        let Some(first) = self.pin.first_word else {
            return &[];
        };
        let words = self.segment.shared.dir_words();
        // The range was bounds-checked when the slot was pinned and is checked again inside.
        // SAFETY: `pin` pins a published slot, which no protocol-abiding process writes until
        // `drop` releases it; the slice borrows `self`, so it cannot outlive the pin or the mapping.
        let bytes = unsafe { words.pinned_bytes(first, self.pin.len) };
        bytes.unwrap_or(&[])
    }

    /// The pinned version.
    pub fn version(&self) -> Version {
        u64::from(self.info.version)
    }

    /// Whether the agent already held this version (HIT).
    pub fn hit(&self) -> bool {
        self.info.hit
    }
}

impl std::ops::Deref for ReadGuard {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.bytes()
    }
}

impl Drop for ReadGuard {
    fn drop(&mut self) {
        let _ = self.segment.shared.dir.release_pin(self.pin);
    }
}

impl std::fmt::Debug for ReadGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadGuard")
            .field("version", &self.info.version)
            .field("len", &self.pin.len)
            .finish()
    }
}

/// An exclusive hold on an artifact (state E), from [`Agent::acquire`]. Commit a new version
/// with [`WriteGuard::commit`], or give the hold up with [`WriteGuard::release`] (or by
/// dropping the guard).
///
/// ```
/// use std::time::Duration;
/// use agent_coherence::{Config, Error, Segment};
/// # let name = format!("doc-guard-{}", std::process::id());
/// let seg = Segment::create(&name, Config::default())?;
/// let (a, b) = (seg.attach("a")?, seg.attach("b")?);
/// let hold = a.acquire("design", Duration::from_secs(30))?;
/// assert!(matches!(b.acquire("design", Duration::from_secs(30)), Err(Error::Held { .. })));
/// assert_eq!(hold.commit(b"decided")?, 1);
/// # drop((a, b, seg));
/// # Segment::destroy(&name)?;
/// # Ok::<(), Error>(())
/// ```
///
/// `A` is how the guard reaches its agent: `&Agent` from [`Agent::acquire`], or `Arc<Agent>`
/// from [`Agent::acquire_owned`] for a hold kept across calls (a server's session).
pub struct WriteGuard<A: Deref<Target = Agent>> {
    agent: A,
    hold: Option<Hold>,
    key: String,
}

impl<A: Deref<Target = Agent>> WriteGuard<A> {
    pub(crate) fn new(agent: A, hold: Hold, key: String) -> WriteGuard<A> {
        WriteGuard {
            agent,
            hold: Some(hold),
            key,
        }
    }

    fn hold(&self) -> Result<Hold> {
        self.hold.ok_or_else(|| Error::Fenced {
            key: self.key.clone(),
        })
    }

    /// The artifact's version when the hold was taken (0: never written).
    pub fn version(&self) -> Version {
        self.hold.map_or(0, |hold| u64::from(hold.version))
    }

    /// Publish `bytes` as the next version and give the hold up. Refused with
    /// [`Error::Fenced`] if the hold was reclaimed (lease expired): nothing is written then.
    pub fn commit(mut self, bytes: &[u8]) -> Result<Version> {
        let hold = self.hold()?;
        self.hold = None;
        let shared = self.agent.shared();
        let version = shared
            .dir
            .commit(hold, bytes)
            .map(u64::from)
            .map_err(|e| shared.error(e, &self.key))?;
        shared.written(&self.key, version)
    }

    /// Give the hold up without writing. [`Error::Fenced`] if it had been reclaimed already.
    pub fn release(mut self) -> Result<()> {
        let hold = self.hold()?;
        self.hold = None;
        let shared = self.agent.shared();
        shared
            .dir
            .release(hold)
            .map_err(|e| shared.error(e, &self.key))
    }

    /// Extend the lease to `lease` from now. [`Error::Fenced`] if it had been reclaimed.
    pub fn renew(&mut self, lease: Duration) -> Result<()> {
        let hold = self.hold()?;
        let shared = self.agent.shared();
        let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(1);
        shared
            .dir
            .renew(hold, lease_ms)
            .map_err(|e| shared.error(e, &self.key))
    }

    /// The agent holding this guard.
    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    /// The key held.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl<A: Deref<Target = Agent>> Drop for WriteGuard<A> {
    fn drop(&mut self) {
        if let Some(hold) = self.hold.take() {
            let _ = self.agent.shared().dir.release(hold);
        }
    }
}

impl<A: Deref<Target = Agent>> std::fmt::Debug for WriteGuard<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteGuard")
            .field("key", &self.key)
            .field("version", &self.version())
            .finish()
    }
}

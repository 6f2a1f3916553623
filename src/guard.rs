//! Guards: one version's bytes held for reading, and an exclusive hold on an artifact.

use ccs_types::Fenced;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use crate::agent::Agent;
use crate::backend::Hold;
use crate::backend::shm::PinnedRead;
use crate::error::{Error, Result};
use crate::{Read, Version};

/// One version of an artifact, from [`Agent::read`]. On shared memory the version's slot is
/// pinned in the segment while the guard lives and its bytes are lent without copying; on etcd
/// the guard owns a copy of them.
///
/// Newer versions can be written meanwhile; this one stays intact until the guard drops.
///
/// The pin is recorded under the agent, and an agent that is gone (dropped, then attached
/// again under its name, or repaired by `fsck`) has its pins released as a dead holder's: so
/// the guard keeps its agent. From [`Agent::read`] it borrows it (`'a`, the way crossbeam-epoch's
/// `Shared<'g>` borrows its guard), so the agent cannot be dropped while the guard lives:
///
/// ```compile_fail,E0505
/// use agent_coherence::{Config, Segment};
/// # let name = format!("doc-readguard-{}", std::process::id());
/// let seg = Segment::create(&name, Config::default())?;
/// let agent = seg.attach("a")?;
/// agent.put("k", b"v1")?;
/// let guard = agent.read("k")?;
/// drop(agent); // error: `agent` is borrowed by `guard`
/// assert_eq!(&*guard, b"v1");
/// # Ok::<(), agent_coherence::Error>(())
/// ```
///
/// [`Agent::read_owned`] gives a `ReadGuard<'static>` that holds the agent through an `Arc`
/// instead (a buffer handed to another language, a server's response).
pub struct ReadGuard<'a> {
    // Declared first, so the pin is released before the agent the guard may own goes: a
    // pinned read points at that agent's mapping (SAFETY of `SegmentRef::new`: the guard keeps
    // the agent alive, borrowed for `'a` or owned here, for as long as `inner` lives).
    inner: ReadInner,
    /// Never read: it is here to be dropped after `inner`.
    _owner: Option<Arc<Agent>>,
    agent: PhantomData<&'a Agent>,
}

/// What a backend's read leaves the guard: a pinned slot (shared memory) or a copy (etcd).
pub(crate) enum ReadInner {
    Pinned(PinnedRead),
    // Without the `etcd` feature only the uninhabited stand-in would make one.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    Owned(Read),
}

impl<'a> ReadGuard<'a> {
    pub(crate) fn new(_agent: &'a Agent, inner: ReadInner) -> ReadGuard<'a> {
        ReadGuard {
            inner,
            _owner: None,
            agent: PhantomData,
        }
    }

    /// This guard, holding `agent` alive instead of borrowing it.
    pub(crate) fn keeping(self, agent: Arc<Agent>) -> ReadGuard<'static> {
        ReadGuard {
            inner: self.inner,
            _owner: Some(agent),
            agent: PhantomData,
        }
    }

    /// The version's bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.inner {
            ReadInner::Pinned(pin) => pin.bytes(),
            ReadInner::Owned(read) => &read.bytes,
        }
    }

    /// The version.
    pub fn version(&self) -> Version {
        match &self.inner {
            ReadInner::Pinned(pin) => pin.info.version,
            ReadInner::Owned(read) => read.version,
        }
    }

    /// Whether the agent already held this version (HIT).
    pub fn hit(&self) -> bool {
        match &self.inner {
            ReadInner::Pinned(pin) => pin.info.hit,
            ReadInner::Owned(read) => read.hit,
        }
    }
}

impl std::ops::Deref for ReadGuard<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.bytes()
    }
}

impl std::fmt::Debug for ReadGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = match &self.inner {
            ReadInner::Pinned(pin) => pin.len(),
            ReadInner::Owned(read) => read.bytes.len(),
        };
        f.debug_struct("ReadGuard")
            .field("version", &self.version())
            .field("len", &len)
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
/// from [`Agent::acquire_owned`] for a hold kept across calls (a server's session). The guard
/// keeps its agent attached while it lives; the hold itself belongs to the backend that
/// granted it and commits through that backend alone.
pub struct WriteGuard<A: Deref<Target = Agent>> {
    // The hold points at its agent's segment without counting it, so the agent must outlive
    // it: `drop` gives the hold up before the fields are dropped, and the hold is declared
    // first all the same.
    hold: Option<Hold>,
    agent: A,
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

    fn fenced(&self) -> Error {
        Error::Fenced(Fenced {
            key: self.key.clone(),
        })
    }

    /// The artifact's version when the hold was taken (0: never written).
    pub fn version(&self) -> Version {
        self.hold.as_ref().map_or(0, Hold::version)
    }

    /// Publish `bytes` as the next version and give the hold up. Refused with
    /// [`Error::Fenced`] if the hold was reclaimed (lease expired): nothing is written then.
    pub fn commit(mut self, bytes: &[u8]) -> Result<Version> {
        let hold = self.hold.take().ok_or_else(|| self.fenced())?;
        hold.commit(&self.key, bytes)
    }

    /// Give the hold up without writing. [`Error::Fenced`] if it had been reclaimed already.
    pub fn release(mut self) -> Result<()> {
        let hold = self.hold.take().ok_or_else(|| self.fenced())?;
        hold.release(&self.key)
    }

    /// Extend the lease to `lease` from now. [`Error::Fenced`] if it had been reclaimed.
    /// On etcd the lease is rounded up to whole seconds.
    pub fn renew(&mut self, lease: Duration) -> Result<()> {
        match &mut self.hold {
            Some(hold) => hold.renew(&self.key, lease),
            None => Err(self.fenced()),
        }
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
            let _ = hold.release(&self.key);
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

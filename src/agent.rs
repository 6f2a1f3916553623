//! Agents: a named participant attached by this process, and everything it does to artifacts,
//! on whichever backend its segment is on.

use std::time::Duration;

use ccs_protocol::LineRef;

use crate::backend::{Engine, Hold, dispatch};
use crate::error::Result;
use crate::guard::{ReadGuard, WriteGuard};
use crate::segment::{Inner, Segment};
use crate::{Check, Read, Strategy, Version};

/// A pre-resolved artifact key: reads and writes through it skip the key lookup (on shared
/// memory, the directory line is resolved once; on etcd a key is just its text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    line: Option<LineRef>,
    key: String,
}

impl Key {
    /// The key's text.
    pub fn as_str(&self) -> &str {
        &self.key
    }
}

/// An agent's private copy of one artifact, kept by the caller between reads: the MESI
/// cache line itself. [`Agent::refresh`] keeps it current; a HIT costs two loads and leaves
/// the bytes where they are.
///
/// ```
/// use agent_coherence::{Cached, Config, Segment};
/// # let name = format!("doc-cached-{}", std::process::id());
/// let seg = Segment::create(&name, Config::default())?;
/// let (planner, executor) = (seg.attach("planner")?, seg.attach("executor")?);
/// planner.put("plan", b"v1")?;
/// let mut plan = Cached::new(executor.key("plan")?);
/// assert!(!executor.refresh(&mut plan)?);        // MISS: fetched version 1
/// assert!(executor.refresh(&mut plan)?);         // HIT: nothing copied
/// planner.put("plan", b"v2")?;
/// assert!(!executor.refresh(&mut plan)?);        // MISS: the peer's write invalidated it
/// assert_eq!((plan.bytes(), plan.version()), (&b"v2"[..], 2));
/// # drop((planner, executor, seg));
/// # Segment::destroy(&name)?;
/// # Ok::<(), agent_coherence::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Cached {
    pub(crate) key: Key,
    pub(crate) version: Version,
    pub(crate) bytes: Vec<u8>,
}

impl Cached {
    /// An empty copy of the artifact `key`; the first [`Agent::refresh`] fills it.
    pub fn new(key: Key) -> Cached {
        Cached {
            key,
            version: 0,
            bytes: Vec::new(),
        }
    }

    /// The bytes of the version held (empty before the first refresh).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The version held (0 before the first refresh).
    pub fn version(&self) -> Version {
        self.version
    }

    /// The artifact's key.
    pub fn key(&self) -> &Key {
        &self.key
    }
}

/// Something that names an artifact: a `&str` key or a pre-resolved [`Key`].
pub trait ArtifactRef {
    /// The key's text.
    fn key_str(&self) -> &str;
    /// The shared-memory directory line and its generation, if already resolved (`None`: look
    /// the key up). Backends other than shared memory ignore it.
    #[doc(hidden)]
    fn resolved_line(&self) -> Option<LineRef>;
}

impl ArtifactRef for str {
    fn key_str(&self) -> &str {
        self
    }
    fn resolved_line(&self) -> Option<LineRef> {
        None
    }
}

impl ArtifactRef for String {
    fn key_str(&self) -> &str {
        self
    }
    fn resolved_line(&self) -> Option<LineRef> {
        None
    }
}

impl ArtifactRef for Key {
    fn key_str(&self) -> &str {
        &self.key
    }
    #[inline]
    fn resolved_line(&self) -> Option<LineRef> {
        self.line
    }
}

impl<T: ArtifactRef + ?Sized> ArtifactRef for &T {
    fn key_str(&self) -> &str {
        (**self).key_str()
    }
    #[inline]
    fn resolved_line(&self) -> Option<LineRef> {
        (**self).resolved_line()
    }
}

/// A named agent attached by this process. Detaches when dropped; its coherence state (what
/// it read, which copies are valid) stays in the segment for its next attach.
///
/// ```
/// use agent_coherence::{Config, Conflict, Error, Segment};
/// # let name = format!("doc-agent-{}", std::process::id());
/// let seg = Segment::create(&name, Config::default())?;
/// let (planner, executor) = (seg.attach("planner")?, seg.attach("executor")?);
///
/// planner.put("plan", b"v1")?;
/// let plan = executor.get("plan")?;               // MISS: fetched version 1
/// planner.put("plan", b"v2")?;                    // invalidates the executor's copy
/// assert!(!executor.check("plan")?.is_current());
/// match executor.put("plan", b"built on v1") {    // stale: refused, nothing written
///     Err(Error::Conflict(Conflict { current: 2, yours: 1, .. })) => {}
///     other => panic!("{other:?}"),
/// }
/// assert_eq!(executor.get("plan")?.bytes, b"v2"); // MISS again, now current
/// # drop((planner, executor, seg));
/// # Segment::destroy(&name)?;
/// # Ok::<(), agent_coherence::Error>(())
/// ```
pub struct Agent {
    segment: Segment,
    name: String,
    pub(crate) engine: Engine,
}

impl Agent {
    pub(crate) fn attach(segment: &Segment, name: &str, strategy: Strategy) -> Result<Agent> {
        let engine = match &segment.inner {
            Inner::Shm(shared) => Engine::Shm(shared.attach_with(name, strategy)?),
            Inner::Etcd(cluster) => Engine::Etcd(Box::new(cluster.attach_with(name, strategy)?)),
        };
        Ok(Agent {
            segment: segment.clone(),
            name: name.to_owned(),
            engine,
        })
    }

    /// The freshness strategy it attached with.
    pub fn strategy(&self) -> Strategy {
        dispatch!(Engine, &self.engine, a => a.strategy())
    }

    /// The agent's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The segment this agent is attached to.
    pub fn segment(&self) -> &Segment {
        &self.segment
    }

    /// Resolve `key` once, for repeated use. On shared memory this creates its directory entry
    /// if needed (a slot of `max_artifacts`); on etcd it only checks the key.
    pub fn key(&self, key: &str) -> Result<Key> {
        let line = dispatch!(Engine, &self.engine, a => a.resolve(key))?;
        Ok(Key {
            line,
            key: key.to_owned(),
        })
    }

    /// Read an artifact: its bytes, version, and whether this agent's copy was current (HIT).
    /// A HIT takes no lock, no system call and no round trip. After a MISS the agent holds the
    /// version read.
    pub fn get(&self, artifact: impl ArtifactRef) -> Result<Read> {
        dispatch!(Engine, &self.engine, a => a.get(&artifact))
    }

    /// A linearizable read, on etcd: as [`Agent::get`], but the artifact's current revision
    /// is first confirmed by the cluster (one round trip even for a HIT), so the version
    /// returned was the current one at a moment during the call. A plain `get` only promises
    /// no stale HIT once a write has *returned*; while a write waits for acknowledgements a
    /// holder may still HIT the previous version after another agent read the new one
    /// (`docs/protocol-etcd.md`, "What a read promises"). [`Error::Unsupported`] on shared
    /// memory, whose reads have the same window and no cluster to confirm with.
    ///
    /// [`Error::Unsupported`]: crate::Error::Unsupported
    pub fn get_linearizable(&self, artifact: impl ArtifactRef) -> Result<Read> {
        dispatch!(Engine, &self.engine, a => a.get_linearizable(&artifact))
    }

    /// [`Agent::get`] into a caller's buffer (reused across calls to avoid allocation).
    /// Returns (version, hit).
    #[inline]
    pub fn get_into(
        &self,
        artifact: impl ArtifactRef,
        buffer: &mut Vec<u8>,
    ) -> Result<(Version, bool)> {
        dispatch!(Engine, &self.engine, a => a.get_into(&artifact, buffer))
    }

    /// Read an artifact without copying it (on shared memory): the guard pins that version,
    /// which stays intact and readable while the guard lives, even if newer versions are
    /// written meanwhile. On etcd the guard owns a copy of the bytes.
    ///
    /// The guard borrows the agent: the pin is recorded under it, and must not outlive it
    /// (see [`ReadGuard`]). [`Agent::read_owned`] gives a guard that keeps the agent instead.
    pub fn read(&self, artifact: impl ArtifactRef) -> Result<ReadGuard<'_>> {
        let inner = dispatch!(Engine, &self.engine, a => a.read(&artifact))?;
        Ok(ReadGuard::new(self, inner))
    }

    /// [`Agent::read`] for a guard that must outlive the borrow: it keeps the agent alive
    /// through the `Arc` (for example a buffer lent to Python).
    pub fn read_owned(
        self: &std::sync::Arc<Self>,
        artifact: impl ArtifactRef,
    ) -> Result<ReadGuard<'static>> {
        Ok(self.read(artifact)?.keeping(std::sync::Arc::clone(self)))
    }

    /// Whether this agent's copy is current, without reading the artifact's bytes.
    pub fn check(&self, artifact: impl ArtifactRef) -> Result<Check> {
        dispatch!(Engine, &self.engine, a => a.check(&artifact))
    }

    /// Bring a private copy up to date. A HIT (`Ok(true)`) when this agent's copy is still
    /// valid and `cached` holds that version: on shared memory two atomic loads, nothing
    /// copied; on etcd a local check, no round trip. Otherwise a MISS (`Ok(false)`): the
    /// current version is fetched into `cached`, reusing its buffer.
    #[inline]
    pub fn refresh(&self, cached: &mut Cached) -> Result<bool> {
        dispatch!(Engine, &self.engine, a => a.refresh(cached))
    }

    /// Whether this agent's copy is current, from local state alone (on shared memory its
    /// valid bit: one atomic load). A peer's write clears it before that write returns, so a
    /// reader can spin on it to notice an invalidation. `false` for an unknown key.
    #[inline]
    pub fn is_valid(&self, artifact: impl ArtifactRef) -> Result<bool> {
        dispatch!(Engine, &self.engine, a => a.is_valid(&artifact))
    }

    /// Whether a writer holds the artifact now (on shared memory: from a `put`'s take of the
    /// artifact to its publication, or from an `acquire` to its commit or release); `false`
    /// for an unknown key. One atomic load of a cache line the writer changes only to take
    /// the artifact and to publish, so a reader that saw [`Agent::is_valid`] turn `false` and
    /// wants the new version as soon as it is published spins on this, then reads; a read
    /// that returns the version it had means the writer had invalidated but not yet taken the
    /// artifact (a put invalidates first when it can), or gave up: spin again. Spinning on
    /// `read` or `get` instead reads the version it already has again and again, on cache
    /// lines the writer needs. [`Error::Unsupported`](crate::Error::Unsupported) on etcd,
    /// where a write is one transaction (wait with [`Agent::wait_changed`]).
    #[inline]
    pub fn being_written(&self, artifact: impl ArtifactRef) -> Result<bool> {
        dispatch!(Engine, &self.engine, a => a.being_written(&artifact))
    }

    /// Write an artifact, conditional on this agent's own view: refused with
    /// [`Error::Conflict`](crate::Error::Conflict) if it last read an older version than the current one. A first
    /// write, or a write by an agent that never read the artifact, is admitted. Returns the new
    /// version; every other agent's copy is invalid before this returns.
    pub fn put(&self, artifact: impl ArtifactRef, bytes: &[u8]) -> Result<Version> {
        dispatch!(Engine, &self.engine, a => a.put(&artifact, bytes))
    }

    /// Write only if the artifact is at version `expected` (0: never written): compare-and-set.
    pub fn put_if(
        &self,
        artifact: impl ArtifactRef,
        expected: Version,
        bytes: &[u8],
    ) -> Result<Version> {
        dispatch!(Engine, &self.engine, a => a.put_if(&artifact, expected, bytes))
    }

    /// Overwrite whatever version is there. Use sparingly: this is the write that loses updates.
    pub fn put_blind(&self, artifact: impl ArtifactRef, bytes: &[u8]) -> Result<Version> {
        dispatch!(Engine, &self.engine, a => a.put_blind(&artifact, bytes))
    }

    /// Delete an artifact, conditional on this agent's view like [`Agent::put`]. The deletion is
    /// a version of its own; a later write continues from it.
    pub fn delete(&self, artifact: impl ArtifactRef) -> Result<Version> {
        dispatch!(Engine, &self.engine, a => a.delete(&artifact))
    }

    /// Take the artifact exclusively (E) for `lease`: no one else can write it until this
    /// agent commits or releases, or the lease runs out (then the hold is reclaimed and this
    /// agent fenced). Fails at once with [`Error::Held`](crate::Error::Held) if a live agent holds it. On etcd the
    /// lease is rounded up to whole seconds.
    pub fn acquire(
        &self,
        artifact: impl ArtifactRef,
        lease: Duration,
    ) -> Result<WriteGuard<&Agent>> {
        let hold = self.take(&artifact, lease)?;
        Ok(WriteGuard::new(self, hold, artifact.key_str().to_owned()))
    }

    /// [`Agent::acquire`] for a hold that must outlive the borrow: the guard keeps the agent
    /// alive through the `Arc` (for example a server holding E across requests).
    pub fn acquire_owned(
        self: &std::sync::Arc<Self>,
        artifact: impl ArtifactRef,
        lease: Duration,
    ) -> Result<WriteGuard<std::sync::Arc<Agent>>> {
        let hold = self.take(&artifact, lease)?;
        Ok(WriteGuard::new(
            std::sync::Arc::clone(self),
            hold,
            artifact.key_str().to_owned(),
        ))
    }

    fn take(&self, artifact: &impl ArtifactRef, lease: Duration) -> Result<Hold> {
        dispatch!(Engine, &self.engine, a => a.acquire(artifact, lease))
    }

    /// Block until the artifact's version exceeds `since`, or `timeout` passes (`None`:
    /// forever). [`Error::NotFound`](crate::Error::NotFound) if the key was never written. Returns the new version,
    /// or `None` on timeout. On shared memory it sleeps in the kernel (futex) and writers make
    /// the wake-up call only when someone waits; on etcd it rides a watch.
    pub fn wait_changed(
        &self,
        artifact: impl ArtifactRef,
        since: Version,
        timeout: Option<Duration>,
    ) -> Result<Option<Version>> {
        dispatch!(Engine, &self.engine, a => a.wait_changed(&artifact, since, timeout))
    }

    /// Keys of existing artifacts starting with `prefix`, sorted.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.segment.list(prefix)
    }
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Agent");
        d.field("name", &self.name);
        if let Engine::Shm(a) = &self.engine {
            d.field("slot", &a.id.slot);
        }
        d.field("backend", &self.segment.backend())
            .finish_non_exhaustive()
    }
}

//! Agents: a named participant attached by this process, and everything it does to artifacts.

use std::time::Duration;

use ccs_os::LockFile;
use ccs_protocol::{AgentId, Condition, ProtocolError, ReadInfo, WaitResult};

use crate::error::{Error, Result};
use crate::guard::{ReadGuard, WriteGuard};
use crate::segment::{Segment, Shared};

/// An artifact version: starts at 1 and grows by exactly 1 per write (a delete counts as one).
pub type Version = u64;

/// The result of [`Agent::get`]: the bytes, their version, and whether the agent's copy was
/// already current (a HIT) or had to be fetched (a MISS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// The payload.
    pub bytes: Vec<u8>,
    /// Its version.
    pub version: Version,
    /// The agent already held this version.
    pub hit: bool,
}

/// The agent's standing on one artifact, from [`Agent::check`], without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// The version the agent last read or wrote; `None` if it never did.
    pub held: Option<Version>,
    /// The artifact's current version (0: never written).
    pub current: Version,
    /// The agent's copy is current: its next read would be a HIT.
    pub valid: bool,
}

impl Check {
    /// Whether the agent holds the current version.
    pub fn is_current(&self) -> bool {
        self.valid && self.held == Some(self.current)
    }
}

/// A pre-resolved artifact key: reads and writes through it skip the key lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    line: u32,
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
    key: Key,
    version: Version,
    bytes: Vec<u8>,
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
    /// The directory line, if already resolved.
    fn resolved_line(&self) -> Option<u32>;
}

impl ArtifactRef for str {
    fn key_str(&self) -> &str {
        self
    }
    fn resolved_line(&self) -> Option<u32> {
        None
    }
}

impl ArtifactRef for String {
    fn key_str(&self) -> &str {
        self
    }
    fn resolved_line(&self) -> Option<u32> {
        None
    }
}

impl ArtifactRef for Key {
    fn key_str(&self) -> &str {
        &self.key
    }
    fn resolved_line(&self) -> Option<u32> {
        Some(self.line)
    }
}

impl<T: ArtifactRef + ?Sized> ArtifactRef for &T {
    fn key_str(&self) -> &str {
        (**self).key_str()
    }
    fn resolved_line(&self) -> Option<u32> {
        (**self).resolved_line()
    }
}

/// A named agent attached by this process. Detaches when dropped; its coherence state (what
/// it read, which copies are valid) stays in the segment for its next attach.
///
/// ```
/// use agent_coherence::{Config, Error, Segment};
/// # let name = format!("doc-agent-{}", std::process::id());
/// let seg = Segment::create(&name, Config::default())?;
/// let (planner, executor) = (seg.attach("planner")?, seg.attach("executor")?);
///
/// planner.put("plan", b"v1")?;
/// let plan = executor.get("plan")?;               // MISS: fetched version 1
/// planner.put("plan", b"v2")?;                    // invalidates the executor's copy
/// assert!(!executor.check("plan")?.is_current());
/// match executor.put("plan", b"built on v1") {    // stale: refused, nothing written
///     Err(Error::Conflict { current: 2, yours: 1, .. }) => {}
///     other => panic!("{other:?}"),
/// }
/// assert_eq!(executor.get("plan")?.bytes, b"v2"); // MISS again, now current
/// # drop((planner, executor, seg));
/// # Segment::destroy(&name)?;
/// # Ok::<(), agent_coherence::Error>(())
/// ```
pub struct Agent {
    segment: Segment,
    pub(crate) id: AgentId,
    name: String,
    // Holds this agent's liveness lock; closing it (drop, or death) releases it.
    _lock: LockFile,
}

impl Agent {
    pub(crate) fn new(segment: Segment, id: AgentId, name: String, lock: LockFile) -> Agent {
        Agent {
            segment,
            id,
            name,
            _lock: lock,
        }
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.segment.shared
    }

    /// The freshness strategy it attached with.
    pub fn strategy(&self) -> crate::Strategy {
        crate::Strategy::from_wire(self.id.strategy)
    }

    /// The agent's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The segment this agent is attached to.
    pub fn segment(&self) -> &Segment {
        &self.segment
    }

    /// Resolve `key` once, creating its directory entry if needed, for repeated use.
    pub fn key(&self, key: &str) -> Result<Key> {
        let line = self
            .shared()
            .dir
            .find_or_insert_key(key)
            .map_err(|e| self.shared().error(e, key))?;
        Ok(Key {
            line,
            key: key.to_owned(),
        })
    }

    fn existing_line(&self, artifact: &(impl ArtifactRef + ?Sized)) -> Result<u32> {
        if let Some(line) = artifact.resolved_line() {
            return Ok(line);
        }
        let key = artifact.key_str();
        match self.shared().dir.find_key(key) {
            Ok(Some(line)) => Ok(line),
            Ok(None) => Err(Error::NotFound {
                key: key.to_owned(),
            }),
            Err(e) => Err(self.shared().error(e, key)),
        }
    }

    fn line_for_write(&self, artifact: &(impl ArtifactRef + ?Sized)) -> Result<u32> {
        match artifact.resolved_line() {
            Some(line) => Ok(line),
            None => {
                let key = artifact.key_str();
                self.shared()
                    .dir
                    .find_or_insert_key(key)
                    .map_err(|e| self.shared().error(e, key))
            }
        }
    }

    /// Turn a protocol error about `artifact` into a facade error. Borrows, so the success path
    /// allocates nothing.
    fn fail<'a>(
        &'a self,
        artifact: &'a (impl ArtifactRef + ?Sized),
    ) -> impl Fn(ProtocolError) -> Error + 'a {
        move |e| self.shared().error(e, artifact.key_str())
    }

    /// Read an artifact: its bytes, version, and whether this agent's copy was current (HIT).
    /// A HIT takes no lock and no system call. After a MISS the agent holds the version read.
    pub fn get(&self, artifact: impl ArtifactRef) -> Result<Read> {
        let mut bytes = Vec::new();
        let (version, hit) = self.get_into(&artifact, &mut bytes)?;
        Ok(Read {
            bytes,
            version,
            hit,
        })
    }

    /// [`Agent::get`] into a caller's buffer (reused across calls to avoid allocation).
    /// Returns (version, hit).
    pub fn get_into(
        &self,
        artifact: impl ArtifactRef,
        buffer: &mut Vec<u8>,
    ) -> Result<(Version, bool)> {
        let line = self.existing_line(&artifact)?;
        let info: ReadInfo = self
            .shared()
            .dir
            .read(self.id, line, buffer)
            .map_err(self.fail(&artifact))?;
        Ok((u64::from(info.version), info.hit))
    }

    /// Read an artifact without copying it: the guard pins that version, which stays intact
    /// and readable while the guard lives, even if newer versions are written meanwhile.
    pub fn read(&self, artifact: impl ArtifactRef) -> Result<ReadGuard> {
        let line = self.existing_line(&artifact)?;
        let (info, pin) = self
            .shared()
            .dir
            .read_pinned(self.id, line)
            .map_err(self.fail(&artifact))?;
        Ok(ReadGuard::new(self.segment.clone(), info, pin))
    }

    /// Whether this agent's copy is current, without reading the artifact.
    pub fn check(&self, artifact: impl ArtifactRef) -> Result<Check> {
        let line = match self.existing_line(&artifact) {
            Ok(line) => line,
            Err(Error::NotFound { .. }) => {
                return Ok(Check {
                    held: None,
                    current: 0,
                    valid: false,
                });
            }
            Err(e) => return Err(e),
        };
        let view = self
            .shared()
            .dir
            .check(self.id, line)
            .map_err(self.fail(&artifact))?;
        Ok(Check {
            held: (view.held != 0).then_some(u64::from(view.held)),
            current: u64::from(view.current),
            valid: view.valid,
        })
    }

    /// Bring a private copy up to date. A HIT (`Ok(true)`) when this agent's copy is still
    /// valid and `cached` holds that version: two atomic loads, nothing copied. Otherwise a MISS
    /// (`Ok(false)`): the current version is fetched into `cached`, reusing its buffer.
    pub fn refresh(&self, cached: &mut Cached) -> Result<bool> {
        let line = cached.key.line;
        let held = u32::try_from(cached.version).unwrap_or(0);
        let dir = &self.shared().dir;
        if dir
            .serve_private(self.id, line, held, cached.bytes.len() as u64)
            .map_err(self.fail(&cached.key))?
        {
            return Ok(true);
        }
        let info = dir
            .read(self.id, line, &mut cached.bytes)
            .map_err(self.fail(&cached.key))?;
        cached.version = u64::from(info.version);
        Ok(false)
    }

    /// Whether this agent's copy is current, from its valid bit alone: one atomic load, no
    /// version read. A peer's write clears it before that write returns, so a reader can spin
    /// on it to notice an invalidation. `false` for an unknown key.
    pub fn is_valid(&self, artifact: impl ArtifactRef) -> Result<bool> {
        let line = match self.existing_line(&artifact) {
            Ok(line) => line,
            Err(Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        self.shared()
            .dir
            .is_valid(self.id, line)
            .map_err(self.fail(&artifact))
    }

    /// Write an artifact, conditional on this agent's own view: refused with
    /// [`Error::Conflict`] if it last read an older version than the current one. A first
    /// write, or a write by an agent that never read the artifact, is admitted. Returns the new
    /// version; every other agent's copy is invalid before this returns.
    pub fn put(&self, artifact: impl ArtifactRef, bytes: &[u8]) -> Result<Version> {
        self.write(&artifact, Some(bytes), Condition::View)
    }

    /// Write only if the artifact is at version `expected` (0: never written): compare-and-set.
    pub fn put_if(
        &self,
        artifact: impl ArtifactRef,
        expected: Version,
        bytes: &[u8],
    ) -> Result<Version> {
        match u32::try_from(expected) {
            Ok(expected) => self.write(&artifact, Some(bytes), Condition::Version(expected)),
            Err(_) => {
                let current = self.check(&artifact)?.current;
                Err(Error::Conflict {
                    key: artifact.key_str().to_owned(),
                    current,
                    yours: expected,
                })
            }
        }
    }

    /// Overwrite whatever version is there. Use sparingly: this is the write that loses updates.
    pub fn put_blind(&self, artifact: impl ArtifactRef, bytes: &[u8]) -> Result<Version> {
        self.write(&artifact, Some(bytes), Condition::Blind)
    }

    /// Delete an artifact, conditional on this agent's view like [`Agent::put`]. The deletion is
    /// a version of its own; a later write continues from it.
    pub fn delete(&self, artifact: impl ArtifactRef) -> Result<Version> {
        let line = self.existing_line(&artifact)?;
        let version = self
            .shared()
            .dir
            .delete(self.id, line, Condition::View)
            .map_err(self.fail(&artifact))?;
        self.shared()
            .written(artifact.key_str(), u64::from(version))
    }

    fn write(
        &self,
        artifact: &impl ArtifactRef,
        bytes: Option<&[u8]>,
        condition: Condition,
    ) -> Result<Version> {
        let line = self.line_for_write(artifact)?;
        let dir = &self.shared().dir;
        let version = match bytes {
            Some(bytes) => dir.put(self.id, line, bytes, condition),
            None => dir.delete(self.id, line, condition),
        }
        .map_err(self.fail(artifact))?;
        self.shared()
            .written(artifact.key_str(), u64::from(version))
    }

    /// Take the artifact exclusively (E) for `lease`: no one else can write it until this
    /// agent commits or releases, or the lease runs out (then the hold is reclaimed and this
    /// agent fenced). Fails at once with [`Error::Held`] if a live agent holds it.
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

    fn take(&self, artifact: &impl ArtifactRef, lease: Duration) -> Result<ccs_protocol::Hold> {
        let line = self.line_for_write(artifact)?;
        let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(1);
        self.shared()
            .dir
            .acquire(self.id, line, lease_ms)
            .map_err(self.fail(artifact))
    }

    /// Block until the artifact's version exceeds `since`, or `timeout` passes (`None`:
    /// forever). [`Error::NotFound`] if the key was never written. Returns the new version, or `None` on timeout. Sleeps in the kernel (futex)
    /// across processes; writers make the wake-up call only when someone waits.
    pub fn wait_changed(
        &self,
        artifact: impl ArtifactRef,
        since: Version,
        timeout: Option<Duration>,
    ) -> Result<Option<Version>> {
        let line = self.existing_line(&artifact)?;
        let since = u32::try_from(since).unwrap_or(u32::MAX);
        let timeout_ms = timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
        match self
            .shared()
            .dir
            .wait_changed(line, since, timeout_ms)
            .map_err(self.fail(&artifact))?
        {
            WaitResult::Changed(version) => Ok(Some(u64::from(version))),
            WaitResult::TimedOut(_) => Ok(None),
        }
    }

    /// Keys of existing artifacts starting with `prefix`, sorted.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.segment.list(prefix)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // Detaching only records the absence; the kernel lock closes with `_lock`.
        let _ = self.shared().dir.detach(self.id);
    }
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("name", &self.name)
            .field("slot", &self.id.slot)
            .finish_non_exhaustive()
    }
}

//! A shared-memory agent: its slot in the agent table, its kernel liveness lock, and every
//! operation on artifacts, on the segment's lock-free directory (`ccs_protocol`).

use ccs_types::{Conflict, NotFound};
use std::sync::Arc;
use std::time::Duration;

use ccs_os::LockFile;
use ccs_protocol::{AgentId, Condition, ProtocolError, WaitResult};

use crate::agent::{ArtifactRef, Cached};
use crate::backend::Hold;
use crate::backend::shm::guard::PinnedRead;
use crate::backend::shm::hold::{self, lease_ms};
use crate::backend::shm::segment::Shared;
use crate::backend::shm::strategy;
use crate::error::{Error, Result};
use crate::guard::ReadInner;
use crate::{Check, Read, Strategy, Version};

/// An agent attached to a shared-memory segment by this process. Detaches when dropped; its
/// coherence state stays in the segment for its next attach.
pub(crate) struct Agent {
    pub(crate) shared: Arc<Shared>,
    pub(crate) id: AgentId,
    // Holds this agent's liveness lock; closing it (drop, or death) releases it.
    _lock: LockFile,
}

impl Agent {
    pub(crate) fn new(shared: Arc<Shared>, id: AgentId, lock: LockFile) -> Agent {
        Agent {
            shared,
            id,
            _lock: lock,
        }
    }

    pub(crate) fn strategy(&self) -> Strategy {
        strategy::from_wire(self.id.strategy)
    }

    /// Resolve `key` to its directory line, creating the entry if needed.
    pub(crate) fn resolve(&self, key: &str) -> Result<Option<u32>> {
        self.key(key).map(Some)
    }

    fn key(&self, key: &str) -> Result<u32> {
        self.shared
            .dir
            .find_or_insert_key(key)
            .map_err(|e| self.shared.error(e, key))
    }

    /// The line of an existing artifact: a resolved [`crate::Key`]'s own, else a lookup.
    #[inline]
    fn existing_line(&self, artifact: &(impl ArtifactRef + ?Sized)) -> Result<u32> {
        match artifact.resolved_line() {
            Some(line) => Ok(line),
            None => self.find_line(artifact.key_str()),
        }
    }

    /// Look an existing key up. Out of line, so that the paths of a resolved key stay a few
    /// instructions (and inline into the caller): `Key` holds an `Option` of its line, and the
    /// lookup would otherwise be compiled into every HIT path.
    #[inline(never)]
    fn find_line(&self, key: &str) -> Result<u32> {
        match self.shared.dir.find_key(key) {
            Ok(Some(line)) => Ok(line),
            Ok(None) => Err(Error::NotFound(NotFound {
                key: key.to_owned(),
            })),
            Err(e) => Err(self.shared.error(e, key)),
        }
    }

    fn line_for_write(&self, artifact: &(impl ArtifactRef + ?Sized)) -> Result<u32> {
        match artifact.resolved_line() {
            Some(line) => Ok(line),
            None => self.key(artifact.key_str()),
        }
    }

    /// Turn a protocol error about `artifact` into a facade error. Borrows, so the success path
    /// allocates nothing.
    fn fail<'a>(
        &'a self,
        artifact: &'a (impl ArtifactRef + ?Sized),
    ) -> impl Fn(ProtocolError) -> Error + 'a {
        move |e| self.shared.error(e, artifact.key_str())
    }

    #[inline]
    pub(crate) fn get_into(
        &self,
        artifact: &(impl ArtifactRef + ?Sized),
        buffer: &mut Vec<u8>,
    ) -> Result<(Version, bool)> {
        let line = self.existing_line(artifact)?;
        let info = self
            .shared
            .dir
            .read(self.id, line, buffer)
            .map_err(self.fail(artifact))?;
        Ok((u64::from(info.version), info.hit))
    }

    pub(crate) fn get(&self, artifact: &(impl ArtifactRef + ?Sized)) -> Result<Read> {
        let mut bytes = Vec::new();
        let (version, hit) = self.get_into(artifact, &mut bytes)?;
        Ok(Read {
            bytes,
            version,
            hit,
        })
    }

    pub(crate) fn get_linearizable(&self, _: &(impl ArtifactRef + ?Sized)) -> Result<Read> {
        Err(Error::Unsupported {
            what: "a linearizable read (get_linearizable)",
            backend: crate::Backend::SharedMemory,
            why: "a shared-memory HIT is served from the segment with no authority to confirm the current version with; use get",
        })
    }

    /// A zero-copy read: the version's slot stays pinned while the guard lives.
    pub(crate) fn read(&self, artifact: &(impl ArtifactRef + ?Sized)) -> Result<ReadInner> {
        let line = self.existing_line(artifact)?;
        let (info, pin) = self
            .shared
            .dir
            .read_pinned(self.id, line)
            .map_err(self.fail(artifact))?;
        let pinned = PinnedRead::new(Arc::clone(&self.shared), info, pin);
        Ok(ReadInner::Pinned(pinned))
    }

    pub(crate) fn check(&self, artifact: &(impl ArtifactRef + ?Sized)) -> Result<Check> {
        let line = match self.existing_line(artifact) {
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
            .shared
            .dir
            .check(self.id, line)
            .map_err(self.fail(artifact))?;
        Ok(Check {
            // A dropped view (`ccs_protocol::DROPPED_VIEW`) holds no known version.
            held: (view.held != 0 && view.held != ccs_protocol::DROPPED_VIEW)
                .then_some(u64::from(view.held)),
            current: u64::from(view.current),
            valid: view.valid,
        })
    }

    /// A HIT is two atomic loads (`serve_private`); a MISS fetches into `cached`'s buffer.
    #[inline]
    pub(crate) fn refresh(&self, cached: &mut Cached) -> Result<bool> {
        let line = self.existing_line(&cached.key)?;
        let held = u32::try_from(cached.version).unwrap_or(0);
        let dir = &self.shared.dir;
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

    #[inline]
    pub(crate) fn is_valid(&self, artifact: &(impl ArtifactRef + ?Sized)) -> Result<bool> {
        let line = match self.existing_line(artifact) {
            Ok(line) => line,
            Err(Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        self.shared
            .dir
            .is_valid(self.id, line)
            .map_err(self.fail(artifact))
    }

    pub(crate) fn put(
        &self,
        artifact: &(impl ArtifactRef + ?Sized),
        bytes: &[u8],
    ) -> Result<Version> {
        self.write(artifact, bytes, Condition::View)
    }

    pub(crate) fn put_blind(
        &self,
        artifact: &(impl ArtifactRef + ?Sized),
        bytes: &[u8],
    ) -> Result<Version> {
        self.write(artifact, bytes, Condition::Blind)
    }

    fn write(
        &self,
        artifact: &(impl ArtifactRef + ?Sized),
        bytes: &[u8],
        condition: Condition,
    ) -> Result<Version> {
        let line = self.line_for_write(artifact)?;
        let version = self
            .shared
            .dir
            .put(self.id, line, bytes, condition)
            .map_err(self.fail(artifact))?;
        self.shared.written(artifact.key_str(), u64::from(version))
    }

    pub(crate) fn put_if(
        &self,
        artifact: &(impl ArtifactRef + ?Sized),
        expected: Version,
        bytes: &[u8],
    ) -> Result<Version> {
        match u32::try_from(expected) {
            Ok(expected) => self.write(artifact, bytes, Condition::Version(expected)),
            // No version this segment can hold: the compare fails as it would in the directory.
            Err(_) => Err(Error::Conflict(Conflict {
                key: artifact.key_str().to_owned(),
                current: self.check(artifact)?.current,
                yours: expected,
            })),
        }
    }

    pub(crate) fn delete(&self, artifact: &(impl ArtifactRef + ?Sized)) -> Result<Version> {
        let line = self.existing_line(artifact)?;
        let version = self
            .shared
            .dir
            .delete(self.id, line, Condition::View)
            .map_err(self.fail(artifact))?;
        self.shared.written(artifact.key_str(), u64::from(version))
    }

    pub(crate) fn acquire(
        &self,
        artifact: &(impl ArtifactRef + ?Sized),
        lease: Duration,
    ) -> Result<Hold> {
        let line = self.line_for_write(artifact)?;
        let hold = self
            .shared
            .dir
            .acquire(self.id, line, lease_ms(lease))
            .map_err(self.fail(artifact))?;
        Ok(Hold::Shm(hold::Hold {
            shared: Arc::clone(&self.shared),
            hold,
            key: artifact.key_str().to_owned(),
        }))
    }

    pub(crate) fn wait_changed(
        &self,
        artifact: &(impl ArtifactRef + ?Sized),
        since: Version,
        timeout: Option<Duration>,
    ) -> Result<Option<Version>> {
        let line = self.existing_line(artifact)?;
        let since = u32::try_from(since).unwrap_or(u32::MAX);
        let timeout_ms = timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
        match self
            .shared
            .dir
            .wait_changed(line, since, timeout_ms)
            .map_err(self.fail(artifact))?
        {
            WaitResult::Changed(version) => Ok(Some(u64::from(version))),
            WaitResult::TimedOut(_) => Ok(None),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // Detaching only records the absence; the kernel lock closes with `_lock`.
        let _ = self.shared.dir.detach(self.id);
    }
}

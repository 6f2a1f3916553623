//! A shared-memory agent: its slot in the agent table, its kernel liveness lock, and every
//! operation on artifacts, on the segment's lock-free directory (`ccs_protocol`).

use ccs_types::NotFound;
use std::sync::Arc;
use std::time::Duration;

use ccs_os::LockFile;
use ccs_protocol::{AgentId, Condition, LineRef, ProtocolError, WaitResult};

use crate::agent::{ArtifactRef, Cached};
use crate::backend::Hold;
use crate::backend::shm::guard::PinnedRead;
use crate::backend::shm::hold::{self, lease_ms};
use crate::backend::shm::segment::Shared;
use crate::backend::shm::segment_ref::SegmentRef;
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

    /// Resolve `key` to its directory line and the line's generation, creating the entry if
    /// needed (on the line of a deleted key if the directory is full).
    pub(crate) fn resolve(&self, key: &str) -> Result<Option<LineRef>> {
        self.key(key).map(Some)
    }

    fn key(&self, key: &str) -> Result<LineRef> {
        self.shared
            .dir
            .insert_key(self.id, key)
            .map_err(|e| self.shared.error(e, key))
    }

    /// Run `op` on `artifact`'s line (created if `create`). If the line was given to another
    /// key since it was resolved (`LineReused`: nothing was read or written), resolve the key
    /// again by its text and retry: a [`crate::Key`] never reaches another key's data. The
    /// first attempt is all a HIT runs; retries and errors are out of line.
    #[inline]
    fn on_line<T>(
        &self,
        artifact: &(impl ArtifactRef + ?Sized),
        create: bool,
        mut op: impl FnMut(LineRef) -> Result<T, ProtocolError>,
    ) -> Result<T> {
        let at = if create {
            self.line_for_write(artifact)?
        } else {
            self.existing_line(artifact)?
        };
        match op(at) {
            Ok(value) => Ok(value),
            Err(error) => self.on_line_again(artifact, create, op, error),
        }
    }

    #[cold]
    #[inline(never)]
    fn on_line_again<T>(
        &self,
        artifact: &(impl ArtifactRef + ?Sized),
        create: bool,
        mut op: impl FnMut(LineRef) -> Result<T, ProtocolError>,
        mut error: ProtocolError,
    ) -> Result<T> {
        for _ in 0..MAX_RESOLVES {
            if error != ProtocolError::LineReused {
                break;
            }
            let at = if create {
                self.key(artifact.key_str())?
            } else {
                self.find_line(artifact.key_str())?
            };
            match op(at) {
                Ok(value) => return Ok(value),
                Err(again) => error = again,
            }
        }
        Err(self.shared.error(error, artifact.key_str()))
    }

    /// The line of an existing artifact: a resolved [`crate::Key`]'s own, else a lookup.
    #[inline]
    fn existing_line(&self, artifact: &(impl ArtifactRef + ?Sized)) -> Result<LineRef> {
        match artifact.resolved_line() {
            Some(line) => Ok(line),
            None => self.find_line(artifact.key_str()),
        }
    }

    /// Look an existing key up. Out of line, so that the paths of a resolved key stay a few
    /// instructions (and inline into the caller): `Key` holds an `Option` of its line, and the
    /// lookup would otherwise be compiled into every HIT path.
    #[inline(never)]
    fn find_line(&self, key: &str) -> Result<LineRef> {
        match self.shared.dir.find_key_ref(key) {
            Ok(Some(line)) => Ok(line),
            Ok(None) => {
                // Seen absent: the agent may now re-create the key even if it read an earlier
                // incarnation whose line was reused (docs/protocol.md §3.8).
                self.shared
                    .dir
                    .saw_absent(self.id, key)
                    .map_err(|e| self.shared.error(e, key))?;
                Err(Error::NotFound(NotFound {
                    key: key.to_owned(),
                }))
            }
            Err(e) => Err(self.shared.error(e, key)),
        }
    }

    fn line_for_write(&self, artifact: &(impl ArtifactRef + ?Sized)) -> Result<LineRef> {
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

    /// A resolved key's HIT runs inline (`copy_hit_at`: the loads, the copy, the generation
    /// check); anything else, and a key looked up by its text, goes to the general path.
    #[inline]
    pub(crate) fn get_into(
        &self,
        artifact: &(impl ArtifactRef + ?Sized),
        buffer: &mut Vec<u8>,
    ) -> Result<(Version, bool)> {
        if let Some(at) = artifact.resolved_line()
            && let Some(version) = self.shared.dir.copy_hit_at(self.id, at, buffer)
        {
            return Ok((version, true));
        }
        self.get_into_general(artifact, buffer)
    }

    /// [`Agent::get_into`] after its inline HIT declined: out of line, so that the HIT stays
    /// a few instructions in its callers.
    #[inline(never)]
    fn get_into_general(
        &self,
        artifact: &(impl ArtifactRef + ?Sized),
        buffer: &mut Vec<u8>,
    ) -> Result<(Version, bool)> {
        let dir = &self.shared.dir;
        // A resolved key's HIT was just tried: straight to the general path (which still
        // answers a HIT, the inline one having declined for a reason it did not tell).
        let hit_tried = artifact.resolved_line().is_some();
        // The answer is taken apart inside the closure: a `ReadInfo` merged from the HIT and
        // the general path went through the stack in pieces and was loaded back whole (a
        // store-forwarding stall, a third of a 64 B HIT).
        self.on_line(artifact, false, |at| {
            let read = if hit_tried {
                dir.read_at_general(self.id, at, buffer)
            } else {
                dir.read_at(self.id, at, buffer)
            };
            read.map(|info| (info.version, info.hit))
        })
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

    /// A zero-copy read: the version's slot stays pinned while the guard lives. A HIT through
    /// a resolved key is taken inline ([`ccs_protocol::Directory::pin_hit_at`]) and everything
    /// else out of line, so that the HIT's answer stays in registers (through one path with
    /// the general read's, it went through the stack and was loaded back whole: a
    /// store-forwarding stall).
    #[inline]
    pub(crate) fn read(&self, artifact: &(impl ArtifactRef + ?Sized)) -> Result<ReadInner> {
        if let Some(at) = artifact.resolved_line()
            && let Some((version, pin)) = self.shared.dir.pin_hit_at(self.id, at)
        {
            let info = ccs_protocol::ReadInfo::hit(version);
            return Ok(ReadInner::Pinned(PinnedRead::new(
                self.segment_for_guard(),
                info,
                pin,
            )));
        }
        self.read_general(artifact)
    }

    /// [`Agent::read`] when its inline HIT declined: every case, a HIT included.
    #[inline(never)]
    fn read_general(&self, artifact: &(impl ArtifactRef + ?Sized)) -> Result<ReadInner> {
        let dir = &self.shared.dir;
        let (info, pin) = self.on_line(artifact, false, |at| dir.read_pinned_at(self.id, at))?;
        Ok(ReadInner::Pinned(PinnedRead::new(
            self.segment_for_guard(),
            info,
            pin,
        )))
    }

    /// This agent's segment, uncounted, for a pin or hold that only a facade guard will own
    /// (`ReadInner::Pinned` goes into a `ReadGuard`, `Hold::Shm` into a `WriteGuard`): nothing
    /// else in this module calls it.
    #[allow(unsafe_code)] // the one place the shm backend makes a `SegmentRef`
    #[inline(always)]
    fn segment_for_guard(&self) -> SegmentRef {
        // A `ReadGuard` borrows the agent or holds its `Arc` in a field dropped after the read;
        // a `WriteGuard` borrows it or holds its `Arc`, and gives the hold up in its `drop`,
        // before its fields are dropped.
        // SAFETY: so the guard that owns what this points from keeps `self.shared` alive longer.
        unsafe { SegmentRef::new(&self.shared) }
    }

    pub(crate) fn check(&self, artifact: &(impl ArtifactRef + ?Sized)) -> Result<Check> {
        let dir = &self.shared.dir;
        let view = match self.on_line(artifact, false, |at| {
            let view = dir.check(self.id, at.line)?;
            checked(dir.still_owns(at)?, view)
        }) {
            Ok(view) => view,
            Err(Error::NotFound { .. }) => {
                return Ok(Check {
                    held: None,
                    current: 0,
                    valid: false,
                });
            }
            Err(e) => return Err(e),
        };
        Ok(Check {
            // A dropped view (`ccs_protocol::DROPPED_VIEW`) holds no known version.
            held: (view.held != 0 && view.held != ccs_protocol::DROPPED_VIEW).then_some(view.held),
            current: view.current,
            valid: view.valid,
        })
    }

    /// A HIT is two atomic loads (`serve_private`); a MISS fetches into `cached`'s buffer.
    ///
    /// The HIT needs no generation check: a HIT needs this agent's view of the line to equal
    /// the copy's version, and every version of a later key of a reused line is above the
    /// tombstone the line was reused from, itself above every version of the copy's key.
    #[inline]
    pub(crate) fn refresh(&self, cached: &mut Cached) -> Result<bool> {
        let line = self.existing_line(&cached.key)?.line;
        let dir = &self.shared.dir;
        if dir
            .serve_private(self.id, line, cached.version, cached.bytes.len() as u64)
            .map_err(self.fail(&cached.key))?
        {
            return Ok(true);
        }
        let Cached { key, bytes, .. } = cached;
        let info = self.on_line(&*key, false, |at| dir.read_at(self.id, at, bytes))?;
        cached.version = info.version;
        Ok(false)
    }

    /// One load of the valid bit; a set bit also needs the line still to be the key's (one
    /// more load), a clear one is the answer whatever the line holds.
    #[inline]
    pub(crate) fn is_valid(&self, artifact: &(impl ArtifactRef + ?Sized)) -> Result<bool> {
        let dir = &self.shared.dir;
        if let Some(at) = artifact.resolved_line() {
            match dir.is_valid(self.id, at.line) {
                Ok(false) => return Ok(false),
                Ok(true) if dir.still_owns(at) == Ok(true) => return Ok(true),
                _ => {}
            }
        }
        self.is_valid_looked_up(artifact)
    }

    pub(crate) fn being_written(&self, artifact: &(impl ArtifactRef + ?Sized)) -> Result<bool> {
        let dir = &self.shared.dir;
        if let Some(at) = artifact.resolved_line() {
            match dir.being_written(at.line) {
                Ok(held) if dir.still_owns(at) == Ok(true) => return Ok(held),
                _ => {}
            }
        }
        match self.on_line(artifact, false, |at| {
            let held = dir.being_written(at.line)?;
            checked(dir.still_owns(at)?, held)
        }) {
            Err(Error::NotFound { .. }) => Ok(false),
            other => other,
        }
    }

    #[inline(never)]
    fn is_valid_looked_up(&self, artifact: &(impl ArtifactRef + ?Sized)) -> Result<bool> {
        let dir = &self.shared.dir;
        match self.on_line(artifact, false, |at| {
            let valid = dir.is_valid(self.id, at.line)?;
            checked(dir.still_owns(at)?, valid)
        }) {
            Err(Error::NotFound { .. }) => Ok(false),
            other => other,
        }
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
        let dir = &self.shared.dir;
        let version = self.on_line(artifact, true, |at| {
            dir.put_at(self.id, at, bytes, condition)
        })?;
        self.shared.written(artifact.key_str(), version)
    }

    pub(crate) fn put_if(
        &self,
        artifact: &(impl ArtifactRef + ?Sized),
        expected: Version,
        bytes: &[u8],
    ) -> Result<Version> {
        self.write(artifact, bytes, Condition::Version(expected))
    }

    pub(crate) fn delete(&self, artifact: &(impl ArtifactRef + ?Sized)) -> Result<Version> {
        let dir = &self.shared.dir;
        let version = self.on_line(artifact, false, |at| {
            dir.delete_at(self.id, at, Condition::View)
        })?;
        self.shared.written(artifact.key_str(), version)
    }

    pub(crate) fn acquire(
        &self,
        artifact: &(impl ArtifactRef + ?Sized),
        lease: Duration,
    ) -> Result<Hold> {
        let dir = &self.shared.dir;
        let hold = self.on_line(artifact, true, |at| {
            dir.acquire_at(self.id, at, lease_ms(lease))
        })?;
        Ok(Hold::Shm(hold::Hold {
            segment: self.segment_for_guard(),
            hold,
        }))
    }

    pub(crate) fn wait_changed(
        &self,
        artifact: &(impl ArtifactRef + ?Sized),
        since: Version,
        timeout: Option<Duration>,
    ) -> Result<Option<Version>> {
        let timeout_ms = timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
        let dir = &self.shared.dir;
        // A wait that ends on another key's change (its line was reused) starts over on the
        // key's new line, with the whole timeout again (a reuse is rare).
        match self.on_line(artifact, false, |at| {
            let result = dir.wait_changed(at.line, since, timeout_ms)?;
            checked(dir.still_owns(at)?, result)
        })? {
            WaitResult::Changed(version) => Ok(Some(version)),
            WaitResult::TimedOut(_) => Ok(None),
        }
    }
}

/// Times an operation resolves its key again after finding its line reused (each needs a
/// reuse of the line in between: in practice once).
const MAX_RESOLVES: u32 = 64;

/// `value` if the key still owned its line after the operation, else `LineReused`.
fn checked<T>(owned: bool, value: T) -> Result<T, ProtocolError> {
    if owned {
        Ok(value)
    } else {
        Err(ProtocolError::LineReused)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // Detaching only records the absence; the kernel lock closes with `_lock`.
        let _ = self.shared.dir.detach(self.id);
    }
}

//! `Agent` and what its calls return: `Read`, `Check`, `Cached`, `WriteGuard`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::buffer::ReadBuffer;
use crate::errors::OrRaise;
use crate::segment::Segment;

/// How long one slice of `wait_changed` sleeps before checking for signals (Ctrl-C).
const WAIT_SLICE: Duration = Duration::from_millis(50);

/// Lock `mutex`, recovering the data from a poisoned lock: every critical section here leaves
/// the data consistent at each step, so a panic in one cannot leave it half-updated.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A duration from seconds given by Python: finite and not negative.
fn seconds(what: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        PyValueError::new_err(format!(
            "{what} must be a finite, non-negative number of seconds, got {value}"
        ))
    })
}

/// The bytes of a payload: `bytes` are borrowed; `str` is encoded as UTF-8; any other object
/// with the buffer protocol (bytearray, memoryview, a `ReadBuffer`) is copied.
fn payload<'a>(data: &'a Bound<'_, PyAny>) -> PyResult<Cow<'a, [u8]>> {
    if let Ok(bytes) = data.cast::<PyBytes>() {
        return Ok(Cow::Borrowed(bytes.as_bytes()));
    }
    if let Ok(text) = data.cast::<PyString>() {
        return Ok(Cow::Owned(text.to_str()?.as_bytes().to_vec()));
    }
    match pyo3::buffer::PyBuffer::<u8>::get(data) {
        Ok(buffer) => Ok(Cow::Owned(buffer.to_vec(data.py())?)),
        Err(_) => Err(PyTypeError::new_err(format!(
            "a payload must be bytes, str or a bytes-like object, not {}",
            data.get_type().name()?
        ))),
    }
}

thread_local! {
    /// Reused by `get` so that a read allocates only its `bytes` result.
    static GET_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A named agent attached by this process: everything it does to artifacts.
///
/// Get one from `Segment.attach(name)`. Detaches on `close()` (or leaving a `with` block, or
/// when collected) once the `WriteGuard`s, `ReadBuffer`s and `Cached` copies made from it are
/// gone too; its coherence state (what it read, which copies are valid) stays in the segment
/// for its next attach. One handle per agent name at a time, across all processes.
#[pyclass(frozen, module = "agent_coherence_shm")]
pub(crate) struct Agent {
    inner: Mutex<Option<Arc<agent_coherence::Agent>>>,
    name: String,
    /// This process's writes as this agent, one at a time, and `check` between them: the
    /// core refuses a write that meets another of the same agent in flight (`Held`), and a
    /// check during one can see its version published before the agent holds it (a view that
    /// looks stale). Threads sharing an agent (a `ShmStore` used from several threads) wait
    /// here instead. Taken only with the GIL released around the write, or for a check that
    /// calls no Python code, so a thread holding it never waits for the GIL.
    writes: Mutex<()>,
}

impl Agent {
    pub(crate) fn new(agent: agent_coherence::Agent) -> Agent {
        let name = agent.name().to_owned();
        Agent {
            inner: Mutex::new(Some(Arc::new(agent))),
            name,
            writes: Mutex::new(()),
        }
    }

    /// Run `write` (a write as this agent, with the GIL released) after this process's other
    /// writes as this agent (see `writes`).
    pub(crate) fn ordered<R>(&self, write: impl FnOnce() -> R) -> R {
        let _turn = lock(&self.writes);
        write()
    }

    pub(crate) fn agent(&self) -> PyResult<Arc<agent_coherence::Agent>> {
        lock(&self.inner).clone().ok_or_else(|| {
            PyRuntimeError::new_err(format!("agent `{}` was closed; attach it again", self.name))
        })
    }
}

#[pymethods]
impl Agent {
    /// The agent's name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// The segment this agent is attached to.
    #[getter]
    fn segment(&self) -> PyResult<Segment> {
        Ok(Segment {
            inner: self.agent()?.segment().clone(),
        })
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        lock(&self.inner).is_none()
    }

    /// Read an artifact: `Read(bytes, version, hit)`. A HIT (this agent's copy was current)
    /// takes no lock and no system call; after a MISS the agent holds the version read.
    /// `NotFound` if the key was never written or was deleted.
    fn get(&self, py: Python<'_>, key: &str) -> PyResult<Read> {
        let agent = self.agent()?;
        GET_BUFFER.with_borrow_mut(|buffer| {
            let (version, hit) = agent.get_into(key, buffer).or_raise(py)?;
            Ok(Read {
                bytes: PyBytes::new(py, buffer).unbind(),
                version,
                hit,
            })
        })
    }

    /// Read an artifact without copying it: a `ReadBuffer` (buffer protocol; wrap it in
    /// `memoryview`) over that version, which stays pinned, intact and readable while the
    /// object or any view of it lives, even if newer versions are written meanwhile.
    fn read(&self, py: Python<'_>, key: &str) -> PyResult<ReadBuffer> {
        let guard = self.agent()?.read_owned(key).or_raise(py)?;
        Ok(ReadBuffer::new(guard))
    }

    /// A private copy of `key` kept current by `Cached.refresh()`: a HIT costs two atomic
    /// loads and copies nothing. Creates the key's directory entry if it has none.
    fn cached(&self, py: Python<'_>, key: &str) -> PyResult<Cached> {
        let agent = self.agent()?;
        let resolved = agent.key(key).or_raise(py)?;
        Ok(Cached {
            agent,
            state: Mutex::new(CachedState {
                cached: agent_coherence::Cached::new(resolved),
                bytes: None,
            }),
        })
    }

    /// This agent's standing on `key` without reading it: `Check(held, current, valid)`.
    fn check(&self, py: Python<'_>, key: &str) -> PyResult<Check> {
        let agent = self.agent()?;
        // Between this process's writes as this agent (see `writes`), the GIL released to
        // wait for one.
        let check = py
            .detach(|| self.ordered(|| agent.check(key)))
            .or_raise(py)?;
        Ok(Check {
            held: check.held,
            current: check.current,
            valid: check.valid,
        })
    }

    /// Whether this agent's copy of `key` is current, from its valid bit alone (one load).
    /// `False` for an unknown key.
    fn is_valid(&self, py: Python<'_>, key: &str) -> PyResult<bool> {
        self.agent()?.is_valid(key).or_raise(py)
    }

    /// Whether a writer holds `key` now (a write in flight, until it publishes; one load). A
    /// reader that saw `is_valid` turn false spins on it, then reads the new version. `False`
    /// for an unknown key.
    fn being_written(&self, py: Python<'_>, key: &str) -> PyResult<bool> {
        self.agent()?.being_written(key).or_raise(py)
    }

    /// Write `data` (bytes, str, or bytes-like), conditional on this agent's own view:
    /// `Conflict` if it last read an older version than the current one. A first write, or a
    /// write by an agent that never read the artifact, is admitted. Returns the new version;
    /// every other agent's copy is invalid before this returns.
    fn put(&self, py: Python<'_>, key: &str, data: &Bound<'_, PyAny>) -> PyResult<u64> {
        let agent = self.agent()?;
        let bytes = payload(data)?;
        let bytes: &[u8] = &bytes;
        py.detach(|| self.ordered(|| agent.put(key, bytes)))
            .or_raise(py)
    }

    /// Write only if `key` is at `version` (0: never written): compare-and-set. `Conflict`
    /// (naming the current version) otherwise.
    fn put_if(
        &self,
        py: Python<'_>,
        key: &str,
        version: u64,
        data: &Bound<'_, PyAny>,
    ) -> PyResult<u64> {
        let agent = self.agent()?;
        let bytes = payload(data)?;
        let bytes: &[u8] = &bytes;
        py.detach(|| self.ordered(|| agent.put_if(key, version, bytes)))
            .or_raise(py)
    }

    /// Overwrite whatever version is there. Use sparingly: this is the write that loses
    /// updates.
    fn put_blind(&self, py: Python<'_>, key: &str, data: &Bound<'_, PyAny>) -> PyResult<u64> {
        let agent = self.agent()?;
        let bytes = payload(data)?;
        let bytes: &[u8] = &bytes;
        py.detach(|| self.ordered(|| agent.put_blind(key, bytes)))
            .or_raise(py)
    }

    /// Delete `key`, conditional on this agent's view like `put`. The deletion is a version
    /// of its own (returned); a later write continues from it. `NotFound` if it does not exist.
    fn delete(&self, py: Python<'_>, key: &str) -> PyResult<u64> {
        let agent = self.agent()?;
        py.detach(|| self.ordered(|| agent.delete(key)))
            .or_raise(py)
    }

    /// Take `key` exclusively for `lease_seconds`: a `WriteGuard` (a context manager) to
    /// `commit(data)` or `release()`. `Held` at once if a live agent holds it; a holder that
    /// outlives its lease is reclaimed and its commit refused with `Fenced`.
    fn acquire(&self, py: Python<'_>, key: &str, lease_seconds: f64) -> PyResult<WriteGuard> {
        let lease = seconds("lease_seconds", lease_seconds)?;
        let agent = self.agent()?;
        let guard = py.detach(|| agent.acquire_owned(key, lease)).or_raise(py)?;
        Ok(WriteGuard {
            key: key.to_owned(),
            version: guard.version(),
            guard: Mutex::new(Some(guard)),
        })
    }

    /// Block until `key`'s version exceeds `since`, or `timeout` seconds pass (`None`:
    /// forever). Returns the new version, or `None` on timeout. `NotFound` if the key was
    /// never written. Sleeps in the kernel (futex, across processes) with the GIL released,
    /// in slices of 50 ms between which signals are handled: Ctrl-C raises
    /// `KeyboardInterrupt`.
    #[pyo3(signature = (key, since, timeout=None))]
    fn wait_changed(
        &self,
        py: Python<'_>,
        key: &str,
        since: u64,
        timeout: Option<f64>,
    ) -> PyResult<Option<u64>> {
        let deadline = match timeout {
            Some(t) => Some(Instant::now() + seconds("timeout", t)?),
            None => None,
        };
        let agent = self.agent()?;
        loop {
            let slice = match deadline {
                Some(deadline) => deadline
                    .saturating_duration_since(Instant::now())
                    .min(WAIT_SLICE),
                None => WAIT_SLICE,
            };
            let changed = py
                .detach(|| agent.wait_changed(key, since, Some(slice)))
                .or_raise(py)?;
            if changed.is_some() {
                return Ok(changed);
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Ok(None);
            }
            py.check_signals()?;
        }
    }

    /// Keys of existing artifacts starting with `prefix`, sorted.
    #[pyo3(signature = (prefix=""))]
    fn list(&self, py: Python<'_>, prefix: &str) -> PyResult<Vec<String>> {
        self.agent()?.list(prefix).or_raise(py)
    }

    /// The freshness strategy this agent attached with: `"lazy"`, `"eager"`,
    /// `"lease:<ms>ms"` or `"access_count:<n>"`.
    #[getter]
    fn strategy(&self) -> PyResult<String> {
        Ok(self.agent()?.strategy().to_string())
    }

    /// Receive change events for every key starting with `prefix` (`""`: every key),
    /// including keys created later. Needs the `"eager"` strategy. This agent's own writes are
    /// not reported to it.
    fn subscribe(&self, py: Python<'_>, prefix: &str) -> PyResult<()> {
        self.agent()?.subscribe(prefix).or_raise(py)
    }

    /// Stop receiving events for `prefix`; `False` if it was not subscribed.
    fn unsubscribe(&self, py: Python<'_>, prefix: &str) -> PyResult<bool> {
        self.agent()?.unsubscribe(prefix).or_raise(py)
    }

    /// The prefixes this agent is subscribed to.
    fn subscriptions(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.agent()?.subscriptions().or_raise(py)
    }

    /// Take up to `max` waiting change events without blocking: a dict with `events` (oldest
    /// first; each `key`, `version`, `writer`, `deleted`) and `lost` (events dropped since the
    /// last receive because the inbox was full: re-read what matters).
    #[pyo3(signature = (max=64))]
    fn poll_events<'py>(&self, py: Python<'py>, max: usize) -> PyResult<Bound<'py, PyDict>> {
        let events = self.agent()?.try_events(max).or_raise(py)?;
        events_dict(py, &events)
    }

    /// Take up to `max` change events, blocking until one arrives (or a loss is reported) or
    /// `timeout` seconds pass (then `events` is empty); `None` waits forever. Sleeps with the
    /// GIL released, in 50 ms slices between which signals are handled (Ctrl-C works).
    #[pyo3(signature = (max=64, timeout=None))]
    fn wait_events<'py>(
        &self,
        py: Python<'py>,
        max: usize,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let deadline = match timeout {
            Some(t) => Some(Instant::now() + seconds("timeout", t)?),
            None => None,
        };
        let agent = self.agent()?;
        loop {
            let slice = match deadline {
                Some(deadline) => deadline
                    .saturating_duration_since(Instant::now())
                    .min(WAIT_SLICE),
                None => WAIT_SLICE,
            };
            let events = py
                .detach(|| agent.wait_events(max, Some(slice)))
                .or_raise(py)?;
            let expired = deadline.is_some_and(|deadline| Instant::now() >= deadline);
            if !events.events.is_empty() || events.lost > 0 || expired {
                return events_dict(py, &events);
            }
            py.check_signals()?;
        }
    }

    /// Detach now (once the guards, buffers and cached copies made from this agent are gone
    /// too). Further calls raise `RuntimeError`. Idempotent.
    fn close(&self) {
        let agent = lock(&self.inner).take();
        drop(agent);
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, PyTuple>) -> bool {
        self.close();
        false
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { ", closed" } else { "" };
        format!("Agent({:?}{state})", self.name)
    }
}

/// The result of `Agent.get`: the payload, its version, and whether the agent's copy was
/// already current (`hit`). Unpacks as a tuple: `data, version, hit = agent.get(key)`.
#[pyclass(frozen, get_all, module = "agent_coherence_shm")]
pub(crate) struct Read {
    /// The payload.
    bytes: Py<PyBytes>,
    /// Its version (from 1, +1 per write).
    version: u64,
    /// The agent already held this version.
    hit: bool,
}

#[pymethods]
impl Read {
    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let tuple = (self.bytes.clone_ref(py), self.version, self.hit).into_pyobject(py)?;
        Ok(tuple.try_iter()?.into_any())
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Read(bytes=<{} bytes>, version={}, hit={})",
            self.bytes.bind(py).as_bytes().len(),
            self.version,
            if self.hit { "True" } else { "False" }
        )
    }
}

/// The result of `Agent.check`: the version this agent last read or wrote (`held`, `None` if
/// never), the artifact's `current` version (0: never written), and whether the agent's copy
/// is `valid` (its next read would be a HIT).
#[pyclass(frozen, get_all, module = "agent_coherence_shm")]
pub(crate) struct Check {
    /// The version the agent last read or wrote; `None` if it never did.
    held: Option<u64>,
    /// The artifact's current version (0: never written).
    current: u64,
    /// The agent's copy is current.
    valid: bool,
}

#[pymethods]
impl Check {
    /// Whether the agent holds the current version.
    #[getter]
    fn is_current(&self) -> bool {
        self.valid && self.held == Some(self.current)
    }

    fn __repr__(&self) -> String {
        let held = self.held.map_or("None".to_owned(), |v| v.to_string());
        let valid = if self.valid { "True" } else { "False" };
        format!(
            "Check(held={held}, current={}, valid={valid})",
            self.current
        )
    }
}

fn events_dict<'py>(
    py: Python<'py>,
    events: &agent_coherence::Events,
) -> PyResult<Bound<'py, PyDict>> {
    let list = PyList::empty(py);
    for event in &events.events {
        let d = PyDict::new(py);
        d.set_item("key", &event.key)?;
        d.set_item("version", event.version)?;
        d.set_item("writer", &event.writer)?;
        d.set_item("deleted", event.deleted)?;
        list.append(d)?;
    }
    let d = PyDict::new(py);
    d.set_item("events", list)?;
    d.set_item("lost", events.lost)?;
    Ok(d)
}

struct CachedState {
    cached: agent_coherence::Cached,
    /// The `bytes` object of the version held, made on first access after each MISS.
    bytes: Option<Py<PyBytes>>,
}

/// An agent's private copy of one artifact (from `Agent.cached(key)`): the MESI cache line
/// itself. `refresh()` keeps it current: `True` on a HIT (two loads, nothing copied), `False`
/// on a MISS (the current version fetched into it). Keeps its agent attached while it lives.
#[pyclass(frozen, module = "agent_coherence_shm")]
pub(crate) struct Cached {
    agent: Arc<agent_coherence::Agent>,
    state: Mutex<CachedState>,
}

impl Cached {
    /// `refresh()` for native callers: `seen` gets the version now held and, on a MISS, the
    /// bytes just fetched (`None` on a HIT). It runs under the copy's lock: it must not run
    /// Python code (creating `bytes`, `str` or `int` objects is fine: they are not tracked by
    /// the garbage collector, whose finalizers could).
    pub(crate) fn refresh_with<R>(
        &self,
        py: Python<'_>,
        seen: impl FnOnce(u64, Option<&[u8]>) -> R,
    ) -> PyResult<R> {
        let mut state = lock(&self.state);
        let state = &mut *state;
        let hit = self.agent.refresh(&mut state.cached).or_raise(py)?;
        if hit {
            return Ok(seen(state.cached.version(), None));
        }
        state.bytes = None;
        Ok(seen(state.cached.version(), Some(state.cached.bytes())))
    }

    /// The artifact's key, resolved (writes through it skip the key lookup).
    pub(crate) fn resolved_key(&self) -> agent_coherence::Key {
        lock(&self.state).cached.key().clone()
    }
}

#[pymethods]
impl Cached {
    /// Bring the copy up to date: `True` if it was current (HIT), `False` if it was fetched
    /// (MISS). `NotFound` if the artifact was never written or was deleted.
    fn refresh(&self, py: Python<'_>) -> PyResult<bool> {
        let mut state = lock(&self.state);
        let state = &mut *state;
        let hit = self.agent.refresh(&mut state.cached).or_raise(py)?;
        if !hit {
            state.bytes = None;
        }
        Ok(hit)
    }

    /// `refresh()` in one call for a cache keyed by version: the version held if it was a HIT,
    /// 0 if it was a MISS (the current version is now held: read `version` and `data`).
    fn poll(&self, py: Python<'_>) -> PyResult<u64> {
        let mut state = lock(&self.state);
        let state = &mut *state;
        if self.agent.refresh(&mut state.cached).or_raise(py)? {
            return Ok(state.cached.version());
        }
        state.bytes = None;
        Ok(0)
    }

    /// `poll()` and, on a MISS, what a cache keyed by version reads next, in one call: the
    /// version held (an `int`) if it was a HIT, else `(version, data)` of the version just
    /// fetched.
    fn update(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let mut state = lock(&self.state);
        let state = &mut *state;
        let hit = self.agent.refresh(&mut state.cached).or_raise(py)?;
        let version = state.cached.version();
        if hit {
            return Ok(version.into_pyobject(py)?.into_any().unbind());
        }
        let bytes = PyBytes::new(py, state.cached.bytes()).unbind();
        state.bytes = Some(bytes.clone_ref(py));
        Ok((version, bytes).into_pyobject(py)?.into_any().unbind())
    }

    /// The bytes of the version held (empty before the first refresh).
    #[getter]
    fn data(&self, py: Python<'_>) -> Py<PyBytes> {
        let mut state = lock(&self.state);
        if let Some(bytes) = &state.bytes {
            return bytes.clone_ref(py);
        }
        let bytes = PyBytes::new(py, state.cached.bytes()).unbind();
        state.bytes = Some(bytes.clone_ref(py));
        bytes
    }

    /// The version held (0 before the first refresh).
    #[getter]
    fn version(&self) -> u64 {
        lock(&self.state).cached.version()
    }

    /// The artifact's key.
    #[getter]
    fn key(&self) -> String {
        lock(&self.state).cached.key().as_str().to_owned()
    }

    fn __repr__(&self) -> String {
        let state = lock(&self.state);
        format!(
            "Cached({:?}, version={})",
            state.cached.key().as_str(),
            state.cached.version()
        )
    }
}

/// An exclusive hold on an artifact (state E), from `Agent.acquire`. `commit(data)` publishes
/// the next version and ends the hold; `release()` ends it without writing. As a context
/// manager it releases on exit whatever was not committed.
#[pyclass(frozen, module = "agent_coherence_shm")]
pub(crate) struct WriteGuard {
    guard: Mutex<Option<agent_coherence::WriteGuard<Arc<agent_coherence::Agent>>>>,
    key: String,
    version: u64,
}

impl WriteGuard {
    fn take(&self) -> PyResult<agent_coherence::WriteGuard<Arc<agent_coherence::Agent>>> {
        lock(&self.guard).take().ok_or_else(|| self.ended())
    }

    fn ended(&self) -> PyErr {
        PyRuntimeError::new_err(format!(
            "the hold on `{}` has ended (committed or released already)",
            self.key
        ))
    }
}

#[pymethods]
impl WriteGuard {
    /// Publish `data` as the next version and end the hold; returns the new version.
    /// `Fenced` if the hold was reclaimed (lease expired): nothing is written then.
    fn commit(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<u64> {
        let bytes = payload(data)?;
        let bytes: &[u8] = &bytes;
        let guard = self.take()?;
        py.detach(move || guard.commit(bytes)).or_raise(py)
    }

    /// End the hold without writing. `Fenced` if it had been reclaimed already.
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        let guard = self.take()?;
        guard.release().or_raise(py)
    }

    /// Extend the lease to `lease_seconds` from now. `Fenced` if it had been reclaimed.
    fn renew(&self, py: Python<'_>, lease_seconds: f64) -> PyResult<()> {
        let lease = seconds("lease_seconds", lease_seconds)?;
        let mut guard = lock(&self.guard);
        match guard.as_mut() {
            Some(guard) => guard.renew(lease).or_raise(py),
            None => Err(self.ended()),
        }
    }

    /// The key held.
    #[getter]
    fn key(&self) -> &str {
        &self.key
    }

    /// The artifact's version when the hold was taken (0: never written).
    #[getter]
    fn version(&self) -> u64 {
        self.version
    }

    /// Whether the hold is still this guard's (not committed or released).
    #[getter]
    fn active(&self) -> bool {
        lock(&self.guard).is_some()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Release what was not committed. An exception from the block propagates; without one,
    /// a hold found reclaimed raises `Fenced`.
    #[pyo3(signature = (exc_type, _exc_value, _traceback))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: &Bound<'_, PyAny>,
        _exc_value: &Bound<'_, PyAny>,
        _traceback: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let Some(guard) = lock(&self.guard).take() else {
            return Ok(false);
        };
        let released = guard.release().or_raise(py);
        if exc_type.is_none() {
            released?;
        }
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let state = if self.active() { "" } else { ", ended" };
        format!(
            "WriteGuard({:?}, version={}{state})",
            self.key, self.version
        )
    }
}

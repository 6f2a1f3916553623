//! `Segment`: create, open, destroy, attach, status, list, fsck.

use agent_coherence::{Config, FsckReport, Mesi, OpenOptions, Status};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::agent::Agent;
use crate::errors::OrRaise;

/// An open shared-memory segment: the directory of artifacts that agents on this machine share.
///
/// Open one with `Segment.create`, `Segment.open` or `Segment.open_or_create`; attach agents
/// with `attach`. A location is a name under /dev/shm (`"team-42"`) or a file path containing
/// `/`. The mapping stays open while this object, or an agent or buffer made from it, lives.
#[pyclass(frozen, module = "agent_coherence_shm")]
pub(crate) struct Segment {
    pub(crate) inner: agent_coherence::Segment,
}

/// The configuration from keyword arguments, defaults for those not given.
fn config(
    max_agents: Option<u32>,
    max_artifacts: Option<u32>,
    arena_bytes: Option<u64>,
    max_payload: Option<u64>,
    write_lease_ms: Option<u64>,
) -> Config {
    let default = Config::default();
    Config {
        max_agents: max_agents.unwrap_or(default.max_agents),
        max_artifacts: max_artifacts.unwrap_or(default.max_artifacts),
        arena_bytes: arena_bytes.unwrap_or(default.arena_bytes),
        max_payload: max_payload.unwrap_or(default.max_payload),
        write_lease_ms: write_lease_ms.unwrap_or(default.write_lease_ms),
    }
}

fn options(mode: u32, durable_puts: bool, allow_other_owner: bool) -> OpenOptions {
    OpenOptions::new()
        .mode(mode)
        .durable_puts(durable_puts)
        .allow_other_owner(allow_other_owner)
}

#[pymethods]
impl Segment {
    /// Create a new segment at `location`; `SegmentExists` if there is one.
    ///
    /// Sizes default to the library's (256 agents, 4096 artifacts, 256 MiB arena, 64 MiB
    /// largest payload, 10 s write lease). `mode` is the file mode (default 0o600, owner
    /// only); `durable_puts` flushes every write to disk before it returns (for a segment on a
    /// file); `allow_other_owner` accepts a segment owned by another user.
    #[staticmethod]
    #[pyo3(signature = (location, *, max_agents=None, max_artifacts=None, arena_bytes=None,
                        max_payload=None, write_lease_ms=None, mode=0o600, durable_puts=false,
                        allow_other_owner=false))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        py: Python<'_>,
        location: &str,
        max_agents: Option<u32>,
        max_artifacts: Option<u32>,
        arena_bytes: Option<u64>,
        max_payload: Option<u64>,
        write_lease_ms: Option<u64>,
        mode: u32,
        durable_puts: bool,
        allow_other_owner: bool,
    ) -> PyResult<Segment> {
        let config = config(
            max_agents,
            max_artifacts,
            arena_bytes,
            max_payload,
            write_lease_ms,
        );
        let options = options(mode, durable_puts, allow_other_owner);
        py.detach(|| options.create(location, config))
            .or_raise(py)
            .map(|inner| Segment { inner })
    }

    /// Open an existing segment; `SegmentNotFound` if there is none. Waits up to 2 s for a
    /// creator that is still initialising it (with the GIL released).
    #[staticmethod]
    #[pyo3(signature = (location, *, durable_puts=false, allow_other_owner=false))]
    fn open(
        py: Python<'_>,
        location: &str,
        durable_puts: bool,
        allow_other_owner: bool,
    ) -> PyResult<Segment> {
        let options = options(0o600, durable_puts, allow_other_owner);
        py.detach(|| options.open(location))
            .or_raise(py)
            .map(|inner| Segment { inner })
    }

    /// Open the segment at `location`, creating it with these sizes if it does not exist.
    /// An existing segment keeps the sizes it was created with.
    #[staticmethod]
    #[pyo3(signature = (location, *, max_agents=None, max_artifacts=None, arena_bytes=None,
                        max_payload=None, write_lease_ms=None, mode=0o600, durable_puts=false,
                        allow_other_owner=false))]
    #[allow(clippy::too_many_arguments)]
    fn open_or_create(
        py: Python<'_>,
        location: &str,
        max_agents: Option<u32>,
        max_artifacts: Option<u32>,
        arena_bytes: Option<u64>,
        max_payload: Option<u64>,
        write_lease_ms: Option<u64>,
        mode: u32,
        durable_puts: bool,
        allow_other_owner: bool,
    ) -> PyResult<Segment> {
        let config = config(
            max_agents,
            max_artifacts,
            arena_bytes,
            max_payload,
            write_lease_ms,
        );
        let options = options(mode, durable_puts, allow_other_owner);
        py.detach(|| options.open_or_create(location, config))
            .or_raise(py)
            .map(|inner| Segment { inner })
    }

    /// Remove the segment's name. Processes that have it open keep using it until they close
    /// it; `SegmentNotFound` if there is none.
    #[staticmethod]
    fn destroy(py: Python<'_>, location: &str) -> PyResult<()> {
        agent_coherence::Segment::destroy(location).or_raise(py)
    }

    /// Attach this process as agent `name`, registering it on first use. Its coherence state
    /// persists across attaches. `AgentBusy` while another live handle (in any process,
    /// including this one) is attached under that name.
    fn attach(&self, py: Python<'_>, name: &str) -> PyResult<Agent> {
        let agent = py.detach(|| self.inner.attach(name)).or_raise(py)?;
        Ok(Agent::new(agent))
    }

    /// Keys of existing artifacts starting with `prefix`, sorted.
    #[pyo3(signature = (prefix=""))]
    fn list(&self, py: Python<'_>, prefix: &str) -> PyResult<Vec<String>> {
        self.inner.list(prefix).or_raise(py)
    }

    /// A snapshot as a dict: `config`, `agents` (name, pid, alive, generation) and `artifacts`
    /// (key, version, size, writer, deleted, holder, and `states`: every agent's MESI letter
    /// and held version). Each row is consistent; the whole is not one atomic step.
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let status = self.inner.status().or_raise(py)?;
        status_dict(py, &status)
    }

    /// Check every structure of the segment (a dict report); with `repair`, also repair what
    /// is safe (dead agents' holds and pins; leaked slots when no agent is attached). Runs with
    /// the GIL released.
    #[pyo3(signature = (repair=false))]
    fn fsck<'py>(&self, py: Python<'py>, repair: bool) -> PyResult<Bound<'py, PyDict>> {
        let report = py.detach(|| self.inner.fsck(repair)).or_raise(py)?;
        fsck_dict(py, &report)
    }

    /// Write the whole segment back to its file (`msync`); a no-op for /dev/shm.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.inner.flush()).or_raise(py)
    }

    /// The sizes the segment was created with, as a dict.
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        config_dict(py, &self.inner.config())
    }

    /// Where the segment lives, as it was named.
    #[getter]
    fn location(&self) -> &str {
        self.inner.location()
    }

    /// Whether writes through this handle are flushed before they return.
    #[getter]
    fn durable_puts(&self) -> bool {
        self.inner.durable_puts()
    }

    fn __repr__(&self) -> String {
        format!("Segment({:?})", self.inner.location())
    }
}

fn config_dict<'py>(py: Python<'py>, config: &Config) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("max_agents", config.max_agents)?;
    d.set_item("max_artifacts", config.max_artifacts)?;
    d.set_item("arena_bytes", config.arena_bytes)?;
    d.set_item("max_payload", config.max_payload)?;
    d.set_item("write_lease_ms", config.write_lease_ms)?;
    Ok(d)
}

fn mesi(state: Mesi) -> &'static str {
    match state {
        Mesi::Modified => "M",
        Mesi::Exclusive => "E",
        Mesi::Shared => "S",
        Mesi::Invalid => "I",
    }
}

fn status_dict<'py>(py: Python<'py>, status: &Status) -> PyResult<Bound<'py, PyDict>> {
    let agents = PyList::empty(py);
    for agent in &status.agents {
        let d = PyDict::new(py);
        d.set_item("name", &agent.name)?;
        d.set_item("pid", agent.pid)?;
        d.set_item("alive", agent.alive)?;
        d.set_item("generation", agent.generation)?;
        agents.append(d)?;
    }
    let artifacts = PyList::empty(py);
    for artifact in &status.artifacts {
        let states = PyList::empty(py);
        for state in &artifact.states {
            let d = PyDict::new(py);
            d.set_item("agent", &state.agent)?;
            d.set_item("state", mesi(state.state))?;
            d.set_item("held", state.held)?;
            states.append(d)?;
        }
        let d = PyDict::new(py);
        d.set_item("key", &artifact.key)?;
        d.set_item("version", artifact.version)?;
        d.set_item("size", artifact.size)?;
        d.set_item("writer", &artifact.writer)?;
        d.set_item("deleted", artifact.deleted)?;
        d.set_item("holder", &artifact.holder)?;
        d.set_item("states", states)?;
        artifacts.append(d)?;
    }
    let d = PyDict::new(py);
    d.set_item("config", config_dict(py, &status.config)?)?;
    d.set_item("agents", agents)?;
    d.set_item("artifacts", artifacts)?;
    Ok(d)
}

fn fsck_dict<'py>(py: Python<'py>, report: &FsckReport) -> PyResult<Bound<'py, PyDict>> {
    let problems = PyList::empty(py);
    for problem in &report.problems {
        let d = PyDict::new(py);
        d.set_item("kind", problem.kind.name())?;
        d.set_item("subject", &problem.subject)?;
        d.set_item("message", &problem.message)?;
        d.set_item("repairable", problem.repairable)?;
        problems.append(d)?;
    }
    let arena = PyDict::new(py);
    arena.set_item("live_bytes", report.arena.live_bytes)?;
    arena.set_item("free_bytes", report.arena.free_bytes)?;
    arena.set_item("leaked_bytes", report.arena.leaked_bytes)?;
    arena.set_item("untouched_bytes", report.arena.untouched_bytes)?;
    let descriptors = PyDict::new(py);
    descriptors.set_item("live", report.descriptors.live)?;
    descriptors.set_item("free", report.descriptors.free)?;
    descriptors.set_item("leaked", report.descriptors.leaked)?;
    descriptors.set_item("untouched", report.descriptors.untouched)?;
    let d = PyDict::new(py);
    d.set_item("clean", report.is_clean())?;
    d.set_item("problems", problems)?;
    d.set_item("found", report.found)?;
    d.set_item("arena", arena)?;
    d.set_item("descriptors", descriptors)?;
    d.set_item("notes", &report.notes)?;
    d.set_item("repaired", &report.repaired)?;
    d.set_item("not_repaired", &report.not_repaired)?;
    Ok(d)
}

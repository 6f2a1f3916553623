//! `Segment`: create, open, destroy, attach, status, list, fsck.

use std::time::Duration;

use agent_coherence::trace::{Stats, Usage};
use agent_coherence::{Config, FsckReport, Mesi, OpenOptions, Status, Strategy};
use pyo3::exceptions::PyValueError;
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
/// Sizes from keyword arguments; `None` keeps the library's default.
#[derive(Default)]
struct Sizes {
    max_agents: Option<u32>,
    max_artifacts: Option<u32>,
    arena_bytes: Option<u64>,
    max_payload: Option<u64>,
    write_lease_ms: Option<u64>,
    log_records: Option<u32>,
    inbox_events: Option<u32>,
}

impl Sizes {
    fn config(&self) -> Config {
        let default = Config::default();
        Config {
            max_agents: self.max_agents.unwrap_or(default.max_agents),
            max_artifacts: self.max_artifacts.unwrap_or(default.max_artifacts),
            arena_bytes: self.arena_bytes.unwrap_or(default.arena_bytes),
            max_payload: self.max_payload.unwrap_or(default.max_payload),
            write_lease_ms: self.write_lease_ms.unwrap_or(default.write_lease_ms),
            log_records: self.log_records.unwrap_or(default.log_records),
            inbox_events: self.inbox_events.unwrap_or(default.inbox_events),
        }
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
    /// largest payload, 10 s write lease, 1024 log records per agent (0: no operation log),
    /// 256 change events per eager agent's inbox (0: no eager agents)). `mode` is the file mode (default 0o600, owner
    /// only); `durable_puts` flushes every write to disk before it returns (for a segment on a
    /// file); `allow_other_owner` accepts a segment owned by another user.
    #[staticmethod]
    #[pyo3(signature = (location, *, max_agents=None, max_artifacts=None, arena_bytes=None,
                        max_payload=None, write_lease_ms=None, log_records=None,
                        inbox_events=None, mode=0o600, durable_puts=false,
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
        log_records: Option<u32>,
        inbox_events: Option<u32>,
        mode: u32,
        durable_puts: bool,
        allow_other_owner: bool,
    ) -> PyResult<Segment> {
        let config = Sizes {
            max_agents,
            max_artifacts,
            arena_bytes,
            max_payload,
            write_lease_ms,
            log_records,
            inbox_events,
        }
        .config();
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
                        max_payload=None, write_lease_ms=None, log_records=None,
                        inbox_events=None, mode=0o600, durable_puts=false,
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
        log_records: Option<u32>,
        inbox_events: Option<u32>,
        mode: u32,
        durable_puts: bool,
        allow_other_owner: bool,
    ) -> PyResult<Segment> {
        let config = Sizes {
            max_agents,
            max_artifacts,
            arena_bytes,
            max_payload,
            write_lease_ms,
            log_records,
            inbox_events,
        }
        .config();
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
    ///
    /// `strategy` says how long a valid copy is served as a HIT: `"lazy"` (until a peer
    /// writes; the default), `"eager"` (as lazy, and the agent can `subscribe` to change
    /// events), `("lease", seconds)` (at most that long after the fetch), `("access_count", n)`
    /// (at most n HITs after the fetch); also the `ccs` spellings `"lease:2s"`,
    /// `"access_count:5"`.
    #[pyo3(signature = (name, strategy=None))]
    fn attach(
        &self,
        py: Python<'_>,
        name: &str,
        strategy: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Agent> {
        let strategy = match strategy {
            None => Strategy::Lazy,
            Some(given) => parse_strategy(given)?,
        };
        let agent = py
            .detach(|| self.inner.attach_with(name, strategy))
            .or_raise(py)?;
        Ok(Agent::new(agent))
    }

    /// Usage statistics from the operation log as a dict: `window` (records, lost, first and
    /// last timestamps), `total`, and per-agent and per-artifact rows of reads, hits, misses,
    /// bytes served from copies and fetched, writes, conflicts, hit rate and estimated tokens
    /// saved. `CoherenceError` if the segment was created with `log_records=0`.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let records = py.detach(|| self.inner.log_records()).or_raise(py)?;
        stats_dict(py, &agent_coherence::trace::stats(&records))
    }

    /// The segment's run-time switches: `{"logging": bool, "invalidation": bool}`.
    fn switches<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let switches = self.inner.switches().or_raise(py)?;
        let d = PyDict::new(py);
        d.set_item("logging", switches.logging)?;
        d.set_item("invalidation", switches.invalidation)?;
        Ok(d)
    }

    /// Pause (`False`) or resume the operation log, for every process using the segment.
    fn set_logging(&self, py: Python<'_>, on: bool) -> PyResult<()> {
        self.inner.set_logging(on).or_raise(py)
    }

    /// Turn invalidation off (`False`) or on, for every process: with it off, writers stop
    /// clearing peers' valid bits (the world without coherence, for demonstrations only).
    fn set_invalidation(&self, py: Python<'_>, on: bool) -> PyResult<()> {
        self.inner.set_invalidation(on).or_raise(py)
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
    d.set_item("log_records", config.log_records)?;
    d.set_item("inbox_events", config.inbox_events)?;
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
        d.set_item("strategy", agent.strategy.to_string())?;
        d.set_item("subscriptions", &agent.subscriptions)?;
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

/// A strategy from Python: `"lazy"`, `"eager"`, `("lease", seconds)`, `("access_count", n)`,
/// or a `ccs` spelling such as `"lease:2s"`.
fn parse_strategy(given: &Bound<'_, PyAny>) -> PyResult<Strategy> {
    let invalid = || {
        PyValueError::new_err(format!(
            "a strategy is \"lazy\", \"eager\", (\"lease\", seconds) or (\"access_count\", n), \
             not {given}"
        ))
    };
    if let Ok(text) = given.extract::<String>() {
        return Strategy::parse(&text).ok_or_else(invalid);
    }
    let (kind, arg): (String, Bound<'_, PyAny>) = given.extract().map_err(|_| invalid())?;
    match kind.as_str() {
        "lease" => {
            let seconds: f64 = arg.extract().map_err(|_| invalid())?;
            Duration::try_from_secs_f64(seconds)
                .map(Strategy::Lease)
                .map_err(|_| invalid())
        }
        "access_count" => {
            let hits: u32 = arg.extract().map_err(|_| invalid())?;
            Ok(Strategy::AccessCount(hits))
        }
        _ => Err(invalid()),
    }
}

fn usage_dict<'py>(py: Python<'py>, usage: &Usage) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("reads", usage.reads)?;
    d.set_item("hits", usage.hits)?;
    d.set_item("misses", usage.misses)?;
    d.set_item("bytes_from_copy", usage.bytes_from_copy)?;
    d.set_item("bytes_fetched", usage.bytes_fetched)?;
    d.set_item("writes", usage.writes)?;
    d.set_item("conflicts", usage.conflicts)?;
    d.set_item("hit_rate", usage.hit_rate())?;
    d.set_item("tokens_saved_estimate", usage.tokens_saved_estimate())?;
    Ok(d)
}

fn stats_dict<'py>(py: Python<'py>, stats: &Stats) -> PyResult<Bound<'py, PyDict>> {
    let window = PyDict::new(py);
    window.set_item("records", stats.window.records)?;
    window.set_item("lost", stats.window.lost)?;
    window.set_item("first_t_ns", stats.window.first_t_ns)?;
    window.set_item("last_t_ns", stats.window.last_t_ns)?;
    window.set_item("span_ns", stats.window.span_ns())?;
    let rows = |rows: &[agent_coherence::trace::UsageRow]| -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for row in rows {
            let d = usage_dict(py, &row.usage)?;
            d.set_item("name", &row.name)?;
            list.append(d)?;
        }
        Ok(list)
    };
    let d = PyDict::new(py);
    d.set_item("window", window)?;
    d.set_item("total", usage_dict(py, &stats.total)?)?;
    d.set_item("agents", rows(&stats.agents)?)?;
    d.set_item("artifacts", rows(&stats.artifacts)?)?;
    Ok(d)
}

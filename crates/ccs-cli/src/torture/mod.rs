//! `ccs torture`: a crash-torture harness. K worker processes do random operations on a shared
//! set of artifacts while a supervisor SIGKILLs random workers at random moments (many inside a
//! write) and starts replacements under the same agent names; at the end it checks that
//! nothing was torn, lost, reordered or leaked.
//!
//! ```text
//! ccs torture SEG --workers 4 --seconds 50            # what scripts/torture-ci runs
//! ccs torture SEG --kills 10000 --kill-interval-ms 1-20 --json
//! ```
//!
//! # What runs
//!
//! The supervisor creates SEG (refusing an existing one unless `--force`), writes version 1
//! of every artifact, and re-executes this binary as K hidden `torture-worker` children
//! attached as `worker-0` … `worker-<K-1>` (see [`worker`] for their operations: checked
//! `get_into` and zero-copy `read`, `put_blind`, `get`+`put`, `put_if`, `acquire`+`commit`,
//! `delete`+re-create, and conditional counter increments). Until the kill budget or the time
//! is spent it sleeps a random interval, SIGKILLs a random worker, reaps it and starts a
//! replacement with the same name, which must attach at once (the kernel dropped the dead
//! process's lock before `wait` returned). Kills land inside writes because payloads are up to
//! `--max-payload` bytes long, so a large share of a worker's time is spent copying into the
//! arena; the supervisor samples each victim's IN_WRITE flag and reports how many kills hit a
//! write. No test hook in the library is needed.
//!
//! Coordination goes through a side mapping ([`layout`]) that outlives every worker: the stop
//! flag, per-worker failure records, operation counts, the last version each agent observed per
//! artifact, and acknowledged increments per counter. Workers exit when STOP is set or when the
//! supervisor's pid is gone (checked every 128 operations), so none outlives it for long.
//!
//! # The checks, and why kills cannot fool them
//!
//! * **Checksums.** Every payload is self-describing ([`payload`]); every read by a worker, and
//!   a final read of every artifact, must verify. A kill cannot produce a false alarm (a killed
//!   writer's bytes are never published) and cannot hide a torn read (the reader checks).
//! * **Counters: value = version − 1, exactly.** A counter is created at version 1 with value 0
//!   and is only ever written by an increment: read value `x` at version `V`, write `x + 1`
//!   conditional on version `V` (`put` on the view of that read, or `commit` while holding the
//!   counter exclusively at `V`). No counter is ever deleted or written blind. So if the
//!   protocol admits only writes whose condition holds and gives each write exactly version + 1,
//!   version `V + 1` carries `x + 1`, and by induction every version `V` carries `V − 1`: the
//!   number of successful increments is `version − 1`. A lost update (two writers admitted on
//!   the same `V`, or a write that skipped a version) breaks the equality forever after. The
//!   rule is a property of the segment's contents alone: a write either published (the new
//!   version and its value, together, in one publishing CAS) or did not, whenever the writer was
//!   killed, so no acknowledgement that a kill could lose is needed. Every worker checks it on
//!   every counter read, and the supervisor on every counter at the end. In addition, workers
//!   count acknowledged increments (the write returned Ok) in the side mapping, and the end
//!   check requires `acked ≤ value ≤ acked + kills`: a kill can lose at most one
//!   acknowledgement (a worker has at most one increment in flight), never add one, so a
//!   published increment that later vanished (value < acked) is caught too.
//! * **Versions never decrease per agent.** Every version an agent observes (a read, a write's
//!   result, a `Conflict`'s current version, an acquire's held version) must be ≥ the last one
//!   it observed on that artifact; a write's result must be newer, and a conditional write's
//!   result exactly its condition + 1. A read under a hold returns the held version; on etcd,
//!   where a live holder loses its holds with its session (a cluster fault), a newer version
//!   is allowed there if the hold's commit is then fenced. The last observed version is
//!   stored in the side mapping before the worker acts on it, so a replacement under the same
//!   name continues the check where its predecessor died. At the end, no agent may have
//!   observed a version beyond the artifact's final version (nothing observed was rolled back).
//! * **Workers.** Any error the protocol should not produce here (anything but `Conflict`,
//!   `Held`, and `NotFound` on a deletable payload artifact), a worker that exits by itself, a
//!   replacement that cannot attach, or a worker that does not stop: failure.
//! * **fsck and arena leaks.** After every worker stopped and every agent was re-attached once
//!   (re-attach releases a dead predecessor's holds and pins), a read-only `fsck` must find
//!   nothing that `--repair` cannot fix; a kill in the few instructions between taking or
//!   freeing a slot and recording that may leak the slot, which `fsck --repair` on the now
//!   quiescent segment returns; then `fsck` must find the segment clean and the arena must hold
//!   no bytes beyond what live versions use ([`verify`]). The figures report what the kills
//!   leaked.
//!
//! * **History** (`--history FILE`): every operation recorded as JSON lines and checked at the
//!   end per key — linearizability of versions and conditional writes, no stale HIT after a
//!   returned write, one winner per version, fencing ([`history`]). On etcd, `Unavailable`
//!   (a cluster fault) is a write of unknown effect and `Fenced` (a session expired during a
//!   fault) a refusal: both are counted, neither fails the run; the history judges them.
//!
//! Exit codes: 0 every check passed, 1 a check failed (or the run could not be carried out),
//! 2 bad arguments.
//!
//! # JSON output (`--json`), schema 1
//!
//! ```text
//! { "schema": 1, "command": "torture", "seg": string, "seed": u64,
//!   "config": { "workers", "artifacts", "counters", "max_payload": u64,
//!               "kill_interval_ms": [min, max], "kills": u64|null, "seconds": u64|null },
//!   "duration_ms": u64,
//!   "operations": { "total": u64, "get", "read", "put_blind", "put", "put_if",
//!                   "acquire_commit", "delete_recreate", "increment", "increment_won",
//!                   "conflict", "held", "not_found", "verified", "unavailable",
//!                   "fenced": u64 },
//!   "kills": u64, "kills_in_write": u64, "replacements": u64, "attach_retries": u64,
//!   "counters": [ { "key": string, "version": u64, "value": u64, "acknowledged": u64 } ],
//!   "checks": [ { "name": string, "status": "passed"|"failed"|"skipped", "detail": string } ],
//!   "failures": u64 (failed checks), "passed": bool }
//! ```
//!
//! `operations.total` counts the issued operations (get … increment), not the outcomes
//! (increment_won, conflict, held, not_found, verified).

pub mod history;
mod layout;
mod payload;
mod verify;
mod worker;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::process::ExitStatusExt as _;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use agent_coherence::{Config, Error, Segment};
use ccs_protocol::sync::Ordering;
use clap::Args;
use serde::Serialize;

use self::layout::{FAIL_KIND, IN_WRITE, Layout, STOP};
use self::payload::{Rng, make_counter, make_payload, mix};
use self::verify::{CheckOut, history_checks, verify};
use self::worker::Op;
use crate::bench::side::{PER_CHILD, Side};
use crate::bench::{Progress, signal};
use crate::commands::size_arg;
use crate::error::{CliError, EXIT_FAILURE, EXIT_OK};
use crate::table::{self, Align};

/// Most workers.
const MAX_WORKERS: u32 = 64;
/// Most payload artifacts, and most counters.
const MAX_ARTIFACTS: u32 = 4096;
/// Largest `--max-payload`.
const MAX_PAYLOAD: u64 = 16 << 20;
/// Smallest `--max-payload`: a header and a counter fit.
const MIN_PAYLOAD: u64 = 64;
/// How long workers get to notice STOP and exit.
const STOP_PATIENCE: Duration = Duration::from_secs(30);
/// Default run length when neither --kills nor --seconds is given.
const DEFAULT_SECONDS: u64 = 10;

/// A deliberate fault, to prove the checks can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// Worker 0 writes one payload with a damaged byte (and reads it back).
    Torn,
    /// Worker 0 makes one counter increment write the old value (a lost update).
    LostUpdate,
}

impl Fault {
    fn arg(self) -> &'static str {
        match self {
            Fault::Torn => "torn",
            Fault::LostUpdate => "lost-update",
        }
    }
}

/// `ccs torture`.
#[derive(Debug, Args)]
pub struct TortureArgs {
    /// Segment to create for the run (a name under /dev/shm, or a path containing '/').
    #[arg(value_name = "SEG")]
    pub seg: String,
    /// Worker processes.
    #[arg(long, value_name = "K", default_value_t = 4)]
    pub workers: u32,
    /// Stop after N kills [default: run --seconds].
    #[arg(long, value_name = "N")]
    pub kills: Option<u64>,
    /// Stop after S seconds [default: 10 if --kills is not given either].
    #[arg(long, value_name = "S")]
    pub seconds: Option<u64>,
    /// Payload artifacts.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub artifacts: u32,
    /// Counter artifacts.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub counters: u32,
    /// Largest payload (SIZE: bytes, or K, M suffixes).
    #[arg(long, value_name = "SIZE", default_value = "64K")]
    pub max_payload: String,
    /// Pause before each kill, uniformly random in MIN-MAX milliseconds (or a single number).
    #[arg(long, value_name = "MIN-MAX", default_value = "5-50")]
    pub kill_interval_ms: String,
    /// Seed of every random choice [default: from the clock; printed in the summary]. Timing
    /// still varies between runs.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Print one JSON object (schema 1) instead of the human summary.
    #[arg(long)]
    pub json: bool,
    /// Destroy an existing segment of that name first.
    #[arg(long)]
    pub force: bool,
    /// Keep the segment at the end (for `ccs status` or fsck).
    #[arg(long)]
    pub keep: bool,
    /// Testing the harness: make worker 0 inject a fault the checks must catch.
    #[arg(long, value_enum, hide = true)]
    pub inject_fault: Option<Fault>,
    /// Record every operation (process, agent, kind, key, arguments, invocation and response
    /// times, result) in FILE as JSON lines, and check the history at the end: per-key
    /// linearizability of versions and conditional writes, no stale HIT after a returned
    /// write, one winner per version, no fenced commit published.
    #[arg(long, value_name = "FILE")]
    pub history: Option<std::path::PathBuf>,
    /// Testing the history checker: turn invalidation off on the segment (shared memory), so
    /// that writers leave stale copies valid; the history check must fail.
    #[arg(long, hide = true)]
    pub no_invalidation: bool,
}

/// The internal `ccs torture-worker`: everything a worker needs, from its supervisor.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The segment.
    #[arg(long)]
    pub seg: String,
    /// The side mapping.
    #[arg(long)]
    pub side: String,
    /// This worker's index (agent `worker-<index>`).
    #[arg(long)]
    pub index: u32,
    /// Workers in the run.
    #[arg(long)]
    pub workers: u32,
    /// Payload artifacts.
    #[arg(long)]
    pub artifacts: u32,
    /// Counters.
    #[arg(long)]
    pub counters: u32,
    /// Largest payload in bytes.
    #[arg(long)]
    pub max_payload: u64,
    /// The run's seed.
    #[arg(long)]
    pub seed: u64,
    /// Which life of this worker (0 first, +1 per replacement).
    #[arg(long)]
    pub life: u64,
    /// The supervisor's pid: exit when it is gone.
    #[arg(long)]
    pub supervisor: u32,
    /// Inject this fault (once per run).
    #[arg(long, value_enum)]
    pub inject_fault: Option<Fault>,
    /// Record operations in this directory (`--history`'s parts).
    #[arg(long)]
    pub history: Option<std::path::PathBuf>,
}

/// Run the hidden `ccs torture-worker`.
pub fn run_worker(args: &WorkerArgs) -> Result<u8, CliError> {
    worker::run(args)
}

/// The agent name of worker `i`.
pub fn worker_name(i: usize) -> String {
    format!("worker-{i}")
}

/// The key of payload artifact `i`.
pub fn payload_key(i: u32) -> String {
    format!("torture/payload/{i:04}")
}

/// The key of counter `i`.
pub fn counter_key(i: u32) -> String {
    format!("torture/counter/{i:04}")
}

/// Parse `MIN-MAX` or `N` milliseconds.
fn parse_interval(text: &str) -> Result<(u64, u64), CliError> {
    let bad = || {
        CliError::Usage(format!(
            "--kill-interval-ms `{text}`: write MIN-MAX milliseconds, e.g. 5-50 (at most 60000)"
        ))
    };
    let number = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
    let (lo, hi) = match text.split_once('-') {
        Some((lo, hi)) => (number(lo)?, number(hi)?),
        None => {
            let n = number(text)?;
            (n, n)
        }
    };
    if lo > hi || hi > 60_000 {
        return Err(bad());
    }
    Ok((lo, hi))
}

/// The validated run parameters.
#[derive(Debug, Clone, Copy)]
struct Plan {
    workers: u32,
    artifacts: u32,
    counters: u32,
    max_payload: u64,
    interval: (u64, u64),
    kills: Option<u64>,
    seconds: Option<u64>,
    seed: u64,
}

fn plan(args: &TortureArgs) -> Result<Plan, CliError> {
    let usage = |s: String| Err(CliError::Usage(s));
    if !(1..=MAX_WORKERS).contains(&args.workers) {
        return usage(format!("--workers must be 1 to {MAX_WORKERS}"));
    }
    if !(1..=MAX_ARTIFACTS).contains(&args.artifacts) || args.counters > MAX_ARTIFACTS {
        return usage(format!(
            "--artifacts must be 1 to {MAX_ARTIFACTS}, --counters 0 to {MAX_ARTIFACTS}"
        ));
    }
    let max_payload = size_arg("max-payload", Some(&args.max_payload), 0)?;
    if !(MIN_PAYLOAD..=MAX_PAYLOAD).contains(&max_payload) {
        return usage(format!(
            "--max-payload must be between {MIN_PAYLOAD} bytes and 16M, not {max_payload}"
        ));
    }
    if args.kills == Some(0) || args.seconds == Some(0) {
        return usage("--kills and --seconds must be at least 1".to_owned());
    }
    let seconds = match (args.kills, args.seconds) {
        (None, None) => Some(DEFAULT_SECONDS),
        (_, seconds) => seconds,
    };
    Ok(Plan {
        workers: args.workers,
        artifacts: args.artifacts,
        counters: args.counters,
        max_payload,
        interval: parse_interval(&args.kill_interval_ms)?,
        kills: args.kills,
        seconds,
        seed: args.seed.unwrap_or_else(|| mix(ccs_os::monotonic_ns())),
    })
}

/// The segment's sizes: room for every artifact's live version many times over, so that
/// fragmentation (blocks merge back only when an allocation finds none free) and in-flight
/// writes never fill it.
fn segment_config(plan: &Plan) -> Result<Config, CliError> {
    let defaults = Config::default();
    let writers = u64::from(plan.artifacts) + 2 * u64::from(plan.workers);
    let want = (8 * writers * plan.max_payload)
        .next_power_of_two()
        .max(64 << 20);
    if want > 2 << 30 {
        return Err(CliError::Usage(format!(
            "--max-payload {} with {} artifacts needs an arena of {} MiB; use fewer or smaller",
            plan.max_payload,
            plan.artifacts,
            want >> 20
        )));
    }
    Ok(Config {
        max_agents: plan.workers + 4,
        max_artifacts: plan.artifacts + plan.counters + 8,
        arena_bytes: want,
        max_payload: plan.max_payload,
        ..defaults
    })
}

/// Removes the segment (unless kept) and the side mapping when the run ends, however it ends.
struct Cleanup {
    seg: Option<String>,
    side: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // Best effort: either may never have been created.
        if let Some(seg) = &self.seg {
            let _ = Segment::destroy(seg);
        }
        if let Ok(loc) = ccs_os::Location::parse(&self.side) {
            let _ = ccs_os::destroy(&loc);
        }
    }
}

struct Slot {
    child: Option<Child>,
    life: u64,
}

/// The worker processes; any still running are killed and reaped on drop.
struct Crew {
    exe: std::path::PathBuf,
    common: Vec<String>,
    inject: Option<Fault>,
    slots: Vec<Slot>,
}

impl Crew {
    fn spawn(&mut self, i: usize) -> Result<(), CliError> {
        let slot = &mut self.slots[i];
        let mut command = Command::new(&self.exe);
        command.arg("torture-worker").args(&self.common).args([
            "--index",
            &i.to_string(),
            "--life",
            &slot.life.to_string(),
        ]);
        if let (0, Some(fault)) = (i, self.inject) {
            command.args(["--inject-fault", fault.arg()]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| CliError::Bench(format!("cannot start {}: {e}", worker_name(i))))?;
        slot.child = Some(child);
        slot.life += 1;
        Ok(())
    }

    /// SIGKILL worker `i` and reap it; its exit status (a worker that had exited already
    /// reports its own status, not SIGKILL).
    fn kill(&mut self, i: usize) -> Result<Option<ExitStatus>, CliError> {
        let Some(mut child) = self.slots[i].child.take() else {
            return Ok(None);
        };
        // Fails only if already reaped, which `take` rules out.
        let _ = child.kill();
        let status = child
            .wait()
            .map_err(|e| CliError::Bench(format!("cannot reap {}: {e}", worker_name(i))))?;
        Ok(Some(status))
    }

    /// A worker that exited without being killed, if any (reaped).
    fn exited(&mut self) -> Option<(usize, ExitStatus)> {
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if let Some(child) = slot.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                slot.child = None;
                return Some((i, status));
            }
        }
        None
    }
}

impl Drop for Crew {
    fn drop(&mut self) {
        for slot in &mut self.slots {
            if let Some(mut child) = slot.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

#[derive(Debug, Serialize)]
struct ConfigOut {
    workers: u32,
    artifacts: u32,
    counters: u32,
    max_payload: u64,
    kill_interval_ms: [u64; 2],
    kills: Option<u64>,
    seconds: Option<u64>,
}

#[derive(Debug, Serialize)]
struct CounterOut {
    key: String,
    version: u64,
    value: u64,
    acknowledged: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    schema: u32,
    command: &'static str,
    seg: String,
    seed: u64,
    config: ConfigOut,
    duration_ms: u64,
    operations: BTreeMap<&'static str, u64>,
    kills: u64,
    kills_in_write: u64,
    replacements: u64,
    attach_retries: u64,
    counters: Vec<CounterOut>,
    checks: Vec<CheckOut>,
    failures: u64,
    passed: bool,
}

/// What happened during the kill phase.
#[derive(Debug, Default)]
struct Tally {
    kills: u64,
    kills_in_write: u64,
    replacements: u64,
    /// Problems the supervisor saw itself (unexpected exits, workers that would not stop).
    problems: Vec<String>,
}

/// Run `ccs torture`.
pub fn run(args: &TortureArgs) -> Result<u8, CliError> {
    let plan = plan(args)?;
    let config = segment_config(&plan)?;
    signal::install();
    let side_name = format!(
        "ccs-torture-{}-{}-side",
        std::process::id(),
        ccs_os::monotonic_ns()
    );
    let seg = match Segment::create(&args.seg, config) {
        Err(Error::SegmentExists { .. }) if args.force => {
            Segment::destroy(&args.seg)?;
            Segment::create(&args.seg, config)?
        }
        other => other?,
    };
    let _cleanup = Cleanup {
        seg: (!args.keep).then(|| args.seg.clone()),
        side: side_name.clone(),
    };
    let lay = Layout {
        workers: plan.workers as usize,
        artifacts: (plan.artifacts + plan.counters) as usize,
        counters: plan.counters as usize,
    };
    let side = Side::create(&side_name, lay.lines() - PER_CHILD)?;
    if args.no_invalidation {
        seg.set_invalidation(false)?;
    }
    let parts = match &args.history {
        Some(file) => {
            let dir = history::parts_dir(file);
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)
                .map_err(|e| CliError::Bench(format!("cannot create {}: {e}", dir.display())))?;
            Some(dir)
        }
        None => None,
    };
    populate(&seg, &plan, parts.as_deref())?;

    let mut crew = Crew {
        exe: std::env::current_exe()
            .map_err(|e| CliError::Bench(format!("cannot find the ccs binary to re-run: {e}")))?,
        common: vec![
            "--seg".into(),
            args.seg.clone(),
            "--side".into(),
            side_name.clone(),
            "--workers".into(),
            plan.workers.to_string(),
            "--artifacts".into(),
            plan.artifacts.to_string(),
            "--counters".into(),
            plan.counters.to_string(),
            "--max-payload".into(),
            plan.max_payload.to_string(),
            "--seed".into(),
            plan.seed.to_string(),
            "--supervisor".into(),
            std::process::id().to_string(),
        ]
        .into_iter()
        .chain(
            parts
                .iter()
                .flat_map(|d| ["--history".into(), d.display().to_string()]),
        )
        .collect(),
        inject: args.inject_fault,
        slots: (0..plan.workers)
            .map(|_| Slot {
                child: None,
                life: 0,
            })
            .collect(),
    };
    let started = Instant::now();
    for i in 0..lay.workers {
        crew.spawn(i)?;
    }
    let mut tally = Tally::default();
    torment(&plan, &lay, &side, &mut crew, &mut tally, started)?;
    stop(&side, &lay, &mut crew, &mut tally)?;
    let duration = started.elapsed();

    let mut report = verify(&seg, &side, &lay, &plan, args, tally, duration)?;
    if let (Some(file), Some(dir)) = (&args.history, &parts) {
        let ops = history::merge(dir, file)?;
        history_checks(&mut report, &ops, file);
    }
    crate::bench::emit(&report, args.json, human)?;
    Ok(if report.passed { EXIT_OK } else { EXIT_FAILURE })
}

/// Version 1 of every artifact: a valid payload, and counters at value 0 (recorded in the
/// history's `parts`, if any).
fn populate(seg: &Segment, plan: &Plan, parts: Option<&std::path::Path>) -> Result<(), CliError> {
    let agent = seg.attach("torture-setup")?;
    let mut hist = parts
        .map(|dir| history::Recorder::open(dir, "torture-setup", 0))
        .transpose()?;
    let mut put = |key: String, bytes: &[u8]| -> Result<(), CliError> {
        let at = hist.as_mut().map(history::Recorder::start);
        let v = agent.put_blind(key.as_str(), bytes)?;
        if let (Some(h), Some(at)) = (hist.as_mut(), at) {
            let args = history::Args {
                expected: None,
                checksum: Some(history::checksum(bytes)),
            };
            let done = history::Outcome {
                ok: true,
                version: Some(v),
                ..history::Outcome::default()
            };
            h.record(at, "put_blind", &key, args, Some(done))?;
        }
        Ok(())
    };
    let mut bytes = Vec::new();
    let mut rng = Rng::new(plan.seed);
    for a in 0..plan.artifacts {
        let len = rng.range(24, plan.max_payload.min(4096)) as usize;
        make_payload(&mut bytes, rng.next_u64(), a, u32::MAX, len);
        put(payload_key(a), &bytes)?;
    }
    for c in 0..plan.counters {
        put(counter_key(c), &make_counter(0, c, u32::MAX, 0))?;
    }
    Ok(())
}

/// The kill phase: until the budget or the time runs out, pause, SIGKILL a random worker, reap
/// it, and start its replacement.
fn torment(
    plan: &Plan,
    lay: &Layout,
    side: &Side,
    crew: &mut Crew,
    tally: &mut Tally,
    started: Instant,
) -> Result<(), CliError> {
    let mut rng = Rng::new(plan.seed ^ 0x5EED_0FC0_FFEE);
    let deadline = plan.seconds.map(|s| started + Duration::from_secs(s));
    let mut progress = Progress::new("torture: kills", plan.kills.unwrap_or(0));
    loop {
        if plan.kills.is_some_and(|n| tally.kills >= n)
            || deadline.is_some_and(|d| Instant::now() >= d)
        {
            return Ok(());
        }
        if signal::interrupted() {
            tally.problems.push("interrupted by a signal".to_owned());
            return Ok(());
        }
        let pause = Duration::from_millis(rng.range(plan.interval.0, plan.interval.1));
        let wake = Instant::now() + pause;
        loop {
            if let Some((i, status)) = crew.exited() {
                unexpected_exit(side, lay, tally, i, status)?;
                return Ok(());
            }
            let now = Instant::now();
            if now >= wake {
                break;
            }
            std::thread::sleep((wake - now).min(Duration::from_millis(10)));
        }
        let victim = rng.range(0, u64::from(plan.workers) - 1) as usize;
        // Relaxed: a sample for the statistics; the worker may leave the write at any moment.
        let in_write = side
            .word(lay.worker(victim, IN_WRITE))?
            .load(Ordering::Relaxed)
            != 0;
        match crew.kill(victim)? {
            Some(status) if status.signal() == Some(libc::SIGKILL) => {
                tally.kills += 1;
                tally.kills_in_write += u64::from(in_write);
            }
            Some(status) => {
                unexpected_exit(side, lay, tally, victim, status)?;
                return Ok(());
            }
            None => {}
        }
        crew.spawn(victim)?;
        tally.replacements += 1;
        progress.tick(tally.kills);
    }
}

/// A worker exited by itself. If it recorded a failed check, that check reports it; otherwise
/// the exit itself is the problem.
fn unexpected_exit(
    side: &Side,
    lay: &Layout,
    tally: &mut Tally,
    i: usize,
    status: ExitStatus,
) -> Result<(), CliError> {
    // Relaxed: the worker is reaped, its stores are visible.
    let recorded = side.word(lay.worker(i, FAIL_KIND))?.load(Ordering::Relaxed) != 0;
    if !recorded {
        tally.problems.push(format!(
            "{} exited by itself ({status}); see its message above",
            worker_name(i)
        ));
    }
    Ok(())
}

/// Set STOP and reap every worker; a worker that fails or does not stop is a problem.
fn stop(side: &Side, lay: &Layout, crew: &mut Crew, tally: &mut Tally) -> Result<(), CliError> {
    // Release pairs with the workers' Acquire load of STOP.
    side.word(STOP)?.store(1, Ordering::Release);
    let until = Instant::now() + STOP_PATIENCE;
    for i in 0..crew.slots.len() {
        let Some(mut child) = crew.slots[i].child.take() else {
            continue;
        };
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(5)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        match status {
            Some(status) if status.success() => {}
            Some(status) => unexpected_exit(side, lay, tally, i, status)?,
            None => tally.problems.push(format!(
                "{} did not stop within {} s",
                worker_name(i),
                STOP_PATIENCE.as_secs()
            )),
        }
    }
    Ok(())
}

/// A heading, then its table indented under it.
fn section(out: &mut String, heading: &str, rows: &[Vec<String>], align: fn(usize) -> Align) {
    out.push_str(heading);
    out.push('\n');
    out.push_str(&table::indent(&table::render(rows, align), "  "));
}

/// The human summary.
fn human(r: &Report) -> String {
    let mut t = String::new();
    let c = &r.config;
    let _ = writeln!(
        t,
        "torture {}: {} workers, {} artifacts, {} counters, max payload {}, kill interval {}-{} ms, seed {}",
        r.seg,
        c.workers,
        c.artifacts,
        c.counters,
        crate::size::format_size(c.max_payload),
        c.kill_interval_ms[0],
        c.kill_interval_ms[1],
        r.seed
    );
    let totals = [
        [
            "duration",
            &format!("{:.1} s", r.duration_ms as f64 / 1000.0),
        ],
        [
            "kills",
            &format!("{} ({} inside a write)", r.kills, r.kills_in_write),
        ],
        [
            "replacements",
            &format!("{} (attach retries {})", r.replacements, r.attach_retries),
        ],
    ]
    .map(|row| row.map(str::to_owned).to_vec());
    t.push_str(&table::render(&totals, |_| Align::Left));
    let mut operations: Vec<Vec<String>> = Op::ALL
        .iter()
        .map(|op| {
            let n = r.operations.get(op.name()).copied().unwrap_or(0);
            vec![op.name().to_owned(), n.to_string()]
        })
        .collect();
    let total = r.operations.get("total").copied().unwrap_or(0);
    operations.push(vec!["total issued".to_owned(), total.to_string()]);
    section(&mut t, "operations", &operations, Align::label_then_numbers);
    let mut counters = vec![
        ["key", "version", "value", "acknowledged"]
            .map(str::to_owned)
            .to_vec(),
    ];
    counters.extend(r.counters.iter().map(|row| {
        vec![
            row.key.clone(),
            row.version.to_string(),
            row.value.to_string(),
            row.acknowledged.to_string(),
        ]
    }));
    section(&mut t, "counters", &counters, Align::label_then_numbers);
    let checks: Vec<Vec<String>> = r
        .checks
        .iter()
        .map(|check| {
            let mark = match check.status {
                "passed" => "PASS",
                "failed" => "FAIL",
                _ => "SKIP",
            };
            vec![mark.to_owned(), check.name.to_owned(), check.detail.clone()]
        })
        .collect();
    section(&mut t, "checks", &checks, |_| Align::Left);
    let passed = r.checks.iter().filter(|c| c.status == "passed").count();
    let _ = writeln!(
        t,
        "result: {} ({passed} passed, {} failed, {} skipped)",
        if r.passed { "PASS" } else { "FAIL" },
        r.failures,
        r.checks.len() - passed - r.failures as usize
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::torture::layout::{ATTACH_RETRIES, FAIL_ARTIFACT, FAIL_EXPECTED, FAIL_SEEN};

    #[test]
    fn intervals() {
        let ok = |s| parse_interval(s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok("5-50"), (5, 50));
        assert_eq!(ok("7"), (7, 7));
        assert_eq!(ok("0-0"), (0, 0));
        for bad in ["", "a", "50-5", "1-", "1-70000"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn side_layout_lines_do_not_overlap() {
        let lay = Layout {
            workers: 3,
            artifacts: 5,
            counters: 2,
        };
        let mut seen = std::collections::BTreeSet::new();
        for w in 0..lay.workers {
            for offset in [FAIL_KIND, FAIL_ARTIFACT, FAIL_SEEN, FAIL_EXPECTED, IN_WRITE] {
                assert!(seen.insert(lay.worker(w, offset)));
            }
            assert!(seen.insert(lay.worker(w, ATTACH_RETRIES)));
            for op in Op::ALL {
                assert!(seen.insert(lay.op(w, op)));
            }
            for a in 0..lay.artifacts {
                assert!(seen.insert(lay.last(w, a)));
            }
        }
        for c in 0..lay.counters {
            assert!(seen.insert(lay.acked(c)));
        }
        assert!(
            seen.iter()
                .all(|&l| l > layout::INJECTED && l < lay.lines())
        );
    }
}

//! `ccs bench soak`: an orchestrator's life in one fixed-size segment.
//!
//! Workers (agents with unique names) attach, run tasks and leave; each task creates keys,
//! writes, reads and deletes them; payloads range over sizes from 64 B to 1 MiB; optionally,
//! worker processes are SIGKILLed mid-write. The segment is sized for the live data only, so
//! it keeps working for ever only if everything a departed worker or a deleted key used is
//! reused. The run counts every capacity error by resource.
//!
//! What is reused (docs/capacity.md): dead agents' slots, deleted keys' directory lines, and
//! freed payload blocks (split and merged back, a buddy allocator). So every churn must run
//! with no capacity error for ever while the live data fits (for sizes: an arena of about twice
//! the peak live bytes); `--fail-on-capacity` makes the run fail if it does not. At the end,
//! every dead agent is recovered (forgotten, as a takeover of its slot would) and fsck counts
//! what the arena lost: `--fail-on-leak` makes the run fail if a byte is lost.
//!
//! The operations run in this process (in-process agents come and go exactly as processes do:
//! each attach holds its own kernel lock, released on detach); `--kills` adds worker processes
//! killed while they write.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::time::Instant;

use agent_coherence::{Agent, Config, Error, Segment};
use clap::Args;
use serde::Serialize;

use super::scale::Rng;
use super::{Machine, Names, Progress, SCHEMA};
use crate::args::BenchChildArgs;
use crate::error::CliError;

/// JSON schema of `ccs bench soak --json`.
pub const SOAK_SCHEMA_HELP: &str = include_str!("soak_schema.txt");

/// What comes and goes during a soak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Churn {
    /// Workers with unique names replace each other (dead agents' slots must be reused).
    Agents,
    /// Each task creates its own keys and deletes them (deleted keys' lines must be reused).
    Keys,
    /// Payload sizes vary from --min-size to --max-size, log-uniformly (freed blocks must be
    /// reused across size classes).
    Sizes,
}

/// `ccs bench soak`.
#[derive(Debug, Args)]
pub struct SoakArgs {
    /// Operations to run (gets, puts and deletes) [default: 1000000].
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    pub ops: u64,
    /// What comes and goes, comma-separated [default: agents,keys,sizes].
    #[arg(long, value_delimiter = ',', default_value = "agents,keys,sizes")]
    pub churn: Vec<Churn>,
    /// Workers attached at once.
    #[arg(long, value_name = "W", default_value_t = 4)]
    pub workers: u32,
    /// Operations a worker runs before it leaves.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub worker_ops: u64,
    /// Keys one worker's task holds at once.
    #[arg(long, value_name = "K", default_value_t = 4)]
    pub task_keys: u32,
    /// Smallest payload (also the fixed size without `sizes` churn).
    #[arg(long, value_name = "BYTES", default_value = "64")]
    pub min_size: String,
    /// Largest payload.
    #[arg(long, value_name = "BYTES", default_value = "1M")]
    pub max_size: String,
    /// Worker processes to SIGKILL while they write, spread over the run.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub kills: u32,
    /// Agent slots of the segment [default: workers + 2].
    #[arg(long, value_name = "N")]
    pub agents: Option<u32>,
    /// Artifact lines of the segment [default: 2 × the live keys].
    #[arg(long, value_name = "N")]
    pub artifacts: Option<u32>,
    /// Arena bytes [default: 4 × the largest live data, rounded up to a power of two].
    #[arg(long, value_name = "BYTES")]
    pub arena: Option<String>,
    /// Seed of the operation mix.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Exit 1 if any capacity error happened.
    #[arg(long)]
    pub fail_on_capacity: bool,
    /// Exit 1 if the arena leaked any byte: counted by fsck once every dead agent's slot was
    /// recovered (forgotten), so a killed writer's block counts only if its recovery lost it.
    #[arg(long)]
    pub fail_on_leak: bool,
    /// Print one JSON object (stable; see the schema below) instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Default, Serialize)]
struct Capacity {
    agents: u64,
    artifacts: u64,
    arena: u64,
    descriptors: u64,
    other: u64,
}

impl Capacity {
    fn total(&self) -> u64 {
        self.agents + self.artifacts + self.arena + self.descriptors + self.other
    }

    fn count(&mut self, what: &str) {
        match what {
            "agents" => self.agents += 1,
            "artifacts" => self.artifacts += 1,
            "payload arena bytes" => self.arena += 1,
            "versions alive at once (slot descriptors)" => self.descriptors += 1,
            _ => self.other += 1,
        }
    }
}

#[derive(Debug, Serialize)]
struct Params {
    ops: u64,
    churn: Vec<Churn>,
    workers: u32,
    worker_ops: u64,
    task_keys: u32,
    min_size: u64,
    max_size: u64,
    kills: u32,
    seed: u64,
    config: SegmentSize,
}

#[derive(Debug, Serialize)]
struct SegmentSize {
    max_agents: u32,
    max_artifacts: u32,
    arena_bytes: u64,
}

#[derive(Debug, Default, Serialize)]
struct Counts {
    ops: u64,
    gets: u64,
    puts: u64,
    deletes: u64,
    attaches: u64,
    kills: u64,
    conflicts: u64,
    other_errors: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    schema: u32,
    bench: &'static str,
    machine: Machine,
    params: Params,
    counts: Counts,
    capacity_errors: Capacity,
    peak_live_bytes: u64,
    arena_touched_bytes: u64,
    arena_held_by_dead_bytes: u64,
    dead_agents_recovered: u64,
    arena_leaked_bytes: u64,
    elapsed_ns: u64,
    ops_per_s: f64,
    first_error: Option<String>,
}

/// One worker: its agent, the keys its current task holds (key, bytes), ops left.
struct Worker {
    agent: Agent,
    keys: Vec<(String, u64)>,
    left: u64,
}

/// The soak itself.
struct Soak<'a> {
    args: &'a SoakArgs,
    segment: Segment,
    rng: Rng,
    min: u64,
    max: u64,
    names: u64,
    counts: Counts,
    capacity: Capacity,
    /// Payload bytes of every live key, and their sum.
    live: HashMap<String, u64>,
    live_bytes: u64,
    peak_live_bytes: u64,
    first_error: Option<String>,
}

fn has(args: &SoakArgs, churn: Churn) -> bool {
    args.churn.contains(&churn)
}

/// Run `ccs bench soak`.
pub fn run(args: &SoakArgs) -> Result<(), CliError> {
    let min = super::payload_arg(&args.min_size, 1)?;
    let max = super::payload_arg(&args.max_size, min)?;
    if !(1..=1024).contains(&args.workers) || args.task_keys == 0 || args.worker_ops == 0 {
        return Err(CliError::Usage(
            "--workers must be 1..=1024, --task-keys and --worker-ops at least 1".into(),
        ));
    }
    let live_keys = args.workers * args.task_keys + args.kills.min(1) * args.task_keys;
    let largest = if has(args, Churn::Sizes) { max } else { min };
    let live_bytes = u64::from(live_keys) * largest.next_power_of_two().max(64);
    let arena = match &args.arena {
        Some(text) => crate::commands::size_arg("arena", Some(text), 0)?,
        None => (4 * live_bytes).next_power_of_two(),
    };
    let config = Config {
        max_agents: args.agents.unwrap_or(args.workers + 2),
        max_artifacts: args.artifacts.unwrap_or(2 * live_keys),
        arena_bytes: arena,
        max_payload: largest,
        ..Config::default()
    };
    let names = Names::new("soak");
    let segment = Segment::create(&names.seg, config)?;
    let mut soak = Soak {
        args,
        segment,
        rng: Rng(args.seed.max(1)),
        min,
        max: largest,
        names: 0,
        counts: Counts::default(),
        capacity: Capacity::default(),
        live: HashMap::new(),
        live_bytes: 0,
        peak_live_bytes: 0,
        first_error: None,
    };
    let started = Instant::now();
    soak.run(&names.seg)?;
    let elapsed_ns = started.elapsed().as_nanos() as u64;
    // What the killed workers' slots still hold (a block being filled, a version being freed),
    // then what is lost once every dead agent is recovered, as the next attach over its slot
    // would: only the second is a leak.
    let held = soak.segment.fsck(false)?;
    let dead_agents_recovered = forget_dead_agents(&soak.segment)?;
    let fsck = soak.segment.fsck(false)?;
    let arena_touched_bytes = config.arena_bytes - fsck.arena.untouched_bytes;
    let failed = soak.capacity.total() > 0;
    let leaked = fsck.arena.leaked_bytes > 0;
    let report = Report {
        schema: SCHEMA,
        bench: "soak",
        machine: Machine::probe(),
        params: Params {
            ops: args.ops,
            churn: args.churn.clone(),
            workers: args.workers,
            worker_ops: args.worker_ops,
            task_keys: args.task_keys,
            min_size: min,
            max_size: largest,
            kills: args.kills,
            seed: args.seed,
            config: SegmentSize {
                max_agents: config.max_agents,
                max_artifacts: config.max_artifacts,
                arena_bytes: config.arena_bytes,
            },
        },
        ops_per_s: soak.counts.ops as f64 * 1e9 / elapsed_ns.max(1) as f64,
        counts: soak.counts,
        capacity_errors: soak.capacity,
        peak_live_bytes: soak.peak_live_bytes,
        arena_touched_bytes,
        arena_held_by_dead_bytes: held.arena.leaked_bytes,
        dead_agents_recovered,
        arena_leaked_bytes: fsck.arena.leaked_bytes,
        elapsed_ns,
        first_error: soak.first_error,
    };
    super::emit(&report, args.json, human)?;
    if failed && args.fail_on_capacity {
        return Err(CliError::Bench(format!(
            "{} capacity errors (see the report); the segment wore out",
            report.capacity_errors.total()
        )));
    }
    if leaked && args.fail_on_leak {
        return Err(CliError::Bench(format!(
            "the arena leaked {} bytes once the {} dead agents were recovered (see `ccs fsck`)",
            report.arena_leaked_bytes, report.dead_agents_recovered
        )));
    }
    Ok(())
}

/// Forget every agent whose process is gone, running its recovery; how many.
fn forget_dead_agents(segment: &Segment) -> Result<u64, CliError> {
    let mut forgotten = 0;
    for agent in segment.agent_slots()? {
        if !agent.alive && segment.forget_agent(&agent.name)? {
            forgotten += 1;
        }
    }
    Ok(forgotten)
}

impl Soak<'_> {
    fn run(&mut self, seg: &str) -> Result<(), CliError> {
        let mut workers = Vec::new();
        for index in 0..self.args.workers {
            match self.attach(index)? {
                Some(worker) => workers.push(worker),
                None => return Ok(()),
            }
        }
        let kill_every = (self.args.kills > 0).then(|| self.args.ops / u64::from(self.args.kills));
        let mut progress = Progress::new("soak ops", self.args.ops);
        while self.counts.ops < self.args.ops {
            let index = (self.rng.next() % workers.len() as u64) as usize;
            self.step(&mut workers[index], index as u32);
            if workers[index].left == 0 {
                // The worker leaves before its successor arrives, as in an orchestrator.
                let done = workers.swap_remove(index);
                self.finish(done);
                let Some(fresh) = self.attach(index as u32)? else {
                    break;
                };
                workers.push(fresh);
                let last = workers.len() - 1;
                workers.swap(index, last);
            }
            if let Some(every) = kill_every
                && every > 0
                && self.counts.ops.is_multiple_of(every)
                && self.counts.kills < u64::from(self.args.kills)
            {
                self.kill_one(seg)?;
            }
            if self.counts.ops.is_multiple_of(4096) {
                progress.tick(self.counts.ops);
            }
        }
        progress.finish();
        for worker in workers {
            self.finish(worker);
        }
        Ok(())
    }

    /// A worker for position `index`: a new unique name with agent churn, else the same name
    /// again. `None` if the segment is out of agent slots (counted; the run stops there).
    fn attach(&mut self, index: u32) -> Result<Option<Worker>, CliError> {
        let name = if has(self.args, Churn::Agents) {
            self.names += 1;
            format!("soak-{}", self.names)
        } else {
            format!("soak-{index}")
        };
        self.counts.attaches += 1;
        match self.segment.attach(&name) {
            Ok(agent) => Ok(Some(Worker {
                agent,
                keys: Vec::new(),
                left: self.args.worker_ops,
            })),
            Err(error @ Error::CapacityExceeded { .. }) => {
                self.record(&error);
                Ok(None)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// A payload size: fixed, or log-uniform between min and max.
    fn size(&mut self) -> u64 {
        if !has(self.args, Churn::Sizes) || self.max <= self.min {
            return self.min;
        }
        let (lo, hi) = ((self.min as f64).ln(), (self.max as f64).ln());
        let unit = (self.rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((lo + unit * (hi - lo)).exp() as u64).clamp(self.min, self.max)
    }

    /// One operation of `worker` (at position `index`).
    fn step(&mut self, worker: &mut Worker, index: u32) {
        worker.left -= 1;
        self.counts.ops += 1;
        let keys_churn = has(self.args, Churn::Keys);
        let full = worker.keys.len() as u32 >= self.args.task_keys;
        if !full {
            // Start a key of the task: a fresh key with key churn, else the position's own.
            let key = if keys_churn {
                self.names += 1;
                format!("task/{}", self.names)
            } else {
                format!("pool/{index}/{}", worker.keys.len())
            };
            let size = self.size();
            if !keys_churn {
                // A new name after a drop holds dropped views: read before writing.
                self.counts.gets += 1;
                let _ = worker.agent.get(key.as_str());
            }
            if self.put(worker, &key, size) {
                worker.keys.push((key, size));
            }
            return;
        }
        let pick = (self.rng.next() % worker.keys.len() as u64) as usize;
        match self.rng.next() % 4 {
            0 | 1 => {
                self.counts.gets += 1;
                if let Err(error) = worker.agent.get(worker.keys[pick].0.as_str()) {
                    self.record(&error);
                }
            }
            2 => {
                let size = self.size();
                let key = worker.keys[pick].0.clone();
                if self.put(worker, &key, size) {
                    worker.keys[pick].1 = size;
                }
            }
            _ if keys_churn => {
                let (key, _) = worker.keys.swap_remove(pick);
                self.delete(worker, &key);
            }
            _ => {
                self.counts.gets += 1;
                let _ = worker.agent.check(worker.keys[pick].0.as_str());
            }
        }
    }

    fn put(&mut self, worker: &Worker, key: &str, size: u64) -> bool {
        self.counts.puts += 1;
        let payload = vec![(size % 251) as u8; size as usize];
        match worker.agent.put(key, &payload) {
            Ok(_) => {
                let old = self.live.insert(key.to_owned(), size).unwrap_or(0);
                self.live_bytes = self.live_bytes - old + size;
                self.peak_live_bytes = self.peak_live_bytes.max(self.live_bytes);
                true
            }
            Err(error) => {
                self.record(&error);
                false
            }
        }
    }

    fn delete(&mut self, worker: &Worker, key: &str) {
        self.counts.deletes += 1;
        match worker.agent.delete(key) {
            Ok(_) => self.live_bytes -= self.live.remove(key).unwrap_or(0),
            Err(error) => self.record(&error),
        }
    }

    /// The worker's task is done: with key churn its keys are deleted; then it leaves.
    fn finish(&mut self, mut worker: Worker) {
        if has(self.args, Churn::Keys) {
            for (key, _) in std::mem::take(&mut worker.keys) {
                self.delete(&worker, &key);
            }
        }
        drop(worker.agent);
    }

    fn record(&mut self, error: &Error) {
        match error {
            Error::CapacityExceeded { what, .. } => self.capacity.count(what),
            Error::Conflict { .. } => self.counts.conflicts += 1,
            _ => self.counts.other_errors += 1,
        }
        if self.first_error.is_none() {
            self.first_error = Some(error.to_string());
        }
    }

    /// Start a worker process that attaches a unique name and writes in a loop; SIGKILL it
    /// once it has written.
    fn kill_one(&mut self, seg: &str) -> Result<(), CliError> {
        let exe = std::env::current_exe().map_err(|e| CliError::Bench(e.to_string()))?;
        let mut child = Command::new(exe)
            .args([
                "bench-child",
                "--role",
                "soak-victim",
                "--seg",
                seg,
                "--side",
                "-",
            ])
            .args(["--index", &self.counts.kills.to_string()])
            .args(["--payload", &self.max.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| CliError::Bench(format!("cannot start a soak victim: {e}")))?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = std::io::BufReader::new(out).read_line(&mut line);
        }
        let _ = child.kill();
        let _ = child.wait();
        self.counts.kills += 1;
        if !line.starts_with("WRITING") {
            self.counts.other_errors += 1;
            self.first_error
                .get_or_insert_with(|| format!("soak victim: {}", line.trim()));
        }
        Ok(())
    }
}

/// `ccs bench-child --role soak-victim`: attach a unique name, write its keys for ever (until
/// the parent's SIGKILL), saying `WRITING` after the first write.
pub fn victim(args: &BenchChildArgs) -> Result<(), CliError> {
    let segment = Segment::open(&args.seg)?;
    let agent = segment.attach(&format!("victim-{}", args.index))?;
    let payload = vec![7u8; args.payload as usize];
    let mut said = false;
    for n in 0u64.. {
        let key = format!("victim/{}", n % 2);
        let _ = agent.get(key.as_str());
        agent.put(key.as_str(), &payload)?;
        if !said {
            crate::commands::print("WRITING\n")?;
            said = true;
        }
    }
    Ok(())
}

/// The human form: a few lines of totals (no columns to align).
fn human(report: &Report) -> String {
    let mut out = String::new();
    let c = &report.counts;
    let cap = &report.capacity_errors;
    let p = &report.params;
    let _ = writeln!(out, "{}", report.machine.line());
    let _ = writeln!(
        out,
        "soak: churn {:?}, {} workers × {} ops, {} keys each, payload {}..{} B, {} kills",
        p.churn, p.workers, p.worker_ops, p.task_keys, p.min_size, p.max_size, p.kills
    );
    let _ = writeln!(
        out,
        "segment: {} agents, {} artifacts, {} arena bytes",
        p.config.max_agents, p.config.max_artifacts, p.config.arena_bytes
    );
    let _ = writeln!(
        out,
        "ops {} ({:.0}/s): gets {} puts {} deletes {}; attaches {} kills {}; conflicts {} other errors {}",
        c.ops,
        report.ops_per_s,
        c.gets,
        c.puts,
        c.deletes,
        c.attaches,
        c.kills,
        c.conflicts,
        c.other_errors
    );
    let _ = writeln!(
        out,
        "capacity errors: {} (agents {}, artifacts {}, arena {}, descriptors {}, other {})",
        cap.total(),
        cap.agents,
        cap.artifacts,
        cap.arena,
        cap.descriptors,
        cap.other
    );
    let _ = writeln!(
        out,
        "peak live bytes {}; arena ever touched {} bytes; held by dead agents {} bytes, leaked \
         {} bytes once the {} dead were recovered",
        report.peak_live_bytes,
        report.arena_touched_bytes,
        report.arena_held_by_dead_bytes,
        report.arena_leaked_bytes,
        report.dead_agents_recovered
    );
    if let Some(error) = &report.first_error {
        let _ = writeln!(out, "first error: {error}");
    }
    out
}

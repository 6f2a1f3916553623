//! `ccs bench scale`: aggregate throughput of P worker processes on a shared set of N
//! artifacts, each doing a random mix of gets (`get_into` with a reused buffer) and
//! conditional puts (`put_if` on the version the worker last saw) for S seconds.
//!
//! A refused put counts as a conflict and is not retried; the worker learns the current
//! version from the conflict and moves on. The clock starts when the parent sets the start
//! word in the side mapping, after every worker has attached and resolved its keys.

use agent_coherence::Conflict;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use agent_coherence::{Config, Error, Key, Segment};
use ccs_protocol::sync::Ordering;
use serde::Serialize;

use super::side::{HANDOFF, PER_CHILD, Side};
use super::{Children, Machine, Names, Progress, SCHEMA, STALL, payload_arg};
use crate::args::{BenchChildArgs, ScaleArgs};
use crate::commands::print;
use crate::error::CliError;
use crate::table::{self, Align};

/// Most worker processes.
const MAX_PROCS: u32 = 256;

fn key_name(i: u32) -> String {
    format!("bench/scale/{i:07}")
}

/// One worker's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
struct Counts {
    ops: u64,
    gets: u64,
    hits: u64,
    misses: u64,
    puts: u64,
    conflicts: u64,
    elapsed_ns: u64,
    /// CPU time the worker spent in the loop: with more processes than CPUs the wall clock
    /// measures time-slicing, this the cost of each operation itself.
    cpu_ns: u64,
}

impl Counts {
    fn line(&self) -> String {
        format!(
            "ops {} gets {} hits {} misses {} puts {} conflicts {} elapsed_ns {} cpu_ns {}\n",
            self.ops,
            self.gets,
            self.hits,
            self.misses,
            self.puts,
            self.conflicts,
            self.elapsed_ns,
            self.cpu_ns
        )
    }

    fn parse(text: &str) -> Option<Counts> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let get = |name: &str| {
            let at = words.iter().position(|w| *w == name)?;
            words.get(at + 1)?.parse::<u64>().ok()
        };
        Some(Counts {
            ops: get("ops")?,
            gets: get("gets")?,
            hits: get("hits")?,
            misses: get("misses")?,
            puts: get("puts")?,
            conflicts: get("conflicts")?,
            elapsed_ns: get("elapsed_ns")?,
            cpu_ns: get("cpu_ns")?,
        })
    }

    fn per_second(&self) -> f64 {
        self.ops as f64 * 1e9 / self.elapsed_ns.max(1) as f64
    }
}

#[derive(Debug, Serialize)]
struct Process {
    index: usize,
    #[serde(flatten)]
    counts: Counts,
    ops_per_s: f64,
}

#[derive(Debug, Serialize)]
struct Total {
    ops: u64,
    ops_per_s: f64,
    gets: u64,
    hits: u64,
    misses: u64,
    puts: u64,
    conflicts: u64,
    /// CPU time per operation over every worker (sum of CPU time / sum of operations): flat
    /// in the process count when operations do not slow each other down.
    cpu_ns_per_op: f64,
}

#[derive(Debug, Serialize)]
struct Params {
    procs: u32,
    read_ratio: f64,
    seconds: u32,
    artifacts: u32,
    payload: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    schema: u32,
    bench: &'static str,
    machine: Machine,
    params: Params,
    processes: Vec<Process>,
    total: Total,
}

/// Run the benchmark (the parent: it coordinates and does no operations itself).
pub fn run(args: &ScaleArgs) -> Result<(), CliError> {
    if !(1..=MAX_PROCS).contains(&args.procs) {
        return Err(CliError::Usage(format!(
            "--procs must be between 1 and {MAX_PROCS}, not {}",
            args.procs
        )));
    }
    if !(0.0..=1.0).contains(&args.read_ratio) {
        return Err(CliError::Usage(format!(
            "--read-ratio must be between 0 and 1, not {}",
            args.read_ratio
        )));
    }
    if !(1..=86_400).contains(&args.seconds) {
        return Err(CliError::Usage(format!(
            "--seconds must be between 1 and 86400, not {}",
            args.seconds
        )));
    }
    if !(1..=1_000_000).contains(&args.artifacts) {
        return Err(CliError::Usage(format!(
            "--artifacts must be between 1 and 1000000, not {}",
            args.artifacts
        )));
    }
    let payload = payload_arg(&args.payload, 1)?;
    let machine = Machine::probe();
    let names = Names::new("scale");
    let slot = payload.next_power_of_two();
    let config = Config {
        max_agents: args.procs + 2,
        max_artifacts: args.artifacts + 16,
        arena_bytes: (slot * 2 * (u64::from(args.artifacts) + 4 * u64::from(args.procs) + 64))
            .max(4 << 20),
        max_payload: slot,
        ..Config::default()
    };
    let seg = Segment::create(&names.seg, config)?;
    let side = Side::create(&names.side, args.procs as usize)?;
    {
        let setup = seg.attach("setup")?;
        let bytes = vec![0u8; usize::try_from(payload).unwrap_or(1)];
        for i in 0..args.artifacts {
            setup.put(key_name(i).as_str(), &bytes)?;
        }
    }
    let child_args = (0..args.procs)
        .map(|i| {
            vec![
                "--role".to_owned(),
                "worker".to_owned(),
                "--seg".to_owned(),
                names.seg.clone(),
                "--side".to_owned(),
                names.side.clone(),
                "--index".to_owned(),
                i.to_string(),
                "--payload".to_owned(),
                payload.to_string(),
                "--artifacts".to_owned(),
                args.artifacts.to_string(),
                "--read-ratio".to_owned(),
                args.read_ratio.to_string(),
                "--seconds".to_owned(),
                args.seconds.to_string(),
            ]
        })
        .collect();
    let mut children = Children::spawn("worker", child_args)?;
    let ready: Vec<_> = (0..args.procs as usize)
        .map(|i| side.word(PER_CHILD + i))
        .collect::<Result<_, _>>()?;
    super::wait_for(&mut children, "workers to start", || {
        ready.iter().all(|w| w.load(Ordering::Acquire) >= 1)
    })?;
    // Release pairs with the workers' Acquire load of the start word.
    side.word(HANDOFF)?.store(1, Ordering::Release);
    let started = Instant::now();
    let run_for = Duration::from_secs(u64::from(args.seconds));
    let mut progress = Progress::new("scale: seconds", u64::from(args.seconds));
    while started.elapsed() < run_for {
        children.check_alive()?;
        std::thread::sleep(
            (run_for.saturating_sub(started.elapsed())).min(Duration::from_millis(100)),
        );
        progress.tick(started.elapsed().as_secs());
    }
    progress.finish();

    let mut processes = Vec::new();
    for (index, text) in children.collect()?.iter().enumerate() {
        let counts = Counts::parse(text).ok_or_else(|| {
            CliError::Bench(format!(
                "worker {index} sent a bad report: `{}`",
                text.trim()
            ))
        })?;
        processes.push(Process {
            index,
            ops_per_s: counts.per_second(),
            counts,
        });
    }
    let sum = |f: fn(&Counts) -> u64| processes.iter().map(|p| f(&p.counts)).sum::<u64>();
    let total = Total {
        ops: sum(|c| c.ops),
        ops_per_s: processes.iter().map(|p| p.ops_per_s).sum(),
        gets: sum(|c| c.gets),
        hits: sum(|c| c.hits),
        misses: sum(|c| c.misses),
        puts: sum(|c| c.puts),
        conflicts: sum(|c| c.conflicts),
        cpu_ns_per_op: sum(|c| c.cpu_ns) as f64 / sum(|c| c.ops).max(1) as f64,
    };
    let report = Report {
        schema: SCHEMA,
        bench: "scale",
        machine,
        params: Params {
            procs: args.procs,
            read_ratio: args.read_ratio,
            seconds: args.seconds,
            artifacts: args.artifacts,
            payload,
        },
        processes,
        total,
    };
    drop(seg);
    super::emit(&report, args.json, human)
}

/// The human form: the parameters and the machine, one row per process and the total.
fn human(report: &Report) -> String {
    let p = &report.params;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "scale: {} process(es), read ratio {}, {} s, {} artifacts, payload {} B",
        p.procs, p.read_ratio, p.seconds, p.artifacts, p.payload
    );
    let _ = writeln!(out, "{}", report.machine.line());
    let row = |name: String, ops: u64, rate: f64, c: [u64; 4]| {
        let mut row = vec![name, ops.to_string(), format!("{rate:.0}")];
        row.extend(c.map(|n| n.to_string()));
        row
    };
    let mut rows = vec![
        [
            "process",
            "ops",
            "ops/s",
            "hits",
            "misses",
            "puts",
            "conflicts",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for proc in &report.processes {
        let c = &proc.counts;
        rows.push(row(
            proc.index.to_string(),
            c.ops,
            proc.ops_per_s,
            [c.hits, c.misses, c.puts, c.conflicts],
        ));
    }
    let t = &report.total;
    rows.push(row(
        "total".to_owned(),
        t.ops,
        t.ops_per_s,
        [t.hits, t.misses, t.puts, t.conflicts],
    ));
    out.push_str(&table::render(&rows, Align::label_then_numbers));
    let _ = writeln!(
        out,
        "CPU time per operation: {:.1} ns (every worker's CPU time / operations)",
        t.cpu_ns_per_op
    );
    out
}

/// xorshift64*: a tiny, seedable generator; statistical quality is ample for picking keys
/// (seed it with a non-zero value).
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// A worker child: `ccs bench-child --role worker ...`.
pub fn child(args: &BenchChildArgs) -> Result<(), CliError> {
    let seg = Segment::open(&args.seg)?;
    let side = Side::open(&args.side)?;
    let agent = seg.attach(&format!("worker-{}", args.index))?;
    let keys: Vec<Key> = (0..args.artifacts.max(1))
        .map(|i| agent.key(&key_name(i)))
        .collect::<Result<_, _>>()?;
    let mut held = vec![0u64; keys.len()];
    let mut buf = Vec::with_capacity(usize::try_from(args.payload).unwrap_or(0));
    for (key, held) in keys.iter().zip(held.iter_mut()) {
        *held = agent.get_into(key, &mut buf)?.0;
    }
    let bytes = vec![0xa5_u8; usize::try_from(args.payload).unwrap_or(1)];
    let mut rng = Rng(
        0x9E37_79B9_7F4A_7C15 ^ (u64::from(args.index) + 1).wrapping_mul(0xD1B5_4A32_D192_ED03)
    );
    let read_cut = (args.read_ratio.clamp(0.0, 1.0) * (1u64 << 32) as f64) as u64;

    side.word(PER_CHILD + args.index as usize)?
        .store(1, Ordering::Release);
    let start = side.word(HANDOFF)?;
    let waiting = Instant::now();
    // Acquire pairs with the parent's Release store of the start word.
    while start.load(Ordering::Acquire) == 0 {
        if waiting.elapsed() > STALL {
            return Err(CliError::Bench("worker: never told to start".to_owned()));
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    let t0 = ccs_os::monotonic_ns();
    let deadline = t0 + u64::from(args.seconds) * 1_000_000_000;
    let cpu0 = cpu_ns();
    let mut c = Counts::default();
    let mut now = t0;
    while now < deadline {
        for _ in 0..64 {
            let r = rng.next();
            let k = (r % keys.len() as u64) as usize;
            if (r >> 32) < read_cut {
                let (version, hit) = agent.get_into(&keys[k], &mut buf)?;
                held[k] = version;
                c.gets += 1;
                if hit {
                    c.hits += 1;
                } else {
                    c.misses += 1;
                }
            } else {
                match agent.put_if(&keys[k], held[k], &bytes) {
                    Ok(version) => {
                        held[k] = version;
                        c.puts += 1;
                    }
                    Err(Error::Conflict(Conflict { current, .. })) => {
                        held[k] = current;
                        c.conflicts += 1;
                    }
                    Err(e) if e.is_contention() => c.conflicts += 1,
                    Err(e) => return Err(e.into()),
                }
            }
            c.ops += 1;
        }
        now = ccs_os::monotonic_ns();
    }
    c.elapsed_ns = now - t0;
    c.cpu_ns = cpu_ns().saturating_sub(cpu0);
    print(&c.line())
}

/// This process's CPU time, ns.
fn cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_round_trip() {
        let c = Counts {
            ops: 10,
            gets: 7,
            hits: 5,
            misses: 2,
            puts: 2,
            conflicts: 1,
            elapsed_ns: 1_000_000_000,
            cpu_ns: 900_000_000,
        };
        assert_eq!(Counts::parse(&c.line()), Some(c));
        assert!((c.per_second() - 10.0).abs() < 1e-9);
        assert_eq!(Counts::parse("ops 1"), None);
    }
}

//! `ccs bench invalidation`: how long after a writer's put() starts does a reader in another
//! process (a) notice its copy is invalid and (b) hold the new payload; and the machine's
//! floor for the same handoff between the same processes.
//!
//! Protocol of one run (W = this process, the writer; R = each reader child):
//!
//! 1. W creates the segment and the side mapping, writes step 0 of the artifact, spawns the
//!    readers. Each R attaches, reads (so it holds a valid copy), and stores 1 in its done
//!    word: ready.
//! 2. Floor steps: W takes `t0`, stores it in the handoff line, then stores the step number in
//!    the futex word beside it (Release) and, for futex, `futex_wake`s. R observes the step
//!    (spinning on the word, or in `futex_wait`), takes `t1`, and records `t1 − t0`.
//! 3. Invalidation steps: W takes `t0`, writes `t0` and the step into the payload's first 16
//!    bytes, and calls `put`. R notices (spin: `is_valid` false; futex: `wait_changed`
//!    returns), takes `t1`, reads with `get_into` until the payload carries this step, takes
//!    `t2`, and records `t1 − t0` and `t2 − t0` (with `t0` read from the payload).
//! 4. After every step W waits until every R's done word reaches the step: no two steps
//!    overlap. For futex, W also pauses [`FUTEX_PAUSE`] first so that readers are asleep.
//! 5. R prints its samples (one line per phase) on stdout and exits; W pools them.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use agent_coherence::{Agent, Config, Key, ReadGuard, Segment};
use ccs_protocol::sync::{AtomicU64, Ordering, spin_hint};
use serde::Serialize;

use super::side::{HANDOFF, PER_CHILD, Side};
use super::stats::{Summary, summarize};
use super::{Children, Machine, Names, Progress, SCHEMA, STALL, parse_cpus, payload_arg, pin_to};
use crate::args::{BenchChildArgs, InvalidationArgs, ReadMode, Wake};
use crate::commands::print;
use crate::error::CliError;
use crate::table::{self, Align};

/// The artifact every step writes.
const KEY: &str = "bench/invalidation";
/// Bytes of the payload stamp: put-start timestamp, then step number (both little-endian).
const STAMP: usize = 16;
/// Most reader processes.
const MAX_READERS: u32 = 256;
/// Pause before each futex step, so that readers are back asleep in the kernel.
const FUTEX_PAUSE: Duration = Duration::from_micros(200);

fn wake_name(wake: Wake) -> &'static str {
    match wake {
        Wake::Spin => "spin",
        Wake::Futex => "futex",
    }
}

fn read_name(read: ReadMode) -> &'static str {
    match read {
        ReadMode::Copy => "copy",
        ReadMode::ZeroCopy => "zero-copy",
    }
}

#[derive(Debug, Serialize)]
struct Params {
    readers: u32,
    payload: u64,
    wake: &'static str,
    read: &'static str,
    iterations: u64,
    warmup: u64,
    cpus: Option<Vec<usize>>,
    pause_ns: u64,
}

#[derive(Debug, Serialize)]
struct Phase {
    phase: &'static str,
    #[serde(flatten)]
    summary: Summary,
    ratio_to_floor: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    schema: u32,
    bench: &'static str,
    machine: Machine,
    params: Params,
    floor_kind: &'static str,
    phases: Vec<Phase>,
}

/// Run the benchmark (the writer's side).
pub fn run(args: &InvalidationArgs) -> Result<(), CliError> {
    if !(1..=MAX_READERS).contains(&args.readers) {
        return Err(CliError::Usage(format!(
            "--readers must be between 1 and {MAX_READERS}, not {}",
            args.readers
        )));
    }
    let payload = payload_arg(&args.payload, STAMP as u64)?;
    let iterations = u64::from(args.iterations.unwrap_or(match args.wake {
        Wake::Spin => 10_000,
        Wake::Futex => 2_000,
    }));
    if !(1..=10_000_000).contains(&iterations) {
        return Err(CliError::Usage(format!(
            "--iterations must be between 1 and 10000000, not {iterations}"
        )));
    }
    let cpus = args.cpus.as_deref().map(parse_cpus).transpose()?;
    let warmup = (iterations / 10).min(200);
    let readers = args.readers;
    let machine = Machine::probe();
    let pause = match args.wake {
        Wake::Spin => Duration::ZERO,
        Wake::Futex => FUTEX_PAUSE,
    };
    if args.wake == Wake::Spin && readers >= machine.nproc && !args.json {
        super::note_stderr(&format!(
            "warning: {readers} spinning reader(s) and a writer on {} CPUs: expect time-slicing, not handoffs",
            machine.nproc
        ));
    }

    let names = Names::new("inv");
    let config = Config {
        max_agents: readers + 2,
        max_artifacts: 16,
        arena_bytes: (payload.next_power_of_two() * 4 * (u64::from(readers) + 4)).max(1 << 20),
        max_payload: payload.next_power_of_two(),
        ..Config::default()
    };
    let seg = Segment::create(&names.seg, config)?;
    let side = Side::create(&names.side, readers as usize)?;
    let writer = seg.attach("writer")?;
    let key = writer.key(KEY)?;
    let mut bytes = vec![0u8; usize::try_from(payload).unwrap_or(STAMP)];
    stamp(&mut bytes, 0, 0);
    writer.put(&key, &bytes)?;
    if let Some(first) = cpus.as_ref().and_then(|c| c.first()) {
        pin_to(*first)?;
    }

    let steps = warmup + iterations;
    let child_args = (0..readers)
        .map(|r| {
            let mut a = vec![
                "--role".to_owned(),
                "reader".to_owned(),
                "--seg".to_owned(),
                names.seg.clone(),
                "--side".to_owned(),
                names.side.clone(),
                "--index".to_owned(),
                r.to_string(),
                "--payload".to_owned(),
                payload.to_string(),
                "--wake".to_owned(),
                wake_name(args.wake).to_owned(),
                "--read".to_owned(),
                read_name(args.read).to_owned(),
                "--floor-steps".to_owned(),
                steps.to_string(),
                "--steps".to_owned(),
                steps.to_string(),
                "--warmup".to_owned(),
                warmup.to_string(),
            ];
            if let Some(cpus) = &cpus {
                // The writer has the first CPU; readers go round-robin over the rest.
                let rest = if cpus.len() > 1 {
                    &cpus[1..]
                } else {
                    &cpus[..]
                };
                a.push("--cpu".to_owned());
                a.push(rest[r as usize % rest.len()].to_string());
            }
            a
        })
        .collect();
    let mut children = Children::spawn("reader", child_args)?;
    let done: Vec<&AtomicU64> = (0..readers as usize)
        .map(|r| side.word(PER_CHILD + r))
        .collect::<Result<_, _>>()?;
    let all_at = |step: u64| done.iter().all(|d| d.load(Ordering::Acquire) >= step);
    super::wait_for(&mut children, "readers to start", || all_at(1))?;

    let handoff_ts = side.word(HANDOFF)?;
    let handoff_seq = side.word32(HANDOFF)?;
    let mut progress = Progress::new("invalidation", 2 * steps);
    for k in 1..=steps {
        let step = 1 + k;
        pause_for(pause);
        let t0 = ccs_os::monotonic_ns();
        handoff_ts.store(t0, Ordering::Relaxed);
        // Release: publishes `handoff_ts`; pairs with the reader's Acquire load of the step.
        handoff_seq.store(step_u32(step)?, Ordering::Release);
        if args.wake == Wake::Futex {
            ccs_os::futex_wake(handoff_seq.as_std(), u32::MAX)?;
        }
        super::wait_for(&mut children, "readers (floor)", || all_at(step))?;
        progress.tick(k);
    }
    for k in 1..=steps {
        let step = 1 + steps + k;
        pause_for(pause);
        let t0 = ccs_os::monotonic_ns();
        stamp(&mut bytes, t0, step);
        writer.put(&key, &bytes)?;
        super::wait_for(&mut children, "readers (invalidation)", || all_at(step))?;
        progress.tick(steps + k);
    }
    progress.finish();

    let mut pooled: [Vec<u64>; 3] = Default::default();
    for (r, text) in children.collect()?.iter().enumerate() {
        for (slot, name) in pooled.iter_mut().zip(["floor", "invalid", "hold"]) {
            slot.extend(
                parse_line(text, name).map_err(|why| {
                    CliError::Bench(format!("reader {r} sent a bad report: {why}"))
                })?,
            );
        }
    }
    let [floor, invalid, hold] = &mut pooled;
    let summary = |v: &mut Vec<u64>| {
        summarize(v).ok_or_else(|| CliError::Bench("a reader recorded no samples".to_owned()))
    };
    let floor = summary(floor)?;
    let ratio = |s: &Summary| s.p50_ns as f64 / floor.p50_ns.max(1) as f64;
    let phases = vec![
        Phase {
            phase: "floor",
            summary: floor,
            ratio_to_floor: 1.0,
        },
        {
            let s = summary(invalid)?;
            Phase {
                phase: "observe_invalid",
                ratio_to_floor: ratio(&s),
                summary: s,
            }
        },
        {
            let s = summary(hold)?;
            Phase {
                phase: "hold_new",
                ratio_to_floor: ratio(&s),
                summary: s,
            }
        },
    ];
    let report = Report {
        schema: SCHEMA,
        bench: "invalidation",
        machine,
        params: Params {
            readers,
            payload,
            wake: wake_name(args.wake),
            read: read_name(args.read),
            iterations,
            warmup,
            cpus,
            pause_ns: u64::try_from(pause.as_nanos()).unwrap_or(u64::MAX),
        },
        floor_kind: match args.wake {
            Wake::Spin => "cache_line_handoff",
            Wake::Futex => "futex_wake",
        },
        phases,
    };
    drop((writer, seg));
    super::emit(&report, args.json, human)
}

/// The human form: the parameters and the machine, then one row per phase.
fn human(report: &Report) -> String {
    let p = &report.params;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "invalidation: {} reader process(es), payload {} B, wake {}, read {}, {} iterations (+{} warm-up) per phase{}",
        p.readers,
        p.payload,
        p.wake,
        p.read,
        p.iterations,
        p.warmup,
        p.cpus
            .as_ref()
            .map(|c| format!(", cpus {c:?}"))
            .unwrap_or_default()
    );
    let _ = writeln!(out, "{}", report.machine.line());
    let mut rows = vec![
        [
            "phase (ns)",
            "samples",
            "min",
            "p50",
            "p90",
            "p99",
            "p99.9",
            "max",
            "p50/floor",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for phase in &report.phases {
        let label = match phase.phase {
            "floor" => format!("floor ({})", report.floor_kind.replace('_', " ")),
            "observe_invalid" => "put start -> invalid seen".to_owned(),
            _ => "put start -> new payload held".to_owned(),
        };
        let s = &phase.summary;
        let mut row = vec![label, s.samples.to_string()];
        row.extend(
            [s.min_ns, s.p50_ns, s.p90_ns, s.p99_ns, s.p999_ns, s.max_ns].map(|n| n.to_string()),
        );
        row.push(format!("{:.1}x", phase.ratio_to_floor));
        rows.push(row);
    }
    out.push_str(&table::render(&rows, Align::label_then_numbers));
    out
}

fn pause_for(pause: Duration) {
    if !pause.is_zero() {
        std::thread::sleep(pause);
    }
}

fn step_u32(step: u64) -> Result<u32, CliError> {
    u32::try_from(step)
        .map_err(|_| CliError::Bench(format!("step {step} overflows the futex word")))
}

/// Write the put-start timestamp and the step into the payload's first [`STAMP`] bytes.
fn stamp(bytes: &mut [u8], t0: u64, step: u64) {
    if let Some(head) = bytes.get_mut(..STAMP) {
        head[..8].copy_from_slice(&t0.to_le_bytes());
        head[8..].copy_from_slice(&step.to_le_bytes());
    }
}

/// (timestamp, step) from a payload's stamp.
fn read_stamp(bytes: &[u8]) -> Option<(u64, u64)> {
    let t0 = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let step = u64::from_le_bytes(bytes.get(8..STAMP)?.try_into().ok()?);
    Some((t0, step))
}

/// The samples on the report line starting with `name`.
fn parse_line(text: &str, name: &str) -> Result<Vec<u64>, String> {
    let line = text
        .lines()
        .find(|line| line.split_whitespace().next() == Some(name))
        .ok_or_else(|| format!("no `{name}` line"))?;
    line.split_whitespace()
        .skip(1)
        .map(|n| n.parse().map_err(|_| format!("`{n}` is not a number")))
        .collect()
}

/// Spin until `ready()` holds; fail after [`STALL`] without it.
fn spin_until(
    what: &str,
    mut ready: impl FnMut() -> Result<bool, CliError>,
) -> Result<(), CliError> {
    let mut polls: u64 = 0;
    let mut started: Option<Instant> = None;
    while !ready()? {
        spin_hint();
        polls += 1;
        if polls.is_multiple_of(1 << 16)
            && started.get_or_insert_with(Instant::now).elapsed() > STALL
        {
            return Err(CliError::Bench(format!(
                "reader: no {what} for {} s",
                STALL.as_secs()
            )));
        }
    }
    Ok(())
}

struct Reader {
    agent: Agent,
    key: Key,
    buf: Vec<u8>,
    since: u64,
}

impl Reader {
    /// Wait until this reader's copy is invalidated (spin) or the version moves (futex).
    fn notice(&mut self, wake: Wake) -> Result<(), CliError> {
        match wake {
            Wake::Spin => spin_until("invalidation", || Ok(!self.agent.is_valid(&self.key)?)),
            Wake::Futex => {
                let started = Instant::now();
                loop {
                    let timeout = Some(Duration::from_secs(1));
                    if self
                        .agent
                        .wait_changed(&self.key, self.since, timeout)?
                        .is_some()
                    {
                        return Ok(());
                    }
                    if started.elapsed() > STALL {
                        return Err(CliError::Bench("reader: no new version".to_owned()));
                    }
                }
            }
        }
    }

    /// Take the new version (`read`: a copy or a pinned borrow) once it carries `step`; its
    /// put-start timestamp, and the pin when zero-copy (the caller drops it after timing).
    ///
    /// Between seeing its copy invalid and the new version's publication the reader spins on
    /// `being_written` (one load of the line's head) and reads once the writer has published.
    /// Reading again and again instead (each read returning the version it already holds)
    /// pinned and unpinned that version's descriptor, which the writer marks and retires,
    /// and asked for the mask line: 150–300 ns slower at 4 KiB. Polling `check` until the
    /// version moved (a load of the descriptor the writer has just written, shared before the
    /// pin needs it exclusive) was slower still (docs/benchmarks.md).
    fn fetch(
        &mut self,
        step: u64,
        read: ReadMode,
    ) -> Result<(u64, Option<ReadGuard<'_>>), CliError> {
        let mut polls: u64 = 0;
        loop {
            while self.agent.being_written(&self.key)? && polls <= 1 << 32 {
                spin_hint();
                polls += 1;
            }
            let taken = match read {
                ReadMode::Copy => {
                    let (version, _hit) = self.agent.get_into(&self.key, &mut self.buf)?;
                    (version != self.since)
                        .then(|| read_stamp(&self.buf).map(|(t0, seen)| (t0, seen, version, None)))
                }
                ReadMode::ZeroCopy => {
                    let guard = self.agent.read(&self.key)?;
                    (guard.version() != self.since).then(|| {
                        read_stamp(&guard)
                            .map(|(t0, seen)| (t0, seen, guard.version(), Some(guard)))
                    })
                }
            };
            if let Some(taken) = taken {
                let (t0, seen, version, guard) = taken.ok_or_else(|| {
                    CliError::Bench("reader: payload shorter than its stamp".to_owned())
                })?;
                if seen == step {
                    self.since = version;
                    return Ok((t0, guard));
                }
                if seen > step {
                    return Err(CliError::Bench(format!(
                        "reader: expected step {step}, read {seen}"
                    )));
                }
            }
            // Invalidated but not yet published: the writer is between the two.
            spin_hint();
            polls += 1;
            if polls > 1 << 32 {
                return Err(CliError::Bench(format!(
                    "reader: step {step} never arrived"
                )));
            }
        }
    }
}

/// A reader child: `ccs bench-child --role reader ...`.
pub fn child(args: &BenchChildArgs) -> Result<(), CliError> {
    let seg = Segment::open(&args.seg)?;
    let side = Side::open(&args.side)?;
    let agent = seg.attach(&format!("reader-{}", args.index))?;
    let key = agent.key(KEY)?;
    let mut reader = Reader {
        buf: Vec::with_capacity(usize::try_from(args.payload).unwrap_or(0)),
        since: 0,
        agent,
        key,
    };
    let (since, _) = reader.agent.get_into(&reader.key, &mut reader.buf)?;
    reader.since = since;
    let done = side.word(PER_CHILD + args.index as usize)?;
    let handoff_ts = side.word(HANDOFF)?;
    let handoff_seq = side.word32(HANDOFF)?;
    let recorded = usize::try_from(args.steps.saturating_sub(args.warmup)).unwrap_or(0);
    let (mut floor, mut invalid, mut hold) = (
        Vec::with_capacity(recorded),
        Vec::with_capacity(recorded),
        Vec::with_capacity(recorded),
    );
    // Release: everything above (our valid copy) happens before the writer's first step.
    done.store(1, Ordering::Release);

    for k in 1..=args.floor_steps {
        let step = 1 + k;
        let target = step_u32(step)?;
        // Acquire pairs with the writer's Release store of the step: `handoff_ts` is this step's.
        match args.wake {
            Wake::Spin => spin_until("floor step", || {
                Ok(handoff_seq.load(Ordering::Acquire) >= target)
            })?,
            Wake::Futex => {
                let started = Instant::now();
                loop {
                    let seen = handoff_seq.load(Ordering::Acquire);
                    if seen >= target {
                        break;
                    }
                    ccs_os::futex_wait(handoff_seq.as_std(), seen, Some(Duration::from_secs(1)))?;
                    if started.elapsed() > STALL {
                        return Err(CliError::Bench("reader: no floor step".to_owned()));
                    }
                }
            }
        }
        let t1 = ccs_os::monotonic_ns();
        let t0 = handoff_ts.load(Ordering::Relaxed);
        if k > args.warmup {
            floor.push(t1.saturating_sub(t0));
        }
        // Release pairs with the writer's Acquire load in its wait.
        done.store(step, Ordering::Release);
    }
    for k in 1..=args.steps {
        let step = 1 + args.floor_steps + k;
        reader.notice(args.wake)?;
        let t1 = ccs_os::monotonic_ns();
        let (t0, guard) = reader.fetch(step, args.read)?;
        let t2 = ccs_os::monotonic_ns();
        drop(guard);
        if k > args.warmup {
            invalid.push(t1.saturating_sub(t0));
            hold.push(t2.saturating_sub(t0));
        }
        done.store(step, Ordering::Release);
    }

    let mut out = String::new();
    for (name, samples) in [("floor", &floor), ("invalid", &invalid), ("hold", &hold)] {
        out.push_str(name);
        for s in samples.iter() {
            let _ = write!(out, " {s}");
        }
        out.push('\n');
    }
    print(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips() {
        let mut bytes = vec![0u8; 64];
        stamp(&mut bytes, 123_456_789, 42);
        assert_eq!(read_stamp(&bytes), Some((123_456_789, 42)));
        assert_eq!(read_stamp(&bytes[..15]), None);
    }

    #[test]
    fn report_lines_parse() {
        let text = "floor 1 2 3\ninvalid 4\nhold\n";
        assert_eq!(parse_line(text, "floor"), Ok(vec![1, 2, 3]));
        assert_eq!(parse_line(text, "hold"), Ok(vec![]));
        assert!(parse_line(text, "nope").is_err());
        assert!(parse_line("floor x", "floor").is_err());
    }
}

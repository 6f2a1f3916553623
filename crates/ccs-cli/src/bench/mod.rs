//! `ccs bench`: measurements of the protocol on this machine.
//!
//! - [`invalidation`]: a writer's put() to reader *processes* noticing it (spin on
//!   `is_valid`, or block in `wait_changed`) and holding the new payload, next to the machine's
//!   floor for the same handoff (a raw cache-line handoff, or a raw futex wake);
//! - [`ops`]: the in-process cost of each operation, median and p90 ns/op;
//! - [`scale`]: the aggregate throughput of P processes on a shared set of artifacts;
//! - [`soak`]: an orchestrator's life in one fixed-size segment, counting capacity errors.
//!
//! Every run creates its own segment (and a small side mapping for coordination) under a
//! unique /dev/shm name and destroys both at the end, on error, and on Ctrl-C. Children are
//! this binary re-executed with the hidden `bench-child` subcommand; a child that dies or
//! stalls for [`STALL`] makes the parent kill the others and fail (exit 1).
//!
//! # JSON output (`--json`), schema 1
//!
//! Stable: fields may be added, none removed or renamed without bumping `schema`. Progress
//! lines go to stderr; the JSON object alone goes to stdout. All times are nanoseconds.
//! Every object starts with:
//!
//! ```text
//! "schema": 1, "bench": "invalidation" | "ops" | "scale",
//! "machine": { "nproc": u32, "kernel": string, "cpu_model": string }
//! ```
//!
//! then the bench's own fields, given in [`INVALIDATION_SCHEMA_HELP`], [`OPS_SCHEMA_HELP`] and
//! [`SCALE_SCHEMA_HELP`] (also printed by `ccs bench <name> --help`).

pub mod hook;
pub mod invalidation;
pub mod ops;
pub mod scale;
pub mod side;
pub mod signal;
pub mod soak;
pub mod stats;

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use agent_coherence::Segment;
use serde::Serialize;

use crate::args::{BenchChildArgs, BenchCommand};
use crate::error::{CliError, EXIT_OK};

/// JSON schema of `ccs bench invalidation --json`.
pub const INVALIDATION_SCHEMA_HELP: &str = include_str!("invalidation_schema.txt");
/// JSON schema of `ccs bench ops --json`.
pub const OPS_SCHEMA_HELP: &str = include_str!("ops_schema.txt");
/// JSON schema of `ccs bench scale --json`.
pub const SCALE_SCHEMA_HELP: &str = include_str!("scale_schema.txt");

/// The JSON schema version of every bench's output.
pub const SCHEMA: u32 = 1;

/// How long a parent waits without progress from its children before giving up.
pub const STALL: Duration = Duration::from_secs(60);

/// Run one `ccs bench` subcommand.
pub fn run(command: BenchCommand) -> Result<u8, CliError> {
    signal::install();
    match command {
        BenchCommand::Invalidation(args) => invalidation::run(&args)?,
        BenchCommand::Ops(args) => ops::run(&args)?,
        BenchCommand::Scale(args) => scale::run(&args)?,
        BenchCommand::Hook(args) => hook::run(&args)?,
        BenchCommand::Soak(args) => soak::run(&args)?,
    }
    Ok(EXIT_OK)
}

/// Run the hidden `ccs bench-child`.
pub fn run_child(args: &BenchChildArgs) -> Result<u8, CliError> {
    if let Some(cpu) = args.cpu {
        pin_to(cpu)?;
    }
    match args.role.as_str() {
        "reader" => invalidation::child(args)?,
        "worker" => scale::child(args)?,
        "soak-victim" => soak::victim(args)?,
        other => {
            return Err(CliError::Usage(format!(
                "unknown bench-child role `{other}`"
            )));
        }
    }
    Ok(EXIT_OK)
}

/// What the machine is, cheaply: for the JSON `machine` object and the table's header.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPUs available to this process.
    pub nproc: u32,
    /// `/proc/sys/kernel/osrelease`, or `unknown`.
    pub kernel: String,
    /// The first `model name` in `/proc/cpuinfo`, or `unknown`.
    pub cpu_model: String,
}

impl Machine {
    /// Read it now.
    pub fn probe() -> Machine {
        let nproc = std::thread::available_parallelism()
            .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
            .unwrap_or(1);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|line| line.starts_with("model name"))
                    .and_then(|line| line.split_once(':'))
                    .map(|(_, model)| model.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        Machine {
            nproc,
            kernel,
            cpu_model,
        }
    }

    /// One line for the human table.
    pub fn line(&self) -> String {
        format!(
            "machine: {} CPUs, Linux {}, {}",
            self.nproc, self.kernel, self.cpu_model
        )
    }
}

/// Render `value` as pretty JSON with a trailing newline.
pub fn to_json(value: &impl Serialize) -> Result<String, CliError> {
    let mut text = serde_json::to_string_pretty(value).map_err(CliError::Json)?;
    text.push('\n');
    Ok(text)
}

/// Print `report` to stdout: as JSON with `json`, else in the human form `human` renders.
pub fn emit<R: Serialize>(report: &R, json: bool, human: fn(&R) -> String) -> Result<(), CliError> {
    crate::commands::print(&if json {
        to_json(report)?
    } else {
        human(report)
    })
}

/// A payload SIZE argument, bounded so that a bench segment stays reasonable.
pub fn payload_arg(text: &str, min: u64) -> Result<u64, CliError> {
    let bytes = crate::commands::size_arg("payload", Some(text), 0)?;
    const MAX: u64 = 16 << 20;
    if !(min..=MAX).contains(&bytes) {
        return Err(CliError::Usage(format!(
            "--payload must be between {min} bytes and 16M, not {bytes}"
        )));
    }
    Ok(bytes)
}

/// Parse a CPU list: `0,1`, `0-3`, `0,2-3`.
pub fn parse_cpus(text: &str) -> Result<Vec<usize>, CliError> {
    let bad =
        |why: &str| CliError::Usage(format!("--cpus `{text}`: {why}; write e.g. `0,1` or `0-3`"));
    let mut cpus = Vec::new();
    for part in text.split(',').map(str::trim) {
        let number = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| bad("not a CPU number"))
        };
        match part.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (number(lo)?, number(hi)?);
                if lo > hi || hi - lo > 4096 {
                    return Err(bad("bad range"));
                }
                cpus.extend(lo..=hi);
            }
            None => cpus.push(number(part)?),
        }
    }
    if cpus.iter().any(|&cpu| cpu >= 1024) {
        return Err(bad("CPU numbers must be below 1024"));
    }
    Ok(cpus)
}

/// Pin the calling thread (the process, for a single-threaded child) to `cpu`.
pub fn pin_to(cpu: usize) -> Result<(), CliError> {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set)
        .map_err(|e| CliError::Bench(format!("cannot pin to CPU {cpu}: {e}")))
}

/// Unique names for one run's segment and side mapping; both are destroyed on drop.
#[derive(Debug)]
pub struct Names {
    /// The segment under test.
    pub seg: String,
    /// The side mapping.
    pub side: String,
}

impl Names {
    /// Fresh names for bench `what`.
    pub fn new(what: &str) -> Names {
        let base = format!(
            "ccs-bench-{what}-{}-{}",
            std::process::id(),
            ccs_os::monotonic_ns()
        );
        Names {
            side: format!("{base}-side"),
            seg: base,
        }
    }
}

impl Drop for Names {
    fn drop(&mut self) {
        // Best effort, and either may never have been created.
        let _ = Segment::destroy(&self.seg);
        if let Ok(loc) = ccs_os::Location::parse(&self.side) {
            let _ = ccs_os::destroy(&loc);
        }
    }
}

struct Kid {
    label: String,
    child: Child,
    output: Receiver<std::io::Result<String>>,
    /// Set once reaped.
    status: Option<ExitStatus>,
}

/// The children of one run: spawned with stdout piped (read on a thread each, so a child
/// never blocks on a full pipe), killed and reaped on drop unless they finished.
pub struct Children {
    kids: Vec<Kid>,
}

impl Children {
    /// Spawn `ccs bench-child ARGS` once per element of `args`, labelled `label i`.
    pub fn spawn(label: &str, args: Vec<Vec<String>>) -> Result<Children, CliError> {
        let exe = std::env::current_exe()
            .map_err(|e| CliError::Bench(format!("cannot find the ccs binary to re-run: {e}")))?;
        let mut children = Children { kids: Vec::new() };
        for (i, args) in args.into_iter().enumerate() {
            let mut child = Command::new(&exe)
                .arg("bench-child")
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| CliError::Bench(format!("cannot start {label} {i}: {e}")))?;
            let (send, output) = mpsc::channel();
            if let Some(mut stdout) = child.stdout.take() {
                std::thread::spawn(move || {
                    let mut text = String::new();
                    let _ = send.send(stdout.read_to_string(&mut text).map(|_| text));
                });
            }
            children.kids.push(Kid {
                label: format!("{label} {i}"),
                child,
                output,
                status: None,
            });
        }
        Ok(children)
    }

    /// Fail if any child has failed (a child that finished its work may exit before its
    /// siblings; the parent's stall bound catches one that exits 0 too early), or if the user
    /// interrupted the run.
    pub fn check_alive(&mut self) -> Result<(), CliError> {
        if signal::interrupted() {
            return Err(CliError::Bench("interrupted".to_owned()));
        }
        for kid in self.kids.iter_mut().filter(|kid| kid.status.is_none()) {
            if let Ok(Some(status)) = kid.child.try_wait() {
                kid.status = Some(status);
                if !status.success() {
                    return Err(CliError::Bench(format!(
                        "{} failed ({status}); see its message above",
                        kid.label
                    )));
                }
            }
        }
        Ok(())
    }

    /// Wait for every child's whole stdout and a successful exit, each within [`STALL`].
    pub fn collect(mut self) -> Result<Vec<String>, CliError> {
        let mut outputs = Vec::new();
        for kid in &mut self.kids {
            let text = match kid.output.recv_timeout(STALL) {
                Ok(Ok(text)) => text,
                Ok(Err(e)) => {
                    return Err(CliError::Bench(format!(
                        "cannot read {}'s report: {e}",
                        kid.label
                    )));
                }
                Err(_) => {
                    return Err(CliError::Bench(format!(
                        "{} sent no report within {} s",
                        kid.label,
                        STALL.as_secs()
                    )));
                }
            };
            // Its stdout is closed: it is exiting (or has exited and been reaped).
            let status = match kid.status {
                Some(status) => status,
                None => kid
                    .child
                    .wait()
                    .map_err(|e| CliError::Bench(format!("cannot wait for {}: {e}", kid.label)))?,
            };
            kid.status = Some(status);
            if !status.success() {
                return Err(CliError::Bench(format!(
                    "{} failed ({status}); see its message above",
                    kid.label
                )));
            }
            outputs.push(text);
        }
        Ok(outputs)
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for kid in self.kids.iter_mut().filter(|kid| kid.status.is_none()) {
            let _ = kid.child.kill();
            let _ = kid.child.wait();
        }
    }
}

/// Wait until `done()` holds, spinning briefly and then yielding; check the children (and
/// Ctrl-C) now and then; fail after [`STALL`] without it.
pub fn wait_for(
    children: &mut Children,
    what: &str,
    mut done: impl FnMut() -> bool,
) -> Result<(), CliError> {
    let mut polls: u64 = 0;
    let mut started: Option<Instant> = None;
    while !done() {
        polls += 1;
        if polls < 4096 {
            ccs_protocol::sync::spin_hint();
            continue;
        }
        ccs_protocol::sync::yield_now();
        if polls.is_multiple_of(256) {
            children.check_alive()?;
            let since = *started.get_or_insert_with(Instant::now);
            if since.elapsed() > STALL {
                return Err(CliError::Bench(format!(
                    "no progress for {} s while waiting for {what}",
                    STALL.as_secs()
                )));
            }
        }
    }
    Ok(())
}

/// A progress line on stderr for runs longer than a couple of seconds: rewritten in place
/// on a terminal, one line per second otherwise.
pub struct Progress {
    label: &'static str,
    total: u64,
    started: Instant,
    last: Instant,
    shown: bool,
    tty: bool,
}

impl Progress {
    /// Start counting towards `total` (0: unknown).
    pub fn new(label: &'static str, total: u64) -> Progress {
        let now = Instant::now();
        Progress {
            label,
            total,
            started: now,
            last: now,
            shown: false,
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// Report `done` units, if a second has passed since the last report (and two since the
    /// start).
    pub fn tick(&mut self, done: u64) {
        let now = Instant::now();
        if now.duration_since(self.started) < Duration::from_secs(2)
            || now.duration_since(self.last) < Duration::from_secs(1)
        {
            return;
        }
        self.last = now;
        self.shown = true;
        let text = if self.total > 0 {
            format!("{}: {done}/{}", self.label, self.total)
        } else {
            format!("{}: {done}", self.label)
        };
        let mut err = std::io::stderr().lock();
        let _ = if self.tty {
            write!(err, "\r{text}   ")
        } else {
            writeln!(err, "{text}")
        };
    }

    /// End the in-place line, if one was drawn.
    pub fn finish(&mut self) {
        if self.shown && self.tty {
            let _ = writeln!(std::io::stderr());
        }
        self.shown = false;
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Write a line to stderr (informational; a closed stderr is ignored).
pub fn note_stderr(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        let ok = |s| parse_cpus(s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok("0,1"), vec![0, 1]);
        assert_eq!(ok("0-3"), vec![0, 1, 2, 3]);
        assert_eq!(ok("1, 3-4"), vec![1, 3, 4]);
        for bad in ["", "a", "3-1", "0,", "5000"] {
            assert!(parse_cpus(bad).is_err(), "{bad}");
        }
    }
}

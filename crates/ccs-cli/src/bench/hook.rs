//! `ccs bench hook`: a hook call end to end, process start to answer, as Claude Code makes it:
//! spawn `ccs hook claude-code`, write the event on its stdin, read its answer, wait for exit.
//!
//! The story each round drives, on a scratch repository with a fresh segment: two sessions
//! read `src/auth.rs` (PreToolUse and PostToolUse of Read each), the planner edits it
//! (PreToolUse, the write, PostToolUse), the executor's edit is denied (PreToolUse). Every
//! call's latency is one sample; the denials are counted to show the story ran as meant.
//!
//! With `--python-bin DIR` (the `bin` of a venv with the PyPI package `agent-coherence`
//! installed), the same story runs in the same invocation through that package's Claude Code
//! hook client (`agent-coherence-hook-client pre-read|pre-edit|post-edit`, one process per
//! call) against its coordinator (`agent-coherence-coordinator`, started for the scratch
//! repository and stopped at the end), for a side-by-side comparison.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use clap::Args;
use serde_json::{Value, json};

use super::stats::{Summary, summarize};
use crate::error::CliError;
use crate::table::{self, Align};

/// `ccs bench hook`.
#[derive(Debug, Args)]
pub struct HookBenchArgs {
    /// Rounds of the story through `ccs hook` (7 hook calls each).
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub rounds: u32,
    /// The bin directory of a venv with `agent-coherence` installed: also run the story through
    /// its hook client and coordinator.
    #[arg(long, value_name = "DIR")]
    pub python_bin: Option<PathBuf>,
    /// Rounds of the story through the Python hook client (5 calls each: it has no
    /// post-read hook).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub python_rounds: u32,
}

/// A scratch repository, removed on drop.
struct Scratch {
    root: PathBuf,
}

impl Scratch {
    fn new(tag: &str) -> Result<Scratch, CliError> {
        let root =
            std::env::temp_dir().join(format!("ccs-bench-hook-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("src")).map_err(|e| bench_error("create", &root, &e))?;
        let scratch = Scratch { root };
        scratch.write("fn login() {}\n")?;
        Ok(scratch)
    }

    fn file(&self) -> PathBuf {
        self.root.join("src/auth.rs")
    }

    fn write(&self, text: &str) -> Result<(), CliError> {
        std::fs::write(self.file(), text).map_err(|e| bench_error("write", &self.file(), &e))
    }

    fn event(&self, session: &str, name: &str, tool: &str) -> Value {
        json!({
            "session_id": session,
            "cwd": self.root,
            "hook_event_name": name,
            "tool_name": tool,
            "tool_input": { "file_path": self.file() },
        })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn bench_error(what: &str, path: &Path, error: &std::io::Error) -> CliError {
    CliError::Bench(format!("cannot {what} {}: {error}", path.display()))
}

/// Spawn `command` with `event` on stdin; the latency in ns and the stdout.
fn call(command: &mut Command, event: &Value) -> Result<(u64, String), CliError> {
    let input = event.to_string();
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| CliError::Bench(format!("cannot start the hook: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that exits without reading is its answer too.
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| CliError::Bench(format!("the hook failed: {e}")))?;
    let elapsed = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    Ok((elapsed, String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// The hook points of the story, as each side names its calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Point {
    PreRead,
    PostRead,
    PreEdit,
    PostEdit,
}

impl Point {
    fn event(self, scratch: &Scratch, session: &str) -> Value {
        let (name, tool) = match self {
            Point::PreRead => ("PreToolUse", "Read"),
            Point::PostRead => ("PostToolUse", "Read"),
            Point::PreEdit => ("PreToolUse", "Edit"),
            Point::PostEdit => ("PostToolUse", "Edit"),
        };
        scratch.event(session, name, tool)
    }
}

/// Run the story `rounds` times; `hook` makes the command for a hook point (`None`: the side
/// has no hook there). Returns the samples and how many of the stale edits were denied.
fn story(
    scratch: &Scratch,
    rounds: u32,
    hook: impl Fn(Point) -> Option<Command>,
) -> Result<(Vec<u64>, u32), CliError> {
    let mut samples = Vec::new();
    let mut denials = 0;
    let mut run = |point: Point, session: &str| -> Result<String, CliError> {
        let Some(mut command) = hook(point) else {
            return Ok(String::new());
        };
        let (ns, out) = call(&mut command, &point.event(scratch, session))?;
        samples.push(ns);
        Ok(out)
    };
    for round in 0..rounds {
        for session in ["executor", "planner"] {
            run(Point::PreRead, session)?;
            run(Point::PostRead, session)?;
        }
        run(Point::PreEdit, "planner")?;
        scratch.write(&format!("fn sign_in_{round}() {{}}\n"))?;
        run(Point::PostEdit, "planner")?;
        denials += u32::from(run(Point::PreEdit, "executor")?.contains("\"deny\""));
    }
    Ok((samples, denials))
}

/// One side's result.
struct Side {
    name: &'static str,
    summary: Option<Summary>,
    denials: u32,
    rounds: u32,
}

/// The story through `ccs hook claude-code`.
fn native(rounds: u32) -> Result<Side, CliError> {
    let scratch = Scratch::new("native")?;
    std::fs::create_dir_all(scratch.root.join(".git"))
        .map_err(|e| bench_error("create", &scratch.root, &e))?;
    let segment = format!("ccs-bench-hook-{}", std::process::id());
    let exe = std::env::current_exe()
        .map_err(|e| CliError::Bench(format!("cannot find the ccs binary: {e}")))?;
    let hook = || {
        let mut command = Command::new(&exe);
        command
            .args(["hook", "claude-code"])
            .env("CCS_HOOK_SEGMENT", &segment);
        command
    };
    let result = story(&scratch, rounds, |_| Some(hook()));
    let _ = agent_coherence::Segment::destroy(&segment);
    let (mut samples, denials) = result?;
    Ok(Side {
        name: "ccs hook claude-code",
        summary: summarize(&mut samples),
        denials,
        rounds,
    })
}

/// The story through agent-coherence's Python hook client and coordinator.
fn python(bin: &Path, rounds: u32) -> Result<Side, CliError> {
    let scratch = Scratch::new("python")?;
    let git = Command::new("git")
        .args(["init", "-q"])
        .current_dir(&scratch.root)
        .status()
        .map_err(|e| CliError::Bench(format!("cannot run git init: {e}")))?;
    if !git.success() {
        return Err(CliError::Bench("git init failed".to_owned()));
    }
    let started = Command::new(bin.join("agent-coherence-coordinator"))
        .args(["--quiet", "--root"])
        .arg(&scratch.root)
        .current_dir(&scratch.root)
        .status()
        .map_err(|e| CliError::Bench(format!("cannot start agent-coherence-coordinator: {e}")))?;
    if !started.success() {
        return Err(CliError::Bench(
            "agent-coherence-coordinator failed to start".to_owned(),
        ));
    }
    let client = |subcommand: &str| {
        let mut command = Command::new(bin.join("agent-coherence-hook-client"));
        command.arg(subcommand).current_dir(&scratch.root);
        command
    };
    let result = story(&scratch, rounds, |point| {
        let subcommand = match point {
            Point::PreRead => "pre-read",
            Point::PostRead => return None,
            Point::PreEdit => "pre-edit",
            Point::PostEdit => "post-edit",
        };
        Some(client(subcommand))
    });
    stop_coordinator(&scratch.root);
    let (mut samples, denials) = result?;
    Ok(Side {
        name: "agent-coherence hook client + coordinator",
        summary: summarize(&mut samples),
        denials,
        rounds,
    })
}

/// Stop the coordinator this bench started: its pid is the first line of its pid file.
fn stop_coordinator(root: &Path) {
    let pid = std::fs::read_to_string(root.join(".coherence/server.pid"))
        .ok()
        .and_then(|text| text.lines().next()?.trim().parse::<i32>().ok());
    if let Some(pid) = pid.and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
}

fn ms(ns: u64) -> String {
    format!("{:.2}", ns as f64 / 1e6)
}

/// Run `ccs bench hook`.
pub fn run(args: &HookBenchArgs) -> Result<(), CliError> {
    if args.rounds == 0 {
        return Err(CliError::Usage("--rounds must be at least 1".to_owned()));
    }
    let mut sides = vec![native(args.rounds)?];
    if let Some(bin) = &args.python_bin {
        sides.push(python(bin, args.python_rounds.max(1))?);
    }
    let mut rows = vec![
        [
            "side",
            "calls",
            "p50",
            "p90",
            "p99",
            "max",
            "stale edits denied",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for side in &sides {
        let Some(s) = side.summary else { continue };
        rows.push(vec![
            side.name.to_owned(),
            s.samples.to_string(),
            ms(s.p50_ns),
            ms(s.p90_ns),
            ms(s.p99_ns),
            ms(s.max_ns),
            format!("{}/{}", side.denials, side.rounds),
        ]);
    }
    let mut text = String::from("hook call, process start to answer (ms)\n");
    // The last column is a fraction, not a measurement: left-aligned under its long heading.
    text.push_str(&table::render(&rows, |column| match column {
        0 | 6 => Align::Left,
        _ => Align::Right,
    }));
    if let [native, python] = sides.as_slice()
        && let (Some(n), Some(p)) = (native.summary, python.summary)
    {
        text.push_str(&format!(
            "median ratio (Python client / ccs hook): {:.0}x\n",
            p.p50_ns as f64 / n.p50_ns.max(1) as f64
        ));
    }
    crate::commands::print(&text)?;
    Ok(())
}

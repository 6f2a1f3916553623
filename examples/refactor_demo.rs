//! The refactor story of agent-coherence, replayed across real processes.
//!
//! A planner and an executor share a task spec for a TypeScript refactor. The executor reads
//! v1 (three callers to rename); the planner finds a fourth caller and writes v2; the executor,
//! about to commit work done against v1, is refused with a typed conflict, re-reads v2 and
//! commits all four renames. This binary runs itself as the `planner` and `executor` child
//! processes on a fresh shared-memory segment, steps them through the story over pipes, and
//! prints the segment's MESI table at the end.
//!
//! ```text
//! cargo run --release --example refactor_demo
//! ```

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};

use agent_coherence::{Config, Error, Segment};

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

const SPEC: &str = "task/spec";
const V1: &str = "validateUser->authenticateUser: middleware.ts login.ts refresh.ts";
const V2: &str = "validateUser->authenticateUser: middleware.ts login.ts refresh.ts session.ts";

fn main() -> AnyResult<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some(role @ ("planner" | "executor")) => agent(role, &args[2]),
        _ => narrate(),
    }
}

/// A child: attach as `role`, then perform the commands the narrator sends, one line each,
/// answering each with one line of narration.
fn agent(role: &str, location: &str) -> AnyResult<()> {
    let segment = Segment::open(location)?;
    let me = segment.attach(role)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "attached as `{role}` (pid {})", std::process::id())?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let (command, text) = line.split_once(' ').unwrap_or((&line, ""));
        let said = match command {
            "read" => {
                let spec = me.get(SPEC)?;
                let hit = if spec.hit { "HIT " } else { "MISS" };
                let callers = String::from_utf8_lossy(&spec.bytes).matches(".ts").count();
                format!(
                    "get  {SPEC}  {hit} v{}  ({callers} callers to rename)",
                    spec.version
                )
            }
            "check" => {
                let check = me.check(SPEC)?;
                let held = check.held.unwrap_or(0);
                match check.is_current() {
                    true => format!("check {SPEC}: holds v{held}, current"),
                    false => format!(
                        "check {SPEC}: holds v{held}, current is v{} (INVALID)",
                        check.current
                    ),
                }
            }
            "write" => match me.put(SPEC, text.as_bytes()) {
                Ok(version) => format!("put  {SPEC}  -> v{version}  \"{text}\""),
                Err(e @ Error::Conflict { .. }) => format!("put  {SPEC}  REFUSED: {e}"),
                Err(e) => return Err(e.into()),
            },
            other => format!("unknown command {other}"),
        };
        writeln!(out, "{said}")?;
        out.flush()?;
    }
    Ok(())
}

/// One agent process, as the narrator sees it.
struct Actor {
    name: &'static str,
    child: Child,
    lines: BufReader<ChildStdout>,
}

impl Actor {
    fn spawn(name: &'static str, location: &str) -> AnyResult<Actor> {
        let mut child = Command::new(std::env::current_exe()?)
            .args([name, location])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let lines = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut actor = Actor { name, child, lines };
        actor.hear()?;
        Ok(actor)
    }

    /// Print the actor's next line of narration.
    fn hear(&mut self) -> AnyResult<()> {
        let mut line = String::new();
        if self.lines.read_line(&mut line)? == 0 {
            return Err(format!("{} exited early", self.name).into());
        }
        println!("  [{:<8}] {}", self.name, line.trim_end());
        Ok(())
    }

    fn tell(&mut self, command: &str) -> AnyResult<()> {
        let stdin = self.child.stdin.as_mut().ok_or("no stdin")?;
        writeln!(stdin, "{command}")?;
        stdin.flush()?;
        self.hear()
    }

    fn finish(mut self) -> AnyResult<()> {
        drop(self.child.stdin.take());
        let status = self.child.wait()?;
        match status.success() {
            true => Ok(()),
            false => Err(format!("{} failed: {status}", self.name).into()),
        }
    }
}

fn narrate() -> AnyResult<()> {
    let location = format!("ccs-refactor-demo-{}", std::process::id());
    let config = Config {
        max_agents: 16,
        max_artifacts: 64,
        arena_bytes: 1 << 20,
        max_payload: 64 << 10,
        ..Config::default()
    };
    let segment = Segment::create(&location, config)?;
    let result = story(&segment, &location);
    drop(segment);
    Segment::destroy(&location)?;
    result
}

fn story(segment: &Segment, location: &str) -> AnyResult<()> {
    println!("agent-coherence refactor demo: segment /dev/shm/{location}, two processes");
    let mut planner = Actor::spawn("planner", location)?;
    let mut executor = Actor::spawn("executor", location)?;

    println!("t=0 the planner writes v1 of the task spec");
    planner.tell(&format!("write {V1}"))?;
    println!("t=1 the executor reads it and starts renaming");
    executor.tell("read")?;
    println!("t=2 the planner finds a fourth caller (session.ts) and writes v2");
    planner.tell(&format!("write {V2}"))?;
    executor.tell("check")?;
    println!("t=3 the executor, done with 3 callers, commits against its stale v1");
    executor.tell("write done: renamed 3 callers (per v1)")?;
    println!("    nothing was written: it re-reads, renames session.ts too, and commits");
    executor.tell("read")?;
    executor.tell("write done: renamed 4 callers (per v2); tsc OK")?;
    planner.finish()?;
    executor.finish()?;

    println!("final state (like `ccs status`): the planner's copy is invalid until it reads v3");
    let status = segment.status()?;
    let mut header = format!(
        "{:<10} {:>7} {:>5} {:<9}",
        "artifact", "version", "size", "writer"
    );
    for agent in &status.agents {
        header += &format!(" {:<9}", agent.name);
    }
    println!("  {}", header.trim_end());
    for artifact in &status.artifacts {
        let mut row = format!(
            "{:<10} {:>7} {:>5} {:<9}",
            artifact.key,
            artifact.version,
            artifact.size,
            artifact.writer.as_deref().unwrap_or("-")
        );
        for state in &artifact.states {
            let held = state.held.map_or("-".to_owned(), |v| format!("v{v}"));
            row += &format!(" {:<9}", format!("{} {held}", state.state.letter()));
        }
        println!("  {}", row.trim_end());
    }
    for agent in &status.agents {
        let alive = if agent.alive { "attached" } else { "detached" };
        println!(
            "  agent {:<9} {alive}, attach generation {}",
            agent.name, agent.generation
        );
    }
    Ok(())
}

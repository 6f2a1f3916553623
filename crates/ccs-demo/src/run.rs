//! The demo process: for each variant, a fresh segment, the planner and executor processes,
//! the narration of their steps, and the verdict read back from the segment.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead as _, BufReader, Read as _, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use agent_coherence::trace::{LogReader, LogRecord};
use agent_coherence::{Config, Error, Segment};

use crate::check;
use crate::error::DemoError;
use crate::roles::{self, RESULT, STEPS};
use crate::verdict::{Commit, Variant, Verdict, summary_table};

/// How long the demo process waits for the next report of a role process before giving up
/// (longer than the roles' own patience, so that they report their timeouts first).
const PATIENCE: Duration = Duration::from_secs(330);

/// Run the refactor story once per variant in `variants`, narrating to `out`, and return each
/// variant's verdict. With more than one variant, a summary table follows.
///
/// Each variant gets a fresh segment (`/dev/shm/ccs-demo-<pid>-<variant>`), destroyed at the
/// end even on error, and a fresh copy of the fixture in a temporary directory; every copy
/// builds into one cargo target directory shared by the variants of this call, so only the
/// first `cargo check` starts cold. Everything is removed before this returns.
///
/// The role processes are started as `role_exe role_args_prefix... ROLE ARGS...`: the caller
/// provides how to re-execute itself so that it calls [`crate::role_main`] with `ROLE ARGS...`
/// (for example the `ccs` binary with the prefix `demo-role`).
///
/// A build that fails is a verdict, not an error: an error means the demo could not be
/// carried out (a role process died, cargo could not be started, ...).
pub fn run(
    variants: &[Variant],
    role_exe: &Path,
    role_args_prefix: &[OsString],
    out: &mut impl Write,
) -> Result<Vec<Verdict>, DemoError> {
    let started = Instant::now();
    let scratch = Scratch::create()?;
    let launcher = Launcher {
        exe: role_exe,
        prefix: role_args_prefix,
    };
    writeln!(
        out,
        "ccs demo refactor: a planner and an executor, two processes sharing a task spec in a \
         shared-memory segment;\nthe executor's commit is checked by a real `{} check` of the \
         fixture crate with the renames it applied.",
        check::cargo().display()
    )
    .map_err(DemoError::Output)?;
    let mut verdicts = Vec::with_capacity(variants.len());
    for &variant in variants {
        writeln!(out).map_err(DemoError::Output)?;
        verdicts.push(run_variant(variant, &launcher, &scratch, out)?);
    }
    if verdicts.len() > 1 {
        write!(
            out,
            "\n{}\n{} variants in {:.2} s; {}\n",
            summary_table(&verdicts).trim_end(),
            verdicts.len(),
            started.elapsed().as_secs_f64(),
            if verdicts.iter().all(Verdict::as_expected) {
                "every verdict is the one the story expects"
            } else {
                "SOME VERDICTS ARE NOT THE ONES THE STORY EXPECTS"
            }
        )
        .map_err(DemoError::Output)?;
    }
    Ok(verdicts)
}

fn run_variant(
    variant: Variant,
    launcher: &Launcher<'_>,
    scratch: &Scratch,
    out: &mut impl Write,
) -> Result<Verdict, DemoError> {
    let started = Instant::now();
    let segment = SegmentGuard::create(variant)?;
    if variant == Variant::NoInvalidation {
        disable_invalidation(&segment.segment)?;
    }
    let work = scratch.fresh_path(variant.name());

    let (events, reports) = channel();
    let mut cast = Cast::default();
    cast.spawn(
        "planner",
        launcher,
        roles::planner_args(&segment.name),
        &events,
    )?;
    cast.spawn(
        "executor",
        launcher,
        roles::executor_args(&segment.name, variant, &work, &scratch.target()),
        &events,
    )?;
    drop(events);

    writeln!(
        out,
        "== {variant}: {}\n   segment /dev/shm/{} · planner pid {} · executor pid {}",
        variant.description(),
        segment.name,
        cast.pid(0),
        cast.pid(1)
    )
    .map_err(DemoError::Output)?;
    let log = segment
        .segment
        .log_reader()
        .map_err(DemoError::coherence("demo: read the operation log"))?;
    let mut narrator = Narrator::new(out, log);
    let played = cast.play(&reports, &mut narrator);
    narrator.finish()?;
    played?;

    let demo = segment
        .segment
        .attach("demo")
        .map_err(DemoError::coherence("demo: attach"))?;
    let read = demo
        .get(RESULT)
        .map_err(DemoError::coherence(format!("demo: get {RESULT}")))?;
    let commit = Commit::parse(&String::from_utf8_lossy(&read.bytes))?;
    let verdict = commit.into_verdict(variant, started.elapsed());
    writeln!(
        out,
        "{verdict}\n   (cargo check {:.2} s; whole variant {:.2} s)",
        verdict.check_time.as_secs_f64(),
        verdict.elapsed.as_secs_f64()
    )
    .map_err(DemoError::Output)?;
    Ok(verdict)
}

/// Switch invalidation off on the segment of the `no-invalidation` variant: writers then leave
/// peers' valid bits set, so the executor's private copy keeps being served as a HIT.
fn disable_invalidation(segment: &Segment) -> Result<(), DemoError> {
    segment
        .set_invalidation(false)
        .map_err(DemoError::coherence("demo: turn invalidation off"))
}

/// How to start a role process.
struct Launcher<'a> {
    exe: &'a Path,
    prefix: &'a [OsString],
}

/// The variant's segment, destroyed when dropped (even on error), so nothing is left in
/// /dev/shm.
struct SegmentGuard {
    name: String,
    segment: Segment,
}

impl SegmentGuard {
    fn create(variant: Variant) -> Result<SegmentGuard, DemoError> {
        let config = Config {
            max_agents: 8,
            max_artifacts: 16,
            arena_bytes: 1 << 20,
            max_payload: 64 << 10,
            ..Config::default()
        };
        let base = format!("ccs-demo-{}-{variant}", std::process::id());
        let mut n = 1;
        loop {
            let name = match n {
                1 => base.clone(),
                n => format!("{base}-{n}"),
            };
            match Segment::create(&name, config) {
                Ok(segment) => return Ok(SegmentGuard { name, segment }),
                // Another run of the same variant in this process (tests run in parallel).
                Err(Error::SegmentExists { .. }) if n < 100 => n += 1,
                Err(error) => {
                    return Err(DemoError::Coherence {
                        doing: format!("demo: create segment {name}"),
                        source: error,
                    });
                }
            }
        }
    }
}

impl Drop for SegmentGuard {
    fn drop(&mut self) {
        // Nothing to do about a failure here: the name was ours and is unique.
        let _ = Segment::destroy(&self.name);
    }
}

/// This run's temporary directory: the shared cargo target directory and each variant's copy
/// of the fixture. Removed when dropped.
struct Scratch {
    root: PathBuf,
}

impl Scratch {
    fn create() -> Result<Scratch, DemoError> {
        let base = std::env::temp_dir();
        let mut n = 1;
        loop {
            let root = base.join(format!("ccs-demo-{}-{n}", std::process::id()));
            match std::fs::create_dir(&root) {
                Ok(()) => return Ok(Scratch { root }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(source) => {
                    return Err(DemoError::Io {
                        action: "create the temporary directory",
                        path: root,
                        source,
                    });
                }
            }
        }
    }

    /// The cargo target directory shared by every check of this run.
    fn target(&self) -> PathBuf {
        self.root.join("target")
    }

    /// A path under the scratch directory that does not exist yet, named after `tag`.
    fn fresh_path(&self, tag: &str) -> PathBuf {
        let mut path = self.root.join(tag);
        let mut n = 2;
        while path.exists() {
            path = self.root.join(format!("{tag}-{n}"));
            n += 1;
        }
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Best effort: a failure leaves a directory in the temp dir, named after this pid.
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// What a role process's reader thread tells the demo process.
enum Event {
    /// A report line: (step, role, text).
    Report(u8, String, String),
    /// Role number `n` closed its stdout (it exited, or is exiting).
    Closed(usize),
}

/// One role process.
struct Role {
    name: &'static str,
    child: Child,
    stderr: Option<JoinHandle<String>>,
    status: Option<ExitStatus>,
}

/// The role processes of one variant. Dropping it kills and reaps any still running.
#[derive(Default)]
struct Cast {
    roles: Vec<Role>,
}

impl Cast {
    fn spawn(
        &mut self,
        name: &'static str,
        launcher: &Launcher<'_>,
        args: Vec<OsString>,
        events: &Sender<Event>,
    ) -> Result<(), DemoError> {
        let mut child = Command::new(launcher.exe)
            .args(launcher.prefix)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| DemoError::Spawn {
                role: name,
                exe: launcher.exe.to_owned(),
                source,
            })?;
        let index = self.roles.len();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let events = events.clone();
        // The reader threads end when the child's pipes close; neither can fail the demo.
        std::thread::spawn(move || {
            if let Some(stdout) = stdout {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some((step, role, text)) = roles::parse_report(&line) {
                        let _ = events.send(Event::Report(step, role, text));
                    }
                }
            }
            let _ = events.send(Event::Closed(index));
        });
        let stderr = stderr.map(|mut stderr| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = stderr.read_to_string(&mut text);
                text
            })
        });
        self.roles.push(Role {
            name,
            child,
            stderr,
            status: None,
        });
        Ok(())
    }

    fn pid(&self, index: usize) -> u32 {
        self.roles.get(index).map_or(0, |role| role.child.id())
    }

    /// Narrate the roles' reports until every role has exited; fail as soon as one fails.
    fn play(
        &mut self,
        reports: &Receiver<Event>,
        narrator: &mut Narrator<'_, impl Write>,
    ) -> Result<(), DemoError> {
        let mut running = self.roles.len();
        while running > 0 {
            match reports.recv_timeout(PATIENCE) {
                Ok(Event::Report(step, role, text)) => narrator.report(step, role, text)?,
                Ok(Event::Closed(index)) => {
                    running -= 1;
                    self.reap(index)?;
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(DemoError::Timeout {
                        role: "demo",
                        waiting_for: "the role processes' next step".to_owned(),
                        seconds: PATIENCE.as_secs(),
                    });
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        Ok(())
    }

    /// Wait for role `index`, whose stdout closed; an error if it failed.
    fn reap(&mut self, index: usize) -> Result<(), DemoError> {
        let Some(role) = self.roles.get_mut(index) else {
            return Ok(());
        };
        let status = role.child.wait().map_err(|source| DemoError::Io {
            action: "wait for the role process",
            path: PathBuf::from(role.name),
            source,
        })?;
        role.status = Some(status);
        if status.success() {
            return Ok(());
        }
        let stderr = role
            .stderr
            .take()
            .and_then(|reader| reader.join().ok())
            .unwrap_or_default();
        Err(DemoError::RoleFailed {
            role: role.name,
            status,
            stderr,
        })
    }
}

impl Drop for Cast {
    fn drop(&mut self) {
        for role in &mut self.roles {
            if role.status.is_none() {
                // Our own child, by its handle; it may have exited already.
                let _ = role.child.kill();
                let _ = role.child.wait();
            }
        }
    }
}

/// Prints the roles' reports in the story's order, whichever pipe delivers first, each
/// followed by the operations the segment's log recorded since (the story's artifacts, not the
/// `demo/*` ones that only order the processes). `line` is the one place where a per-step line
/// is printed.
struct Narrator<'a, W: Write> {
    out: &'a mut W,
    next: u8,
    pending: BTreeMap<u8, (String, String)>,
    log: LogReader,
    t0: Option<u64>,
}

impl<'a, W: Write> Narrator<'a, W> {
    fn new(out: &'a mut W, log: LogReader) -> Self {
        Narrator {
            out,
            next: 1,
            pending: BTreeMap::new(),
            log,
            t0: None,
        }
    }

    /// Print the log records that are new since the last step.
    fn log_lines(&mut self) -> Result<(), DemoError> {
        let batch = self
            .log
            .poll()
            .map_err(DemoError::coherence("demo: read the operation log"))?;
        for record in batch.records.iter().filter(|r| shown(r)) {
            let t0 = *self.t0.get_or_insert(record.t_ns);
            writeln!(self.out, "            log {}", record.line(t0)).map_err(DemoError::Output)?;
        }
        Ok(())
    }

    /// Take report `step`, and print every report that is now next in order.
    fn report(&mut self, step: u8, role: String, text: String) -> Result<(), DemoError> {
        self.pending.insert(step, (role, text));
        while let Some((role, text)) = self.pending.remove(&self.next) {
            self.line(&role, &text)?;
            self.next = self.next.saturating_add(1);
        }
        Ok(())
    }

    /// Print whatever is still held back (after a role failed: the steps that did happen).
    fn finish(&mut self) -> Result<(), DemoError> {
        if self.next <= STEPS && !self.pending.is_empty() {
            self.line(
                "demo",
                "(a step is missing; the reports that did arrive follow)",
            )?;
        }
        for (_, (role, text)) in std::mem::take(&mut self.pending) {
            self.line(&role, &text)?;
        }
        Ok(())
    }

    /// Print one step, then what the log recorded for it.
    fn line(&mut self, who: &str, text: &str) -> Result<(), DemoError> {
        writeln!(self.out, "  {who:<9} {text}").map_err(DemoError::Output)?;
        self.log_lines()?;
        self.out.flush().map_err(DemoError::Output)
    }
}

/// Whether a log record belongs to the story (its `task/*` artifacts), rather than to the
/// demo's own ordering artifacts and attaches.
fn shown(record: &LogRecord) -> bool {
    record
        .key
        .as_deref()
        .is_some_and(|key| key.starts_with("task/"))
}

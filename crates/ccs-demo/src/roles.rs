//! The two role processes, the planner and the executor, and the one-line reports they send
//! to the demo process for narration.
//!
//! The roles order themselves through the segment alone, with no sleeps: the executor waits
//! (futex, [`Agent::wait_changed`]) for the spec, the planner for `demo/executor-started`, the
//! executor for `demo/planner-done`, the planner for `task/result`. The `demo/*` artifacts are
//! stage directions that make the run deterministic; the story's artifacts are `task/*`.
//!
//! Each role reports its steps on stdout as `@ccs-demo STEP ROLE TEXT`, where STEP is the step's
//! place in the story ([`Step`]); the demo process prints them in that order, whichever
//! process's pipe it happens to read first. Other lines on stdout (a test harness's) are
//! ignored.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use agent_coherence::{Agent, ArtifactRef, Cached, Key, Segment, Version};

use crate::check;
use crate::error::DemoError;
use crate::fixture;
use crate::spec::TaskSpec;
use crate::verdict::{Commit, CommitRead, Variant};

/// The task spec the planner writes and the executor follows.
pub(crate) const SPEC: &str = "task/spec";
/// The executor's commit: which spec it used, and what `cargo check` said.
pub(crate) const RESULT: &str = "task/result";
/// Stage direction: the executor has read the spec and started work.
const STARTED: &str = "demo/executor-started";
/// Stage direction: the planner has finished revising the spec.
const PLANNER_DONE: &str = "demo/planner-done";

/// The first word of every report line.
pub(crate) const MARK: &str = "@ccs-demo";

/// How long a role waits for its peer's next step before giving up (only so that a dead peer
/// cannot hang the demo; never a timing assumption).
const PATIENCE: Duration = Duration::from_secs(300);

/// The steps of the story, in their causal order (each one happens after the previous one,
/// through the segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Step {
    SpecV1 = 1,
    ReadV1,
    Started,
    SpecV2,
    PlannerDone,
    CommitRead,
    Apply,
    Check,
    Commit,
    PlannerSeesResult,
}

/// The number of steps of the story.
pub(crate) const STEPS: u8 = Step::PlannerSeesResult as u8;

/// Report one step to the demo process.
fn say(step: Step, role: &str, text: &str) -> Result<(), DemoError> {
    let text = text.replace('\n', " ");
    let mut out = std::io::stdout().lock();
    writeln!(out, "{MARK} {} {role} {text}", step as u8)
        .and_then(|()| out.flush())
        .map_err(DemoError::Output)
}

/// Parse a report line: (step, role, text).
pub(crate) fn parse_report(line: &str) -> Option<(u8, String, String)> {
    let rest = line.strip_prefix(MARK)?.strip_prefix(' ')?;
    let (step, rest) = rest.split_once(' ')?;
    let (role, text) = rest.split_once(' ').unwrap_or((rest, ""));
    Some((step.parse().ok()?, role.to_owned(), text.to_owned()))
}

/// The arguments of the planner role.
pub(crate) fn planner_args(segment: &str) -> Vec<OsString> {
    vec!["planner".into(), segment.into()]
}

/// The arguments of the executor role.
pub(crate) fn executor_args(
    segment: &str,
    variant: Variant,
    work: &Path,
    target: &Path,
) -> Vec<OsString> {
    vec![
        "executor".into(),
        segment.into(),
        variant.name().into(),
        work.into(),
        target.into(),
    ]
}

/// The entry point of a role process: `planner SEGMENT` or `executor SEGMENT VARIANT WORK_DIR
/// TARGET_DIR` (the arguments after the caller's own prefix, as [`crate::run`] passes them).
/// Exits 0 when the role played its part; otherwise prints the error to stderr and exits 1.
pub fn role_main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args: Vec<OsString> = args.into_iter().collect();
    let role = args
        .first()
        .map(|role| role.to_string_lossy().into_owned())
        .unwrap_or_default();
    match play(&role, &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let mut message = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                let text = cause.to_string();
                if !message.contains(&text) {
                    message = format!("{message}: {text}");
                }
                source = cause.source();
            }
            // Nothing more to do if stderr is gone; the exit status still tells.
            let _ = writeln!(std::io::stderr(), "ccs-demo {role}: {message}");
            ExitCode::FAILURE
        }
    }
}

fn play(role: &str, args: &[OsString]) -> Result<(), DemoError> {
    let text = |i: usize, what: &str| -> Result<String, DemoError> {
        let arg = args
            .get(i)
            .ok_or_else(|| DemoError::Usage(format!("{role}: missing {what}")))?;
        arg.to_str()
            .map(str::to_owned)
            .ok_or_else(|| DemoError::Usage(format!("{role}: {what} is not UTF-8: {arg:?}")))
    };
    let path = |i: usize, what: &str| -> Result<PathBuf, DemoError> {
        args.get(i)
            .map(PathBuf::from)
            .ok_or_else(|| DemoError::Usage(format!("{role}: missing {what}")))
    };
    let expect = |n: usize| match args.len() {
        len if len == n => Ok(()),
        len => Err(DemoError::Usage(format!(
            "{role}: expected {} arguments after the role, got {}",
            n - 1,
            len - 1
        ))),
    };
    match role {
        "planner" => {
            expect(2)?;
            planner(&text(1, "the segment")?)
        }
        "executor" => {
            expect(5)?;
            executor(
                &text(1, "the segment")?,
                text(2, "the variant")?.parse()?,
                &path(3, "the work directory")?,
                &path(4, "the target directory")?,
            )
        }
        other => Err(DemoError::Usage(format!(
            "unknown role `{other}`; expected `planner SEGMENT` or `executor SEGMENT VARIANT WORK_DIR TARGET_DIR`"
        ))),
    }
}

fn attach(segment: &str, role: &str) -> Result<(Segment, Agent), DemoError> {
    let segment = Segment::open(segment)
        .map_err(DemoError::coherence(format!("{role}: open the segment")))?;
    let agent = segment
        .attach(role)
        .map_err(DemoError::coherence(format!("{role}: attach")))?;
    Ok((segment, agent))
}

fn key(agent: &Agent, key: &str) -> Result<Key, DemoError> {
    agent.key(key).map_err(DemoError::coherence(format!(
        "{}: resolve {key}",
        agent.name()
    )))
}

fn put(agent: &Agent, key: &Key, bytes: &[u8]) -> Result<Version, DemoError> {
    agent.put(key, bytes).map_err(DemoError::coherence(format!(
        "{}: put {}",
        agent.name(),
        key.as_str()
    )))
}

/// Block until `key` is past version `since`.
fn wait(
    agent: &Agent,
    role: &'static str,
    key: &Key,
    since: Version,
    waiting_for: &str,
) -> Result<Version, DemoError> {
    agent
        .wait_changed(key, since, Some(PATIENCE))
        .map_err(DemoError::coherence(format!(
            "{role}: wait for {}",
            key.key_str()
        )))?
        .ok_or_else(|| DemoError::Timeout {
            role,
            waiting_for: waiting_for.to_owned(),
            seconds: PATIENCE.as_secs(),
        })
}

fn hit_or_miss(hit: bool) -> &'static str {
    if hit { "HIT" } else { "MISS" }
}

fn parse_spec(bytes: &[u8]) -> Result<TaskSpec, DemoError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| DemoError::BadSpec("the task spec is not UTF-8".into()))?;
    TaskSpec::parse(text)
}

/// The planner: write v1, wait until the executor has started from it, write v2 (a fourth
/// caller), and wait for the executor's commit.
fn planner(segment: &str) -> Result<(), DemoError> {
    const ME: &str = "planner";
    let (_segment, me) = attach(segment, ME)?;
    let spec = key(&me, SPEC)?;
    let started = key(&me, STARTED)?;
    let done = key(&me, PLANNER_DONE)?;
    let result = key(&me, RESULT)?;

    let v1 = TaskSpec::v1();
    let version = put(&me, &spec, v1.render().as_bytes())?;
    say(
        Step::SpecV1,
        ME,
        &format!(
            "put {SPEC} v{version}: rename {} → {} in {}",
            v1.old,
            v1.new,
            v1.file_names()
        ),
    )?;

    wait(&me, ME, &started, 0, "the executor to start work")?;
    let v2 = TaskSpec::v2();
    let fourth = fixture::CALLERS[fixture::CALLERS.len() - 1];
    // Conditional on the planner's own view (v1, which it wrote): admitted.
    let version = put(&me, &spec, v2.render().as_bytes())?;
    say(
        Step::SpecV2,
        ME,
        &format!(
            "put {SPEC} v{version}: found a fourth caller ({fourth}): rename in {}",
            v2.file_names()
        ),
    )?;
    let version = put(&me, &done, format!("{SPEC} final at v{version}").as_bytes())?;
    say(
        Step::PlannerDone,
        ME,
        &format!("put {PLANNER_DONE} v{version}: done revising the spec"),
    )?;

    wait(&me, ME, &result, 0, "the executor's commit")?;
    let read = me
        .get(&result)
        .map_err(DemoError::coherence(format!("{ME}: get {RESULT}")))?;
    let text = String::from_utf8_lossy(&read.bytes);
    let commit = Commit::parse(&text)?;
    say(
        Step::PlannerSeesResult,
        ME,
        &format!(
            "get {RESULT} [{}] v{}: the executor committed from {SPEC} v{}, build {}",
            hit_or_miss(read.hit),
            read.version,
            commit.spec_version,
            if commit.first_error.is_none() {
                "PASSES"
            } else {
                "FAILS"
            }
        ),
    )
}

/// The executor: read the spec, start work, and at commit time read it again (or not, per the
/// variant); apply the renames of the spec it holds to a fresh copy of the fixture, run
/// `cargo check`, and commit the outcome to `task/result`.
fn executor(segment: &str, variant: Variant, work: &Path, target: &Path) -> Result<(), DemoError> {
    const ME: &str = "executor";
    let (_segment, me) = attach(segment, ME)?;
    let spec_key = key(&me, SPEC)?;
    let started = key(&me, STARTED)?;
    let done = key(&me, PLANNER_DONE)?;
    let result = key(&me, RESULT)?;

    wait(&me, ME, &spec_key, 0, "the planner's task spec")?;
    // The executor's private copy of the spec: the agent's MESI cache line.
    let mut spec = Cached::new(spec_key);
    let refresh = |spec: &mut Cached| {
        me.refresh(spec)
            .map_err(DemoError::coherence(format!("{ME}: refresh {SPEC}")))
    };
    let hit = refresh(&mut spec)?;
    let held = parse_spec(spec.bytes())?;
    say(
        Step::ReadV1,
        ME,
        &format!(
            "get {SPEC} [{}] v{}: {} of {} callers to rename",
            hit_or_miss(hit),
            spec.version(),
            held.callers(),
            fixture::CALLERS.len()
        ),
    )?;
    let version = put(
        &me,
        &started,
        format!("working from {SPEC} v{}", spec.version()).as_bytes(),
    )?;
    say(
        Step::Started,
        ME,
        &format!(
            "put {STARTED} v{version}: working from {SPEC} v{}",
            spec.version()
        ),
    )?;

    wait(&me, ME, &done, 0, "the planner to finish the spec")?;
    let commit_read = match variant {
        Variant::ContextCache => {
            say(
                Step::CommitRead,
                ME,
                &format!(
                    "commits from the {SPEC} v{} in its context (no re-read)",
                    spec.version()
                ),
            )?;
            CommitRead::Skipped
        }
        Variant::With | Variant::NoInvalidation => {
            let hit = refresh(&mut spec)?;
            say(
                Step::CommitRead,
                ME,
                &format!(
                    "refresh {SPEC} [{}] v{} (the commit-time read)",
                    hit_or_miss(hit),
                    spec.version()
                ),
            )?;
            if hit {
                CommitRead::Hit
            } else {
                CommitRead::Miss
            }
        }
    };

    let held = parse_spec(spec.bytes())?;
    fixture::write_to(work)?;
    let replaced = held.apply(work)?;
    say(
        Step::Apply,
        ME,
        &format!(
            "renamed {} → {} ({replaced} occurrences) in {} of a fresh copy of the fixture",
            held.old,
            held.new,
            held.file_names()
        ),
    )?;
    let outcome = check::cargo_check(work, target)?;
    let commit = Commit {
        commit_read,
        spec_version: spec.version(),
        callers_renamed: held.callers(),
        first_error: outcome.first_error,
        check_ms: u64::try_from(outcome.elapsed.as_millis()).unwrap_or(u64::MAX),
    };
    say(
        Step::Check,
        ME,
        &format!(
            "cargo check ({:.2} s): {}",
            Duration::from_millis(commit.check_ms).as_secs_f64(),
            commit.build_text()
        ),
    )?;
    let version = put(&me, &result, commit.render().as_bytes())?;
    say(
        Step::Commit,
        ME,
        &format!(
            "put {RESULT} v{version}: committed the work done from {SPEC} v{}",
            spec.version()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_parse() {
        assert_eq!(
            parse_report("@ccs-demo 3 executor put x v1: y"),
            Some((3, "executor".into(), "put x v1: y".into()))
        );
        assert_eq!(parse_report("running 1 test"), None);
        assert_eq!(parse_report("@ccs-demo x executor y"), None);
    }
}

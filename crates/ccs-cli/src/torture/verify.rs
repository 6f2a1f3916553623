//! The end of a torture run: the checks the module docs of [`super`] describe (and why kills
//! cannot fool them), one function each, and the report that gathers their verdicts.
//!
//! Every worker has been reaped when these run, so the side mapping is read with relaxed loads
//! and the segment is quiescent.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use agent_coherence::{Agent, Backend, Error, Segment};
use ccs_protocol::sync::Ordering;
use serde::Serialize;

use super::layout::{ATTACH_RETRIES, FAIL_ARTIFACT, FAIL_EXPECTED, FAIL_KIND, FAIL_SEEN, Layout};
use super::payload::{verify_counter, verify_payload};
use super::worker::{Kind, Op};
use super::{
    ConfigOut, CounterOut, Plan, Report, Tally, TortureArgs, counter_key, history, payload_key,
    worker_name,
};
use crate::bench::side::Side;
use crate::error::CliError;

/// One verdict.
#[derive(Debug, Clone, Serialize)]
pub(super) struct CheckOut {
    pub(super) name: &'static str,
    pub(super) status: &'static str,
    pub(super) detail: String,
}

impl CheckOut {
    fn from_problems(name: &'static str, ok_detail: String, problems: &[String]) -> CheckOut {
        if problems.is_empty() {
            CheckOut {
                name,
                status: "passed",
                detail: ok_detail,
            }
        } else {
            let mut detail = problems[..problems.len().min(5)].join("; ");
            if problems.len() > 5 {
                let _ = write!(detail, "; and {} more", problems.len() - 5);
            }
            CheckOut {
                name,
                status: "failed",
                detail,
            }
        }
    }

    fn skipped(name: &'static str, why: &str) -> CheckOut {
        CheckOut {
            name,
            status: "skipped",
            detail: why.to_owned(),
        }
    }
}

/// Problems found, sorted into the check they fail (the workers check keeps its problems in
/// the [`Tally`], where the supervisor's own findings already are).
#[derive(Debug, Default)]
struct Findings {
    checksums: Vec<String>,
    counters: Vec<String>,
    versions: Vec<String>,
}

/// What the checks read: the run's segment and side mapping, and how both are laid out.
struct Run<'a> {
    seg: &'a Segment,
    side: &'a Side,
    lay: &'a Layout,
    plan: &'a Plan,
}

impl Run<'_> {
    fn load(&self, line: usize) -> Result<u64, CliError> {
        // Relaxed: every worker has been reaped, so nothing writes the side mapping any more.
        Ok(self.side.word(line)?.load(Ordering::Relaxed))
    }

    /// Every operation's count summed over the workers, with the issued operations' `total`;
    /// and the attach retries.
    fn operations(&self) -> Result<(BTreeMap<&'static str, u64>, u64), CliError> {
        let mut operations = BTreeMap::new();
        let mut total = 0;
        for op in Op::ALL {
            let mut sum = 0;
            for w in 0..self.lay.workers {
                sum += self.load(self.lay.op(w, op))?;
            }
            if (op as usize) < Op::ISSUED {
                total += sum;
            }
            operations.insert(op.name(), sum);
        }
        operations.insert("total", total);
        let mut attach_retries = 0;
        for w in 0..self.lay.workers {
            attach_retries += self.load(self.lay.worker(w, ATTACH_RETRIES))?;
        }
        Ok((operations, attach_retries))
    }

    /// The failure records workers left in the side mapping, each sorted into its check.
    fn failure_records(
        &self,
        found: &mut Findings,
        problems: &mut Vec<String>,
    ) -> Result<(), CliError> {
        for w in 0..self.lay.workers {
            let Some(kind) = Kind::from_word(self.load(self.lay.worker(w, FAIL_KIND))?) else {
                continue;
            };
            let a = self.load(self.lay.worker(w, FAIL_ARTIFACT))?;
            let text = format!(
                "{}: {} (`{}`: saw {}, expected {})",
                worker_name(w),
                kind.describe(),
                artifact_key(self.plan, a),
                self.load(self.lay.worker(w, FAIL_SEEN))?,
                self.load(self.lay.worker(w, FAIL_EXPECTED))?
            );
            match kind {
                Kind::Checksum => found.checksums.push(text),
                Kind::CounterRule => found.counters.push(text),
                Kind::VersionDecreased | Kind::VersionStep => found.versions.push(text),
                Kind::Unexpected => problems.push(text),
            }
        }
        Ok(())
    }

    /// Re-attach every agent once: releases whatever a dead predecessor still held or pinned.
    fn reattach_all(&self, problems: &mut Vec<String>) {
        for w in 0..self.lay.workers {
            if let Err(e) = self.seg.attach(&worker_name(w)) {
                problems.push(format!("cannot re-attach {}: {e}", worker_name(w)));
            }
        }
    }

    /// The final sweep: every artifact read once more and checked, and no version any agent
    /// observed beyond its final one. Returns the counters' rows.
    fn final_sweep(
        &self,
        unavailable: u64,
        tally: &mut Tally,
        found: &mut Findings,
    ) -> Result<Vec<CounterOut>, CliError> {
        // A write that answered Unavailable may have been applied, like a killed one.
        let unknown = tally.kills + unavailable;
        let checker = self.seg.attach("torture-check")?;
        let mut buf = Vec::new();
        let mut counter_rows = Vec::new();
        let payloads = self.plan.artifacts as usize;
        for a in 0..self.lay.artifacts {
            let key = artifact_key(self.plan, a as u64);
            self.nothing_observed_beyond_the_end(&checker, a, &key, found)?;
            let read = match checker.get_into(key.as_str(), &mut buf) {
                Ok((v, _)) => v,
                Err(Error::NotFound { .. }) if a < payloads => continue,
                Err(e) => {
                    tally.problems.push(format!("final read of `{key}`: {e}"));
                    continue;
                }
            };
            if a < payloads {
                if let Err(why) = verify_payload(&buf, a as u32) {
                    found
                        .checksums
                        .push(format!("final read of `{key}` version {read}: {why}"));
                }
            } else {
                let c = a - payloads;
                let acknowledged = self.load(self.lay.acked(c))?;
                let counter = Counter {
                    key,
                    index: c,
                    version: read,
                    acknowledged,
                };
                counter_rows.extend(counter.check(&buf, tally.kills, unknown, found));
            }
        }
        Ok(counter_rows)
    }

    /// No agent observed a version of artifact `a` beyond its final one (nothing it saw was
    /// rolled back).
    fn nothing_observed_beyond_the_end(
        &self,
        checker: &Agent,
        a: usize,
        key: &str,
        found: &mut Findings,
    ) -> Result<(), CliError> {
        let final_version = checker.check(key)?.current;
        for w in 0..self.lay.workers {
            let seen = self.load(self.lay.last(w, a))?;
            if seen > final_version {
                found.versions.push(format!(
                    "{} observed version {seen} of `{key}`, which ends at version {final_version}",
                    worker_name(w)
                ));
            }
        }
        Ok(())
    }
}

/// A counter as the final sweep read it.
struct Counter {
    key: String,
    index: usize,
    version: u64,
    acknowledged: u64,
}

impl Counter {
    /// Its bytes verify, its value is its version − 1, and `acknowledged ≤ value ≤
    /// acknowledged + unknown` (`unknown`: the `kills`, and the writes that answered
    /// Unavailable). Returns its row, unless its bytes are corrupt.
    fn check(
        self,
        bytes: &[u8],
        kills: u64,
        unknown: u64,
        found: &mut Findings,
    ) -> Option<CounterOut> {
        let Counter {
            key,
            index,
            version,
            acknowledged,
        } = self;
        let counter = match verify_counter(bytes, index as u32) {
            Ok(counter) => counter,
            Err(why) => {
                found
                    .checksums
                    .push(format!("final read of `{key}` version {version}: {why}"));
                return None;
            }
        };
        if counter.value.checked_add(1) != Some(version) {
            found.counters.push(format!(
                "`{key}` ends at version {version} with value {} (must be {})",
                counter.value,
                version.saturating_sub(1)
            ));
        }
        if counter.value < acknowledged || counter.value - acknowledged > unknown {
            found.counters.push(format!(
                "`{key}` has value {} but {acknowledged} increments were acknowledged \
                 and {kills} workers killed",
                counter.value
            ));
        }
        Some(CounterOut {
            key,
            version,
            value: counter.value,
            acknowledged,
        })
    }
}

/// Every end-of-run check, and the report.
pub(super) fn verify(
    seg: &Segment,
    side: &Side,
    lay: &Layout,
    plan: &Plan,
    args: &TortureArgs,
    mut tally: Tally,
    duration: Duration,
) -> Result<Report, CliError> {
    let run = Run {
        seg,
        side,
        lay,
        plan,
    };
    let (operations, attach_retries) = run.operations()?;
    let count = |name: &str| operations.get(name).copied().unwrap_or(0);
    let mut found = Findings::default();
    run.failure_records(&mut found, &mut tally.problems)?;
    run.reattach_all(&mut tally.problems);
    let counters = run.final_sweep(count("unavailable"), &mut tally, &mut found)?;
    no_live_holder_fenced(seg, count("fenced"), &mut tally.problems);

    let mut checks = run_checks(&found, &tally, lay, plan, count);
    checks.extend(segment_checks(seg)?);
    let mut report = Report {
        schema: crate::bench::SCHEMA,
        command: "torture",
        seg: args.seg.clone(),
        seed: plan.seed,
        config: ConfigOut {
            workers: plan.workers,
            artifacts: plan.artifacts,
            counters: plan.counters,
            max_payload: plan.max_payload,
            kill_interval_ms: [plan.interval.0, plan.interval.1],
            kills: plan.kills,
            seconds: plan.seconds,
        },
        duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        operations,
        kills: tally.kills,
        kills_in_write: tally.kills_in_write,
        replacements: tally.replacements,
        attach_retries,
        counters,
        checks,
        failures: 0,
        passed: false,
    };
    tally_verdicts(&mut report);
    Ok(report)
}

/// The verdicts of the checks on the run itself: checksums, counters, versions, workers.
fn run_checks(
    found: &Findings,
    tally: &Tally,
    lay: &Layout,
    plan: &Plan,
    count: impl Fn(&str) -> u64,
) -> Vec<CheckOut> {
    vec![
        CheckOut::from_problems(
            "checksums",
            format!(
                "{} reads verified during the run, {} artifacts at the end",
                count("verified"),
                lay.artifacts
            ),
            &found.checksums,
        ),
        CheckOut::from_problems(
            "counters",
            format!(
                "{} counters: value = version - 1 on every read; {} increments acknowledged, \
                 acknowledged <= value <= acknowledged + kills",
                plan.counters,
                count("increment_won")
            ),
            &found.counters,
        ),
        CheckOut::from_problems(
            "versions",
            format!(
                "{} agents x {} artifacts: never decreasing, +1 per conditional write, none \
                 beyond the final version",
                lay.workers, lay.artifacts
            ),
            &found.versions,
        ),
        CheckOut::from_problems(
            "workers",
            format!(
                "no unexpected errors or exits; {} replacements attached",
                tally.replacements
            ),
            &tally.problems,
        ),
    ]
}

/// A live holder's 30 s hold is never lost on shared memory; on etcd it is when the holder's
/// session expires during a cluster fault (the history checks it published nothing).
fn no_live_holder_fenced(seg: &Segment, fenced: u64, problems: &mut Vec<String>) {
    if fenced > 0 && seg.backend() == Backend::SharedMemory {
        problems.push(format!("{fenced} commits of live holders were fenced"));
    }
}

/// The checks of the segment's own structure: `fsck` and the arena (shared memory only).
fn segment_checks(seg: &Segment) -> Result<[CheckOut; 2], CliError> {
    if seg.backend() != Backend::SharedMemory {
        let why = "a shared-memory structure: an etcd cluster has neither (its members check \
                   their own data)";
        return Ok(["fsck", "arena"].map(|name| CheckOut::skipped(name, why)));
    }
    let fsck = fsck_check(seg)?;
    Ok([
        CheckOut::from_problems(
            "fsck",
            "nothing that --repair cannot fix, after every agent re-attached".to_owned(),
            &fsck.unrepairable,
        ),
        CheckOut::from_problems(
            "arena",
            format!(
                "0 bytes leaked after fsck --repair (the kills had leaked {} bytes in {} slots)",
                fsck.leaked_bytes, fsck.leaked_descriptors
            ),
            &fsck.after_repair,
        ),
    ])
}

/// What `fsck` said about the segment after the run.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FsckOutcome {
    /// Problems of the first, read-only check that `--repair` cannot fix (empty: none).
    unrepairable: Vec<String>,
    /// Arena bytes the kills leaked (found by the first check).
    leaked_bytes: u64,
    /// Descriptors the kills leaked.
    leaked_descriptors: u64,
    /// Problems left after the repair (empty: clean).
    after_repair: Vec<String>,
}

fn problem_lines(report: &agent_coherence::FsckReport) -> Vec<String> {
    report
        .problems
        .iter()
        .map(|p| format!("{} {}: {}", p.kind.name(), p.subject, p.message))
        .collect()
}

/// Check the segment after the run, with no agent attached: a read-only `fsck` first (which
/// must find nothing `--repair` cannot fix), then `fsck --repair` (which returns what a kill
/// in the few instructions between taking or freeing a slot and recording it leaked), then a
/// read-only `fsck` that must find the segment clean with nothing leaked.
fn fsck_check(seg: &Segment) -> Result<FsckOutcome, CliError> {
    let first = seg.fsck(false)?;
    // What the kills leaked, one finding a line, for a run that classifies them by window
    // (docs/reliability.md): only with CCS_TORTURE_SHOW_LEAKS=1.
    if std::env::var_os("CCS_TORTURE_SHOW_LEAKS").is_some_and(|v| v == "1") {
        for line in problem_lines(&first) {
            eprintln!("leak before repair: {line}");
        }
    }
    let unrepairable = first
        .problems
        .iter()
        .filter(|p| !p.repairable)
        .map(|p| format!("{} {}: {}", p.kind.name(), p.subject, p.message))
        .collect();
    seg.fsck(true)?;
    let last = seg.fsck(false)?;
    let mut after_repair = problem_lines(&last);
    if last.arena.leaked_bytes != 0 || last.descriptors.leaked != 0 {
        after_repair.push(format!(
            "{} arena bytes and {} descriptors still leaked after the repair",
            last.arena.leaked_bytes, last.descriptors.leaked
        ));
    }
    Ok(FsckOutcome {
        unrepairable,
        leaked_bytes: first.arena.leaked_bytes,
        leaked_descriptors: first.descriptors.leaked,
        after_repair,
    })
}

/// The history checks (`--history`): one row per property (see [`history`]).
pub(super) fn history_checks(report: &mut Report, ops: &[history::HistOp], file: &std::path::Path) {
    let found = history::check(ops);
    let pending = ops.iter().filter(|op| op.complete_ns.is_none()).count();
    let summary = format!(
        "{} operations in {} ({pending} cut short by kills)",
        ops.len(),
        file.display()
    );
    for (name, what, problems) in [
        (
            "history: linearizability",
            "per key, versions in real-time order, reads of published bytes, conditional writes at their version + 1",
            &found.linearizability,
        ),
        (
            "history: no stale HIT",
            "no read after a returned write sees an older version",
            &found.no_stale_hit,
        ),
        (
            "history: one winner",
            "one write per version",
            &found.one_winner,
        ),
        (
            "history: fencing",
            "no read returns a fenced commit's bytes",
            &found.fencing,
        ),
    ] {
        report.checks.push(CheckOut::from_problems(
            name,
            format!("{summary}: {what}"),
            problems,
        ));
    }
    tally_verdicts(report);
}

/// The report's verdict from its checks: how many failed, and whether it passed.
fn tally_verdicts(report: &mut Report) {
    report.failures = report
        .checks
        .iter()
        .filter(|c| c.status == "failed")
        .count() as u64;
    report.passed = report.failures == 0;
}

/// The key of artifact `a` (payloads first, then counters), as workers name it.
pub(super) fn artifact_key(plan: &Plan, a: u64) -> String {
    match u32::try_from(a) {
        Ok(a) if a < plan.artifacts => payload_key(a),
        Ok(a) if a - plan.artifacts < plan.counters => counter_key(a - plan.artifacts),
        _ => format!("#{a}"),
    }
}

//! `ccs torture --history FILE`: every operation the workers issue, recorded as JSON lines, and
//! the checker run on it at the end of the run.
//!
//! # Recording
//!
//! Each worker life appends to its own part file (`FILE.parts/<agent>-<life>.jsonl`, one
//! `write` per line): a read when it completes; a write twice, when it is invoked (with the
//! checksum of the bytes it is about to publish) and when it completes, under the same
//! `(agent, life, seq)`. A worker SIGKILLed inside a write leaves the invocation alone: the
//! write may or may not have taken effect. At the end the supervisor merges the parts into FILE,
//! one line per operation (the last line of each id), sorted by invocation time:
//!
//! ```text
//! {"process": u32, "agent": str, "life": u64, "seq": u64, "kind": str, "key": str,
//!  "args": {"expected": u64?, "checksum": str?}, "invoke_ns": u64, "complete_ns": u64|null,
//!  "result": {"ok": bool, "version": u64?, "checksum": str?, "hit": bool?, "error": str?}|null}
//! ```
//!
//! Kinds: `get` (a copy read, `hit` says if it was served from a valid copy), `read` (a
//! zero-copy read), `refresh` (of the worker's cached copy: a HIT returns the bytes it holds),
//! `acquire` (version held), `put_blind`, `put` (`expected`: the version of
//! the worker's last read, when it made one), `put_if`, `commit` (`expected`: the version held),
//! `delete`. Errors: `conflict` (with the current version), `held`, `not_found`, `fenced`,
//! `unavailable` (a write of unknown effect, like one cut short by a kill), or the error's text. Times are `CLOCK_MONOTONIC`, one clock for every process of the machine.
//!
//! # Checking
//!
//! Per key, the model is a register with versions: each successful write installs the next
//! version (a delete installs a tombstone version), a conditional write succeeds only on the
//! version it names, and a read returns the current version and its bytes. Every version is
//! written by at most one operation, so the history is linearizable iff the version order is
//! consistent with real time (the polynomial case of register linearizability, Gibbons &
//! Korach, "Testing shared memories", SIAM J. Comput. 1997): checked in one sweep over the
//! invocation and response events,
//!
//! * `linearizability`: a write invoked after another write (or any read) completed installs a
//!   newer version than it returned; a fetched read (`get` MISS, `acquire`, a `conflict`'s
//!   current version) invoked after another fetched read completed returns no older version;
//!   every read's bytes were written by a write invoked before the read completed, with the
//!   version that write returned; a conditional write returns exactly its condition + 1;
//!
//! and the product's own promises, separately:
//!
//! * `no_stale_hit`: no read — HITs included — invoked after a write returned sees an older
//!   version (HITs are not linearizable while a write waits for its acknowledgements,
//!   docs/protocol-etcd.md §4, so they are held to this promise only);
//! * `one_winner`: no two writes returned the same version;
//! * `fencing`: no read returns the bytes of a commit refused as `fenced`.
//!
//! The checker was chosen over a general one (stateright's linearizability tester, Porcupine)
//! because those search interleavings, exponential in the worst case on histories of millions
//! of operations, where versions make the order explicit; the model above is the whole of
//! what is written by hand.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::CliError;

/// Arguments of an operation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Args {
    /// The version a conditional write is conditional on.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expected: Option<u64>,
    /// Checksum of the bytes a write publishes.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub checksum: Option<String>,
}

/// What an operation returned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// It succeeded.
    pub ok: bool,
    /// The version read, written, held, or (a conflict) current.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub version: Option<u64>,
    /// Checksum of the bytes read.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub checksum: Option<String>,
    /// A read served from a valid copy.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hit: Option<bool>,
    /// `conflict`, `held`, `not_found`, `fenced`, or the error's text.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

/// One operation of the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistOp {
    /// The worker process.
    pub process: u32,
    /// Its agent.
    pub agent: String,
    /// Which life of the agent.
    pub life: u64,
    /// Per life, from 0.
    pub seq: u64,
    /// What it was.
    pub kind: String,
    /// The artifact.
    pub key: String,
    /// Its arguments.
    pub args: Args,
    /// When it was invoked.
    pub invoke_ns: u64,
    /// When it returned; `None`: never (its process was killed).
    pub complete_ns: Option<u64>,
    /// What it returned; `None` with `complete_ns`.
    pub result: Option<Outcome>,
}

/// A checksum of bytes (FNV-1a, 64 bits), as hex.
pub fn checksum(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The parts directory of a history file.
pub fn parts_dir(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".parts");
    PathBuf::from(name)
}

/// A worker life's recorder.
pub struct Recorder {
    out: std::fs::File,
    agent: String,
    life: u64,
    seq: u64,
    line: Vec<u8>,
}

impl Recorder {
    /// Append to `dir/<agent>-<life>.jsonl`.
    pub fn open(dir: &Path, agent: &str, life: u64) -> Result<Recorder, CliError> {
        let path = dir.join(format!("{agent}-{life}.jsonl"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| CliError::Bench(format!("cannot open {}: {e}", path.display())))?;
        Ok(Recorder {
            out,
            agent: agent.to_owned(),
            life,
            seq: 0,
            line: Vec::new(),
        })
    }

    /// Start an operation now; `(seq, invoke_ns)` for [`Recorder::done`].
    pub fn start(&mut self) -> (u64, u64) {
        let seq = self.seq;
        self.seq += 1;
        (seq, ccs_os::monotonic_ns())
    }

    /// Record an operation. `result: None`: a write being invoked (written before it runs).
    pub fn record(
        &mut self,
        (seq, invoke_ns): (u64, u64),
        kind: &str,
        key: &str,
        args: Args,
        result: Option<Outcome>,
    ) -> Result<(), CliError> {
        let complete_ns = result.as_ref().map(|_| ccs_os::monotonic_ns());
        let op = HistOp {
            process: std::process::id(),
            agent: self.agent.clone(),
            life: self.life,
            seq,
            kind: kind.to_owned(),
            key: key.to_owned(),
            args,
            invoke_ns,
            complete_ns,
            result,
        };
        self.line.clear();
        serde_json::to_writer(&mut self.line, &op)
            .map_err(|e| CliError::Bench(format!("history: {e}")))?;
        self.line.push(b'\n');
        // One write per line (O_APPEND): a kill leaves whole lines, or one torn last line.
        self.out
            .write_all(&self.line)
            .map_err(|e| CliError::Bench(format!("history: {e}")))
    }
}

/// Merge the part files of `dir` into `file` (one line per operation, by invocation time),
/// remove them, and return the operations. Torn lines (a kill mid-write) are skipped.
pub fn merge(dir: &Path, file: &Path) -> Result<Vec<HistOp>, CliError> {
    let io = |e: std::io::Error| CliError::Bench(format!("history {}: {e}", dir.display()));
    let mut ops: BTreeMap<(String, u64, u64), HistOp> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let reader = BufReader::new(std::fs::File::open(&path).map_err(io)?);
        for line in reader.lines() {
            let Ok(op) = serde_json::from_str::<HistOp>(&line.map_err(io)?) else {
                continue;
            };
            // The completion replaces the invocation of the same operation.
            ops.insert((op.agent.clone(), op.life, op.seq), op);
        }
    }
    std::fs::remove_dir_all(dir).map_err(io)?;
    let mut ops: Vec<HistOp> = ops.into_values().collect();
    ops.sort_by_key(|op| op.invoke_ns);
    let mut out = std::io::BufWriter::new(std::fs::File::create(file).map_err(io)?);
    for op in &ops {
        serde_json::to_writer(&mut out, op).map_err(|e| CliError::Bench(e.to_string()))?;
        out.write_all(b"\n").map_err(io)?;
    }
    out.flush().map_err(io)?;
    Ok(ops)
}

/// The anomalies found, by property.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Anomalies {
    /// The register-with-versions model, per key.
    pub linearizability: Vec<String>,
    /// No read invoked after a write returned sees an older version.
    pub no_stale_hit: Vec<String>,
    /// One write per version.
    pub one_winner: Vec<String>,
    /// No read returns a fenced commit's bytes.
    pub fencing: Vec<String>,
}

/// Most anomalies kept per property (the count is what matters beyond).
const KEEP: usize = 20;

fn note(list: &mut Vec<String>, what: impl FnOnce() -> String) {
    if list.len() < KEEP {
        list.push(what());
    }
}

/// A failed write whose effect is unknown (the cluster did not answer: it may have applied
/// it), as opposed to a refusal, which wrote nothing.
fn indeterminate(r: &Outcome) -> bool {
    !r.ok
        && !matches!(
            r.error.as_deref(),
            Some("conflict" | "held" | "not_found" | "fenced")
        )
}

fn is_write(op: &HistOp) -> bool {
    matches!(
        op.kind.as_str(),
        "put_blind" | "put" | "put_if" | "commit" | "delete"
    )
}

fn describe(op: &HistOp) -> String {
    let result = match &op.result {
        None => "no answer".to_owned(),
        Some(r) if r.ok => format!("ok v{}", r.version.unwrap_or(0)),
        Some(r) => format!(
            "{} v{}",
            r.error.as_deref().unwrap_or("error"),
            r.version.unwrap_or(0)
        ),
    };
    format!(
        "{} {}#{} {} `{}` [{}..{}] {result}",
        op.agent,
        op.life,
        op.seq,
        op.kind,
        op.key,
        op.invoke_ns,
        op.complete_ns.map_or("-".to_owned(), |t| t.to_string())
    )
}

/// What an operation tells the sweep: a write that installed a version, or an observation of
/// the current version, fetched (linearizable) or a HIT-class read (held to the weaker
/// promise only).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Write(u64),
    Fetched(u64),
    Hit(u64),
}

fn role(op: &HistOp) -> Option<Role> {
    let r = op.result.as_ref()?;
    let v = r.version?;
    if r.ok {
        if is_write(op) {
            return Some(Role::Write(v));
        }
        return match (op.kind.as_str(), r.hit) {
            ("get" | "refresh", Some(false)) | ("acquire", _) => Some(Role::Fetched(v)),
            _ => Some(Role::Hit(v)),
        };
    }
    (r.error.as_deref() == Some("conflict")).then_some(Role::Fetched(v))
}

/// Check a history (see the module documentation).
pub fn check(ops: &[HistOp]) -> Anomalies {
    let mut found = Anomalies::default();
    let mut by_key: HashMap<&str, Vec<&HistOp>> = HashMap::new();
    for op in ops {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    let mut keys: Vec<&str> = by_key.keys().copied().collect();
    keys.sort_unstable();
    for key in keys {
        check_key(&by_key[key], &mut found);
    }
    found
}

fn check_key(ops: &[&HistOp], found: &mut Anomalies) {
    // One winner per version; conditional writes land on their condition + 1.
    let mut winners: HashMap<u64, &HistOp> = HashMap::new();
    let mut by_checksum: HashMap<&str, Vec<&HistOp>> = HashMap::new();
    for op in ops.iter().copied().filter(|op| is_write(op)) {
        if let Some(c) = op.args.checksum.as_deref() {
            by_checksum.entry(c).or_default().push(op);
        }
        let Some(Role::Write(v)) = role(op) else {
            continue;
        };
        if let Some(other) = winners.insert(v, op) {
            note(&mut found.one_winner, || {
                format!(
                    "two writes returned version {v}: {} and {}",
                    describe(other),
                    describe(op)
                )
            });
        }
        if let Some(expected) = op.args.expected
            && op.kind != "put_blind"
            && v != expected + 1
        {
            note(&mut found.linearizability, || {
                format!(
                    "a write conditional on version {expected} installed {v}: {}",
                    describe(op)
                )
            });
        }
    }
    // Every read's bytes were written, before the read returned, as the version read; none
    // is a fenced commit's.
    for op in ops {
        let (Some(r), Some(done)) = (&op.result, op.complete_ns) else {
            continue;
        };
        let (true, Some(c), Some(v)) = (r.ok, r.checksum.as_deref(), r.version) else {
            continue;
        };
        let writers = by_checksum.get(c).map(Vec::as_slice).unwrap_or_default();
        if writers.iter().any(|w| {
            w.result
                .as_ref()
                .is_some_and(|wr| wr.error.as_deref() == Some("fenced"))
        }) {
            note(&mut found.fencing, || {
                format!(
                    "a read returned the bytes of a fenced commit: {}",
                    describe(op)
                )
            });
            continue;
        }
        let explained = writers.iter().any(|w| {
            w.invoke_ns < done
                && match &w.result {
                    None => true,
                    Some(wr) => (wr.ok && wr.version == Some(v)) || indeterminate(wr),
                }
        });
        if !explained {
            note(&mut found.linearizability, || {
                format!(
                    "a read returned version {v} with bytes no write of that version published before it returned: {}",
                    describe(op)
                )
            });
        }
    }
    // The sweep: invocations before completions at equal times ("completed before" is strict).
    let mut events: Vec<(u64, bool, Role, &HistOp)> = Vec::new();
    for op in ops.iter().copied() {
        let (Some(role), Some(done)) = (role(op), op.complete_ns) else {
            continue;
        };
        events.push((op.invoke_ns, false, role, op));
        events.push((done, true, role, op));
    }
    events.sort_by_key(|(t, completes, _, _)| (*t, *completes));
    let (mut write_done, mut read_done, mut fetched_done) = (0u64, 0u64, 0u64);
    let mut last_write: Option<&HistOp> = None;
    for (_, completes, role, op) in events {
        if completes {
            match role {
                Role::Write(v) => {
                    if v > write_done {
                        write_done = v;
                        last_write = Some(op);
                    }
                }
                Role::Fetched(v) => {
                    read_done = read_done.max(v);
                    fetched_done = fetched_done.max(v);
                }
                Role::Hit(v) => read_done = read_done.max(v),
            }
            continue;
        }
        let returned = || last_write.map(describe).unwrap_or_default();
        match role {
            Role::Write(v) if v <= write_done.max(read_done) => {
                note(&mut found.linearizability, || {
                    format!(
                        "installed version {v} after version {} was written or read: {}",
                        write_done.max(read_done),
                        describe(op)
                    )
                });
            }
            Role::Fetched(v) | Role::Hit(v) if v < write_done => {
                let list = if matches!(role, Role::Hit(_)) {
                    &mut found.no_stale_hit
                } else {
                    &mut found.linearizability
                };
                note(list, || {
                    format!(
                        "read version {v} after a write of version {write_done} had returned ({}): {}",
                        returned(),
                        describe(op)
                    )
                });
            }
            Role::Fetched(v) if v < fetched_done => {
                note(&mut found.linearizability, || {
                    format!(
                        "fetched version {v} after another fetch had returned version {fetched_done}: {}",
                        describe(op)
                    )
                });
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(agent: &str, kind: &str, span: (u64, u64), result: Outcome) -> HistOp {
        HistOp {
            process: 1,
            agent: agent.to_owned(),
            life: 0,
            seq: span.0,
            kind: kind.to_owned(),
            key: "k".to_owned(),
            args: Args::default(),
            invoke_ns: span.0,
            complete_ns: Some(span.1),
            result: Some(result),
        }
    }

    fn write(agent: &str, span: (u64, u64), v: u64, c: &str) -> HistOp {
        HistOp {
            args: Args {
                expected: Some(v - 1),
                checksum: Some(c.to_owned()),
            },
            ..op(
                agent,
                "put_if",
                span,
                Outcome {
                    ok: true,
                    version: Some(v),
                    ..Outcome::default()
                },
            )
        }
    }

    fn get(agent: &str, span: (u64, u64), v: u64, c: &str, hit: bool) -> HistOp {
        op(
            agent,
            "get",
            span,
            Outcome {
                ok: true,
                version: Some(v),
                checksum: Some(c.to_owned()),
                hit: Some(hit),
                ..Outcome::default()
            },
        )
    }

    #[test]
    fn a_concurrent_history_in_version_order_passes() {
        let h = [
            write("a", (0, 10), 1, "c1"),
            // Overlaps the write of 2: may see 1 or 2, a HIT of 1 after a MISS of 2 too.
            write("a", (20, 40), 2, "c2"),
            get("b", (25, 30), 2, "c2", false),
            get("c", (31, 35), 1, "c1", true),
            get("c", (41, 45), 2, "c2", false),
        ];
        assert_eq!(check(&h), Anomalies::default());
    }

    #[test]
    fn each_promise_catches_its_violation() {
        // A HIT of 1 after the write of 2 returned.
        let stale = [
            write("a", (0, 10), 1, "c1"),
            write("a", (20, 30), 2, "c2"),
            get("b", (31, 32), 1, "c1", true),
        ];
        let found = check(&stale);
        assert_eq!(found.no_stale_hit.len(), 1, "{found:?}");
        assert!(found.linearizability.is_empty(), "{found:?}");
        // A fetch going back in time is a linearizability violation.
        let back = [
            write("a", (0, 10), 1, "c1"),
            write("a", (20, 40), 2, "c2"),
            get("b", (21, 22), 2, "c2", false),
            get("c", (23, 24), 1, "c1", false),
        ];
        assert_eq!(check(&back).linearizability.len(), 1);
        // Two winners of version 2.
        let twice = [
            write("a", (0, 10), 1, "c1"),
            write("a", (20, 30), 2, "c2"),
            write("b", (21, 31), 2, "c3"),
        ];
        assert_eq!(check(&twice).one_winner.len(), 1);
        // A read of bytes a fenced commit carried.
        let mut fenced = write("a", (20, 30), 2, "c2");
        fenced.kind = "commit".to_owned();
        fenced.result = Some(Outcome {
            ok: false,
            error: Some("fenced".to_owned()),
            ..Outcome::default()
        });
        let h = [
            write("a", (0, 10), 1, "c1"),
            fenced,
            get("b", (31, 32), 2, "c2", false),
        ];
        assert_eq!(check(&h).fencing.len(), 1);
        // A read of a write not yet invoked: its bytes were not published yet, and the write
        // then installed a version already read.
        let h = [
            write("a", (10, 20), 1, "c1"),
            get("b", (0, 5), 1, "c1", false),
        ];
        assert_eq!(check(&h).linearizability.len(), 2);
        // Bytes no write carried.
        let h = [
            write("a", (0, 10), 1, "c1"),
            get("b", (20, 25), 1, "zz", false),
        ];
        assert_eq!(check(&h).linearizability.len(), 1);
        // A conditional write that skipped a version.
        let mut skip = write("a", (20, 30), 3, "c3");
        skip.args.expected = Some(1);
        let h = [write("a", (0, 10), 1, "c1"), skip];
        assert_eq!(check(&h).linearizability.len(), 1);
        // A killed write may have taken effect: its bytes are explained.
        let mut pending = write("a", (20, 30), 2, "c2");
        pending.complete_ns = None;
        pending.result = None;
        let h = [
            write("a", (0, 10), 1, "c1"),
            pending,
            get("b", (40, 41), 2, "c2", false),
        ];
        assert_eq!(check(&h), Anomalies::default());
    }
}

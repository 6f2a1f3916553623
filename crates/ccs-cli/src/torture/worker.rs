//! One torture worker: the hidden `ccs torture-worker`, attached as `worker-<i>`, doing random
//! operations until the supervisor sets STOP (or disappears), checking everything it reads.
//!
//! Every check is made by the worker on what the protocol returned to it, at once:
//!
//! * every payload read (`get_into`, and zero-copy `read` checked in place) passes
//!   [`verify_payload`];
//! * every counter read passes [`verify_counter`] and satisfies value = version − 1 (see
//!   [`super`] for why that is exact);
//! * every version this agent observes on an artifact (a read, a write's result, a conflict's
//!   `current`, an acquire's held version) is ≥ the last one it observed there, across its
//!   earlier lives too (the last observed version per artifact lives in the side mapping and is
//!   stored before the worker acts on it); a write's result is > it, and a conditional write's
//!   result is exactly the version it was conditional on + 1.
//!
//! A failed check, or an error the protocol should not produce here (anything but `Conflict`,
//! `Held`, and `NotFound` on a payload artifact that may be deleted), is recorded in the side
//! mapping and the worker exits 1.

use agent_coherence::Conflict;
use std::time::{Duration, Instant};

use agent_coherence::{Agent, Backend, Cached, Error, Key, Segment, WriteGuard};
use ccs_protocol::sync::{AtomicU64, Ordering};

use super::history::{self, Args, Outcome, Recorder};
use super::layout::{
    ATTACH_RETRIES, FAIL_ARTIFACT, FAIL_EXPECTED, FAIL_KIND, FAIL_SEEN, IN_WRITE, INJECTED, Layout,
    STOP,
};
use super::payload::{
    CounterValue, HEADER, Rng, make_counter, make_payload, mix, verify_counter, verify_payload,
};
use super::{Fault, WorkerArgs, counter_key, payload_key, worker_name};
use crate::bench::note_stderr;
use crate::bench::side::Side;
use crate::error::{CliError, EXIT_FAILURE, EXIT_OK};

/// The lease of an `acquire`: far longer than any hold here, so a live holder is never fenced
/// (a dead one is reclaimed at once through its kernel lock).
const LEASE: Duration = Duration::from_secs(30);

/// How long a replacement retries `attach` while it reports `AgentBusy`. On shared memory the
/// predecessor's lock is released by the kernel before `wait` returns, so this should never be
/// needed; on etcd the killed predecessor's session lives until its lease expires (5 s).
const ATTACH_PATIENCE: Duration = Duration::from_secs(2);
const ATTACH_PATIENCE_ETCD: Duration = Duration::from_secs(15);

/// Operations and outcomes counted per worker (summed over its lives in the side mapping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Op {
    /// `get_into` of a payload, checked.
    Get,
    /// Zero-copy `read` of a payload, checked in place; or `refresh` of the worker's cached
    /// copy of it (a HIT keeps the bytes it holds), checked.
    Read,
    /// `put_blind` of a new payload.
    PutBlind,
    /// `get` then `put` (conditional on the view).
    Put,
    /// `put_if` on the last version seen.
    PutIf,
    /// `acquire` then `commit`.
    AcquireCommit,
    /// `get`, `delete`, then `put` a new payload.
    DeleteRecreate,
    /// A counter increment attempted (`get`+`put`, or `acquire`+`get`+`commit`).
    Increment,
    /// A counter increment acknowledged (the write returned Ok).
    IncrementWon,
    /// A refusal: `Conflict`.
    Conflict,
    /// A refusal: `Held`.
    Held,
    /// `NotFound` on a deleted payload artifact.
    NotFound,
    /// Payloads and counters read and verified.
    Verified,
    /// A refusal: `Unavailable` (etcd without quorum, or a stopped member): a write may or
    /// may not have taken effect.
    Unavailable,
    /// A refusal: `Fenced` (etcd: the agent's session expired during a cluster fault and its
    /// hold was reclaimed; the history checks that nothing was published).
    Fenced,
}

impl Op {
    /// Every op, in `repr` order.
    pub const ALL: [Op; 15] = [
        Op::Get,
        Op::Read,
        Op::PutBlind,
        Op::Put,
        Op::PutIf,
        Op::AcquireCommit,
        Op::DeleteRecreate,
        Op::Increment,
        Op::IncrementWon,
        Op::Conflict,
        Op::Held,
        Op::NotFound,
        Op::Verified,
        Op::Unavailable,
        Op::Fenced,
    ];

    /// The first eight are operations issued; the rest are outcomes.
    pub const ISSUED: usize = 8;

    /// Its name in the table and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Read => "read",
            Op::PutBlind => "put_blind",
            Op::Put => "put",
            Op::PutIf => "put_if",
            Op::AcquireCommit => "acquire_commit",
            Op::DeleteRecreate => "delete_recreate",
            Op::Increment => "increment",
            Op::IncrementWon => "increment_won",
            Op::Conflict => "conflict",
            Op::Held => "held",
            Op::NotFound => "not_found",
            Op::Verified => "verified",
            Op::Unavailable => "unavailable",
            Op::Fenced => "fenced",
        }
    }
}

/// What a failed check was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Kind {
    /// A payload or counter failed its checksum.
    Checksum = 1,
    /// An observed version was lower than an earlier observation by the same agent.
    VersionDecreased = 2,
    /// A counter's value was not its version − 1.
    CounterRule = 3,
    /// A write's version was not the expected one (+1 from what it was conditional on).
    VersionStep = 4,
    /// An error the protocol should not return here.
    Unexpected = 5,
}

impl Kind {
    /// Decode a recorded kind.
    pub fn from_word(word: u64) -> Option<Kind> {
        [
            Kind::Checksum,
            Kind::VersionDecreased,
            Kind::CounterRule,
            Kind::VersionStep,
            Kind::Unexpected,
        ]
        .into_iter()
        .find(|k| *k as u64 == word)
    }

    /// A short description.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Checksum => "a read returned bytes that fail their checksum",
            Kind::VersionDecreased => "an agent observed a version lower than one it saw before",
            Kind::CounterRule => "a counter's value is not its version - 1 (a lost update)",
            Kind::VersionStep => "a write's version is not the version it was conditional on + 1",
            Kind::Unexpected => "an operation failed with an unexpected error",
        }
    }
}

/// A failed check: recorded in the side mapping, then the worker exits 1.
#[derive(Debug)]
struct Failure {
    kind: Kind,
    artifact: usize,
    seen: u64,
    expected: u64,
    message: String,
}

impl Failure {
    fn unexpected(artifact: usize, message: String) -> Failure {
        Failure {
            kind: Kind::Unexpected,
            artifact,
            seen: 0,
            expected: 0,
            message,
        }
    }
}

impl From<CliError> for Failure {
    fn from(error: CliError) -> Failure {
        Failure::unexpected(usize::MAX, error.to_string())
    }
}

type Step<T = ()> = Result<T, Failure>;

/// A worker's private state. The agent is kept outside, so that a `WriteGuard` borrowing it can
/// live across the `&mut self` bookkeeping.
struct Worker<'a> {
    side: &'a Side,
    lay: Layout,
    index: usize,
    keys: Vec<Key>,
    payloads: usize,
    /// The last version observed per artifact, mirrored in the side mapping.
    last: Vec<u64>,
    rng: Rng,
    buf: Vec<u8>,
    out: Vec<u8>,
    max_payload: usize,
    seq: u64,
    inject: Option<Fault>,
    /// The history recorder (`--history`).
    hist: Option<Recorder>,
    /// Cached copies of payloads, for `refresh`.
    cached: Vec<Option<Cached>>,
    /// A live worker's hold can be lost before its lease ends: on etcd, with its session
    /// (under a cluster fault). On shared memory only a dead holder's is reclaimed.
    holds_can_lapse: bool,
}

/// An operation being recorded in the history.
struct Pending {
    at: (u64, u64),
    kind: &'static str,
    a: usize,
    args: Args,
}

/// The history's outcome of an error.
fn failed(error: &Error) -> Outcome {
    let (name, version) = match error {
        Error::Conflict(Conflict { current, .. }) => ("conflict".to_owned(), Some(*current)),
        Error::Held { .. } => ("held".to_owned(), None),
        Error::NotFound { .. } => ("not_found".to_owned(), None),
        Error::Fenced { .. } => ("fenced".to_owned(), None),
        Error::Unavailable { .. } => ("unavailable".to_owned(), None),
        other => (other.to_string(), None),
    };
    Outcome {
        ok: false,
        version,
        error: Some(name),
        ..Outcome::default()
    }
}

fn wrote(version: u64) -> Outcome {
    Outcome {
        ok: true,
        version: Some(version),
        ..Outcome::default()
    }
}

fn read_as(version: u64, bytes: &[u8], hit: Option<bool>) -> Outcome {
    Outcome {
        ok: true,
        version: Some(version),
        checksum: Some(history::checksum(bytes)),
        hit,
        ..Outcome::default()
    }
}

impl Worker<'_> {
    /// Start recording an operation; a write (`checksum` of the bytes it publishes) is
    /// recorded at once, so that a kill inside it leaves its invocation in the history.
    fn begin(
        &mut self,
        kind: &'static str,
        a: usize,
        expected: Option<u64>,
        checksum: Option<String>,
    ) -> Step<Option<Pending>> {
        let key = self.key_name(a);
        let Some(hist) = self.hist.as_mut() else {
            return Ok(None);
        };
        let pending = Pending {
            at: hist.start(),
            kind,
            a,
            args: Args { expected, checksum },
        };
        if pending.args.checksum.is_some() {
            hist.record(pending.at, kind, &key, pending.args.clone(), None)?;
        }
        Ok(Some(pending))
    }

    /// Record how an operation ended.
    fn end(&mut self, pending: Option<Pending>, outcome: impl FnOnce() -> Outcome) -> Step {
        let Some(p) = pending else { return Ok(()) };
        let key = self.key_name(p.a);
        if let Some(hist) = self.hist.as_mut() {
            hist.record(p.at, p.kind, &key, p.args, Some(outcome()))?;
        }
        Ok(())
    }

    /// The checksum of the bytes about to be written, when recording.
    fn out_sum(&self, bytes: &[u8]) -> Option<String> {
        self.hist.as_ref().map(|_| history::checksum(bytes))
    }

    fn word(&self, line: usize) -> Step<&AtomicU64> {
        Ok(self.side.word(line)?)
    }

    fn count(&self, op: Op) -> Step {
        // Relaxed: a statistic, read by the supervisor after the workers are reaped.
        self.word(self.lay.op(self.index, op))?
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn key_name(&self, a: usize) -> String {
        self.keys
            .get(a)
            .map_or_else(|| format!("#{a}"), |k| k.as_str().to_owned())
    }

    /// Record that this agent observed version `v` of artifact `a`; fail if it is older than
    /// an earlier observation.
    fn observe(&mut self, a: usize, v: u64) -> Step {
        let last = self.last[a];
        if v < last {
            return Err(Failure {
                kind: Kind::VersionDecreased,
                artifact: a,
                seen: v,
                expected: last,
                message: format!(
                    "`{}`: observed version {v} after version {last}",
                    self.key_name(a)
                ),
            });
        }
        self.last[a] = v;
        // Release: the next life of this agent loads it with Acquire after this process was
        // reaped (the kill and `wait` order it anyway; the pair documents the intent).
        self.word(self.lay.last(self.index, a))?
            .store(v, Ordering::Release);
        Ok(())
    }

    /// A write of `a` returned version `v`: it must be newer than anything observed, and
    /// `expect` if the write was conditional on a known version.
    fn observe_write(&mut self, a: usize, v: u64, expect: Option<u64>) -> Step {
        if let Some(expected) = expect.filter(|e| *e != v) {
            return Err(Failure {
                kind: Kind::VersionStep,
                artifact: a,
                seen: v,
                expected,
                message: format!(
                    "`{}`: a conditional write returned version {v}, expected {expected}",
                    self.key_name(a)
                ),
            });
        }
        if v <= self.last[a] {
            return Err(Failure {
                kind: Kind::VersionDecreased,
                artifact: a,
                seen: v,
                expected: self.last[a] + 1,
                message: format!(
                    "`{}`: a write returned version {v}, not newer than the observed {}",
                    self.key_name(a),
                    self.last[a]
                ),
            });
        }
        self.observe(a, v)
    }

    /// Run a write with IN_WRITE set, so the supervisor can count kills that land inside one.
    fn writing<T>(&self, write: impl FnOnce() -> T) -> Step<T> {
        let flag = self.word(self.lay.worker(self.index, IN_WRITE))?;
        // Relaxed: sampled by the supervisor just before a kill, a statistic only.
        flag.store(1, Ordering::Relaxed);
        let result = write();
        flag.store(0, Ordering::Relaxed);
        Ok(result)
    }

    /// A refused or failed operation on `a`: fine if it is contention (or `NotFound` on a
    /// payload, which may be deleted), a failure otherwise.
    fn refused(&mut self, a: usize, error: Error) -> Step {
        match error {
            Error::Conflict(Conflict { current, .. }) => {
                self.count(Op::Conflict)?;
                self.observe(a, current)
            }
            Error::Held { .. } => self.count(Op::Held),
            Error::NotFound { .. } if a < self.payloads => self.count(Op::NotFound),
            // Under injected faults (a paused member, a lost quorum); the history records the
            // write as of unknown effect.
            Error::Unavailable { .. } => self.count(Op::Unavailable),
            Error::Fenced { .. } => self.count(Op::Fenced),
            other => Err(Failure::unexpected(
                a,
                format!("`{}`: {other}", self.key_name(a)),
            )),
        }
    }

    fn checksum(&self, a: usize, version: u64, why: String) -> Failure {
        Failure {
            kind: Kind::Checksum,
            artifact: a,
            seen: version,
            expected: 0,
            message: format!("`{}` version {version}: {why}", self.key_name(a)),
        }
    }

    /// A fresh payload for `a` in `self.out`: half the time small, half the time up to the
    /// maximum (large copies widen the window in which a kill lands mid-write).
    fn new_payload(&mut self, a: usize) {
        let top = if self.rng.next_u64() & 1 == 0 {
            self.max_payload.min(1024)
        } else {
            self.max_payload
        };
        let len = self.rng.range(HEADER as u64, top as u64) as usize;
        self.seq += 1;
        let seed = mix(self.rng.next_u64() ^ self.seq);
        make_payload(&mut self.out, seed, a as u32, self.index as u32, len);
    }

    /// `get_into` artifact `a` into `self.buf`, recorded in the history.
    fn get_into(&mut self, agent: &Agent, a: usize) -> Step<Result<(u64, bool), Error>> {
        let p = self.begin("get", a, None, None)?;
        let got = agent.get_into(&self.keys[a], &mut self.buf);
        let outcome = p.is_some().then(|| match &got {
            Ok((v, hit)) => read_as(*v, &self.buf, Some(*hit)),
            Err(e) => failed(e),
        });
        self.end(p, || outcome.unwrap_or_default())?;
        Ok(got)
    }

    /// `get_into` a payload and check it. `None`: deleted.
    fn get(&mut self, agent: &Agent, a: usize) -> Step<Option<u64>> {
        self.count(Op::Get)?;
        match self.get_into(agent, a)? {
            Ok((v, _hit)) => {
                self.observe(a, v)?;
                verify_payload(&self.buf, a as u32).map_err(|why| self.checksum(a, v, why))?;
                self.count(Op::Verified)?;
                Ok(Some(v))
            }
            Err(e) => self.refused(a, e).map(|()| None),
        }
    }

    /// Zero-copy `read` of a payload, checked in place while pinned.
    fn read(&mut self, agent: &Agent, a: usize) -> Step {
        self.count(Op::Read)?;
        let p = self.begin("read", a, None, None)?;
        let read = agent.read(&self.keys[a]);
        self.end(p, || match &read {
            Ok(guard) => read_as(guard.version(), guard.bytes(), Some(guard.hit())),
            Err(e) => failed(e),
        })?;
        match read {
            Ok(guard) => {
                let v = guard.version();
                self.observe(a, v)?;
                verify_payload(guard.bytes(), a as u32).map_err(|why| self.checksum(a, v, why))?;
                drop(guard);
                self.count(Op::Verified)
            }
            Err(e) => self.refused(a, e),
        }
    }

    /// `refresh` the worker's cached copy of a payload and check it. A HIT returns the bytes
    /// the copy already holds: only invalidation keeps them current.
    fn refresh(&mut self, agent: &Agent, a: usize) -> Step {
        self.count(Op::Read)?;
        let mut cached = match self.cached.get_mut(a).and_then(Option::take) {
            Some(cached) => cached,
            None => Cached::new(self.keys[a].clone()),
        };
        let p = self.begin("refresh", a, None, None)?;
        let got = agent.refresh(&mut cached);
        let outcome = p.is_some().then(|| match &got {
            Ok(hit) => read_as(cached.version(), cached.bytes(), Some(*hit)),
            Err(e) => failed(e),
        });
        self.end(p, || outcome.unwrap_or_default())?;
        match got {
            Ok(_) => {
                let v = cached.version();
                self.observe(a, v)?;
                verify_payload(cached.bytes(), a as u32).map_err(|why| self.checksum(a, v, why))?;
                if let Some(slot) = self.cached.get_mut(a) {
                    *slot = Some(cached);
                }
                self.count(Op::Verified)
            }
            Err(e) => self.refused(a, e),
        }
    }

    fn put_blind(&mut self, agent: &Agent, a: usize) -> Step {
        self.count(Op::PutBlind)?;
        self.new_payload(a);
        let p = self.begin("put_blind", a, None, self.out_sum(&self.out))?;
        let put = self.writing(|| agent.put_blind(&self.keys[a], &self.out))?;
        self.end(p, || put.as_ref().map_or_else(failed, |v| wrote(*v)))?;
        match put {
            Ok(v) => self.observe_write(a, v, None),
            Err(e) => self.refused(a, e),
        }
    }

    fn put_view(&mut self, agent: &Agent, a: usize) -> Step {
        let read = self.get(agent, a)?;
        self.count(Op::Put)?;
        self.new_payload(a);
        let p = self.begin("put", a, read, self.out_sum(&self.out))?;
        let put = self.writing(|| agent.put(&self.keys[a], &self.out))?;
        self.end(p, || put.as_ref().map_or_else(failed, |v| wrote(*v)))?;
        match put {
            Ok(v) => self.observe_write(a, v, read.map(|r| r + 1)),
            Err(e) => self.refused(a, e),
        }
    }

    fn put_if(&mut self, agent: &Agent, a: usize) -> Step {
        self.count(Op::PutIf)?;
        let expected = self.last[a];
        self.new_payload(a);
        let p = self.begin("put_if", a, Some(expected), self.out_sum(&self.out))?;
        let put = self.writing(|| agent.put_if(&self.keys[a], expected, &self.out))?;
        self.end(p, || put.as_ref().map_or_else(failed, |v| wrote(*v)))?;
        match put {
            Ok(v) => self.observe_write(a, v, Some(expected + 1)),
            Err(e) => self.refused(a, e),
        }
    }

    /// `acquire` artifact `a`, recorded in the history.
    fn acquire<'g>(
        &mut self,
        agent: &'g Agent,
        a: usize,
    ) -> Step<Result<WriteGuard<&'g Agent>, Error>> {
        let p = self.begin("acquire", a, None, None)?;
        let acquired = agent.acquire(&self.keys[a], LEASE);
        self.end(p, || match &acquired {
            Ok(guard) => wrote(guard.version()),
            Err(e) => failed(e),
        })?;
        Ok(acquired)
    }

    fn acquire_commit(&mut self, agent: &Agent, a: usize) -> Step {
        self.count(Op::AcquireCommit)?;
        let guard = match self.acquire(agent, a)? {
            Ok(guard) => guard,
            Err(e) => return self.refused(a, e),
        };
        let held = guard.version();
        self.observe(a, held)?;
        self.new_payload(a);
        let p = self.begin("commit", a, Some(held), self.out_sum(&self.out))?;
        let commit = self.writing(|| guard.commit(&self.out))?;
        self.end(p, || commit.as_ref().map_or_else(failed, |v| wrote(*v)))?;
        match commit {
            Ok(v) => self.observe_write(a, v, Some(held + 1)),
            Err(e) => self.refused(a, e),
        }
    }

    fn delete_recreate(&mut self, agent: &Agent, a: usize) -> Step {
        let read = self.get(agent, a)?;
        self.count(Op::DeleteRecreate)?;
        // A delete publishes no bytes: an empty checksum marks it a write in the history.
        let p = self.begin("delete", a, read, self.hist.as_ref().map(|_| String::new()))?;
        let deleted = self.writing(|| agent.delete(&self.keys[a]))?;
        self.end(p, || deleted.as_ref().map_or_else(failed, |v| wrote(*v)))?;
        let tombstone = match deleted {
            Ok(t) => t,
            Err(e) => return self.refused(a, e),
        };
        self.observe_write(a, tombstone, read.map(|r| r + 1))?;
        self.new_payload(a);
        let p = self.begin("put", a, Some(tombstone), self.out_sum(&self.out))?;
        let put = self.writing(|| agent.put(&self.keys[a], &self.out))?;
        self.end(p, || put.as_ref().map_or_else(failed, |v| wrote(*v)))?;
        match put {
            Ok(v) => self.observe_write(a, v, Some(tombstone + 1)),
            Err(e) => self.refused(a, e),
        }
    }

    /// Read counter `a` and check it: its checksum, and value = version − 1.
    fn get_counter(&mut self, agent: &Agent, a: usize) -> Step<Option<(u64, CounterValue)>> {
        let v = match self.get_into(agent, a)? {
            Ok((v, _hit)) => v,
            Err(Error::Unavailable { .. }) => return self.count(Op::Unavailable).map(|()| None),
            Err(e) => {
                return Err(Failure::unexpected(
                    a,
                    format!("`{}`: {e}", self.key_name(a)),
                ));
            }
        };
        self.observe(a, v)?;
        let counter = verify_counter(&self.buf, (a - self.payloads) as u32)
            .map_err(|why| self.checksum(a, v, why))?;
        self.count(Op::Verified)?;
        if counter.value.checked_add(1) != Some(v) {
            return Err(Failure {
                kind: Kind::CounterRule,
                artifact: a,
                seen: counter.value,
                expected: v.saturating_sub(1),
                message: format!(
                    "`{}` version {v} holds value {} (written by worker {}); every increment \
                     is one version, so it must be {}",
                    self.key_name(a),
                    counter.value,
                    counter.writer,
                    v.saturating_sub(1)
                ),
            });
        }
        Ok(Some((v, counter)))
    }

    /// The payload of an increment of counter `a` from `counter`. With `--inject-fault
    /// lost-update`, the first one repeats the value instead (a lost update).
    fn next_counter(&mut self, a: usize, counter: CounterValue) -> Step<([u8; 32], bool)> {
        self.seq += 1;
        let inject = self.inject == Some(Fault::LostUpdate)
            && self.word(INJECTED)?.load(Ordering::Relaxed) == 0;
        let value = if inject {
            counter.value
        } else {
            counter.value + 1
        };
        let bytes = make_counter(
            value,
            (a - self.payloads) as u32,
            self.index as u32,
            self.seq,
        );
        Ok((bytes, inject))
    }

    /// An increment was acknowledged: count it against the counter.
    fn won(&mut self, a: usize, injected: bool) -> Step {
        // Relaxed: read by the supervisor after every worker is reaped.
        self.word(self.lay.acked(a - self.payloads))?
            .fetch_add(1, Ordering::Relaxed);
        if injected {
            self.word(INJECTED)?.store(1, Ordering::Relaxed);
        }
        self.count(Op::IncrementWon)
    }

    /// `get` → value + 1 → `put` conditional on the view of that `get`.
    fn increment_put(&mut self, agent: &Agent, a: usize) -> Step {
        self.count(Op::Increment)?;
        let Some((v, counter)) = self.get_counter(agent, a)? else {
            return Ok(());
        };
        let (bytes, injected) = self.next_counter(a, counter)?;
        let p = self.begin("put", a, Some(v), self.out_sum(&bytes))?;
        let put = self.writing(|| agent.put(&self.keys[a], &bytes))?;
        self.end(p, || put.as_ref().map_or_else(failed, |w| wrote(*w)))?;
        match put {
            Ok(w) => {
                self.observe_write(a, w, Some(v + 1))?;
                self.won(a, injected)
            }
            Err(e) => self.refused(a, e),
        }
    }

    /// `acquire` → `get` (must return the held version, unless the hold was lost) → value + 1
    /// → `commit` (must be fenced if the hold was lost).
    fn increment_acquire(&mut self, agent: &Agent, a: usize) -> Step {
        self.count(Op::Increment)?;
        let guard = match self.acquire(agent, a)? {
            Ok(guard) => guard,
            Err(e) => return self.refused(a, e),
        };
        let held = guard.version();
        self.observe(a, held)?;
        let Some((v, counter)) = self.get_counter(agent, a)? else {
            return Ok(());
        };
        // A newer version while holding, where a live worker's hold can lapse: the hold was
        // lost and another worker wrote after reclaiming it (on etcd, a holder whose session
        // lapsed, as under a paused leader, loses its holds; a CI run saw version 34 read
        // under a hold taken at 33). Reads are not fenced; the commit below is, and must be.
        // Elsewhere any other version is a failure (two writers admitted at once).
        let lost = v > held && self.holds_can_lapse;
        if v != held && !lost {
            return Err(Failure {
                kind: Kind::VersionStep,
                artifact: a,
                seen: v,
                expected: held,
                message: format!(
                    "`{}`: read version {v} while holding it exclusively at version {held}",
                    self.key_name(a)
                ),
            });
        }
        let (bytes, injected) = self.next_counter(a, counter)?;
        let p = self.begin("commit", a, Some(held), self.out_sum(&bytes))?;
        let commit = self.writing(|| guard.commit(&bytes))?;
        self.end(p, || commit.as_ref().map_or_else(failed, |w| wrote(*w)))?;
        match commit {
            Ok(w) if lost => Err(Failure {
                kind: Kind::VersionStep,
                artifact: a,
                seen: w,
                expected: held + 1,
                message: format!(
                    "`{}`: a hold taken at version {held} committed version {w} after version \
                     {v} was read: a lost hold's commit must be fenced",
                    self.key_name(a)
                ),
            }),
            Ok(w) => {
                self.observe_write(a, w, Some(held + 1))?;
                self.won(a, injected)
            }
            Err(e) => self.refused(a, e),
        }
    }

    /// `--inject-fault torn`: write a payload with one damaged byte, then read until this
    /// worker reads that very version back (through the ordinary checked read), which must fail.
    fn inject_torn(&mut self, agent: &Agent) -> Step {
        for _ in 0..100_000 {
            self.new_payload(0);
            if self.out.len() <= HEADER {
                continue;
            }
            let last = self.out.len() - 1;
            self.out[last] ^= 0x5A;
            let v = match self.writing(|| agent.put_blind(&self.keys[0], &self.out))? {
                Ok(v) => v,
                Err(e) => {
                    self.refused(0, e)?;
                    continue;
                }
            };
            self.observe_write(0, v, None)?;
            self.word(INJECTED)?.store(1, Ordering::Relaxed);
            if self.get(agent, 0)? == Some(v) {
                return Err(Failure::unexpected(
                    0,
                    "the damaged payload passed its checksum".to_owned(),
                ));
            }
        }
        Ok(())
    }

    fn step(&mut self, agent: &Agent) -> Step {
        if self.inject == Some(Fault::Torn) && self.word(INJECTED)?.load(Ordering::Relaxed) == 0 {
            return self.inject_torn(agent);
        }
        let counters = self.keys.len() - self.payloads;
        let r = self.rng.next_u64() % 100;
        if r >= 82 && counters > 0 {
            let a = self.payloads + self.rng.range(0, counters as u64 - 1) as usize;
            return if self.rng.next_u64() & 1 == 0 {
                self.increment_put(agent, a)
            } else {
                self.increment_acquire(agent, a)
            };
        }
        let a = self.rng.range(0, self.payloads as u64 - 1) as usize;
        match r % 82 {
            0..20 => self.get(agent, a).map(drop),
            20..28 => self.read(agent, a),
            28..35 => self.refresh(agent, a),
            35..45 => self.put_blind(agent, a),
            45..60 => self.put_view(agent, a),
            60..70 => self.put_if(agent, a),
            70..78 => self.acquire_commit(agent, a),
            _ => self.delete_recreate(agent, a),
        }
    }

    /// Record `failure` in the side mapping (the first one of this worker slot wins).
    fn record(&self, failure: &Failure) -> Step {
        let kind = self.word(self.lay.worker(self.index, FAIL_KIND))?;
        // Relaxed throughout: the supervisor reads these after reaping this process.
        if kind.load(Ordering::Relaxed) == 0 {
            for (offset, value) in [
                (FAIL_ARTIFACT, failure.artifact as u64),
                (FAIL_SEEN, failure.seen),
                (FAIL_EXPECTED, failure.expected),
            ] {
                self.word(self.lay.worker(self.index, offset))?
                    .store(value, Ordering::Relaxed);
            }
            kind.store(failure.kind as u64, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Attach as `name`, retrying briefly while the name is busy.
fn attach(seg: &Segment, name: &str, retries: &AtomicU64) -> Result<Agent, CliError> {
    let started = Instant::now();
    let patience = if seg.backend() == Backend::Etcd {
        ATTACH_PATIENCE_ETCD
    } else {
        ATTACH_PATIENCE
    };
    loop {
        match seg.attach(name) {
            // Busy: the killed predecessor's session (etcd) lives on; unavailable: a fault
            // injected in the cluster.
            Err(Error::AgentBusy { .. } | Error::Unavailable { .. })
                if started.elapsed() < patience =>
            {
                retries.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
            }
            other => return Ok(other?),
        }
    }
}

/// Run the hidden `ccs torture-worker`.
pub fn run(args: &WorkerArgs) -> Result<u8, CliError> {
    let seg = Segment::open(&args.seg)?;
    let side = Side::open(&args.side)?;
    let lay = Layout {
        workers: args.workers as usize,
        artifacts: (args.artifacts + args.counters) as usize,
        counters: args.counters as usize,
    };
    let index = args.index as usize;
    if index >= lay.workers || args.artifacts == 0 {
        return Err(CliError::Usage(format!(
            "torture-worker: index {index} of {} workers, {} artifacts",
            lay.workers, args.artifacts
        )));
    }
    // The mapping must hold every line this worker may touch.
    side.word(lay.lines() - 1)?;
    let name = worker_name(index);
    let agent = attach(&seg, &name, side.word(lay.worker(index, ATTACH_RETRIES))?)?;
    let mut keys = Vec::with_capacity(lay.artifacts);
    for a in 0..args.artifacts {
        keys.push(agent.key(&payload_key(a))?);
    }
    for c in 0..args.counters {
        keys.push(agent.key(&counter_key(c))?);
    }
    let mut last = Vec::with_capacity(lay.artifacts);
    for a in 0..lay.artifacts {
        // Acquire pairs with the Release store in `observe` by this agent's previous life.
        last.push(side.word(lay.last(index, a))?.load(Ordering::Acquire));
    }
    let mut worker = Worker {
        side: &side,
        lay,
        index,
        keys,
        payloads: args.artifacts as usize,
        last,
        rng: Rng::new(args.seed ^ mix(args.index.into()) ^ mix(args.life.wrapping_mul(7919))),
        buf: Vec::new(),
        out: Vec::new(),
        max_payload: usize::try_from(args.max_payload).unwrap_or(usize::MAX),
        seq: args.life << 40,
        inject: args.inject_fault,
        hist: args
            .history
            .as_deref()
            .map(|dir| Recorder::open(dir, &name, args.life))
            .transpose()?,
        cached: (0..args.artifacts).map(|_| None).collect(),
        holds_can_lapse: seg.backend() == Backend::Etcd,
    };
    let stop = side.word(STOP)?;
    let mut steps: u64 = 0;
    loop {
        // Acquire pairs with the supervisor's Release store of STOP.
        if stop.load(Ordering::Acquire) != 0 {
            return Ok(EXIT_OK);
        }
        steps += 1;
        if steps.is_multiple_of(128) && !ccs_os::process_exists(args.supervisor) {
            // Orphaned: the supervisor is gone, so no one will stop or reap us.
            return Ok(EXIT_OK);
        }
        if let Err(failure) = worker.step(&agent) {
            let recorded = worker.record(&failure);
            note_stderr(&format!(
                "ccs torture: {name} (life {}): {}: {}",
                args.life,
                failure.kind.describe(),
                failure.message
            ));
            if let Err(e) = recorded {
                note_stderr(&format!(
                    "ccs torture: {name}: cannot record it: {}",
                    e.message
                ));
            }
            return Ok(EXIT_FAILURE);
        }
    }
}

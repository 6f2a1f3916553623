//! What went wrong, or risked going wrong, in an operation log: the analysis behind
//! `ccs diagnose`.
//!
//! [`diagnose`] replays the records in time order (by `(t_ns, agent, seq)`, whatever order
//! they came in) and reports:
//!
//! - [`FindingKind::SingleWriterBreach`]: two agents holding one key at once;
//! - [`FindingKind::NonMonotonicVersion`]: a key's writes not in increasing version order, or an
//!   agent reading a version older than one it had already read or written;
//! - [`FindingKind::StaleUse`]: an agent writing (anything) after another agent changed a key
//!   it had read, without reading that key again: the divergence the product exists to expose;
//! - [`FindingKind::BlindOverwrite`]: an unconditional write over versions its writer never saw;
//! - [`FindingKind::Reclaimed`] and [`FindingKind::Fenced`]: a hold taken away from its holder,
//!   and the holder's later operations refused.
//!
//! Conflicts and `Held` refusals are the protocol working, not findings: they are counted.
//!
//! Records can be missing: a per-agent ring overwritten before it was read leaves a `Lost`
//! record and a gap in that agent's `seq` numbers. A finding that rests on the *absence* of a
//! record (a hold still held because no release was seen; a stale view because no re-read was
//! seen) is reported only if no record of the agents involved can be missing from the time in
//! between; otherwise it becomes a note ("possible ..."). Missing records are placed by the gaps
//! in `seq`: the records between seq `a` and seq `b` were made between the times of `a` and `b`.
//! If an agent's `Lost` records count more than its gaps account for, its missing records
//! could be anywhere.
//!
//! Assumed of the log: each agent's `seq` numbers its records 0, 1, 2, ... in the order it
//! made them; a record that takes a hold (`acquire`) is stamped after taking it and one that
//! ends a hold (`commit`, `release`) before giving it up, so that holds of one key do not
//! overlap in time unless they overlapped in fact.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::{LogOp, LogOutcome, LogRecord, WriteMode};
use crate::Version;

/// What a [`Finding`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FindingKind {
    /// Two agents held one key at once: an agent's `acquire`, `commit`, `put` or `delete` of a
    /// key succeeded while another agent's `acquire` of it was neither committed, released,
    /// reclaimed nor ended by its detach. The protocol must make this impossible.
    SingleWriterBreach,
    /// A key's successful writes, in time order, did not have strictly increasing versions; or
    /// an agent's successful `get` returned a version lower than one it had already read or
    /// written for that key. The protocol must make this impossible.
    NonMonotonicVersion,
    /// An agent read a key, another agent then wrote a newer version of it, and the first agent
    /// went on to write (any key) without reading the key again: its write may rest on the old
    /// version.
    StaleUse,
    /// A blind (`put_blind`) write or delete replaced versions its writer never saw
    /// (`held < version - 1`).
    BlindOverwrite,
    /// A hold was reclaimed from its holder (it died or outlived its lease).
    Reclaimed,
    /// An operation was refused because the agent's hold had been reclaimed.
    Fenced,
}

impl FindingKind {
    /// Every kind, in declaration order.
    pub const ALL: &'static [FindingKind] = &[
        FindingKind::SingleWriterBreach,
        FindingKind::NonMonotonicVersion,
        FindingKind::StaleUse,
        FindingKind::BlindOverwrite,
        FindingKind::Reclaimed,
        FindingKind::Fenced,
    ];

    /// The snake-case name used in JSON and on screen.
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::SingleWriterBreach => "single_writer_breach",
            FindingKind::NonMonotonicVersion => "non_monotonic_version",
            FindingKind::StaleUse => "stale_use",
            FindingKind::BlindOverwrite => "blind_overwrite",
            FindingKind::Reclaimed => "reclaimed",
            FindingKind::Fenced => "fenced",
        }
    }

    /// Parse a name written by [`Self::name`].
    pub fn from_name(name: &str) -> Option<FindingKind> {
        FindingKind::ALL.iter().copied().find(|k| k.name() == name)
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One problem found in a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What kind of problem.
    pub kind: FindingKind,
    /// What happened, for people: names the agents, keys and versions involved.
    pub message: String,
    /// The records that show it, in time order; the last one is the offending operation.
    pub records: Vec<LogRecord>,
}

/// The result of [`diagnose`]: the findings, notes on what could not be seen, and counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnosis {
    /// The problems found, in time order of their offending record.
    pub findings: Vec<Finding>,
    /// What the analysis could not see or decide: lost records, possible problems hidden by
    /// them, duplicate records ignored.
    pub notes: Vec<String>,
    /// Records analysed (duplicates removed; `Lost` markers included).
    pub records: usize,
    /// Distinct agents that made a record.
    pub agents: usize,
    /// Distinct keys in the records.
    pub keys: usize,
    /// Successful writes (`put`, `delete`, `commit`).
    pub writes: usize,
    /// Operations refused with `Conflict` (a stale view): the protocol working.
    pub conflicts: usize,
    /// Operations refused with `Held` (another agent held the line): the protocol working.
    pub held: usize,
    /// Operations that failed with `Error`.
    pub errors: usize,
    /// Records lost before they were read (the sum of the `Lost` records' counts).
    pub lost: u64,
    /// The earliest record's time (0 if there is none): the origin of relative times.
    pub first_t_ns: u64,
    /// The latest record's time (0 if there is none).
    pub last_t_ns: u64,
}

impl Diagnosis {
    /// Whether nothing was found (notes do not count).
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// How many findings are of `kind`.
    pub fn count(&self, kind: FindingKind) -> usize {
        self.findings.iter().filter(|f| f.kind == kind).count()
    }
}

/// Analyse a log, in any order. See the module documentation for the rules.
pub fn diagnose(records: &[LogRecord]) -> Diagnosis {
    let mut unique = records.to_vec();
    unique.sort_by(|a, b| (&a.agent, a.seq, a.t_ns).cmp(&(&b.agent, b.seq, b.t_ns)));
    let before = unique.len();
    unique.dedup();
    let duplicates = before - unique.len();
    // By time, but each agent's records in seq order and each key's writes in revision order
    // where records carry one (etcd: hosts' clocks differ).
    let sorted = ccs_types::merge_order(unique);

    let first_t_ns = sorted.first().map_or(0, |r| r.t_ns);
    let coverage = Coverage::of(&sorted);
    let mut replay = Replay::new(first_t_ns, &coverage);
    for record in &sorted {
        replay.step(record);
    }
    let Replay {
        mut findings,
        mut notes,
        ..
    } = replay;
    findings.extend(agent_reads(&sorted, first_t_ns));
    findings.sort_by_key(|f| {
        let last = f.records.last().map(|r| (r.t_ns, r.agent.clone(), r.seq));
        (last, f.kind)
    });
    notes.splice(0..0, coverage.notes());
    if duplicates > 0 {
        notes.push(format!(
            "{duplicates} duplicate {} ignored",
            plural(duplicates as u64, "record", "records")
        ));
    }

    let agents: BTreeSet<&str> = sorted.iter().map(|r| r.agent.as_str()).collect();
    let keys: BTreeSet<&str> = sorted.iter().filter_map(|r| r.key.as_deref()).collect();
    let outcomes = |o: LogOutcome| {
        sorted
            .iter()
            .filter(|r| r.op != LogOp::Lost && r.outcome == o)
            .count()
    };
    Diagnosis {
        records: sorted.len(),
        agents: agents.len(),
        keys: keys.len(),
        writes: sorted.iter().filter(|r| r.is_successful_write()).count(),
        conflicts: outcomes(LogOutcome::Conflict),
        held: outcomes(LogOutcome::Held),
        errors: outcomes(LogOutcome::Error),
        lost: sorted
            .iter()
            .filter(|r| r.op == LogOp::Lost)
            .fold(0, |n, r| n.saturating_add(r.count)),
        first_t_ns,
        last_t_ns: sorted.last().map_or(0, |r| r.t_ns),
        findings,
        notes,
    }
}

/// A run of missing records of one agent.
struct Gap {
    /// How many.
    missing: u64,
    /// They were made after this time (`None`: they are the agent's first records).
    after: Option<u64>,
    /// They were made before this time.
    before: u64,
}

/// Where records are missing, per agent, from the gaps in their `seq` numbers.
struct Coverage<'a> {
    /// Per agent: its runs of missing records.
    gaps: BTreeMap<&'a str, Vec<Gap>>,
    /// Per agent: the sum of its `Lost` records' counts.
    lost: BTreeMap<&'a str, u64>,
}

impl<'a> Coverage<'a> {
    fn of(records: &'a [LogRecord]) -> Self {
        let mut seen: BTreeMap<&str, Vec<(u64, u64)>> = BTreeMap::new();
        let mut lost: BTreeMap<&str, u64> = BTreeMap::new();
        for r in records {
            if r.op == LogOp::Lost {
                let n = lost.entry(&r.agent).or_default();
                *n = n.saturating_add(r.count);
            } else {
                seen.entry(&r.agent).or_default().push((r.seq, r.t_ns));
            }
        }
        let mut gaps: BTreeMap<&str, Vec<Gap>> = BTreeMap::new();
        for (agent, mut seqs) in seen {
            seqs.sort_unstable();
            seqs.dedup_by_key(|(seq, _)| *seq);
            let runs = gaps.entry(agent).or_default();
            if let Some(&(seq, t)) = seqs.first()
                && seq > 0
            {
                runs.push(Gap {
                    missing: seq,
                    after: None,
                    before: t,
                });
            }
            for pair in seqs.windows(2) {
                let ((a, ta), (b, tb)) = (pair[0], pair[1]);
                if b - a > 1 {
                    runs.push(Gap {
                        missing: b - a - 1,
                        after: Some(ta),
                        before: tb,
                    });
                }
            }
        }
        Coverage { gaps, lost }
    }

    fn missing(&self, agent: &str) -> u64 {
        self.gaps.get(agent).map_or(0, |runs| {
            runs.iter().fold(0, |n, g| n.saturating_add(g.missing))
        })
    }

    /// Whether records of `agent` made strictly between `from` and `to` can be missing.
    fn may_have_missed(&self, agent: &str, from: u64, to: u64) -> bool {
        if self.lost.get(agent).copied().unwrap_or(0) > self.missing(agent) {
            return true; // losses the gaps do not place: they could be anywhere
        }
        self.gaps.get(agent).is_some_and(|runs| {
            runs.iter()
                .any(|g| g.after.is_none_or(|a| a < to) && g.before > from)
        })
    }

    fn notes(&self) -> Vec<String> {
        let agents: BTreeSet<&str> = self.gaps.keys().chain(self.lost.keys()).copied().collect();
        let mut notes = Vec::new();
        for agent in agents {
            let lost = self.lost.get(agent).copied().unwrap_or(0);
            let missing = self.missing(agent);
            if lost > 0 {
                notes.push(format!(
                    "{lost} {} of agent {agent} {} overwritten before {} read; breaches among \
                     them cannot be seen",
                    plural(lost, "record", "records"),
                    plural(lost, "was", "were"),
                    plural(lost, "it was", "they were"),
                ));
            }
            if missing > lost {
                let more = missing - lost;
                notes.push(format!(
                    "{more} {}records of agent {agent} {} missing from the trace (gaps in its \
                     seq numbers); breaches among them cannot be seen",
                    if lost > 0 { "more " } else { "" },
                    plural(more, "is", "are"),
                ));
            }
        }
        notes
    }
}

/// One agent's view of one key, for [`FindingKind::StaleUse`].
struct View<'a> {
    /// Its latest read of the key.
    read: &'a LogRecord,
    /// The newest version it has read or written.
    version: Version,
    /// The first write by another agent of a version newer than `version`, not yet re-read.
    pending: Option<&'a LogRecord>,
}

/// The time-ordered pass.
struct Replay<'a, 'c> {
    t0: u64,
    coverage: &'c Coverage<'a>,
    findings: Vec<Finding>,
    notes: Vec<String>,
    /// Per key: the `acquire` records of its current holders.
    holders: BTreeMap<&'a str, Vec<&'a LogRecord>>,
    /// (key, holder, holder's acquire seq, intruder) already reported.
    breaches: BTreeSet<(&'a str, &'a str, u64, &'a str)>,
    /// Per key: the successful write of its highest version so far.
    last_write: BTreeMap<&'a str, &'a LogRecord>,
    /// Per agent, per key it has read: its view.
    views: BTreeMap<&'a str, BTreeMap<&'a str, View<'a>>>,
    /// Per (key, reclaimed holder): the latest reclaim, to explain a later `Fenced`.
    reclaims: BTreeMap<(&'a str, &'a str), &'a LogRecord>,
}

impl<'a, 'c> Replay<'a, 'c> {
    fn new(t0: u64, coverage: &'c Coverage<'a>) -> Self {
        Replay {
            t0,
            coverage,
            findings: Vec::new(),
            notes: Vec::new(),
            holders: BTreeMap::new(),
            breaches: BTreeSet::new(),
            last_write: BTreeMap::new(),
            views: BTreeMap::new(),
            reclaims: BTreeMap::new(),
        }
    }

    fn at(&self, r: &LogRecord) -> String {
        relative(r.t_ns, self.t0)
    }

    fn find(&mut self, kind: FindingKind, message: String, records: &[&LogRecord]) {
        self.findings.push(Finding {
            kind,
            message,
            records: records.iter().map(|&r| r.clone()).collect(),
        });
    }

    fn step(&mut self, r: &'a LogRecord) {
        if r.op == LogOp::Lost {
            return;
        }
        self.holds(r);
        if r.is_successful_write() {
            self.versions(r);
        }
        self.staleness(r);
    }

    /// Holders per key: breaches, reclaims, fencing.
    fn holds(&mut self, r: &'a LogRecord) {
        let ok = r.outcome == LogOutcome::Ok;
        match (r.op, r.key.as_deref()) {
            (LogOp::Detach, _) if ok => {
                for holds in self.holders.values_mut() {
                    holds.retain(|h| h.agent != r.agent);
                }
            }
            (LogOp::Reclaim, Some(key)) => self.reclaim(r, key),
            (LogOp::Acquire | LogOp::Commit | LogOp::Put | LogOp::Delete, Some(key)) if ok => {
                self.intrusion(r, key);
                let holds = self.holders.entry(key).or_default();
                match r.op {
                    LogOp::Acquire if !holds.iter().any(|h| h.agent == r.agent) => holds.push(r),
                    LogOp::Commit => holds.retain(|h| h.agent != r.agent),
                    _ => {}
                }
            }
            (LogOp::Release, Some(key)) if ok => {
                if let Some(holds) = self.holders.get_mut(key) {
                    holds.retain(|h| h.agent != r.agent);
                }
            }
            _ => {}
        }
        if r.outcome == LogOutcome::Fenced {
            self.fenced(r);
        }
    }

    /// `r` (an acquire, commit, put or delete that succeeded) against the key's other holders.
    fn intrusion(&mut self, r: &'a LogRecord, key: &'a str) {
        let others: Vec<&'a LogRecord> = self
            .holders
            .get(key)
            .map(|holds| {
                holds
                    .iter()
                    .copied()
                    .filter(|h| h.agent != r.agent)
                    .collect()
            })
            .unwrap_or_default();
        for hold in others {
            if !self
                .breaches
                .insert((key, hold.agent.as_str(), hold.seq, r.agent.as_str()))
            {
                continue;
            }
            let what = format!(
                "{} {} {key} v{} at {} while {} held {key} (acquired v{} at {})",
                r.agent,
                past(r.op),
                r.version,
                self.at(r),
                hold.agent,
                hold.version,
                self.at(hold),
            );
            let hidden = [hold.agent.as_str(), r.agent.as_str()]
                .into_iter()
                .filter(|a| self.coverage.may_have_missed(a, hold.t_ns, r.t_ns))
                .collect::<Vec<_>>();
            if hidden.is_empty() {
                self.find(
                    FindingKind::SingleWriterBreach,
                    format!(
                        "{what}: no commit, release, reclaim or detach of {}'s hold came between",
                        hold.agent
                    ),
                    &[hold, r],
                );
            } else {
                self.notes.push(format!(
                    "possible single-writer breach, not reported: {what}; records of {} are \
                     missing from that time and may have ended the hold",
                    hidden.join(" and ")
                ));
            }
        }
    }

    fn reclaim(&mut self, r: &'a LogRecord, key: &'a str) {
        let holds = self.holders.entry(key).or_default();
        let (taken, kept): (Vec<&LogRecord>, Vec<&LogRecord>) = holds
            .iter()
            .partition(|h| r.other.as_deref().is_none_or(|o| o == h.agent));
        if r.outcome == LogOutcome::Ok {
            *holds = kept;
        }
        let holder = r
            .other
            .clone()
            .or_else(|| taken.first().map(|h| h.agent.clone()))
            .unwrap_or_else(|| "its holder".to_owned());
        let since = taken
            .first()
            .map(|h| format!(" (held since {}, acquired v{})", self.at(h), h.version))
            .unwrap_or_default();
        let message = format!(
            "{} reclaimed {key} from {holder}{since} at {}: the holder died or outlived its lease",
            r.agent,
            self.at(r)
        );
        if let Some(other) = r.other.as_deref() {
            self.reclaims.insert((key, other), r);
        }
        let mut records = taken;
        records.push(r);
        self.find(FindingKind::Reclaimed, message, &records);
    }

    fn fenced(&mut self, r: &'a LogRecord) {
        let key = r.key.as_deref();
        if let Some(key) = key
            && let Some(holds) = self.holders.get_mut(key)
        {
            holds.retain(|h| h.agent != r.agent);
        }
        let reclaim = key.and_then(|k| self.reclaims.get(&(k, r.agent.as_str())).copied());
        let by = reclaim
            .map(|c| format!(" by {} at {}", c.agent, self.at(c)))
            .unwrap_or_default();
        let message = format!(
            "{}'s {} of {} at {} was refused (fenced): its hold had been reclaimed{by}",
            r.agent,
            r.op,
            key.unwrap_or("(no key)"),
            self.at(r)
        );
        let mut records: Vec<&LogRecord> = reclaim.into_iter().collect();
        records.push(r);
        self.find(FindingKind::Fenced, message, &records);
    }

    /// A successful write against the key's earlier writes: version order, blind overwrites.
    fn versions(&mut self, r: &'a LogRecord) {
        let Some(key) = r.key.as_deref() else {
            return;
        };
        let previous = self.last_write.get(key).copied();
        if let Some(p) = previous
            && r.version <= p.version
        {
            self.find(
                FindingKind::NonMonotonicVersion,
                format!(
                    "{} {} {key} v{} at {}, after {} had already {} v{} at {}: versions of a key \
                     must increase",
                    r.agent,
                    past(r.op),
                    r.version,
                    self.at(r),
                    p.agent,
                    past(p.op),
                    p.version,
                    self.at(p)
                ),
                &[p, r],
            );
        }
        if matches!(r.op, LogOp::Put | LogOp::Delete)
            && r.mode == Some(WriteMode::Blind)
            && r.held < r.version.saturating_sub(1)
        {
            let overwritten = previous.filter(|p| p.version.checked_add(1) == Some(r.version));
            let last = r.version - 1;
            let single = r.held + 1 == last;
            let unseen = if single {
                format!("v{last}")
            } else {
                format!("v{}..v{last}", r.held + 1)
            };
            let by = match overwritten {
                Some(p) if single => format!(", written by {},", p.agent),
                Some(p) => format!(" (v{last} by {})", p.agent),
                None => String::new(),
            };
            let seen = if r.held == 0 {
                "had never read it".to_owned()
            } else {
                format!("had last seen v{}", r.held)
            };
            self.find(
                FindingKind::BlindOverwrite,
                format!(
                    "{} {} {key} blind at {}, creating v{}: it {seen}, so {unseen}{by} {} \
                     overwritten unseen",
                    r.agent,
                    past(r.op),
                    self.at(r),
                    r.version,
                    if single { "was" } else { "were" },
                ),
                &overwritten.into_iter().chain([r]).collect::<Vec<_>>(),
            );
        }
        if previous.is_none_or(|p| r.version > p.version) {
            self.last_write.insert(key, r);
        }
    }

    /// Views per (agent, key): stale uses.
    fn staleness(&mut self, r: &'a LogRecord) {
        let Some(key) = r.key.as_deref() else {
            return;
        };
        match (r.op, r.outcome) {
            (LogOp::Get, LogOutcome::Hit | LogOutcome::Miss) => {
                // A newer version by someone else already exists: the read is behind already.
                let newer = self
                    .last_write
                    .get(key)
                    .copied()
                    .filter(|w| w.agent != r.agent && w.version > r.version);
                let views = self.views.entry(&r.agent).or_default();
                let view = views.entry(key).or_insert(View {
                    read: r,
                    version: r.version,
                    pending: None,
                });
                if view.pending.is_some_and(|w| r.version >= w.version) {
                    view.pending = None;
                }
                view.read = r;
                view.version = r.version;
                if view.pending.is_none() {
                    view.pending = newer;
                }
            }
            (LogOp::Get, LogOutcome::NotFound) => {
                if let Some(view) = self
                    .views
                    .get_mut(r.agent.as_str())
                    .and_then(|v| v.get_mut(key))
                    && view.pending.is_some_and(|w| r.version >= w.version)
                {
                    view.pending = None;
                    view.version = view.version.max(r.version);
                }
            }
            _ if r.is_successful_write() => self.stale_write(r, key),
            _ => {}
        }
    }

    fn stale_write(&mut self, r: &'a LogRecord, key: &'a str) {
        let mut stale: Vec<(&'a str, &'a LogRecord, &'a LogRecord)> = Vec::new();
        if let Some(views) = self.views.get_mut(r.agent.as_str()) {
            for (&k, view) in views.iter_mut() {
                let Some(w) = view.pending else { continue };
                view.pending = None;
                // A conditional put or delete of the key itself that succeeded against the new
                // version shows the writer's view had caught up (its re-read may be lost).
                let caught_up = k == key
                    && matches!(r.op, LogOp::Put | LogOp::Delete)
                    && r.mode != Some(WriteMode::Blind)
                    && r.held >= w.version;
                if !caught_up {
                    stale.push((k, view.read, w));
                }
            }
            if let Some(view) = views.get_mut(key) {
                view.version = view.version.max(r.version);
            }
        }
        for (k, read, w) in stale {
            let what = format!(
                "{} {} {key} v{} at {} from a stale view of {k}: it read {k} v{} at {}, then {} \
                 {} {k} v{} at {}",
                r.agent,
                past(r.op),
                r.version,
                self.at(r),
                read.version,
                self.at(read),
                w.agent,
                past(w.op),
                w.version,
                self.at(w),
            );
            if self.coverage.may_have_missed(&r.agent, w.t_ns, r.t_ns) {
                self.notes.push(format!(
                    "possible stale use, not reported: {what}; records of {} are missing from \
                     between and may include a re-read of {k}",
                    r.agent
                ));
            } else {
                self.find(
                    FindingKind::StaleUse,
                    format!("{what}, and {} had not read {k} again", r.agent),
                    &[read, w, r],
                );
            }
        }
        // This write makes every other agent's older view of the key stale.
        for (agent, views) in self.views.iter_mut() {
            if *agent == r.agent {
                continue;
            }
            if let Some(view) = views.get_mut(key)
                && view.pending.is_none()
                && view.version < r.version
            {
                view.pending = Some(r);
            }
        }
    }
}

/// Per agent, in its `seq` order: a successful get must not return a version older than one
/// it already read or wrote for that key.
fn agent_reads(sorted: &[LogRecord], t0: u64) -> Vec<Finding> {
    let mut by_agent: BTreeMap<&str, Vec<&LogRecord>> = BTreeMap::new();
    for r in sorted.iter().filter(|r| r.op != LogOp::Lost) {
        by_agent.entry(&r.agent).or_default().push(r);
    }
    let mut findings = Vec::new();
    for (agent, mut records) in by_agent {
        records.sort_by_key(|r| r.seq);
        let mut newest: BTreeMap<&str, &LogRecord> = BTreeMap::new();
        for r in records {
            let Some(key) = r.key.as_deref() else {
                continue;
            };
            let read =
                r.op == LogOp::Get && matches!(r.outcome, LogOutcome::Hit | LogOutcome::Miss);
            if !read && !r.is_successful_write() {
                continue;
            }
            let known = newest.get(key).copied();
            if read
                && let Some(k) = known
                && r.version < k.version
            {
                findings.push(Finding {
                    kind: FindingKind::NonMonotonicVersion,
                    message: format!(
                        "{agent} read {key} v{} at {} after it had {} v{} at {}: an agent's \
                         reads must not go back in version",
                        r.version,
                        relative(r.t_ns, t0),
                        past(k.op),
                        k.version,
                        relative(k.t_ns, t0),
                    ),
                    records: vec![k.clone(), r.clone()],
                });
            }
            if known.is_none_or(|k| r.version > k.version) {
                newest.insert(key, r);
            }
        }
    }
    findings
}

/// The verb for an operation in messages.
fn past(op: LogOp) -> &'static str {
    match op {
        LogOp::Attach => "attached",
        LogOp::Detach => "detached",
        LogOp::Get => "read",
        LogOp::Put => "wrote",
        LogOp::Delete => "deleted",
        LogOp::Acquire => "acquired",
        LogOp::Commit => "committed",
        LogOp::Release => "released",
        LogOp::Renew => "renewed",
        LogOp::Reclaim => "reclaimed",
        LogOp::Lost => "lost",
    }
}

/// `t+1.000412`: seconds since `t0`, to the microsecond.
fn relative(t_ns: u64, t0: u64) -> String {
    let (sign, d) = if t_ns >= t0 {
        ('+', t_ns - t0)
    } else {
        ('-', t0 - t_ns)
    };
    format!(
        "t{sign}{}.{:06}",
        d / 1_000_000_000,
        d % 1_000_000_000 / 1_000
    )
}

fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::*;

    /// Builds a trace, numbering each agent's records 0, 1, 2, ... in the order given.
    #[derive(Default)]
    struct Trace {
        records: Vec<LogRecord>,
        seqs: BTreeMap<String, u64>,
    }

    impl Trace {
        #[allow(clippy::too_many_arguments)]
        fn rec(
            &mut self,
            t: u64,
            agent: &str,
            op: LogOp,
            outcome: LogOutcome,
            key: Option<&str>,
            version: Version,
            held: Version,
        ) -> &mut LogRecord {
            let seq = self.seqs.entry(agent.to_owned()).or_default();
            let mode =
                matches!(op, LogOp::Put | LogOp::Delete | LogOp::Commit).then_some(WriteMode::View);
            self.records.push(LogRecord {
                seq: *seq,
                t_ns: 1_000_000 + t * 1_000,
                agent: agent.to_owned(),
                op,
                outcome,
                key: key.map(str::to_owned),
                version,
                held,
                count: 1,
                bytes: 10,
                other: None,
                mode,
                revision: None,
            });
            *seq += 1;
            self.records.last_mut().unwrap()
        }
        fn get(&mut self, t: u64, agent: &str, key: &str, version: Version, held: Version) {
            let outcome = if version == held {
                LogOutcome::Hit
            } else {
                LogOutcome::Miss
            };
            self.rec(t, agent, LogOp::Get, outcome, Some(key), version, held);
        }
        fn put(&mut self, t: u64, agent: &str, key: &str, version: Version, held: Version) {
            self.rec(
                t,
                agent,
                LogOp::Put,
                LogOutcome::Ok,
                Some(key),
                version,
                held,
            );
        }
        fn blind(&mut self, t: u64, agent: &str, key: &str, version: Version, held: Version) {
            self.rec(
                t,
                agent,
                LogOp::Put,
                LogOutcome::Ok,
                Some(key),
                version,
                held,
            )
            .mode = Some(WriteMode::Blind);
        }
        fn op(
            &mut self,
            t: u64,
            agent: &str,
            op: LogOp,
            key: &str,
            version: Version,
        ) -> &mut LogRecord {
            self.rec(t, agent, op, LogOutcome::Ok, Some(key), version, 0)
        }
        fn reclaim(&mut self, t: u64, agent: &str, key: &str, holder: &str) {
            self.rec(t, agent, LogOp::Reclaim, LogOutcome::Ok, Some(key), 0, 0)
                .other = Some(holder.to_owned());
        }
        fn lost(&mut self, t: u64, agent: &str, count: u64) {
            // A lost record carries the first number it stands for; those numbers are skipped.
            self.records.push(LogRecord {
                seq: *self.seqs.entry(agent.to_owned()).or_default(),
                t_ns: 1_000_000 + t * 1_000,
                agent: agent.to_owned(),
                op: LogOp::Lost,
                outcome: LogOutcome::Ok,
                key: None,
                version: 0,
                held: 0,
                count,
                bytes: 0,
                other: None,
                mode: None,
                revision: None,
            });
            *self.seqs.entry(agent.to_owned()).or_default() += count;
        }
        /// The record of `agent` with number `seq`.
        fn at(&self, agent: &str, seq: u64) -> LogRecord {
            self.records
                .iter()
                .find(|r| r.agent == agent && r.seq == seq && r.op != LogOp::Lost)
                .cloned()
                .unwrap()
        }
        fn diagnose(&self) -> Diagnosis {
            diagnose(&self.records)
        }
    }

    fn kinds(d: &Diagnosis) -> Vec<FindingKind> {
        d.findings.iter().map(|f| f.kind).collect()
    }

    // ---- SingleWriterBreach ----

    #[test]
    fn acquire_while_another_holds_is_a_breach() {
        let mut t = Trace::default();
        t.op(1, "a", LogOp::Acquire, "plan", 1);
        t.op(2, "b", LogOp::Acquire, "plan", 1);
        t.op(3, "b", LogOp::Commit, "plan", 2);
        t.op(4, "a", LogOp::Commit, "plan", 3);
        let d = t.diagnose();
        assert_eq!(kinds(&d), [FindingKind::SingleWriterBreach]);
        // One report per (hold, intruder): b's commit under a's hold is the same breach.
        assert_eq!(d.findings[0].records, [t.at("a", 0), t.at("b", 0)]);
        assert!(
            d.findings[0].message.contains("b acquired plan"),
            "{}",
            d.findings[0].message
        );
        assert!(!d.is_clean());
    }

    #[test]
    fn put_during_a_hold_is_a_breach() {
        let mut t = Trace::default();
        t.op(1, "a", LogOp::Acquire, "plan", 1);
        t.put(2, "b", "plan", 2, 1);
        t.op(3, "a", LogOp::Release, "plan", 0);
        let d = t.diagnose();
        assert_eq!(kinds(&d), [FindingKind::SingleWriterBreach]);
        assert_eq!(d.findings[0].records, [t.at("a", 0), t.at("b", 0)]);
    }

    #[test]
    fn sequential_holds_are_clean() {
        let mut t = Trace::default();
        t.op(1, "a", LogOp::Acquire, "plan", 0);
        t.op(2, "a", LogOp::Commit, "plan", 1);
        t.op(3, "b", LogOp::Acquire, "plan", 1);
        t.op(4, "b", LogOp::Release, "plan", 0);
        t.op(5, "a", LogOp::Acquire, "plan", 1);
        t.op(6, "a", LogOp::Detach, "plan", 0).key = None;
        t.put(7, "b", "plan", 2, 1);
        // A refused acquire is the protocol working, not a breach.
        t.op(8, "a", LogOp::Acquire, "plan", 2);
        t.rec(9, "b", LogOp::Acquire, LogOutcome::Held, Some("plan"), 2, 0)
            .other = Some("a".into());
        let d = t.diagnose();
        assert!(d.is_clean(), "{:?}", d.findings);
        assert_eq!(d.held, 1);
    }

    #[test]
    fn detach_with_no_key_ends_holds() {
        let mut t = Trace::default();
        t.op(1, "a", LogOp::Acquire, "plan", 0);
        t.rec(2, "a", LogOp::Detach, LogOutcome::Ok, None, 0, 0);
        t.op(3, "b", LogOp::Acquire, "plan", 0);
        assert!(t.diagnose().is_clean());
    }

    #[test]
    fn reclaim_ends_the_hold_and_is_reported() {
        let mut t = Trace::default();
        t.op(1, "a", LogOp::Acquire, "plan", 1);
        t.reclaim(2, "b", "plan", "a");
        t.op(3, "b", LogOp::Acquire, "plan", 1);
        t.op(4, "b", LogOp::Commit, "plan", 2);
        t.rec(
            5,
            "a",
            LogOp::Commit,
            LogOutcome::Fenced,
            Some("plan"),
            2,
            1,
        );
        let d = t.diagnose();
        assert_eq!(kinds(&d), [FindingKind::Reclaimed, FindingKind::Fenced]);
        assert_eq!(d.findings[0].records, [t.at("a", 0), t.at("b", 0)]);
        assert!(d.findings[0].message.contains("b reclaimed plan from a"));
        assert_eq!(d.findings[1].records, [t.at("b", 0), t.at("a", 1)]);
        assert!(
            d.findings[1].message.contains("reclaimed by b"),
            "{}",
            d.findings[1].message
        );
    }

    #[test]
    fn a_hold_whose_end_may_be_lost_is_only_a_note() {
        let mut t = Trace::default();
        t.op(1, "a", LogOp::Acquire, "plan", 1);
        t.lost(2, "a", 1); // a's release, perhaps
        t.op(3, "a", LogOp::Attach, "plan", 0).key = None;
        t.op(4, "b", LogOp::Acquire, "plan", 2);
        let d = t.diagnose();
        assert!(d.is_clean(), "{:?}", d.findings);
        assert_eq!(d.lost, 1);
        assert!(
            d.notes[0].starts_with("1 record of agent a was overwritten"),
            "{:?}",
            d.notes
        );
        assert!(
            d.notes
                .iter()
                .any(|n| n.starts_with("possible single-writer breach"))
        );
    }

    #[test]
    fn records_lost_before_the_hold_do_not_hide_the_breach() {
        let mut t = Trace::default();
        t.lost(0, "a", 5);
        t.op(1, "a", LogOp::Acquire, "plan", 1);
        t.op(4, "b", LogOp::Acquire, "plan", 1);
        let d = t.diagnose();
        assert_eq!(kinds(&d), [FindingKind::SingleWriterBreach]);
        assert_eq!(d.notes.len(), 1, "{:?}", d.notes);
        assert!(d.notes[0].contains("5 records of agent a were overwritten before they were read"));
    }

    // ---- NonMonotonicVersion ----

    #[test]
    fn a_write_that_does_not_raise_the_version() {
        let mut t = Trace::default();
        t.put(1, "a", "plan", 3, 2);
        t.put(2, "b", "plan", 3, 2);
        let d = t.diagnose();
        // b also wrote over a's v3 never having seen it, but with a view write: only the order.
        assert_eq!(kinds(&d), [FindingKind::NonMonotonicVersion]);
        assert_eq!(d.findings[0].records, [t.at("a", 0), t.at("b", 0)]);
    }

    #[test]
    fn a_read_that_goes_back() {
        let mut t = Trace::default();
        t.get(1, "a", "plan", 4, 0);
        t.get(2, "a", "plan", 3, 4);
        let d = t.diagnose();
        assert_eq!(kinds(&d), [FindingKind::NonMonotonicVersion]);
        assert_eq!(d.findings[0].records, [t.at("a", 0), t.at("a", 1)]);
    }

    #[test]
    fn a_read_below_the_agents_own_write() {
        let mut t = Trace::default();
        t.put(1, "a", "plan", 2, 1);
        t.get(2, "a", "plan", 1, 2);
        let d = t.diagnose();
        assert_eq!(kinds(&d), [FindingKind::NonMonotonicVersion]);
        assert_eq!(d.findings[0].records, [t.at("a", 0), t.at("a", 1)]);
    }

    #[test]
    fn increasing_versions_with_gaps_are_clean() {
        let mut t = Trace::default();
        t.put(1, "a", "plan", 1, 0);
        t.get(2, "b", "plan", 1, 0);
        t.put(3, "b", "plan", 2, 1);
        t.get(4, "a", "plan", 2, 1);
        t.put(5, "a", "plan", 7, 2); // versions 3..6 lost from the log: fine
        t.get(6, "b", "plan", 7, 2);
        t.get(7, "b", "other", 1, 0); // another key's versions are its own
        let d = t.diagnose();
        assert!(d.is_clean(), "{:?}", d.findings);
        assert_eq!((d.records, d.agents, d.keys, d.writes), (7, 2, 2, 3));
    }

    // ---- StaleUse ----

    /// The landing page's story: the executor works from the spec it read, the planner
    /// changes the spec, the executor commits its code.
    fn stale_story(reread: Option<Version>) -> Trace {
        let mut t = Trace::default();
        t.put(1, "planner", "task/spec", 1, 0);
        t.get(2, "executor", "task/spec", 1, 0);
        t.put(3, "planner", "task/spec", 2, 1);
        if let Some(v) = reread {
            t.get(4, "executor", "task/spec", v, 1);
        }
        t.put(5, "executor", "code/main", 1, 0);
        t
    }

    #[test]
    fn writing_after_the_read_key_changed_is_stale_use() {
        let t = stale_story(None);
        let d = t.diagnose();
        assert_eq!(kinds(&d), [FindingKind::StaleUse]);
        assert_eq!(
            d.findings[0].records,
            [t.at("executor", 0), t.at("planner", 1), t.at("executor", 1)]
        );
        let m = &d.findings[0].message;
        assert!(m.contains("executor wrote code/main v1"), "{m}");
        assert!(
            m.contains("read task/spec v1") && m.contains("planner wrote task/spec v2"),
            "{m}"
        );
    }

    #[test]
    fn re_reading_before_writing_is_clean() {
        assert!(stale_story(Some(2)).diagnose().is_clean());
    }

    #[test]
    fn re_reading_an_old_version_is_still_stale() {
        // A read that did not return the new version does not cure the view (and goes with a
        // stale HIT the protocol must prevent; the read itself is not a finding here).
        let d = stale_story(Some(1)).diagnose();
        assert_eq!(kinds(&d), [FindingKind::StaleUse]);
    }

    #[test]
    fn stale_use_is_reported_once_per_invalidating_write() {
        let mut t = stale_story(None);
        t.put(6, "executor", "code/test", 1, 0);
        t.put(7, "planner", "task/spec", 3, 2);
        t.put(8, "executor", "code/main", 2, 1);
        let d = t.diagnose();
        assert_eq!(kinds(&d), [FindingKind::StaleUse, FindingKind::StaleUse]);
        assert_eq!(d.findings[1].records[1], t.at("planner", 2));
        assert_eq!(d.findings[1].records[2], t.at("executor", 3));
    }

    #[test]
    fn blind_write_of_the_changed_key_is_stale_use() {
        let mut t = stale_story(None);
        t.records.pop();
        t.seqs.insert("executor".into(), 1);
        t.blind(5, "executor", "task/spec", 3, 1);
        let d = t.diagnose();
        assert_eq!(
            kinds(&d),
            [FindingKind::StaleUse, FindingKind::BlindOverwrite]
        );
        assert_eq!(d.findings[0].records[2], t.at("executor", 1));
    }

    #[test]
    fn conditional_write_of_the_changed_key_at_the_new_version_is_clean() {
        let mut t = stale_story(None);
        t.records.pop();
        t.seqs.insert("executor".into(), 1);
        t.put(5, "executor", "task/spec", 3, 2); // its view was v2: the re-read was not logged
        assert!(t.diagnose().is_clean());
    }

    #[test]
    fn an_agents_own_writes_do_not_make_it_stale() {
        let mut t = Trace::default();
        t.get(1, "a", "plan", 1, 0);
        t.put(2, "a", "plan", 2, 1);
        t.put(3, "a", "notes", 1, 0);
        t.get(4, "b", "plan", 2, 0);
        t.put(5, "b", "review", 1, 0);
        assert!(t.diagnose().is_clean());
    }

    #[test]
    fn a_stale_use_whose_reread_may_be_lost_is_only_a_note() {
        let mut t = stale_story(None);
        t.records.pop();
        t.seqs.insert("executor".into(), 1);
        t.lost(4, "executor", 1); // seq 1: a re-read, perhaps
        t.put(5, "executor", "code/main", 1, 0);
        let d = t.diagnose();
        assert!(d.is_clean(), "{:?}", d.findings);
        assert!(
            d.notes.iter().any(|n| n.starts_with("possible stale use")),
            "{:?}",
            d.notes
        );
    }

    // ---- BlindOverwrite ----

    #[test]
    fn blind_write_over_an_unseen_version() {
        let mut t = Trace::default();
        t.put(1, "a", "plan", 1, 0);
        t.put(2, "b", "plan", 2, 0);
        t.blind(3, "c", "plan", 3, 1);
        let d = t.diagnose();
        assert_eq!(kinds(&d), [FindingKind::BlindOverwrite]);
        assert_eq!(d.findings[0].records, [t.at("b", 0), t.at("c", 0)]);
        let m = &d.findings[0].message;
        assert!(
            m.contains("had last seen v1, so v2, written by b, was overwritten unseen"),
            "{m}"
        );
    }

    #[test]
    fn blind_writes_that_saw_the_previous_version_or_create_are_clean() {
        let mut t = Trace::default();
        t.blind(1, "a", "plan", 1, 0); // a creation
        t.get(2, "b", "plan", 1, 0);
        t.blind(3, "b", "plan", 2, 1);
        let d = t.diagnose();
        assert!(d.is_clean(), "{:?}", d.findings);
    }

    // ---- Fenced, Conflict, ordering ----

    #[test]
    fn fenced_without_a_logged_reclaim() {
        let mut t = Trace::default();
        t.op(1, "a", LogOp::Acquire, "plan", 1);
        t.rec(2, "a", LogOp::Renew, LogOutcome::Fenced, Some("plan"), 1, 1);
        t.op(3, "b", LogOp::Acquire, "plan", 1); // a's hold is over: not a breach
        let d = t.diagnose();
        assert_eq!(kinds(&d), [FindingKind::Fenced]);
        assert_eq!(d.findings[0].records, [t.at("a", 1)]);
    }

    #[test]
    fn conflicts_are_counted_not_found() {
        let mut t = stale_story(None);
        t.records.pop();
        t.seqs.insert("executor".into(), 1);
        t.rec(
            5,
            "executor",
            LogOp::Put,
            LogOutcome::Conflict,
            Some("task/spec"),
            2,
            1,
        );
        let d = t.diagnose();
        assert!(d.is_clean(), "{:?}", d.findings);
        assert_eq!(d.conflicts, 1);
    }

    #[test]
    fn out_of_order_input_is_sorted() {
        let t = stale_story(None);
        let mut shuffled = t.records.clone();
        shuffled.reverse();
        shuffled.swap(0, 2);
        let d = diagnose(&shuffled);
        assert_eq!(kinds(&d), [FindingKind::StaleUse]);
        assert_eq!(d.findings, t.diagnose().findings);

        // Sorted, the sequential holds are clean; read backwards they would overlap.
        let mut t = Trace::default();
        t.op(1, "a", LogOp::Acquire, "plan", 0);
        t.op(2, "a", LogOp::Commit, "plan", 1);
        t.op(3, "b", LogOp::Acquire, "plan", 1);
        let mut backwards = t.records.clone();
        backwards.reverse();
        assert!(diagnose(&backwards).is_clean());
    }

    #[test]
    fn duplicates_are_ignored_with_a_note() {
        let mut t = Trace::default();
        t.put(1, "a", "plan", 1, 0);
        t.records.push(t.records[0].clone());
        let d = t.diagnose();
        assert!(d.is_clean());
        assert_eq!(d.records, 1);
        assert_eq!(d.notes, ["1 duplicate record ignored"]);
    }

    #[test]
    fn seq_gaps_without_lost_records_are_noted() {
        let mut t = Trace::default();
        t.put(1, "a", "plan", 1, 0);
        t.seqs.insert("a".into(), 4);
        t.put(2, "a", "plan", 2, 1);
        let d = t.diagnose();
        assert_eq!(
            d.notes,
            [
                "3 records of agent a are missing from the trace (gaps in its seq numbers); \
              breaches among them cannot be seen"
            ]
        );
    }

    #[test]
    fn empty_log_is_clean() {
        let d = diagnose(&[]);
        assert!(d.is_clean());
        assert_eq!((d.records, d.first_t_ns), (0, 0));
    }

    #[test]
    fn kind_names_round_trip() {
        for &k in FindingKind::ALL {
            assert_eq!(FindingKind::from_name(k.name()), Some(k));
        }
        assert_eq!(FindingKind::from_name("nope"), None);
        assert_eq!(relative(1_500_000_000, 1_000), "t+1.499999");
        assert_eq!(relative(0, 2_000), "t-0.000002");
    }
}

//! Writes (put, put_if, put_blind, delete, commit): optimistic concurrency on the artifact's
//! mod_revision, the condition checked against the version the transaction compares, the hold
//! key checked in the same transaction, then the invalidation wait (`invalidate`).
//!
//! Exactly one of N racing writers' transactions can succeed on a given mod_revision; the
//! others get the new state back in the same round trip and re-decide (a conditional write on
//! the old version is then refused with `Conflict`). This is the etcd `concurrency.STM`
//! pattern (etcd's clientv3/concurrency, "serializable snapshot" STM) specialised to one key.

use ccs_types::{Conflict, Held, NotFound};
use std::time::Instant;

use etcd_client::{Compare, CompareOp, GetOptions, KeyValue, PutOptions, Txn, TxnOp, TxnResponse};

use crate::error::{Error, Result};
use crate::invalidate::await_acks;
use crate::layout::{HoldValue, Meta, decode_version, encode_version};
use crate::net::{got, got_one, revision};
use crate::oplog::{LogOp, LogOutcome, Rec, mode_of, realtime_ns};
use crate::state::{Core, Entry};
use crate::types::{Condition, Version};

/// Give up on a write after this many lost races (only blind writers under a storm can get
/// here; a conditional writer that lost is refused with `Conflict` instead).
const MAX_ATTEMPTS: u32 = 1000;

/// The artifact as one read saw it.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    /// The meta and its mod_revision (`None`: never written).
    pub(crate) meta: Option<(Meta, i64)>,
    /// The hold, its mod_revision.
    pub(crate) hold: Option<(HoldValue, i64)>,
    /// The hold journal (the last hold taken and not ended by its holder), its mod_revision.
    pub(crate) journal: Option<(HoldValue, i64)>,
    /// This agent's view, if read.
    pub(crate) view: Option<Version>,
}

impl Snapshot {
    pub(crate) fn current(&self) -> Version {
        self.meta.as_ref().map_or(0, |(m, _)| m.version)
    }
    pub(crate) fn meta_rev(&self) -> i64 {
        self.meta.as_ref().map_or(0, |(_, rev)| *rev)
    }
    pub(crate) fn exists(&self) -> bool {
        self.meta.as_ref().is_some_and(|(m, _)| !m.deleted)
    }
    /// Whether the current version was written by the agent `name`.
    pub(crate) fn written_by(&self, name: &str) -> bool {
        self.meta.as_ref().is_some_and(|(m, _)| m.writer == name)
    }
}

/// A conditional write refused because the current version is this agent's own: an earlier
/// call whose answer was lost (`Unavailable`) wrote it, or wrote it and lost its wait for the
/// holders' acknowledgements. A caller that retries and reads the `Conflict` as "my write is
/// in" must find it as a returned write would leave it: no holder still HITs an older version
/// (docs/protocol-etcd.md §4). So wait for the acknowledgements of the registrations older
/// than that version (read now: the others are of it or later) before refusing. One range
/// read when every holder has acknowledged already.
async fn await_own_write(core: &Core, key: &str, snap: &Snapshot) -> Result<()> {
    let (copies, _) = core.net.range(&core.net.layout.copies(key)).await?;
    await_acks(core, key, snap.meta_rev(), &copies).await
}

fn parse_meta(kv: Option<KeyValue>) -> Result<Option<(Meta, i64)>> {
    kv.map(|kv| Ok((Meta::decode(kv.value())?, kv.mod_revision())))
        .transpose()
}

fn parse_hold(kv: Option<KeyValue>) -> Result<Option<(HoldValue, i64)>> {
    kv.map(|kv| Ok((HoldValue::decode(kv.value())?, kv.mod_revision())))
        .transpose()
}

/// The gets of a snapshot: meta, hold, journal (also a failed write's or acquire's `or_else`).
pub(crate) fn snapshot_ops(core: &Core, key: &str) -> Vec<TxnOp> {
    let l = &core.net.layout;
    vec![
        TxnOp::get(l.meta(key), None),
        TxnOp::get(l.hold(key), None),
        TxnOp::get(l.journal(key), None),
    ]
}

/// Read meta, hold, journal and (if `with_view`) this agent's view in one consistent round
/// trip; and the revision read at.
pub(crate) async fn read_snapshot(
    core: &Core,
    key: &str,
    with_view: bool,
) -> Result<(Snapshot, i64)> {
    let l = &core.net.layout;
    let mut ops = snapshot_ops(core, key);
    if with_view {
        ops.push(TxnOp::get(l.view(&core.name, key), None));
    }
    let resp = core.net.read_txn(Txn::new().and_then(ops)).await?;
    Ok((
        snapshot_from(&resp, with_view.then_some(3), None)?,
        revision(&resp),
    ))
}

fn snapshot_from(
    resp: &TxnResponse,
    view_at: Option<usize>,
    view: Option<Version>,
) -> Result<Snapshot> {
    let view = match view_at {
        Some(at) => Some(
            got_one(resp, at)
                .map(|kv| decode_version(kv.value()))
                .transpose()?
                .unwrap_or(0),
        ),
        None => view,
    };
    Ok(Snapshot {
        meta: parse_meta(got_one(resp, 0))?,
        hold: parse_hold(got_one(resp, 1))?,
        journal: parse_hold(got_one(resp, 2))?,
        view,
    })
}

/// The state a failed write or acquire transaction returned (its `or_else`: meta, hold,
/// journal).
pub(crate) fn snapshot_after_failure(resp: &TxnResponse) -> Result<Snapshot> {
    snapshot_from(resp, None, None)
}

/// What a hold found in a snapshot means for a writer or an acquirer.
pub(crate) enum HoldPlan {
    /// No hold: compare that none appears. A journal without a hold is a hold that expired
    /// with its lease, never ended by its holder: taking the artifact reclaims it (the journal
    /// is compared, so only one taker reclaims it).
    Free {
        journal_rev: i64,
        expired: Option<String>,
    },
    /// A dead holder's hold: delete it, comparing that it is still that hold and its holder
    /// still dead.
    Reclaim {
        hold_rev: i64,
        holder: String,
        session: i64,
        journal_rev: i64,
    },
}

impl HoldPlan {
    pub(crate) fn compares(&self, core: &Core, key: &str) -> Vec<Compare> {
        let l = &core.net.layout;
        match self {
            HoldPlan::Free { journal_rev, .. } => vec![
                Compare::create_revision(l.hold(key), CompareOp::Equal, 0),
                Compare::mod_revision(l.journal(key), CompareOp::Equal, *journal_rev),
            ],
            HoldPlan::Reclaim {
                hold_rev,
                holder,
                session,
                journal_rev,
            } => vec![
                Compare::mod_revision(l.hold(key), CompareOp::Equal, *hold_rev),
                Compare::create_revision(l.session(holder), CompareOp::NotEqual, *session),
                Compare::mod_revision(l.journal(key), CompareOp::Equal, *journal_rev),
            ],
        }
    }

    /// The holder whose hold this takes, if it takes one.
    pub(crate) fn reclaimed(&self) -> Option<&str> {
        match self {
            HoldPlan::Free { expired, .. } => expired.as_deref(),
            HoldPlan::Reclaim { holder, .. } => Some(holder),
        }
    }

    /// Whether there is a journal to remove (or overwrite).
    pub(crate) fn has_journal(&self) -> bool {
        match self {
            HoldPlan::Free { journal_rev, .. } | HoldPlan::Reclaim { journal_rev, .. } => {
                *journal_rev != 0
            }
        }
    }
}

/// Decide about the hold in `snap`: `Held` if this agent or a live agent holds it.
pub(crate) async fn plan_hold(core: &Core, key: &str, snap: &Snapshot) -> Result<HoldPlan> {
    let journal_rev = snap.journal.as_ref().map_or(0, |(_, rev)| *rev);
    let Some((hold, hold_rev)) = &snap.hold else {
        return Ok(HoldPlan::Free {
            journal_rev,
            expired: snap.journal.as_ref().map(|(j, _)| j.holder.clone()),
        });
    };
    let held = || {
        Error::Held(Held {
            key: key.to_owned(),
            by: hold.holder.clone(),
        })
    };
    if hold.holder == core.name {
        return Err(held());
    }
    let (session, _) = core.net.get(&core.net.layout.session(&hold.holder)).await?;
    let alive = session.is_some_and(|kv| kv.create_revision() == hold.session);
    if alive {
        return Err(held());
    }
    Ok(HoldPlan::Reclaim {
        hold_rev: *hold_rev,
        holder: hold.holder.clone(),
        session: hold.session,
        journal_rev,
    })
}

/// Record that this agent took `holder`'s hold on `key` (at `current`, revision `rev`).
pub(crate) fn log_reclaim(core: &Core, key: &str, holder: &str, current: Version, rev: i64) {
    core.log(Rec {
        other: Some(holder.to_owned()),
        ..Rec::new(LogOp::Reclaim, LogOutcome::Ok)
            .on(key)
            .versions(current, current)
            .at(rev)
    });
}

/// Check a write's condition against `snap`. `delete`: the artifact must exist.
pub(crate) fn check_condition(
    key: &str,
    snap: &Snapshot,
    cond: Condition,
    delete: bool,
) -> Result<()> {
    if delete && !snap.exists() {
        return Err(Error::NotFound(NotFound {
            key: key.to_owned(),
        }));
    }
    let current = snap.current();
    let (ok, yours) = match cond {
        Condition::View => {
            let view = snap.view.unwrap_or(0);
            (view == 0 || view == current, view)
        }
        Condition::Version(expected) => (expected == current, expected),
        Condition::Blind => (true, current),
    };
    if ok {
        Ok(())
    } else {
        Err(Error::Conflict(Conflict {
            key: key.to_owned(),
            current,
            yours,
        }))
    }
}

/// The operations that publish `version` of `key` (`payload: None` publishes a deletion),
/// record the writer's view, register (or drop) its own copy, and read the copy
/// registrations at the write's revision (the last operation).
pub(crate) fn publish_ops(
    core: &Core,
    key: &str,
    version: Version,
    payload: Option<&[u8]>,
    lease: Option<i64>,
) -> Vec<TxnOp> {
    let l = &core.net.layout;
    let meta = Meta {
        version,
        deleted: payload.is_none(),
        len: payload.map_or(0, |p| p.len() as u64),
        writer: core.name.clone(),
    };
    let mut ops = vec![
        TxnOp::put(l.meta(key), meta.encode(), None),
        TxnOp::put(l.data(key), payload.unwrap_or_default().to_vec(), None),
        TxnOp::put(l.view(&core.name, key), encode_version(version), None),
    ];
    match (payload, lease) {
        (Some(_), Some(lease)) => ops.push(TxnOp::put(
            l.copy(key, &core.name),
            encode_version(version),
            Some(PutOptions::new().with_lease(lease)),
        )),
        _ => ops.push(TxnOp::delete(l.copy(key, &core.name), None)),
    }
    ops
}

/// The session lease to register a copy under, after marking that a registration may exist.
/// `None` while the session is lost: the write then registers nothing (no HIT follows).
pub(crate) fn prepare_registration(core: &Core, key: &str, register: bool) -> (Option<i64>, u64) {
    let now = Instant::now();
    let mut state = core.lock();
    let epoch = state.session.epoch;
    if !register || !state.session.alive(now) {
        return (None, epoch);
    }
    let lease = state.session.lease;
    let entry = state
        .entries
        .entry(key.to_owned())
        .or_insert_with(|| Entry::empty(now));
    entry.registered = true;
    entry.reg_seq += 1;
    (Some(lease), epoch)
}

/// After a successful write of `version` at revision `r_w`: the writer's own copy and view.
pub(crate) fn adopt(
    core: &Core,
    key: &str,
    version: Version,
    payload: Option<&[u8]>,
    r_w: i64,
    epoch: u64,
    registered: bool,
) {
    let now = Instant::now();
    let mut state = core.lock();
    state.views.insert(key.to_owned(), version);
    let current_epoch = state.session.epoch;
    let entry = state
        .entries
        .entry(key.to_owned())
        .or_insert_with(|| Entry::empty(now));
    entry.latest_rev = entry.latest_rev.max(r_w);
    entry.version = version;
    entry.bytes = payload.unwrap_or_default().to_vec();
    entry.meta_rev = r_w;
    entry.epoch = epoch;
    entry.fetched = now;
    entry.hits = 0;
    entry.own = true;
    entry.valid =
        registered && payload.is_some() && entry.latest_rev <= r_w && epoch == current_epoch;
}

/// The local snapshot an optimistic write may start from: a coherent copy and a known view.
fn local_snapshot(core: &Core, key: &str) -> Option<Snapshot> {
    let now = Instant::now();
    let state = core.lock();
    let entry = state.entries.get(key)?;
    if !state.coherent(entry, now) {
        return None;
    }
    let view = *state.views.get(key)?;
    Some(Snapshot {
        meta: Some((
            Meta {
                version: entry.version,
                deleted: false,
                len: entry.bytes.len() as u64,
                // Only whether it is this agent is asked of a local snapshot.
                writer: if entry.own {
                    core.name.clone()
                } else {
                    String::new()
                },
            },
            entry.meta_rev,
        )),
        hold: None,
        journal: None,
        view: Some(view),
    })
}

/// What the log needs to know about a write beyond its result.
#[derive(Debug, Default)]
struct Probe {
    /// The writer's view before the write (for `put_if`, the version named).
    held: Version,
    /// The revision the outcome was decided at.
    rev: i64,
    /// When the successful transaction was answered.
    t_ns: u64,
}

/// Write `payload` (`None`: delete) under `cond`; returns the new version once every stale
/// copy is acknowledged. Logged.
pub(crate) async fn write(
    core: &Core,
    key: &str,
    payload: Option<&[u8]>,
    cond: Condition,
) -> Result<Version> {
    let mut probe = Probe::default();
    let result = write_inner(core, key, payload, cond, &mut probe).await;
    if core.log_on {
        let op = if payload.is_some() {
            LogOp::Put
        } else {
            LogOp::Delete
        };
        let rec = Rec {
            bytes: payload.map_or(0, |p| p.len() as u64),
            mode: Some(mode_of(cond)),
            t_ns: probe.t_ns,
            ..Rec::new(op, LogOutcome::Ok).on(key).at(probe.rev)
        };
        core.log(match &result {
            Ok(version) => rec.versions(*version, probe.held),
            Err(e) => rec.refused(probe.held, e),
        });
    }
    result
}

async fn write_inner(
    core: &Core,
    key: &str,
    payload: Option<&[u8]>,
    cond: Condition,
    probe: &mut Probe,
) -> Result<Version> {
    let l = &core.net.layout;
    let known_view = core.lock().views.get(key).copied();
    let held = |view: Option<Version>| match cond {
        Condition::Version(expected) => expected,
        Condition::View | Condition::Blind => view.unwrap_or(0),
    };
    probe.held = held(known_view);
    let mut snap = match local_snapshot(core, key) {
        Some(snap) => snap,
        None => {
            let (mut snap, rev) = read_snapshot(core, key, known_view.is_none()).await?;
            probe.rev = rev;
            if known_view.is_some() {
                snap.view = known_view;
            }
            snap
        }
    };
    probe.held = held(snap.view);
    for _ in 0..MAX_ATTEMPTS {
        if let Err(e) = check_condition(key, &snap, cond, payload.is_none()) {
            core.seen_newer(key, snap.meta_rev());
            if matches!(e, Error::Conflict(_)) && snap.written_by(&core.name) {
                await_own_write(core, key, &snap).await?;
            }
            return Err(e);
        }
        let plan = plan_hold(core, key, &snap).await?;
        let version = snap
            .current()
            .checked_add(1)
            .ok_or_else(|| Error::Corrupt(format!("`{key}` is at the last version")))?;
        let (lease, epoch) = prepare_registration(core, key, payload.is_some());
        let mut compares = vec![Compare::mod_revision(
            l.meta(key),
            CompareOp::Equal,
            snap.meta_rev(),
        )];
        compares.extend(plan.compares(core, key));
        let mut ops = publish_ops(core, key, version, payload, lease);
        if matches!(plan, HoldPlan::Reclaim { .. }) {
            ops.push(TxnOp::delete(l.hold(key), None));
        }
        if plan.has_journal() {
            ops.push(TxnOp::delete(l.journal(key), None));
        }
        ops.push(TxnOp::get(
            l.copies(key),
            Some(GetOptions::new().with_prefix()),
        ));
        let copies_at = ops.len() - 1;
        let txn = Txn::new()
            .when(compares)
            .and_then(ops)
            .or_else(snapshot_ops(core, key));
        let resp = match core.net.txn(txn).await {
            Ok(resp) => resp,
            Err(Error::Unavailable(why)) if why.contains("lease not found") => {
                // The session died under us: write again without registering a copy.
                if let Some(lease) = lease {
                    crate::read::lost_lease(core, lease);
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        probe.rev = revision(&resp);
        if resp.succeeded() {
            let r_w = revision(&resp);
            probe.t_ns = realtime_ns();
            if let Some(holder) = plan.reclaimed() {
                log_reclaim(core, key, holder, snap.current(), r_w);
            }
            adopt(core, key, version, payload, r_w, epoch, lease.is_some());
            await_acks(core, key, r_w, &got(&resp, copies_at)).await?;
            return Ok(version);
        }
        snap = snapshot_from(&resp, None, snap.view)?;
    }
    Err(Error::Unavailable(format!(
        "gave up writing `{key}` after {MAX_ATTEMPTS} lost races"
    )))
}

//! Reads: a HIT is served from the local copy (no round trip, see `state`); a MISS reads the
//! artifact at one revision, then registers the copy with a transaction that compares the
//! artifact's mod_revision with the one read, so a registration can never survive on a
//! superseded version (the etcd form of the shared-memory engine's MISS re-validation).

use ccs_types::NotFound;
use std::time::Instant;

use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};

use crate::error::{Error, Result};
use crate::layout::{Meta, decode_version, encode_version};
use crate::net::{got_one, revision};
use crate::oplog::{LogOp, LogOutcome, Rec};
use crate::state::{Core, Entry};
use crate::types::Read;

/// Attempts at registering before a MISS returns its bytes unregistered.
const REGISTER_ATTEMPTS: u32 = 3;

/// What the log needs to know about a MISS beyond its result.
#[derive(Debug, Default)]
struct Probe {
    /// The agent's view before the read.
    held: Option<u64>,
    /// The revision it read at.
    rev: i64,
    /// The version found (a tombstone's, for a deleted artifact); 0 if never written.
    version: u64,
}

/// Fetch `key` from the cluster and register the copy. Logged (a key never written is not,
/// as on shared memory, where it has no line).
pub(crate) async fn miss(core: &Core, key: &str) -> Result<Read> {
    let mut probe = Probe {
        held: core.lock().views.get(key).copied(),
        ..Probe::default()
    };
    let result = miss_inner(core, key, &mut probe).await;
    if core.log_on {
        let held = probe.held.unwrap_or(0);
        let rec = Rec::new(LogOp::Get, LogOutcome::Miss).on(key).at(probe.rev);
        match &result {
            Ok(read) => core.log(Rec {
                bytes: read.bytes.len() as u64,
                ..rec.versions(read.version, held)
            }),
            Err(Error::NotFound { .. }) if probe.version == 0 => {}
            Err(e @ Error::NotFound { .. }) => {
                core.log(rec.refused(held, e).versions(probe.version, held));
            }
            Err(e) => core.log(rec.refused(held, e)),
        }
    }
    result
}

async fn miss_inner(core: &Core, key: &str, probe: &mut Probe) -> Result<Read> {
    let l = &core.net.layout;
    let mut last = None;
    for _ in 0..REGISTER_ATTEMPTS {
        let mut ops = vec![TxnOp::get(l.meta(key), None), TxnOp::get(l.data(key), None)];
        let want_view = core.log_on && probe.held.is_none();
        if want_view {
            ops.push(TxnOp::get(l.view(&core.name, key), None));
        }
        let resp = core.net.read_txn(Txn::new().and_then(ops)).await?;
        probe.rev = revision(&resp);
        if want_view {
            probe.held = Some(
                got_one(&resp, 2)
                    .map(|kv| decode_version(kv.value()))
                    .transpose()?
                    .unwrap_or(0),
            );
        }
        let (Some(meta_kv), data_kv) = (got_one(&resp, 0), got_one(&resp, 1)) else {
            return Err(Error::NotFound(NotFound {
                key: key.to_owned(),
            }));
        };
        let meta = Meta::decode(meta_kv.value())?;
        probe.version = meta.version;
        if meta.deleted {
            // Seen deleted: a tombstone is a version, and the view records it (as on shared
            // memory), so a write re-creating the key from it is not refused as stale. Best
            // effort: if the cluster cannot take the view now (no quorum), the answer is still
            // NotFound and the view stays where it was (a later write is refused, never
            // admitted wrongly).
            let view = TxnOp::put(l.view(&core.name, key), encode_version(meta.version), None);
            if core.net.txn(Txn::new().and_then([view])).await.is_ok() {
                core.lock().views.insert(key.to_owned(), meta.version);
            }
            return Err(Error::NotFound(NotFound {
                key: key.to_owned(),
            }));
        }
        let r_m = meta_kv.mod_revision();
        let bytes = match data_kv {
            Some(kv) if kv.mod_revision() == r_m && kv.value().len() as u64 == meta.len => {
                kv.value().to_vec()
            }
            _ => {
                return Err(Error::Corrupt(format!(
                    "`{key}`: payload does not match its meta (not written by ccs-etcd?)"
                )));
            }
        };
        // Mark that a registration may exist before sending it.
        let (lease, epoch) = {
            let now = Instant::now();
            let mut state = core.lock();
            let alive = state.session.alive(now);
            let (lease, epoch) = (state.session.lease, state.session.epoch);
            let entry = state
                .entries
                .entry(key.to_owned())
                .or_insert_with(|| Entry::empty(now));
            if alive {
                entry.registered = true;
                entry.reg_seq += 1;
            }
            (alive.then_some(lease), epoch)
        };
        let view_op = TxnOp::put(l.view(&core.name, key), encode_version(meta.version), None);
        let registered = match lease {
            Some(lease) => {
                let txn = Txn::new()
                    .when([Compare::mod_revision(l.meta(key), CompareOp::Equal, r_m)])
                    .and_then([
                        TxnOp::put(
                            l.copy(key, &core.name),
                            encode_version(meta.version),
                            Some(PutOptions::new().with_lease(lease)),
                        ),
                        view_op,
                    ])
                    .or_else([TxnOp::put(
                        l.view(&core.name, key),
                        encode_version(meta.version),
                        None,
                    )]);
                match core.net.txn(txn).await {
                    Ok(resp) => resp.succeeded().then(|| revision(&resp)),
                    Err(Error::Unavailable(why)) if why.contains("lease not found") => {
                        lost_lease(core, lease);
                        None
                    }
                    Err(e) => return Err(e),
                }
            }
            None => {
                core.net.txn(Txn::new().and_then([view_op])).await?;
                None
            }
        };
        let now = Instant::now();
        let mut state = core.lock();
        state.views.insert(key.to_owned(), meta.version);
        let current_epoch = state.session.epoch;
        let entry = state
            .entries
            .entry(key.to_owned())
            .or_insert_with(|| Entry::empty(now));
        entry.version = meta.version;
        entry.bytes.clone_from(&bytes);
        entry.meta_rev = r_m;
        entry.epoch = epoch;
        entry.fetched = now;
        entry.hits = 0;
        entry.own = meta.writer == core.name;
        // The re-check: valid only if the watcher has seen no later write of the artifact and
        // the session did not change meanwhile.
        entry.valid = registered.is_some() && entry.latest_rev <= r_m && epoch == current_epoch;
        let done = entry.valid || lease.is_none() || registered.is_some();
        drop(state);
        last = Some(Read {
            bytes,
            version: meta.version,
            hit: false,
        });
        if done {
            break;
        }
    }
    last.ok_or_else(|| Error::Unavailable("no read attempt was made".to_owned()))
}

/// The cluster said the session lease is gone: stop serving HITs at once.
pub(crate) fn lost_lease(core: &Core, lease: i64) {
    let mut state = core.lock();
    if state.session.lease == lease {
        state.lose_session();
    }
}

/// A linearizable read: the artifact's current revision is first confirmed by the cluster
/// (an etcd read, which goes through the Raft leader), then the local copy is served if it is
/// that revision and still valid (a HIT, one round trip), else it is fetched (a MISS).
///
/// A plain `get` serves a valid copy with no round trip; while a write waits for its
/// acknowledgements (it is committed in etcd but has not returned), a holder that has not yet
/// processed the invalidation still HITs the previous version, even after another agent has
/// read the new one. That is within the promise "no stale HIT once a write has returned", but
/// not linearizable. Here the read's linearization point is the confirming read: a version
/// confirmed then is the current one at a moment within the call.
pub(crate) async fn linearizable(core: &Core, key: &str) -> Result<Read> {
    let (kv, _) = core.net.get(&core.net.layout.meta(key)).await?;
    let Some(kv) = kv else {
        return Err(Error::NotFound(NotFound {
            key: key.to_owned(),
        }));
    };
    let confirmed = kv.mod_revision();
    let held = core.lock().entries.get(key).map(|e| e.meta_rev);
    if held == Some(confirmed)
        && let Some((bytes, version)) = core.try_hit(key)
        && core.lock().entries.get(key).map(|e| e.meta_rev) == Some(confirmed)
    {
        return Ok(Read {
            bytes,
            version,
            hit: true,
        });
    }
    // Read at a revision at or after the confirming one: current within the call too.
    miss(core, key).await
}

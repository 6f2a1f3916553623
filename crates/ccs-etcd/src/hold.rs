//! Exclusive holds (state E): a key `h/<key>` created only if absent (`create_revision == 0`),
//! or overwritten when its holder's session is gone, attached to an etcd lease of the
//! acquire's duration. The revision at which this holder last wrote the hold key (its
//! mod_revision) is the fencing token (Kleppmann's fencing tokens; etcd's `concurrency.Mutex`
//! fences with a revision the same way): commit, release and renew compare it, so a holder
//! whose lease expired, or whose hold was reclaimed after its session died, changes nothing.

use ccs_types::Fenced;
use std::time::Duration;

use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};

use crate::error::{Error, Result};
use crate::invalidate::await_acks;
use crate::layout::HoldValue;
use crate::net::{got, revision};
use crate::oplog::{LogOp, LogOutcome, Rec, WriteMode, realtime_ns};
use crate::state::Core;
use crate::types::{Hold, Version};
use crate::write::{
    adopt, log_reclaim, plan_hold, prepare_registration, publish_ops, read_snapshot,
    snapshot_after_failure, snapshot_ops,
};

const MAX_ATTEMPTS: u32 = 100;

/// Take `key` exclusively for `lease` (rounded up to whole seconds). Logged.
pub(crate) async fn acquire(core: &Core, key: &str, lease: Duration) -> Result<Hold> {
    let mut held = core.lock().views.get(key).copied();
    let result = match core.net.grant(lease).await {
        Ok((lease_id, _)) => {
            let result = try_acquire(core, key, lease_id, &mut held).await;
            if result.is_err() {
                let _ = core.net.revoke(lease_id).await;
            }
            result
        }
        Err(e) => Err(e),
    };
    if core.log_on {
        let held = held.unwrap_or(0);
        let rec = Rec::new(LogOp::Acquire, LogOutcome::Ok).on(key);
        core.log(match &result {
            Ok(hold) => rec.versions(hold.version, held).at(hold.token),
            Err(e) => rec.refused(held, e),
        });
    }
    result
}

async fn try_acquire(
    core: &Core,
    key: &str,
    lease_id: i64,
    held: &mut Option<Version>,
) -> Result<Hold> {
    let l = &core.net.layout;
    let session = core.lock().session.rev;
    let value = HoldValue {
        holder: core.name.clone(),
        session,
    };
    let (mut snap, _) = read_snapshot(core, key, held.is_none()).await?;
    if held.is_none() {
        *held = snap.view;
    }
    for _ in 0..MAX_ATTEMPTS {
        let plan = plan_hold(core, key, &snap).await?;
        // A reclaim overwrites the dead holder's key: its mod_revision, the token, changes.
        // The journal names this holder until it commits or releases.
        let ops = [
            TxnOp::put(
                l.hold(key),
                value.encode(),
                Some(PutOptions::new().with_lease(lease_id)),
            ),
            TxnOp::put(l.journal(key), value.encode(), None),
        ];
        let mut compares = vec![Compare::mod_revision(
            l.meta(key),
            CompareOp::Equal,
            snap.meta_rev(),
        )];
        compares.extend(plan.compares(core, key));
        let txn = Txn::new()
            .when(compares)
            .and_then(ops)
            .or_else(snapshot_ops(core, key));
        let resp = core.net.txn(txn).await?;
        if resp.succeeded() {
            if let Some(holder) = plan.reclaimed() {
                log_reclaim(core, key, holder, snap.current(), revision(&resp));
            }
            core.seen_newer(key, snap.meta_rev());
            return Ok(Hold {
                key: key.to_owned(),
                token: revision(&resp),
                lease: lease_id,
                version: snap.current(),
                meta_rev: snap.meta_rev(),
            });
        }
        snap = snapshot_after_failure(&resp)?;
    }
    Err(Error::Unavailable(format!(
        "gave up acquiring `{key}` after {MAX_ATTEMPTS} lost races"
    )))
}

/// Log a hold operation (release, renew) on `hold`.
fn log_hold_op(core: &Core, op: LogOp, hold: &Hold, result: &Result<i64>) {
    if core.log_on {
        let rec = Rec::new(op, LogOutcome::Ok)
            .on(&hold.key)
            .versions(hold.version, hold.version);
        core.log(match result {
            Ok(rev) => rec.at(*rev),
            Err(e) => rec.refused(hold.version, e),
        });
    }
}

fn hold_compare(core: &Core, hold: &Hold) -> Compare {
    Compare::mod_revision(
        core.net.layout.hold(&hold.key),
        CompareOp::Equal,
        hold.token,
    )
}

/// Publish `bytes` as the next version and give the hold up; `Fenced` if it was lost. Logged.
pub(crate) async fn commit(core: &Core, hold: Hold, bytes: &[u8]) -> Result<Version> {
    let (key, held) = (hold.key.clone(), hold.version);
    let mut rev = 0;
    let mut t_ns = 0;
    let result = commit_inner(core, hold, bytes, &mut rev, &mut t_ns).await;
    if core.log_on {
        let rec = Rec {
            bytes: bytes.len() as u64,
            mode: Some(WriteMode::View),
            t_ns,
            ..Rec::new(LogOp::Commit, LogOutcome::Ok).on(&key).at(rev)
        };
        core.log(match &result {
            Ok(version) => rec.versions(*version, held),
            Err(e) => rec.refused(held, e),
        });
    }
    result
}

async fn commit_inner(
    core: &Core,
    hold: Hold,
    bytes: &[u8],
    rev: &mut i64,
    t_ns: &mut u64,
) -> Result<Version> {
    let l = &core.net.layout;
    let key = hold.key.as_str();
    let version = hold.version + 1;
    let (lease, epoch) = prepare_registration(core, key, true);
    let mut ops = publish_ops(core, key, version, Some(bytes), lease);
    ops.push(TxnOp::delete(l.hold(key), None));
    ops.push(TxnOp::delete(l.journal(key), None));
    ops.push(TxnOp::get(
        l.copies(key),
        Some(GetOptions::new().with_prefix()),
    ));
    let copies_at = ops.len() - 1;
    let txn = Txn::new()
        .when([
            hold_compare(core, &hold),
            Compare::mod_revision(l.meta(key), CompareOp::Equal, hold.meta_rev),
        ])
        .and_then(ops);
    let resp = core.net.txn(txn).await?;
    let _ = core.net.revoke(hold.lease).await;
    *rev = revision(&resp);
    if !resp.succeeded() {
        return Err(Error::Fenced(Fenced {
            key: key.to_owned(),
        }));
    }
    let r_w = revision(&resp);
    *t_ns = realtime_ns();
    adopt(core, key, version, Some(bytes), r_w, epoch, lease.is_some());
    await_acks(core, key, r_w, &got(&resp, copies_at)).await?;
    Ok(version)
}

/// Give the hold up without writing; `Fenced` if it was lost already. Logged.
pub(crate) async fn release(core: &Core, hold: Hold) -> Result<()> {
    let result = release_inner(core, &hold).await;
    log_hold_op(core, LogOp::Release, &hold, &result);
    result.map(drop)
}

async fn release_inner(core: &Core, hold: &Hold) -> Result<i64> {
    let l = &core.net.layout;
    let txn = Txn::new().when([hold_compare(core, hold)]).and_then([
        TxnOp::delete(l.hold(&hold.key), None),
        TxnOp::delete(l.journal(&hold.key), None),
    ]);
    let resp = core.net.txn(txn).await?;
    let _ = core.net.revoke(hold.lease).await;
    if resp.succeeded() {
        Ok(revision(&resp))
    } else {
        Err(Error::Fenced(Fenced {
            key: hold.key.clone(),
        }))
    }
}

/// Extend the hold to `lease` from now: move the hold key to a fresh lease (the token becomes
/// that write's revision), then revoke the old lease. Logged.
pub(crate) async fn renew(core: &Core, hold: &mut Hold, lease: Duration) -> Result<()> {
    let result = renew_inner(core, hold, lease).await;
    log_hold_op(core, LogOp::Renew, hold, &result);
    result.map(drop)
}

async fn renew_inner(core: &Core, hold: &mut Hold, lease: Duration) -> Result<i64> {
    let (new_lease, _) = core.net.grant(lease).await?;
    let value = HoldValue {
        holder: core.name.clone(),
        session: core.lock().session.rev,
    };
    let txn = Txn::new()
        .when([hold_compare(core, hold)])
        .and_then([TxnOp::put(
            core.net.layout.hold(&hold.key),
            value.encode(),
            Some(PutOptions::new().with_lease(new_lease)),
        )]);
    let resp = match core.net.txn(txn).await {
        Ok(resp) => resp,
        Err(e) => {
            let _ = core.net.revoke(new_lease).await;
            return Err(e);
        }
    };
    if !resp.succeeded() {
        let _ = core.net.revoke(new_lease).await;
        return Err(Error::Fenced(Fenced {
            key: hold.key.clone(),
        }));
    }
    hold.token = revision(&resp);
    let old = std::mem::replace(&mut hold.lease, new_lease);
    let _ = core.net.revoke(old).await;
    Ok(hold.token)
}

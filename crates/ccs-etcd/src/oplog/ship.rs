//! The flusher: a background task per agent that writes the agent's buffered records to etcd
//! every [`FLUSH_EVERY`] (sooner when [`super::buffer::FLUSH_BATCH`] records wait), in
//! transactions of at most [`MAX_PUTS`] records. An operation never waits for it.
//!
//! Each transaction
//!
//! ```text
//! Txn(cr(s/<agent>) = the session's revision)
//!   then put l/<agent>\0<seq> = record ...   (seq ascending)
//!        delete [l/<agent>\0<trimmed>, l/<agent>\0<hi + 1 − N>)   (the ring: the newest N stay)
//! ```
//!
//! is only applied while this process's session holds the agent's name, so a process whose
//! name was taken over can never write into the new owner's sequence. Writing a record again is
//! harmless (same key, same value, or a HIT run's larger count), so a transaction whose answer
//! was lost is simply sent again. Records the cluster could not take yet stay in the
//! flusher's carry (at most `log_buffer` of them, then the oldest go: the reader sees the gap
//! and reports it as lost).

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Compare, CompareOp, DeleteOptions, Txn, TxnOp};

use super::Rec;
use super::wire::encode;
use crate::error::{Error, Result};
use crate::state::Core;

/// How often the flusher writes what is buffered.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(25);
/// Records per transaction (etcd allows 128 operations per transaction by default).
pub(crate) const MAX_PUTS: usize = 100;

/// The flusher's own state, behind an async mutex: one flush at a time (the task's, or a
/// caller's [`flush_all`]).
#[derive(Debug, Default)]
pub(crate) struct Shipper {
    /// Drained but not yet written.
    carry: Vec<Rec>,
    /// Every record below this seq has been deleted (or never existed).
    trimmed_to: u64,
}

/// The flusher task: until the agent closes.
pub(crate) async fn run(core: Arc<Core>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(FLUSH_EVERY) => {}
            () = core.log_wake.notified() => {}
        }
        if core.lock().closed {
            return;
        }
        // A failure leaves the records in the carry for the next round.
        let _ = ship(&core).await;
    }
}

/// Flush everything recorded so far, retrying for up to the operation timeout.
pub(crate) async fn flush_all(core: &Core) -> Result<()> {
    flush_until(core, Instant::now() + core.net.options.op_timeout).await
}

/// Flush everything recorded so far, retrying until `deadline`.
pub(crate) async fn flush_until(core: &Core, deadline: Instant) -> Result<()> {
    let deadline = tokio::time::Instant::from_std(deadline);
    loop {
        match ship(core).await {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Drain the buffer and write it, with what an earlier round could not write.
pub(crate) async fn ship(core: &Core) -> Result<()> {
    let mut shipper = core.shipper.lock().await;
    let (fresh, session_rev, taken) = {
        let mut state = core.lock();
        let fresh = state.log.drain();
        (fresh, state.session.rev, state.session.taken)
    };
    if taken {
        // The name belongs to another session now: its sequence is not ours to write.
        shipper.carry.clear();
        core.lock().log.disable();
        return Ok(());
    }
    shipper.carry.extend(fresh);
    if shipper.carry.is_empty() {
        return Ok(());
    }
    let ring = u64::from(core.net.options.log_records);
    let bound = (core.net.options.log_buffer as usize).max(MAX_PUTS);
    let carry = &mut shipper.carry;
    // One entry per seq, the last one (a HIT run written again with a larger count wins).
    carry.sort_by_key(|r| r.seq);
    carry.dedup_by(|later, earlier| {
        if later.seq == earlier.seq {
            std::mem::swap(later, earlier);
            true
        } else {
            false
        }
    });
    let hi = carry.last().map_or(0, |r| r.seq);
    let trim = (hi + 1).saturating_sub(ring);
    carry.retain(|r| r.seq >= trim);
    if carry.len() > bound {
        let excess = carry.len() - bound;
        carry.drain(..excess);
    }
    let net = &core.net;
    let l = &net.layout;
    while !shipper.carry.is_empty() {
        let n = shipper.carry.len().min(MAX_PUTS);
        let mut ops: Vec<TxnOp> = shipper.carry[..n]
            .iter()
            .map(|r| TxnOp::put(l.log_record(&core.name, r.seq), encode(r), None))
            .collect();
        if trim > shipper.trimmed_to {
            ops.push(TxnOp::delete(
                l.log_record(&core.name, shipper.trimmed_to),
                Some(DeleteOptions::new().with_range(l.log_record(&core.name, trim))),
            ));
        }
        let txn = Txn::new()
            .when([Compare::create_revision(
                l.session(&core.name),
                CompareOp::Equal,
                session_rev,
            )])
            .and_then(ops);
        let resp = net.txn(txn).await?;
        if !resp.succeeded() {
            return Err(Error::Unavailable(
                "the agent's session changed; its log waits for the new one".to_owned(),
            ));
        }
        shipper.trimmed_to = shipper.trimmed_to.max(trim);
        shipper.carry.drain(..n);
    }
    Ok(())
}

//! The agent's watcher: one etcd watch on every artifact's meta key under the prefix. For each
//! write it (1) clears the local valid flag of an older copy, then (2) acknowledges the
//! invalidation by deleting the agent's registration of that artifact — with a transaction
//! that deletes it only if it was registered before the write, so a fresher registration made
//! meanwhile survives — and (3) delivers change events to subscriptions.
//!
//! This is the directory protocol's invalidate/acknowledge exchange (Censier & Feautrier 1978),
//! with etcd's watch as the invalidation channel and the registration key as the sharer bit.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Compare, CompareOp, EventType, Txn, TxnOp};

use crate::layout::Meta;
use crate::session;
use crate::state::{Core, INBOX_CAPACITY};
use crate::types::ChangeEvent;

/// Watch every meta key from revision `start` on, forever (until the agent closes).
pub(crate) async fn run(core: Arc<Core>, start: i64) {
    let net = core.net.clone();
    let metas = net.layout.metas();
    let mut next = start;
    loop {
        if core.lock().closed {
            return;
        }
        let mut stream = match net.watch(&metas, true, next).await {
            Ok(stream) => stream,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        loop {
            let Some(resp) = net.next_message(&mut stream).await else {
                // The member went away, stopped answering, or the stream broke: watch again
                // from `next`, which loses nothing unless etcd compacted past it (then
                // `canceled` says so).
                break;
            };
            if resp.canceled() {
                if resp.compact_revision() > 0 {
                    // Events between `next` and the compaction are gone: this agent cannot
                    // know which of its copies were invalidated, so it drops them all.
                    session::abandon(&core).await;
                    next = resp.compact_revision();
                }
                break;
            }
            for event in resp.events() {
                let Some(kv) = event.kv() else { continue };
                let rev = kv.mod_revision();
                next = next.max(rev + 1);
                let Some(key) = net.layout.key_of_meta(kv.key()) else {
                    continue;
                };
                let meta = match event.event_type() {
                    EventType::Put => Meta::decode(kv.value()).ok(),
                    EventType::Delete => None,
                };
                handle(&core, key, rev, meta);
            }
        }
    }
}

/// One write (or, with `meta == None`, a removal by `destroy`) of `key` at revision `rev`.
fn handle(core: &Arc<Core>, key: &str, rev: i64, meta: Option<Meta>) {
    let mut ack = None;
    {
        let mut state = core.lock();
        state.watched_rev = state.watched_rev.max(rev);
        if let Some(entry) = state.entries.get_mut(key) {
            entry.latest_rev = entry.latest_rev.max(rev);
            if rev > entry.meta_rev {
                // (1) the flag first ...
                entry.valid = false;
                // An own write replaced (or deleted) this agent's registration in the same
                // transaction: nothing to acknowledge.
                let own = meta.as_ref().is_some_and(|m| m.writer == core.name);
                if entry.registered && !own {
                    ack = Some(entry.reg_seq);
                }
            }
        }
        if let Some(meta) = meta
            && meta.writer != core.name
            && state
                .subs
                .iter()
                .any(|s| rev > s.from && key.starts_with(&s.prefix))
        {
            if state.inbox.len() >= INBOX_CAPACITY {
                state.lost_events += 1;
            } else {
                state.inbox.push_back(ChangeEvent {
                    key: key.to_owned(),
                    version: meta.version,
                    writer: meta.writer,
                    deleted: meta.deleted,
                });
            }
        }
    }
    core.changed.notify_all();
    if let Some(seq) = ack {
        // (2) ... then the acknowledgement, off the watcher's path.
        tokio::spawn(acknowledge(Arc::clone(core), key.to_owned(), rev, seq));
    }
}

/// Delete this agent's registration of `key` if it predates revision `rev`.
async fn acknowledge(core: Arc<Core>, key: String, rev: i64, seq: u64) {
    let copy = core.net.layout.copy(&key, &core.name);
    for attempt in 0..20u32 {
        let txn = Txn::new()
            .when([Compare::mod_revision(copy.as_str(), CompareOp::Less, rev)])
            .and_then([TxnOp::delete(copy.as_str(), None)]);
        match core.net.txn(txn).await {
            Ok(resp) => {
                if resp.succeeded() {
                    let mut state = core.lock();
                    if let Some(entry) = state.entries.get_mut(&key)
                        && entry.reg_seq == seq
                    {
                        entry.registered = false;
                    }
                }
                return;
            }
            Err(_) => {
                if core.lock().closed {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt + 1))).await;
            }
        }
    }
    // Still unacknowledged: the writer waits out its ack timeout and revokes this session.
}

//! Agent sessions: an etcd lease kept alive by a background task, the key `s/<name>` that
//! makes the name exclusive, and the local deadline until which the lease is certainly alive.
//!
//! The deadline is `t_send + TTL − margin`, where `t_send` is when the keepalive whose answer
//! granted `TTL` was *sent* (the same scheme as Chubby's client lease, Burrows 2006, §2.8; and
//! Gray & Cheriton's leases, 1989): the server restarts the TTL when it receives that
//! keepalive, which is after `t_send`, so the cluster's expiry is later than the local
//! deadline as long as the two clocks' rates differ by less than margin / TTL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, SortOrder, SortTarget, Txn, TxnOp};

use crate::error::{Error, Result};
use crate::net::{Net, got_one, revision};
use crate::state::{Core, Session};

/// How this process names itself in `s/<name>`.
pub(crate) fn whoami() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown-host".to_owned());
    format!("{host}:{}", std::process::id())
}

/// Grant a session lease and claim the name with it. [`Error::AgentBusy`] if a live session
/// holds the name.
pub(crate) async fn open(net: &Net, name: &str, epoch: u64) -> Result<Session> {
    let sent = Instant::now();
    let (lease, ttl) = net.grant(net.options.session_ttl).await?;
    let l = &net.layout;
    let txn = Txn::new()
        .when([Compare::create_revision(
            l.session(name),
            CompareOp::Equal,
            0,
        )])
        .and_then([
            TxnOp::put(
                l.session(name),
                whoami(),
                Some(PutOptions::new().with_lease(lease)),
            ),
            TxnOp::put(l.agent(name), "", None),
            // The agent's newest log record: its seq continues from there.
            TxnOp::get(
                l.agent_log(name),
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_sort(SortTarget::Key, SortOrder::Descend)
                        .with_limit(1)
                        .with_keys_only(),
                ),
            ),
        ])
        .or_else([TxnOp::get(l.session(name), None)]);
    let resp = match net.txn(txn).await {
        Ok(resp) => resp,
        Err(e) => {
            let _ = net.revoke(lease).await;
            return Err(e);
        }
    };
    if !resp.succeeded() {
        let _ = net.revoke(lease).await;
        let holder = got_one(&resp, 0)
            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
            .unwrap_or_default();
        return Err(Error::AgentBusy {
            name: name.to_owned(),
            holder,
        });
    }
    let log_next = got_one(&resp, 2)
        .and_then(|kv| l.split_log(kv.key()).map(|(_, seq)| seq + 1))
        .unwrap_or(0);
    Ok(Session {
        lease,
        rev: revision(&resp),
        log_next,
        epoch,
        deadline: deadline(sent, ttl, net),
        lost: false,
        taken: false,
    })
}

fn deadline(sent: Instant, ttl: i64, net: &Net) -> Option<Instant> {
    let ttl = Duration::from_secs(u64::try_from(ttl).ok()?);
    let usable = ttl.checked_sub(net.options.safety_margin)?;
    sent.checked_add(usable)
}

/// Why a keepalive round stopped.
enum Stop {
    /// The cluster says the lease does not exist any more.
    Gone,
    /// A transport problem: reconnect and keep trying while the deadline lasts.
    Transport,
}

/// The keepalive task: renews the lease every TTL/3, moves the local deadline, and when the
/// lease is gone invalidates every copy and sets up a new session under the same name.
pub(crate) async fn keep_alive(core: Arc<Core>) {
    loop {
        let (lease, closed) = {
            let state = core.lock();
            (state.session.lease, state.closed)
        };
        if closed {
            return;
        }
        match renew_until_stopped(&core, lease).await {
            Stop::Transport => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Stop::Gone => {
                {
                    let mut state = core.lock();
                    if state.session.lease == lease {
                        state.lose_session();
                    }
                }
                core.changed.notify_all();
                reopen(&core).await;
            }
        }
    }
}

async fn renew_until_stopped(core: &Core, lease: i64) -> Stop {
    let net = &core.net;
    let (member, client) = net.members.pick();
    let stop = renew_through(core, lease, client).await;
    if matches!(stop, Stop::Transport) && !core.lock().closed {
        // The member did not keep the lease alive: the next round goes to the next one.
        net.members.leave(member);
    }
    stop
}

async fn renew_through(core: &Core, lease: i64, mut client: etcd_client::Client) -> Stop {
    let net = &core.net;
    let period = net.options.session_ttl / 3;
    let sent = Instant::now();
    let (mut keeper, mut stream) =
        match tokio::time::timeout(period, client.lease_keep_alive(lease)).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(etcd_client::Error::LeaseKeepAliveError(_))) => return Stop::Gone,
            _ => return Stop::Transport,
        };
    // `lease_keep_alive` sent one keepalive and read its answer (TTL > 0).
    extend(core, lease, sent, net.options.ttl_secs());
    loop {
        tokio::time::sleep(period).await;
        if core.lock().closed {
            return Stop::Transport;
        }
        let sent = Instant::now();
        if keeper.keep_alive().await.is_err() {
            return Stop::Transport;
        }
        match tokio::time::timeout(period, stream.message()).await {
            Ok(Ok(Some(resp))) if resp.ttl() > 0 => extend(core, lease, sent, resp.ttl()),
            Ok(Ok(Some(_))) => return Stop::Gone,
            _ => return Stop::Transport,
        }
    }
}

fn extend(core: &Core, lease: i64, sent: Instant, ttl: i64) {
    let mut state = core.lock();
    if state.session.lease == lease && !state.session.lost {
        let new = deadline(sent, ttl, &core.net);
        if new > state.session.deadline {
            state.session.deadline = new;
        }
    }
}

/// Set up a new session after a loss. If another session took the name meanwhile, the agent
/// is finished (`taken`); transport errors are retried.
async fn reopen(core: &Core) {
    loop {
        let epoch = {
            let state = core.lock();
            if state.closed {
                return;
            }
            state.session.epoch
        };
        match open(&core.net, &core.name, epoch).await {
            Ok(session) => {
                let mut state = core.lock();
                for entry in state.entries.values_mut() {
                    // The old lease took every registration with it.
                    entry.registered = false;
                }
                state.session = Session {
                    epoch: state.session.epoch,
                    ..session
                };
                drop(state);
                core.changed.notify_all();
                return;
            }
            Err(Error::AgentBusy { .. }) => {
                core.lock().session.taken = true;
                core.changed.notify_all();
                return;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Give the session up at once (the watcher lost events it cannot recover): invalidate every
/// copy, then revoke the lease so every registration goes with it; the keepalive task sets up
/// the next session when it finds the lease gone.
pub(crate) async fn abandon(core: &Core) {
    let lease = {
        let mut state = core.lock();
        state.lose_session();
        state.session.lease
    };
    core.changed.notify_all();
    let _ = core.net.revoke(lease).await;
}

//! The writer's side of invalidation: after its transaction, a write waits until every agent
//! that had registered a copy of an older version has acknowledged (deleted its registration,
//! or replaced it with one of a newer version) or its session lease is gone.
//!
//! The registrations to wait for are read by the write transaction itself, at the write's
//! revision `r_w`: a registration is made by a transaction that compares the artifact's
//! mod_revision with the one just read, so none made after `r_w` can be of an older version,
//! and the set read at `r_w` is complete. The watch starts at `r_w + 1`, so no acknowledgement
//! is missed. A holder that does not answer within the ack timeout has its session revoked, and
//! the writer then waits one granted TTL: the holder's local deadline cannot be later (see
//! `session`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use etcd_client::{EventType, KeyValue};

use crate::error::Result;
use crate::state::Core;
use crate::types::WriteStats;

/// Wait for the acknowledgements of the stale registrations among `copies` (read at `r_w`).
/// Returns how many holders were waited for and how many had to be revoked.
pub(crate) async fn await_acks(
    core: &Core,
    key: &str,
    r_w: i64,
    copies: &[KeyValue],
) -> Result<()> {
    let started = Instant::now();
    let (holders, revoked) = wait_for_acks(core, key, r_w, copies).await?;
    core.lock().last_write = WriteStats {
        holders,
        revoked,
        ack_wait: started.elapsed(),
    };
    Ok(())
}

async fn wait_for_acks(
    core: &Core,
    key: &str,
    r_w: i64,
    copies: &[KeyValue],
) -> Result<(usize, usize)> {
    let layout = &core.net.layout;
    let mut stale: HashMap<String, i64> = copies
        .iter()
        .filter(|kv| kv.mod_revision() < r_w)
        .filter_map(|kv| {
            let agent = layout.agent_of_copy(key, kv.key())?;
            (agent != core.name).then(|| (agent.to_owned(), kv.lease()))
        })
        .collect();
    let waited = stale.len();
    if stale.is_empty() {
        return Ok((0, 0));
    }
    let deadline = Instant::now() + core.net.options.ack_timeout;
    // Watch from now, then read what is left: acknowledgements that came before the watch
    // are seen by the read, later ones by the watch.
    let mut stream = core.net.watch_now(&layout.copies(key), true).await?;
    let (left, read_at) = core.net.range(&layout.copies(key)).await?;
    stale.retain(|agent, _| {
        left.iter().any(|kv| {
            kv.mod_revision() < r_w && layout.agent_of_copy(key, kv.key()) == Some(agent.as_str())
        })
    });
    let mut from = read_at + 1;
    while !stale.is_empty() {
        let message =
            tokio::time::timeout_at(deadline.into(), core.net.next_message(&mut stream)).await;
        let resp = match message {
            Ok(Some(resp)) if resp.canceled() && resp.compact_revision() > 0 => {
                // History from `from` is compacted: read what is there now instead.
                let (now, rev) = core.net.range(&layout.copies(key)).await?;
                stale.retain(|agent, _| {
                    now.iter().any(|kv| {
                        kv.mod_revision() < r_w
                            && layout.agent_of_copy(key, kv.key()) == Some(agent.as_str())
                    })
                });
                from = rev + 1;
                stream = core.net.watch(&layout.copies(key), true, from).await?;
                continue;
            }
            Ok(Some(resp)) => resp,
            Ok(None) => {
                // The stream broke (a member died or stopped answering): watch again from
                // where it stood.
                stream = core.net.watch(&layout.copies(key), true, from).await?;
                continue;
            }
            Err(_) => break,
        };
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            from = from.max(kv.mod_revision() + 1);
            let Some(agent) = layout.agent_of_copy(key, kv.key()) else {
                continue;
            };
            // A delete is an acknowledgement (or the lease's expiry); a put after r_w is a
            // registration of the new version or a later one, which replaced the stale one.
            let acked = match event.event_type() {
                EventType::Delete => true,
                EventType::Put => kv.mod_revision() > r_w,
            };
            if acked {
                stale.remove(agent);
            }
        }
    }
    let revoked = stale.len();
    if revoked > 0 {
        force(core, stale.into_values()).await?;
    }
    Ok((waited, revoked))
}

/// Revoke the sessions of holders that did not acknowledge, then wait one granted TTL so that
/// their local deadlines have passed.
async fn force(core: &Core, leases: impl Iterator<Item = i64>) -> Result<()> {
    let mut longest = 0i64;
    for lease in leases {
        let (left, granted) = core.net.lease_ttl(lease).await?;
        if left <= 0 {
            continue; // already expired: its holder's deadline has passed
        }
        core.net.revoke(lease).await?;
        longest = longest.max(granted);
    }
    if longest > 0 {
        let wait = Duration::from_secs(u64::try_from(longest).unwrap_or(0));
        tokio::time::sleep(wait).await;
    }
    Ok(())
}

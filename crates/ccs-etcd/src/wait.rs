//! Blocking waits and change events, both riding etcd watches: `wait_changed` opens a watch on
//! the artifact's meta key from the revision it read at; subscriptions filter the agent's own
//! meta watch (`watcher`) into a bounded inbox.

use ccs_types::NotFound;
use std::time::{Duration, Instant};

use etcd_client::EventType;

use crate::error::{Error, Result};
use crate::layout::Meta;
use crate::state::{Core, Sub};
use crate::types::{Events, Strategy, Version, WaitResult};

/// Wait until `key`'s version exceeds `since`, or `timeout` passes: the answer comes at the
/// timeout whatever the cluster's state (every request inside is cut off there). At the
/// timeout the result is `TimedOut` with the last version read, or, if the cluster never
/// answered, [`Error::Unavailable`].
pub(crate) async fn wait_changed(
    core: &Core,
    key: &str,
    since: Version,
    timeout: Option<Duration>,
) -> Result<WaitResult> {
    let Some(timeout) = timeout else {
        return wait_inner(core, key, since, &mut None).await;
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let mut seen = None;
    match tokio::time::timeout_at(deadline, wait_inner(core, key, since, &mut seen)).await {
        Ok(result) => result,
        Err(_) => match seen {
            Some(version) => Ok(WaitResult::TimedOut(version)),
            None => Err(Error::Unavailable(format!(
                "no answer about `{key}` within the wait's timeout ({timeout:?})"
            ))),
        },
    }
}

async fn wait_inner(
    core: &Core,
    key: &str,
    since: Version,
    seen: &mut Option<Version>,
) -> Result<WaitResult> {
    let l = &core.net.layout;
    let (kv, _) = core.net.get(&l.meta(key)).await?;
    let Some(kv) = kv else {
        return Err(Error::NotFound(NotFound {
            key: key.to_owned(),
        }));
    };
    let mut current = Meta::decode(kv.value())?.version;
    *seen = Some(current);
    if current > since {
        return Ok(WaitResult::Changed(current));
    }
    // Watch from now, then read again: a write before the watch is seen by the read, a
    // later one by the watch.
    let mut stream = core.net.watch_now(&l.meta(key), false).await?;
    let (kv, rev) = core.net.get(&l.meta(key)).await?;
    let Some(kv) = kv else {
        return Err(Error::NotFound(NotFound {
            key: key.to_owned(),
        }));
    };
    current = Meta::decode(kv.value())?.version;
    *seen = Some(current);
    if current > since {
        return Ok(WaitResult::Changed(current));
    }
    let mut next = rev + 1;
    loop {
        // Until the stream breaks, or its member stops answering.
        while let Some(resp) = core.net.next_message(&mut stream).await {
            if resp.canceled() {
                break;
            }
            for event in resp.events() {
                let Some(kv) = event.kv() else { continue };
                next = next.max(kv.mod_revision() + 1);
                if event.event_type() == EventType::Delete {
                    return Err(Error::NotFound(NotFound {
                        key: key.to_owned(),
                    }));
                }
                current = Meta::decode(kv.value())?.version;
                *seen = Some(current);
                if current > since {
                    return Ok(WaitResult::Changed(current));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The stream broke: watch again from the next revision not seen.
        stream = core.net.watch(&l.meta(key), false, next).await?;
    }
}

/// Subscribe to writes under `prefix` made after this call returns.
pub(crate) fn subscribe(core: &Core, prefix: &str) -> Result<()> {
    if core.strategy != Strategy::Eager {
        return Err(Error::InvalidConfig(
            "subscriptions need an agent attached with Strategy::Eager".to_owned(),
        ));
    }
    let mut state = core.lock();
    if !state.subs.iter().any(|s| s.prefix == prefix) {
        // Every write after the last event the watcher processed is delivered; a write
        // acknowledged before this call is at or below `watched_rev` or arrives later with a
        // revision the subscription accepts, never one it should not.
        let from = state.watched_rev;
        state.subs.push(Sub {
            prefix: prefix.to_owned(),
            from,
        });
    }
    Ok(())
}

/// Stop a subscription; `false` if there was none.
pub(crate) fn unsubscribe(core: &Core, prefix: &str) -> bool {
    let mut state = core.lock();
    let before = state.subs.len();
    state.subs.retain(|s| s.prefix != prefix);
    state.subs.len() != before
}

/// Take up to `max` events, waiting up to `timeout` (`Some(ZERO)`: not at all; `None`:
/// forever) for the first.
pub(crate) fn take_events(core: &Core, max: usize, timeout: Option<Duration>) -> Events {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut state = core.lock();
    while state.inbox.is_empty() && state.lost_events == 0 && !state.closed {
        let wait = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left,
                _ => break,
            },
            None => Duration::from_secs(3600),
        };
        state = match core.changed.wait_timeout(state, wait) {
            Ok((guard, _)) => guard,
            Err(poisoned) => poisoned.into_inner().0,
        };
    }
    let n = max.min(state.inbox.len());
    let events = state.inbox.drain(..n).collect();
    let lost = std::mem::take(&mut state.lost_events);
    Events { events, lost }
}

//! `EtcdAgent`: a named agent attached to a cluster prefix, with the facade's operations.
//! Every call is synchronous; it runs on the cluster handle's runtime and is bounded by
//! `Options::op_timeout` per request.

use ccs_types::LeaseLost;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::layout::{MAX_PAYLOAD, Meta, check_key, decode_version};
use crate::oplog::{LogOp, LogOutcome, Rec, ship};
use crate::state::Core;
use crate::types::{
    Check, Condition, Events, Hold, Read, Status, Strategy, Version, WaitResult, WriteStats,
};
use crate::{hold, read, wait, write};

/// A named agent attached to a cluster prefix. Detaches when dropped (its session lease is
/// revoked, so its registrations go at once); what it read (its views) stays in the cluster.
pub struct EtcdAgent {
    cluster: Cluster,
    core: Arc<Core>,
    tasks: Vec<JoinHandle<()>>,
}

impl EtcdAgent {
    pub(crate) fn new(cluster: Cluster, core: Arc<Core>, tasks: Vec<JoinHandle<()>>) -> EtcdAgent {
        EtcdAgent {
            cluster,
            core,
            tasks,
        }
    }

    /// The agent's name.
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// The strategy it attached with.
    pub fn strategy(&self) -> Strategy {
        self.core.strategy
    }

    /// The cluster handle it was attached through.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    fn usable(&self) -> Result<()> {
        if self.core.lock().session.taken {
            return Err(Error::LeaseLost(LeaseLost {
                name: self.core.name.clone(),
            }));
        }
        Ok(())
    }

    /// Read an artifact: its bytes, version, and whether this agent's copy was current (a HIT,
    /// served from this process without a round trip). After a MISS the agent holds the
    /// version read and is registered as its holder.
    pub fn get(&self, key: &str) -> Result<Read> {
        check_key(key)?;
        if let Some((bytes, version)) = self.core.try_hit(key) {
            return Ok(Read {
                bytes,
                version,
                hit: true,
            });
        }
        self.usable()?;
        self.cluster.run(read::miss(&self.core, key))
    }

    /// A linearizable read: as [`EtcdAgent::get`], but the artifact's current revision is
    /// first confirmed by the cluster (one round trip, even for a HIT), so the version
    /// returned was the current one at some moment during the call. A plain `get` promises
    /// less while a write is waiting for acknowledgements: see `docs/protocol-etcd.md`,
    /// "What a read promises".
    pub fn get_linearizable(&self, key: &str) -> Result<Read> {
        check_key(key)?;
        self.usable()?;
        self.cluster.run(read::linearizable(&self.core, key))
    }

    /// Whether this agent's copy is current (reads the current version from the cluster).
    pub fn check(&self, key: &str) -> Result<Check> {
        check_key(key)?;
        let net = &self.core.net;
        let l = &net.layout;
        let (meta, view) = self.cluster.run(async {
            let txn = etcd_client::Txn::new().and_then([
                etcd_client::TxnOp::get(l.meta(key), None),
                etcd_client::TxnOp::get(l.view(&self.core.name, key), None),
            ]);
            let resp = net.read_txn(txn).await?;
            let meta = crate::net::got_one(&resp, 0)
                .map(|kv| Meta::decode(kv.value()))
                .transpose()?;
            let view = crate::net::got_one(&resp, 1)
                .map(|kv| decode_version(kv.value()))
                .transpose()?;
            Ok::<_, Error>((meta, view))
        })?;
        let current = meta.map_or(0, |m| m.version);
        let now = Instant::now();
        let state = self.core.lock();
        let valid = state
            .entries
            .get(key)
            .is_some_and(|e| state.coherent(e, now) && e.version == current);
        Ok(Check {
            held: view.filter(|v| *v != 0),
            current,
            valid,
        })
    }

    /// Whether this agent's copy is valid, from local state alone (no round trip): a peer's
    /// write clears it before that write returns. `false` for an unknown key.
    pub fn is_valid(&self, key: &str) -> Result<bool> {
        check_key(key)?;
        let now = Instant::now();
        let state = self.core.lock();
        Ok(state
            .entries
            .get(key)
            .is_some_and(|e| state.coherent(e, now)))
    }

    fn write(&self, key: &str, payload: Option<&[u8]>, cond: Condition) -> Result<Version> {
        check_key(key)?;
        if let Some(bytes) = payload
            && bytes.len() > MAX_PAYLOAD
        {
            return Err(Error::PayloadTooLarge {
                len: bytes.len() as u64,
                max: MAX_PAYLOAD as u64,
            });
        }
        self.usable()?;
        self.cluster
            .run(write::write(&self.core, key, payload, cond))
    }

    /// Write an artifact under `cond` ([`Condition::View`]: refused with
    /// [`Error::Conflict`] if this agent last read an older version). Returns the new version
    /// once every other agent's copy of an older version is invalid (acknowledged, or its
    /// session gone). [`Error::Held`] if a live agent holds the artifact.
    pub fn put(&self, key: &str, bytes: &[u8], cond: Condition) -> Result<Version> {
        self.write(key, Some(bytes), cond)
    }

    /// [`EtcdAgent::put`] under [`Condition::Version`]: compare-and-set.
    pub fn put_if(&self, key: &str, expected: Version, bytes: &[u8]) -> Result<Version> {
        self.write(key, Some(bytes), Condition::Version(expected))
    }

    /// Delete an artifact under `cond`. The deletion is a version of its own (a tombstone);
    /// a later write continues from it. [`Error::NotFound`] if it does not exist.
    pub fn delete(&self, key: &str, cond: Condition) -> Result<Version> {
        self.write(key, None, cond)
    }

    /// Take the artifact exclusively (E) for `lease` (rounded up to whole seconds): no one
    /// else can write it until this agent commits or releases, or the lease runs out (then
    /// the hold is gone and a late commit is [`Error::Fenced`]). Fails at once with
    /// [`Error::Held`] if a live agent holds it.
    pub fn acquire(&self, key: &str, lease: Duration) -> Result<Hold> {
        check_key(key)?;
        self.usable()?;
        self.cluster.run(hold::acquire(&self.core, key, lease))
    }

    /// Publish `bytes` as the next version and give the hold up. [`Error::Fenced`] if the
    /// hold was lost: nothing is written then.
    pub fn commit(&self, hold: Hold, bytes: &[u8]) -> Result<Version> {
        if bytes.len() > MAX_PAYLOAD {
            return Err(Error::PayloadTooLarge {
                len: bytes.len() as u64,
                max: MAX_PAYLOAD as u64,
            });
        }
        self.cluster.run(hold::commit(&self.core, hold, bytes))
    }

    /// Give the hold up without writing. [`Error::Fenced`] if it was lost already.
    pub fn release(&self, hold: Hold) -> Result<()> {
        self.cluster.run(hold::release(&self.core, hold))
    }

    /// Extend the hold to `lease` from now. [`Error::Fenced`] if it was lost.
    pub fn renew(&self, hold: &mut Hold, lease: Duration) -> Result<()> {
        self.cluster.run(hold::renew(&self.core, hold, lease))
    }

    /// Block until the artifact's version exceeds `since`, or `timeout` passes (`None`:
    /// forever; the per-request timeout does not apply). [`Error::NotFound`] if it was never
    /// written.
    pub fn wait_changed(
        &self,
        key: &str,
        since: Version,
        timeout: Option<Duration>,
    ) -> Result<WaitResult> {
        check_key(key)?;
        self.cluster
            .run_unbounded(wait::wait_changed(&self.core, key, since, timeout))
    }

    /// Receive change events for every key starting with `prefix`, written after this call
    /// returns (by other agents). Needs [`Strategy::Eager`].
    pub fn subscribe(&self, prefix: &str) -> Result<()> {
        wait::subscribe(&self.core, prefix)
    }

    /// Stop receiving events for `prefix`; `false` if it was not subscribed.
    pub fn unsubscribe(&self, prefix: &str) -> bool {
        wait::unsubscribe(&self.core, prefix)
    }

    /// Take up to `max` waiting events, without blocking.
    pub fn try_events(&self, max: usize) -> Events {
        wait::take_events(&self.core, max, Some(Duration::ZERO))
    }

    /// Take up to `max` events, blocking until one arrives or `timeout` passes (then the
    /// result is empty). `None` waits forever.
    pub fn wait_events(&self, max: usize, timeout: Option<Duration>) -> Events {
        wait::take_events(&self.core, max, timeout)
    }

    /// Keys of existing artifacts starting with `prefix`, sorted.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.cluster.list(prefix)
    }

    /// A snapshot of the prefix (see [`Cluster::status`]).
    pub fn status(&self) -> Result<Status> {
        self.cluster.status()
    }

    /// What this agent's last completed write waited for.
    pub fn last_write(&self) -> WriteStats {
        self.core.lock().last_write
    }

    /// Write every operation-log record this agent has made so far to the cluster now,
    /// instead of within the flusher's next few tens of milliseconds (bounded by
    /// `Options::op_timeout`). Operations never wait for the log; this is for readers that
    /// need the agent's latest records (tests, a final report).
    pub fn flush_log(&self) -> Result<()> {
        if !self.core.log_on {
            return Ok(());
        }
        self.cluster.run(ship::flush_all(&self.core))
    }

    /// Until when this process knows its session lease is alive, if it is.
    pub fn session_deadline(&self) -> Option<Instant> {
        let state = self.core.lock();
        state.session.deadline.filter(|_| !state.session.lost)
    }
}

impl Drop for EtcdAgent {
    /// Detach within `Options::detach_timeout` whatever the cluster's state: the last log
    /// records and the revocation of the session lease are attempted until then (with no
    /// quorum they fail, and the lease expires on the cluster's side after its TTL).
    fn drop(&mut self) {
        let deadline = Instant::now() + self.core.net.options.detach_timeout;
        // Stop the background tasks first: a flush in the flusher's hands (waiting for a
        // cluster that does not answer) must not hold the final flush up.
        for task in &self.tasks {
            task.abort();
        }
        if self.core.log_on {
            // The last record, then everything still buffered, while the session holds the
            // name (the flusher's transactions require it).
            self.core.log(Rec::new(LogOp::Detach, LogOutcome::Ok));
            let core = Arc::clone(&self.core);
            let _ = self
                .cluster
                .run(async move { bounded(deadline, ship::flush_until(&core, deadline)).await });
        }
        let lease = {
            let mut state = self.core.lock();
            state.closed = true;
            state.lose_session();
            state.session.lease
        };
        self.core.changed.notify_all();
        // Detach: revoking the lease removes `s/<name>` and every registration at once.
        let net = self.core.net.clone();
        let _ = self
            .cluster
            .run(async move { bounded(deadline, net.revoke(lease)).await });
    }
}

/// `fut`, or [`Error::Unavailable`] once `deadline` passes.
async fn bounded<T>(deadline: Instant, fut: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout_at(deadline.into(), fut)
        .await
        .unwrap_or_else(|_| {
            Err(Error::Unavailable(
                "no answer before the detach deadline".to_owned(),
            ))
        })
}

impl std::fmt::Debug for EtcdAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdAgent")
            .field("name", &self.core.name)
            .finish_non_exhaustive()
    }
}

//! The connection to the cluster shared by a cluster handle, its agents and their background
//! tasks, with the engine's settings and small async helpers over `etcd-client`.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{
    Client, GetOptions, KeyValue, Txn, TxnOpResponse, TxnResponse, WatchOptions, WatchResponse,
    WatchStream,
};

use crate::error::{Error, Result};
use crate::layout::Layout;

/// Most operation-log records kept per agent.
pub const MAX_LOG_RECORDS: u32 = 1 << 20;

/// Settings of a cluster handle and the agents attached through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// TTL of an agent's session lease (whole seconds, at least 1; etcd may raise it to its
    /// minimum). A dead or stopped agent's copies stop blocking writers after this long.
    pub session_ttl: Duration,
    /// A HIT is served only until (time the last answered keepalive was sent) + TTL − this.
    /// Covers the drift between hosts' clock rates over one TTL (see docs/protocol-etcd.md).
    pub safety_margin: Duration,
    /// How long a writer waits for a registered holder's acknowledgement before it revokes
    /// that holder's session (and then waits out its TTL).
    pub ack_timeout: Duration,
    /// Bound on any single request to the cluster, retries through other members included
    /// (URL option `timeout`).
    pub op_timeout: Duration,
    /// Bound on one attempt of a request at one member. A member that does not answer within
    /// it (stopped, paused, cut off) is left for the next member: a read is sent again, a write fails with [`crate::Error::Unavailable`] (it
    /// may have been applied; the caller judges) instead of stalling for as long as the member
    /// is stopped. Longer than any answer of a healthy cluster (etcd's default election is 1 s).
    pub request_timeout: Duration,
    /// Bound on detaching an agent (flushing its last log records and revoking its session
    /// lease) when it is dropped: with no quorum, a process exits after this long, and its
    /// session lease expires on the cluster's side anyway.
    pub detach_timeout: Duration,
    /// Operation-log records kept in the cluster per agent (a ring: the newest are kept);
    /// 0: agents attached through this handle log nothing. See docs/protocol-etcd.md,
    /// "Operation log".
    pub log_records: u32,
    /// Records an agent buffers in its process before they are flushed to the cluster; when
    /// the buffer is full, further records are dropped and counted (a `lost` record says how
    /// many), so a slow cluster never blocks an operation.
    pub log_buffer: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            session_ttl: Duration::from_secs(5),
            safety_margin: Duration::from_millis(250),
            ack_timeout: Duration::from_secs(10),
            op_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(2),
            detach_timeout: Duration::from_secs(2),
            log_records: 1024,
            log_buffer: 4096,
        }
    }
}

impl Options {
    /// Validate.
    pub(crate) fn check(&self) -> Result<()> {
        if self.session_ttl < Duration::from_secs(1) || self.session_ttl.subsec_nanos() != 0 {
            return Err(Error::InvalidConfig(format!(
                "session_ttl must be a whole number of seconds, at least 1 (etcd leases count seconds), not {:?}",
                self.session_ttl
            )));
        }
        if self.safety_margin >= self.session_ttl {
            return Err(Error::InvalidConfig(
                "safety_margin must be shorter than session_ttl".to_owned(),
            ));
        }
        if self.log_records > MAX_LOG_RECORDS {
            return Err(Error::InvalidConfig(format!(
                "log_records is at most {MAX_LOG_RECORDS} per agent, not {}",
                self.log_records
            )));
        }
        if self.log_records > 0 && self.log_buffer == 0 {
            return Err(Error::InvalidConfig(
                "log_buffer must be at least 1 record when logging (log_records > 0)".to_owned(),
            ));
        }
        for (name, value) in [
            ("op_timeout", self.op_timeout),
            ("request_timeout", self.request_timeout),
        ] {
            if value.is_zero() {
                return Err(Error::InvalidConfig(format!("{name} must not be zero")));
            }
        }
        Ok(())
    }

    pub(crate) fn ttl_secs(&self) -> i64 {
        i64::try_from(self.session_ttl.as_secs()).unwrap_or(i64::MAX)
    }
}

/// Client, key layout and settings: cheap to clone, owned by background tasks too.
#[derive(Clone)]
pub(crate) struct Net {
    pub(crate) members: Arc<Members>,
    pub(crate) layout: Layout,
    pub(crate) options: Options,
}

/// The cluster's members, a client each, and the one requests go to. A request that finds its
/// member hung (no answer within the request timeout) or unable to serve (unreachable, or no
/// leader: cut off from the majority) moves every later request to the next member, as etcd's
/// own client pins one endpoint and leaves it on failure. A balancer over all members instead
/// sends about one request in three to a hung member for as long as it is hung, each costing a
/// request timeout.
pub(crate) struct Members {
    clients: Vec<Client>,
    preferred: Mutex<usize>,
}

impl Members {
    /// `clients`: at least one; requests start at `first` (modulo their number).
    pub(crate) fn new(clients: Vec<Client>, first: usize) -> Members {
        let first = first % clients.len().max(1);
        Members {
            clients,
            preferred: Mutex::new(first),
        }
    }

    /// The member requests go to now: its index and client.
    pub(crate) fn pick(&self) -> (usize, Client) {
        let index = *self.preferred.lock().unwrap_or_else(|p| p.into_inner());
        (index, self.clients[index].clone())
    }

    /// Leave member `index` for the next one, unless a request has already left it.
    pub(crate) fn leave(&self, index: usize) {
        let mut preferred = self.preferred.lock().unwrap_or_else(|p| p.into_inner());
        if *preferred == index {
            *preferred = (index + 1) % self.clients.len();
        }
    }
}

/// Which failures of a request may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Reads, lease and watch calls: retry any failure that says the cluster (or the member
    /// asked) is unavailable.
    Idempotent,
    /// Writes: retry only failures where the request never left this process (no connection to
    /// the member picked); anything else may have been applied and is the caller's to judge.
    NotSent,
}

fn never_sent(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::TransportError(_) => true,
        etcd_client::Error::GRpcStatus(status) => {
            status.code() == tonic::Code::Unavailable
                && (status.message().contains("connect error")
                    || status.message().contains("Connection refused")
                    // Refused by the member before proposing (etcd's ErrNoLeader).
                    || status.message().contains("etcdserver: no leader"))
        }
        _ => false,
    }
}

fn unavailable(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(status) => matches!(
            status.code(),
            tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Unknown
                | tonic::Code::Aborted
        ),
        _ => false,
    }
}

impl Net {
    /// Run a request, retrying what `retry` allows, all within the operation timeout.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        what: &str,
        retry: Retry,
        mut request: F,
    ) -> Result<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let started = tokio::time::Instant::now();
        let deadline = started + self.options.op_timeout;
        let mut pause = Duration::from_millis(10);
        loop {
            let bound = deadline.min(tokio::time::Instant::now() + self.options.request_timeout);
            let (member, client) = self.members.pick();
            let attempt = tokio::time::timeout_at(bound, request(client)).await;
            let error = match attempt {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e)) => e,
                Err(_) => {
                    self.members.leave(member);
                    // A write that was sent may have been applied: not retried. A read is sent
                    // again (to the next member) while the operation timeout lasts.
                    if retry == Retry::NotSent || tokio::time::Instant::now() >= deadline {
                        return Err(Error::Unavailable(format!(
                            "{what}: no answer within {:?}",
                            started.elapsed()
                        )));
                    }
                    continue;
                }
            };
            if unavailable(&error) {
                self.members.leave(member);
            }
            let retryable = match retry {
                Retry::Idempotent => unavailable(&error),
                Retry::NotSent => never_sent(&error),
            };
            if !retryable || tokio::time::Instant::now() + pause >= deadline {
                return Err(Error::Unavailable(format!("{what}: {error}")));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// A transaction; read-only ones are retried on any unavailability, writes only when
    /// they were never sent.
    pub(crate) async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        self.call("transaction", Retry::NotSent, |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await
    }

    /// A transaction of gets only.
    pub(crate) async fn read_txn(&self, txn: Txn) -> Result<TxnResponse> {
        self.call("read", Retry::Idempotent, |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await
    }

    /// One key (linearizable), or `None`, and the revision read at.
    pub(crate) async fn get(&self, key: &str) -> Result<(Option<KeyValue>, i64)> {
        let mut resp = self
            .call("read", Retry::Idempotent, |mut c| {
                let key = key.to_owned();
                async move { c.get(key, None).await }
            })
            .await?;
        let rev = resp.header().map_or(0, |h| h.revision());
        Ok((resp.take_kvs().into_iter().next(), rev))
    }

    /// Every key under `prefix` (linearizable), and the revision read at.
    pub(crate) async fn range(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64)> {
        let mut resp = self
            .call("range read", Retry::Idempotent, |mut c| {
                let prefix = prefix.to_owned();
                async move { c.get(prefix, Some(GetOptions::new().with_prefix())).await }
            })
            .await?;
        let rev = resp.header().map_or(0, |h| h.revision());
        Ok((resp.take_kvs(), rev))
    }

    /// Delete every key under `prefix`.
    pub(crate) async fn delete_prefix(&self, prefix: &str) -> Result<()> {
        self.call("delete", Retry::Idempotent, |mut c| {
            let prefix = prefix.to_owned();
            async move {
                c.delete(
                    prefix,
                    Some(etcd_client::DeleteOptions::new().with_prefix()),
                )
                .await
            }
        })
        .await
        .map(drop)
    }

    /// A watch on `key` (with `prefix`: every key under it) from `start` on.
    pub(crate) async fn watch(&self, key: &str, prefix: bool, start: i64) -> Result<WatchStream> {
        let mut options = WatchOptions::new();
        if start > 0 {
            options = options.with_start_revision(start);
        }
        if prefix {
            options = options.with_prefix();
        }
        self.call("watch", Retry::Idempotent, |mut c| {
            let (key, options) = (key.to_owned(), options.clone());
            async move { c.watch(key, Some(options)).await }
        })
        .await
    }

    /// A watch on `key` (with `prefix`: every key under it) from the current revision on,
    /// returned once etcd confirmed it: every change committed after this returns is delivered.
    /// (A watch that starts at a past revision is "unsynced" in etcd and catches up in a
    /// background loop that runs every 100 ms: fine for recovery, too slow for the hot path.)
    pub(crate) async fn watch_now(&self, key: &str, prefix: bool) -> Result<WatchStream> {
        let mut stream = self.watch(key, prefix, 0).await?;
        let created = tokio::time::timeout(self.options.op_timeout, async {
            loop {
                match stream.message().await {
                    Ok(Some(resp)) if resp.created() => return Ok(()),
                    Ok(Some(_)) => {}
                    Ok(None) => return Err("the watch stream closed".to_owned()),
                    Err(e) => return Err(e.to_string()),
                }
            }
        })
        .await;
        match created {
            Ok(Ok(())) => Ok(stream),
            Ok(Err(why)) => Err(Error::Unavailable(format!("watch: {why}"))),
            Err(_) => Err(Error::Unavailable(format!(
                "watch: not confirmed within {:?}",
                self.options.op_timeout
            ))),
        }
    }

    /// The next message of a watch, or `None` once the stream broke or its member stopped
    /// answering: nothing for half a request timeout, then no answer to a progress request
    /// (which any live member answers at once) within the other half. A paused member otherwise keeps a
    /// watch silent, and its watcher deaf, for as long as it is paused; the caller watches
    /// again, through a member that answers.
    pub(crate) async fn next_message(&self, stream: &mut WatchStream) -> Option<WatchResponse> {
        let quiet = self.options.request_timeout / 2;
        let mut asked = false;
        loop {
            // `message` is cancel-safe: a timed-out call loses nothing.
            match tokio::time::timeout(quiet, stream.message()).await {
                Ok(Ok(Some(resp))) => return Some(resp),
                Ok(_) => return None,
                Err(_) if asked => return None,
                Err(_) => {
                    stream.request_progress().await.ok()?;
                    asked = true;
                }
            }
        }
    }

    pub(crate) async fn revoke(&self, lease: i64) -> Result<()> {
        let result = self
            .call("lease revoke", Retry::Idempotent, |mut c| async move {
                c.lease_revoke(lease).await
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            // Already expired or revoked: what revoking wanted.
            Err(Error::Unavailable(why)) if why.contains("lease not found") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The TTL (remaining, granted) of a lease; remaining ≤ 0 if it is gone.
    pub(crate) async fn lease_ttl(&self, lease: i64) -> Result<(i64, i64)> {
        let resp = self
            .call("lease ttl", Retry::Idempotent, |mut c| async move {
                c.lease_time_to_live(lease, None).await
            })
            .await?;
        Ok((resp.ttl(), resp.granted_ttl()))
    }

    /// Grant a lease of at least `ttl` (rounded up to whole seconds, at least 1 s).
    pub(crate) async fn grant(&self, ttl: Duration) -> Result<(i64, i64)> {
        let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let secs = i64::try_from(secs.max(1)).unwrap_or(i64::MAX);
        let resp = self
            .call("lease grant", Retry::Idempotent, |mut c| async move {
                c.lease_grant(secs, None).await
            })
            .await?;
        Ok((resp.id(), resp.ttl()))
    }
}

/// The revision a transaction was applied at.
pub(crate) fn revision(resp: &TxnResponse) -> i64 {
    resp.header().map_or(0, |h| h.revision())
}

/// The key-values returned by the `index`th operation of a transaction (a get).
pub(crate) fn got(resp: &TxnResponse, index: usize) -> Vec<KeyValue> {
    match resp.op_responses().into_iter().nth(index) {
        Some(TxnOpResponse::Get(mut get)) => get.take_kvs(),
        _ => Vec::new(),
    }
}

/// The single key-value the `index`th get of a transaction returned, if any.
pub(crate) fn got_one(resp: &TxnResponse, index: usize) -> Option<KeyValue> {
    got(resp, index).into_iter().next()
}

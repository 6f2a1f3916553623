//! The connection to the cluster shared by a cluster handle, its agents and their background
//! tasks, with the engine's settings and small async helpers over `etcd-client`.

use std::future::Future;
use std::time::Duration;

use etcd_client::{
    Client, GetOptions, KeyValue, Txn, TxnOpResponse, TxnResponse, WatchOptions, WatchStream,
};

use crate::error::{Error, Result};
use crate::layout::Layout;

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
    /// Bound on any single request to the cluster.
    pub op_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            session_ttl: Duration::from_secs(5),
            safety_margin: Duration::from_millis(250),
            ack_timeout: Duration::from_secs(10),
            op_timeout: Duration::from_secs(10),
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
        if self.op_timeout.is_zero() {
            return Err(Error::InvalidConfig(
                "op_timeout must not be zero".to_owned(),
            ));
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
    pub(crate) client: Client,
    pub(crate) layout: Layout,
    pub(crate) options: Options,
}

impl Net {
    /// Run one request future with the operation timeout.
    pub(crate) async fn timed<T, F>(&self, what: &str, fut: F) -> Result<T>
    where
        F: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        match tokio::time::timeout(self.options.op_timeout, fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(Error::Unavailable(format!("{what}: {e}"))),
            Err(_) => Err(Error::Unavailable(format!(
                "{what}: no answer within {:?}",
                self.options.op_timeout
            ))),
        }
    }

    pub(crate) async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        let mut client = self.client.clone();
        self.timed("transaction", client.txn(txn)).await
    }

    /// Every key under `prefix` (linearizable), and the revision read at.
    pub(crate) async fn range(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64)> {
        let mut client = self.client.clone();
        let mut resp = self
            .timed(
                "range read",
                client.get(prefix, Some(GetOptions::new().with_prefix())),
            )
            .await?;
        let rev = resp.header().map_or(0, |h| h.revision());
        Ok((resp.take_kvs(), rev))
    }

    /// A watch on `key` (with `prefix`: every key under it) from `start` on.
    pub(crate) async fn watch(&self, key: &str, prefix: bool, start: i64) -> Result<WatchStream> {
        let mut client = self.client.clone();
        let mut options = WatchOptions::new().with_start_revision(start);
        if prefix {
            options = options.with_prefix();
        }
        self.timed("watch", client.watch(key, Some(options))).await
    }

    pub(crate) async fn revoke(&self, lease: i64) -> Result<()> {
        let mut client = self.client.clone();
        match self.timed("lease revoke", client.lease_revoke(lease)).await {
            Ok(_) => Ok(()),
            // Already expired or revoked: what revoking wanted.
            Err(Error::Unavailable(why)) if why.contains("lease not found") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Grant a lease of at least `ttl` (rounded up to whole seconds, at least 1 s).
    pub(crate) async fn grant(&self, ttl: Duration) -> Result<(i64, i64)> {
        let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        let secs = i64::try_from(secs.max(1)).unwrap_or(i64::MAX);
        let mut client = self.client.clone();
        let resp = self
            .timed("lease grant", client.lease_grant(secs, None))
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

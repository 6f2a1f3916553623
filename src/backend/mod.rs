//! The backends, side by side: `shm/` (one segment in shared memory) and `etcd/` (a prefix on
//! an etcd cluster; a stand-in without the `etcd` feature). Each has the same shape: a segment
//! (`Shared`, `etcd::Segment`), an agent and a hold whose methods take the same arguments, so
//! the facade dispatches every call once, through [`dispatch!`].
//!
//! Adding a backend: a folder here with that shape, a variant in [`Engine`] and [`Hold`] (and
//! in the facade's `segment::Inner` and the log reader's source), and one arm in
//! [`dispatch!`]. `docs/architecture.md` has the whole picture.

pub(crate) mod etcd;
pub(crate) mod shm;

use crate::Version;
use crate::error::Result;

/// One `match` over the backends, written once: `dispatch!(Engine, &self.engine, a => a.get(k))`
/// runs the same call on whichever backend `Engine` holds (as tokio's scheduler `Handle`
/// dispatches over its flavours). `$enum` is any enum with one variant per backend in scope
/// at the call.
macro_rules! dispatch {
    ($enum:ident, $on:expr, $backend:ident => $call:expr) => {
        match $on {
            $enum::Shm($backend) => $call,
            $enum::Etcd($backend) => $call,
        }
    };
}
pub(crate) use dispatch;

/// The backend behind an [`crate::Agent`]: every per-agent call is one `match` on it, a
/// predictable branch, so the shared-memory HIT path keeps its cost (no virtual call, no
/// allocation).
pub(crate) enum Engine {
    Shm(shm::Agent),
    Etcd(Box<etcd::Agent>),
}

/// An exclusive hold, owned by the backend that granted it: each variant carries what its
/// backend needs to commit, release or renew it, so a hold cannot be paired with another
/// backend's agent; only the key, which the guard keeps, is passed in (for the messages of
/// errors). See [`crate::WriteGuard`].
pub(crate) enum Hold {
    Shm(shm::Hold),
    // Without the `etcd` feature only the uninhabited stand-in would make one.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    Etcd(etcd::Hold),
}

impl Hold {
    /// The artifact's version when the hold was taken (0: never written).
    pub(crate) fn version(&self) -> Version {
        dispatch!(Hold, self, hold => hold.version())
    }

    /// Publish `bytes` as the next version of `key` (the key held, for the messages of
    /// errors) and give the hold up.
    pub(crate) fn commit(self, key: &str, bytes: &[u8]) -> Result<Version> {
        dispatch!(Hold, self, hold => hold.commit(key, bytes))
    }

    /// Give the hold on `key` up without writing.
    pub(crate) fn release(self, key: &str) -> Result<()> {
        dispatch!(Hold, self, hold => hold.release(key))
    }

    /// Extend the lease on `key` to `lease` from now.
    pub(crate) fn renew(&mut self, key: &str, lease: std::time::Duration) -> Result<()> {
        dispatch!(Hold, self, hold => hold.renew(key, lease))
    }
}

//! An agent's local side: its session, its copies (the cache lines) and their valid flags,
//! its views, subscriptions and inbox; shared by the caller's thread and the agent's
//! background tasks under one mutex.
//!
//! The HIT rule (docs/protocol-etcd.md §4): a copy is served locally only while it is marked
//! valid, was fetched in the current session epoch, and the session lease is known alive
//! (now < the local deadline). The watcher clears the flag *before* it acknowledges an
//! invalidation, so once a writer has seen every acknowledgement no flag is still set.

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::net::Net;
use crate::oplog::ship::Shipper;
use crate::oplog::{LogBuf, Rec};
use crate::types::{ChangeEvent, Strategy, Version, WriteStats};

/// Most events an inbox keeps; beyond, events are counted as lost.
pub(crate) const INBOX_CAPACITY: usize = 4096;

/// The agent's session lease as this process knows it.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The etcd lease of the session; registrations are attached to it.
    pub(crate) lease: i64,
    /// Create revision of `s/<name>`: the session's identity in holds.
    pub(crate) rev: i64,
    /// Bumped whenever the session is lost: copies fetched in an older epoch are never HITs.
    pub(crate) epoch: u64,
    /// Until when the lease is certainly alive in the cluster (minus the safety margin).
    pub(crate) deadline: Option<Instant>,
    /// The lease is gone; a new one is being set up.
    pub(crate) lost: bool,
    /// The name was taken by another session while ours was lost: the agent is finished.
    pub(crate) taken: bool,
    /// The seq after the agent's newest log record in the cluster when the session opened.
    pub(crate) log_next: u64,
}

impl Session {
    pub(crate) fn alive(&self, now: Instant) -> bool {
        !self.lost && self.deadline.is_some_and(|d| now < d)
    }
}

/// One artifact's local copy.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) version: Version,
    pub(crate) bytes: Vec<u8>,
    /// mod_revision of the version held.
    pub(crate) meta_rev: i64,
    /// Newest revision of the artifact the watcher has seen.
    pub(crate) latest_rev: i64,
    pub(crate) valid: bool,
    pub(crate) epoch: u64,
    /// A registration may exist in the cluster (set before any registration is sent).
    pub(crate) registered: bool,
    /// Bumped before every registration is sent.
    pub(crate) reg_seq: u64,
    pub(crate) fetched: Instant,
    pub(crate) hits: u32,
    /// This agent wrote the version held: a conditional write refused on the local copy must
    /// know it (see `write::await_own_write`).
    pub(crate) own: bool,
}

impl Entry {
    pub(crate) fn empty(now: Instant) -> Entry {
        Entry {
            version: 0,
            bytes: Vec::new(),
            meta_rev: 0,
            latest_rev: 0,
            valid: false,
            epoch: 0,
            registered: false,
            reg_seq: 0,
            fetched: now,
            hits: 0,
            own: false,
        }
    }
}

/// A subscription: events of keys under `prefix` written after revision `from`.
#[derive(Debug, Clone)]
pub(crate) struct Sub {
    pub(crate) prefix: String,
    pub(crate) from: i64,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) session: Session,
    pub(crate) entries: HashMap<String, Entry>,
    /// Views known to this process (loaded lazily from `v/`).
    pub(crate) views: HashMap<String, Version>,
    pub(crate) subs: Vec<Sub>,
    pub(crate) inbox: VecDeque<ChangeEvent>,
    pub(crate) lost_events: u64,
    /// Revision of the last meta event the watcher processed.
    pub(crate) watched_rev: i64,
    pub(crate) closed: bool,
    pub(crate) last_write: WriteStats,
    /// The operation log's buffer (under this mutex: a HIT takes it anyway).
    pub(crate) log: LogBuf,
}

impl State {
    /// Whether `entry` may be served as a HIT now (not counting the strategy).
    pub(crate) fn coherent(&self, entry: &Entry, now: Instant) -> bool {
        entry.valid && entry.epoch == self.session.epoch && self.session.alive(now)
    }

    /// Invalidate every copy and start a new epoch: the session is gone.
    pub(crate) fn lose_session(&mut self) {
        self.session.epoch += 1;
        self.session.lost = true;
        self.session.deadline = None;
        for entry in self.entries.values_mut() {
            entry.valid = false;
        }
    }
}

/// What an agent's caller and its background tasks share.
pub(crate) struct Core {
    pub(crate) name: String,
    pub(crate) net: Net,
    pub(crate) strategy: Strategy,
    state: Mutex<State>,
    /// Signalled on every processed event, inbox push and session change.
    pub(crate) changed: Condvar,
    /// Whether this agent logs its operations (`Options::log_records > 0`).
    pub(crate) log_on: bool,
    /// Wakes the log flusher before its next tick.
    pub(crate) log_wake: tokio::sync::Notify,
    /// The flusher's state: one flush at a time.
    pub(crate) shipper: tokio::sync::Mutex<Shipper>,
}

impl Core {
    /// An agent's core; its log's first record will be `log_next`.
    pub(crate) fn new(
        name: String,
        net: Net,
        strategy: Strategy,
        session: Session,
        log_next: u64,
    ) -> Core {
        let log_on = net.options.log_records > 0;
        let log = LogBuf::new(log_on, net.options.log_buffer as usize, log_next);
        Core {
            name,
            net,
            strategy,
            log_on,
            log_wake: tokio::sync::Notify::new(),
            shipper: tokio::sync::Mutex::new(Shipper::default()),
            state: Mutex::new(State {
                session,
                entries: HashMap::new(),
                views: HashMap::new(),
                subs: Vec::new(),
                inbox: VecDeque::new(),
                lost_events: 0,
                watched_rev: 0,
                closed: false,
                last_write: WriteStats::default(),
                log,
            }),
            changed: Condvar::new(),
        }
    }

    /// The state. A panic while it was held cannot leave it half-updated in a way that makes
    /// a stale HIT possible (flags are only ever cleared before acknowledgements), so a
    /// poisoned lock is taken over.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Serve `key` from the local copy if it is a HIT under the agent's strategy.
    pub(crate) fn try_hit(&self, key: &str) -> Option<(Vec<u8>, Version)> {
        let now = Instant::now();
        let mut state = self.lock();
        let coherent = state
            .entries
            .get(key)
            .is_some_and(|e| state.coherent(e, now));
        if !coherent {
            return None;
        }
        let entry = state.entries.get_mut(key)?;
        let fresh = match self.strategy {
            Strategy::Lazy | Strategy::Eager => true,
            Strategy::Lease(d) => now.duration_since(entry.fetched) < d,
            Strategy::AccessCount(n) => entry.hits < n,
        };
        if !fresh {
            entry.valid = false;
            return None;
        }
        entry.hits = entry.hits.saturating_add(1);
        let (bytes, version) = (entry.bytes.clone(), entry.version);
        // Counted in memory: no clock read unless this HIT starts a new run.
        state.log.hit(key, version, bytes.len() as u64);
        Some((bytes, version))
    }

    /// This agent was told (a conflict, an acquire) that `key` was written at revision `rev`:
    /// a copy of an older revision stops being a HIT now rather than when the watcher delivers
    /// that write, so the agent's own reads never go back behind a version it was told of.
    /// (The watcher still acknowledges the write when it arrives.)
    pub(crate) fn seen_newer(&self, key: &str, rev: i64) {
        let mut state = self.lock();
        if let Some(entry) = state.entries.get_mut(key) {
            entry.latest_rev = entry.latest_rev.max(rev);
            if rev > entry.meta_rev {
                entry.valid = false;
            }
        }
    }

    /// Record an operation in the agent's log (nothing if it does not log).
    pub(crate) fn log(&self, rec: Rec) {
        if !self.log_on {
            return;
        }
        let wake = self.lock().log.push(rec);
        if wake {
            self.log_wake.notify_one();
        }
    }
}

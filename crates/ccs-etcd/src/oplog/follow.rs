//! Reading the log: a range read of `l/` at one revision (paginated), then, for a follower, an
//! etcd watch on `l/` from the next revision (puts only: the ring's deletions are not news).
//!
//! Per agent the reader keeps the next seq it expects. A record above it means the records in
//! between are gone (overwritten in the ring before they were read, or never written because
//! the agent's flusher had to drop them): a `lost` record says how many, just before the
//! record after the gap. A HIT run written again with a larger count is returned again with its
//! seq and the *additional* count, as on shared memory. Anything that is not a record this
//! engine writes is skipped and counted (`malformed`), never returned.

use std::collections::HashMap;
use std::time::Duration;

use etcd_client::{GetOptions, WatchFilterType, WatchOptions, WatchStream};

use super::wire::decode;
use super::{LogOp, LogOutcome, LogRecord};
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::net::{Net, Retry};
use ccs_types::{LogBatch, merge_order};

/// Keys per page of the initial read.
const PAGE: i64 = 1000;

#[derive(Debug, Clone, Copy, Default)]
struct Cursor {
    /// The next seq expected.
    next: u64,
    /// The last record returned, if it is a HIT run: (seq, count returned so far).
    run: Option<(u64, u64)>,
}

/// A cursor over a prefix's operation log (see [`Cluster::log_follow`]).
pub struct LogFollower {
    cluster: Cluster,
    /// Keep a watch after the first read.
    live: bool,
    /// The first read has been made: everything up to `rev` has been seen.
    started: bool,
    rev: i64,
    stream: Option<WatchStream>,
    cursors: HashMap<String, Cursor>,
}

impl LogFollower {
    pub(crate) fn new(cluster: Cluster, live: bool) -> LogFollower {
        LogFollower {
            cluster,
            live,
            started: false,
            rev: 0,
            stream: None,
            cursors: HashMap::new(),
        }
    }

    /// Skip everything logged so far: the next poll returns only newer records.
    pub fn skip_to_end(&mut self) -> Result<()> {
        let mut ignored = LogBatch::default();
        self.read_all(&mut ignored, true)?;
        self.started = true;
        Ok(())
    }

    /// Everything logged since the last poll (the first poll: everything the log holds),
    /// without waiting.
    pub fn poll(&mut self) -> Result<LogBatch> {
        self.poll_wait(Duration::ZERO)
    }

    /// As [`LogFollower::poll`], waiting up to `timeout` for the first new record.
    pub fn poll_wait(&mut self, timeout: Duration) -> Result<LogBatch> {
        let mut batch = LogBatch::default();
        if !self.started {
            self.read_all(&mut batch, false)?;
            self.started = true;
        } else {
            self.watch_some(&mut batch, timeout)?;
        }
        batch.records = merge_order(std::mem::take(&mut batch.records));
        Ok(batch)
    }

    /// Read every record (`skip`: only to position the cursors), then watch from there.
    fn read_all(&mut self, batch: &mut LogBatch, skip: bool) -> Result<()> {
        let net = self.cluster.net().clone();
        let (kvs, rev) = self.cluster.run(read_prefix(&net))?;
        for (key, value) in &kvs {
            self.arrive(batch, key, value, skip);
        }
        self.rev = rev;
        self.stream = None;
        if self.live {
            let stream = self.cluster.run(open_watch(&net, rev + 1))?;
            self.stream = Some(stream);
        }
        Ok(())
    }

    /// Take what the watch has (waiting up to `timeout` for the first event).
    fn watch_some(&mut self, batch: &mut LogBatch, timeout: Duration) -> Result<()> {
        if !self.live {
            // A one-shot reader: read again, returning only what is new.
            return self.read_all(batch, false);
        }
        let net = self.cluster.net().clone();
        let mut stream = match self.stream.take() {
            Some(stream) => stream,
            None => self.cluster.run(open_watch(&net, self.rev + 1))?,
        };
        let mut from = self.rev;
        let (arrivals, outcome) = self.cluster.run(async {
            let mut arrivals: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            let deadline = tokio::time::Instant::now() + timeout;
            let outcome = loop {
                let wait = if arrivals.is_empty() {
                    deadline.saturating_duration_since(tokio::time::Instant::now())
                } else {
                    Duration::ZERO
                };
                let message = match tokio::time::timeout(wait, stream.message()).await {
                    Err(_) => break Watch::Open,
                    Ok(message) => message,
                };
                match message {
                    Ok(Some(resp)) if resp.canceled() => {
                        break if resp.compact_revision() > 0 {
                            Watch::Compacted
                        } else {
                            Watch::Broken
                        };
                    }
                    Ok(Some(resp)) => {
                        for event in resp.events() {
                            if let Some(kv) = event.kv() {
                                from = from.max(kv.mod_revision());
                                arrivals.push((kv.key().to_vec(), kv.value().to_vec()));
                            }
                        }
                    }
                    Ok(None) | Err(_) => break Watch::Broken,
                }
            };
            Ok::<_, Error>((arrivals, outcome))
        })?;
        for (key, value) in &arrivals {
            self.arrive(batch, key, value, false);
        }
        self.rev = from;
        match outcome {
            Watch::Open => self.stream = Some(stream),
            // Re-watched at the next poll, from the next revision not seen.
            Watch::Broken => self.stream = None,
            // History is gone: read what the log holds now (cursors skip what was returned).
            Watch::Compacted => self.read_all(batch, false)?,
        }
        Ok(())
    }

    /// One record as read: decoded, checked against the agent's cursor.
    fn arrive(&mut self, batch: &mut LogBatch, key: &[u8], value: &[u8], skip: bool) {
        let layout = &self.cluster.net().layout;
        let Some((agent, seq)) = layout.split_log(key) else {
            batch.malformed += 1;
            return;
        };
        let Some(rec) = decode(seq, value) else {
            batch.malformed += 1;
            return;
        };
        let cursor = self.cursors.entry(agent.to_owned()).or_default();
        if skip {
            cursor.next = cursor.next.max(seq + 1);
            cursor.run = None;
            return;
        }
        if seq >= cursor.next {
            if seq > cursor.next {
                let count = seq - cursor.next;
                batch.missed += count;
                batch.records.push(LogRecord {
                    seq,
                    t_ns: rec.t_ns,
                    agent: agent.to_owned(),
                    op: LogOp::Lost,
                    outcome: LogOutcome::Ok,
                    key: None,
                    version: 0,
                    held: 0,
                    count,
                    bytes: 0,
                    other: None,
                    mode: None,
                    revision: None,
                });
            }
            cursor.next = seq + 1;
            cursor.run = (rec.op == LogOp::Get && rec.outcome == LogOutcome::Hit)
                .then_some((seq, rec.count));
            batch.records.push(rec.into_record(agent));
        } else if let Some((run_seq, seen)) = cursor.run
            && run_seq == seq
            && rec.count > seen
        {
            cursor.run = Some((seq, rec.count));
            let more = rec.count - seen;
            batch.records.push(LogRecord {
                count: more,
                ..rec.into_record(agent)
            });
        }
    }
}

impl std::fmt::Debug for LogFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogFollower")
            .field("rev", &self.rev)
            .field("agents", &self.cursors.len())
            .finish_non_exhaustive()
    }
}

enum Watch {
    Open,
    Broken,
    Compacted,
}

/// The end of the range of every key starting with `prefix`.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Every (key, value) under `l/`, read at one revision in pages; and that revision.
async fn read_prefix(net: &Net) -> Result<(Vec<(Vec<u8>, Vec<u8>)>, i64)> {
    let prefix = net.layout.logs();
    let end = prefix_end(&prefix);
    'attempt: for _ in 0..3 {
        let mut out = Vec::new();
        let mut start = prefix.as_bytes().to_vec();
        let mut rev = 0i64;
        loop {
            let mut options = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
            if rev > 0 {
                options = options.with_revision(rev);
            }
            let result = net
                .call("log read", Retry::Idempotent, |mut c| {
                    let (start, options) = (start.clone(), options.clone());
                    async move { c.get(start, Some(options)).await }
                })
                .await;
            let mut resp = match result {
                Ok(resp) => resp,
                // Compacted between two pages: start again at the newest revision.
                Err(Error::Unavailable(why)) if why.contains("compacted") => continue 'attempt,
                Err(e) => return Err(e),
            };
            if rev == 0 {
                rev = resp.header().map_or(0, |h| h.revision());
            }
            let more = resp.more();
            let kvs = resp.take_kvs();
            if let Some(last) = kvs.last() {
                start = last.key().to_vec();
                start.push(0);
            }
            out.extend(kvs.into_iter().map(|kv| {
                let (key, value) = kv.into_key_value();
                (key, value)
            }));
            if !more {
                return Ok((out, rev));
            }
        }
    }
    Err(Error::Unavailable(
        "the log kept being compacted while it was read".to_owned(),
    ))
}

/// A watch on `l/` (puts only) from revision `start`.
async fn open_watch(net: &Net, start: i64) -> Result<WatchStream> {
    let prefix = net.layout.logs();
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(start.max(1))
        .with_filters([WatchFilterType::NoDelete]);
    net.call("log watch", Retry::Idempotent, |mut c| {
        let (prefix, options) = (prefix.clone(), options.clone());
        async move { c.watch(prefix, Some(options)).await }
    })
    .await
}

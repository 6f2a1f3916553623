//! Reading the operation log of a live segment: on shared memory every agent's ring in the
//! segment, merged by time; on etcd the records the agents flushed to the cluster, merged by
//! `ccs_types::merge_order` (time, except that each key's writes keep their revision order).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ccs_protocol::{RawRecord, RecordRead};

use crate::backend::shm::Shared;
use crate::backend::{dispatch, etcd};
use crate::error::Result;
use crate::trace::{LogBatch, LogOp, LogOutcome, LogRecord};

/// How long a claimed record may stay unwritten before the reader skips it as lost (its
/// writer died between claiming and stamping it).
const ABANDONED: Duration = Duration::from_secs(1);

/// A cursor over a segment's log. A reader never slows an agent down: one that falls behind by
/// more than a ring is told how many records it missed.
pub struct LogReader {
    source: Source,
}

enum Source {
    Shm(ShmLog),
    Etcd(Box<etcd::LogFollower>),
}

impl LogReader {
    /// A reader of a shared-memory segment's rings, at the oldest record each still holds.
    pub(crate) fn shm(shared: Arc<Shared>) -> Result<LogReader> {
        Ok(LogReader {
            source: Source::Shm(ShmLog::new(shared)?),
        })
    }

    /// A reader of an etcd prefix's log, at the oldest record it still holds.
    pub(crate) fn etcd(follower: etcd::LogFollower) -> LogReader {
        LogReader {
            source: Source::Etcd(Box::new(follower)),
        }
    }

    /// Skip everything logged so far: the next poll returns only newer records.
    pub fn skip_to_end(&mut self) -> Result<()> {
        dispatch!(Source, &mut self.source, log => log.skip_to_end())
    }

    /// Everything logged since the last poll. On etcd, the first poll reads everything the
    /// log holds and later ones wait for nothing: what an agent made in its last few tens of
    /// milliseconds may still be in its process.
    pub fn poll(&mut self) -> Result<LogBatch> {
        dispatch!(Source, &mut self.source, log => log.poll())
    }
}

/// The reader of a shared-memory segment's rings.
struct ShmLog {
    shared: Arc<Shared>,
    cursors: Vec<Cursor>,
    names: HashMap<u32, String>,
    /// Each line's key, generation and base when last read.
    keys: HashMap<u32, (String, u64, u64)>,
}

#[derive(Debug, Clone, Default)]
struct Cursor {
    next: u64,
    /// The last record returned, if it was a HIT: its run may still grow.
    open_run: Option<LogRecord>,
    stuck_since: Option<Instant>,
}

impl ShmLog {
    /// A reader positioned at the oldest record each ring still holds.
    fn new(shared: Arc<Shared>) -> Result<ShmLog> {
        if shared.dir.log_capacity() == 0 {
            return Err(shared.general(ccs_protocol::ProtocolError::InvalidConfig(
                "this segment was created without an operation log (log_records = 0); \
                 create it with a log to watch it"
                    .into(),
            )));
        }
        Ok(ShmLog {
            shared,
            cursors: Vec::new(),
            names: HashMap::new(),
            keys: HashMap::new(),
        })
    }

    fn skip_to_end(&mut self) -> Result<()> {
        self.grow()?;
        let dir = &self.shared.dir;
        for (slot, cursor) in self.cursors.iter_mut().enumerate() {
            cursor.next = dir
                .log_next(slot as u32)
                .map_err(|e| self.shared.general(e))?;
            cursor.open_run = None;
        }
        Ok(())
    }

    fn poll(&mut self) -> Result<LogBatch> {
        self.grow()?;
        let mut batch = LogBatch::default();
        for slot in 0..self.cursors.len() as u32 {
            self.poll_ring(slot, &mut batch)?;
        }
        batch
            .records
            .sort_by(|a, b| (a.t_ns, &a.agent, a.seq).cmp(&(b.t_ns, &b.agent, b.seq)));
        Ok(batch)
    }

    fn grow(&mut self) -> Result<()> {
        let count = self
            .shared
            .dir
            .agent_count()
            .map_err(|e| self.shared.general(e))?;
        self.cursors.resize(count as usize, Cursor::default());
        Ok(())
    }

    fn poll_ring(&mut self, slot: u32, batch: &mut LogBatch) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        let dir = &shared.dir;
        let general = |e| shared.general(e);
        let head = dir.log_next(slot).map_err(general)?;
        let capacity = dir.log_capacity();
        let mut cursor = std::mem::take(&mut self.cursors[slot as usize]);
        if let Some(run) = &cursor.open_run
            && let Some(count) = dir.record_count(slot, run.seq).map_err(general)?
            && count > run.count
        {
            batch.records.push(LogRecord {
                count: count - run.count,
                ..run.clone()
            });
            cursor.open_run = Some(LogRecord {
                count,
                ..run.clone()
            });
        }
        let mut lost = 0;
        // The first sequence number lost, which the `Lost` record carries.
        let mut first_lost_seen = None;
        if head.saturating_sub(cursor.next) > capacity {
            first_lost_seen = Some(cursor.next);
            lost += head - capacity - cursor.next;
            cursor.next = head - capacity;
        }
        while cursor.next < head {
            match dir.read_record(slot, cursor.next).map_err(general)? {
                RecordRead::Ready(raw) => {
                    let record = self.decode(&raw)?;
                    cursor.open_run = (record.op == LogOp::Get
                        && record.outcome == LogOutcome::Hit)
                        .then(|| record.clone());
                    batch.records.push(record);
                }
                RecordRead::Lost => {
                    first_lost_seen.get_or_insert(cursor.next);
                    lost += 1;
                }
                RecordRead::NotYet => {
                    let since = *cursor.stuck_since.get_or_insert_with(Instant::now);
                    if since.elapsed() < ABANDONED {
                        break;
                    }
                    first_lost_seen.get_or_insert(cursor.next);
                    lost += 1;
                }
            }
            cursor.stuck_since = None;
            cursor.next += 1;
        }
        if lost > 0 {
            batch.missed += lost;
            batch.records.push(LogRecord {
                seq: first_lost_seen.unwrap_or(cursor.next),
                t_ns: ccs_os::monotonic_ns(),
                agent: self.name(slot),
                op: LogOp::Lost,
                outcome: LogOutcome::Ok,
                key: None,
                version: 0,
                held: 0,
                count: lost,
                bytes: 0,
                other: None,
                mode: None,
                revision: None,
            });
        }
        self.cursors[slot as usize] = cursor;
        Ok(())
    }

    fn decode(&mut self, raw: &RawRecord) -> Result<LogRecord> {
        let entry = raw.entry;
        let key = match entry.line {
            Some(line) => Some(self.key(line, entry.version)?),
            None => None,
        };
        Ok(LogRecord {
            seq: raw.seq,
            t_ns: entry.t_ns.unwrap_or(0),
            agent: self.name(raw.slot),
            op: entry.op,
            outcome: entry.outcome,
            key,
            version: entry.version,
            held: entry.held,
            count: raw.count,
            bytes: entry.bytes,
            other: entry.other.map(|slot| self.name(slot)),
            mode: entry.mode,
            revision: None,
        })
    }

    fn name(&mut self, slot: u32) -> String {
        let shared = &self.shared;
        self.names
            .entry(slot)
            .or_insert_with(|| shared.agent_name(slot))
            .clone()
    }

    /// The key that `version` of `line` belongs to (`#lineN` if the line was reused since).
    fn key(&mut self, line: u32, version: u64) -> Result<String> {
        let shared = &self.shared;
        let generation = shared.dir.generation(line).map_err(|e| shared.general(e))?;
        let cached = self
            .keys
            .get(&line)
            .filter(|(_, seen, _)| *seen == generation);
        let (key, base) = match cached {
            Some((key, _, base)) => (key.clone(), *base),
            None => match shared.dir.key_read(line).map_err(|e| shared.general(e))? {
                Some((key, generation, base)) => {
                    self.keys.insert(line, (key.clone(), generation, base));
                    (key, base)
                }
                None => return Ok(format!("#line{line}")),
            },
        };
        Ok(if ccs_protocol::version_of_key(version, base) {
            key
        } else {
            format!("#line{line}")
        })
    }
}

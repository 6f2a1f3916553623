//! An agent's log buffer, in its process, under the agent's mutex (the one a HIT takes
//! anyway): records wait here for the flusher (`ship`).
//!
//! * A record gets the agent's next sequence number and its time when it is buffered; times
//!   never decrease within the buffer (a realtime clock stepped back is clamped).
//! * Consecutive HITs of one version of one key are one record whose count grows in memory:
//!   the first HIT of a run reads the clock, the others only increment a counter. The open run
//!   is not in `pending`; the flusher takes a copy of it (with its current count) at each
//!   flush and writes it again, under the same sequence number, when its count has grown.
//! * A full buffer drops records, without giving them sequence numbers, and counts them; the
//!   count becomes a `lost` record of the agent as soon as there is room (or at the next
//!   flush), in the place of the records it stands for.

use super::{LogOp, LogOutcome, Rec, realtime_ns};
use crate::types::Version;

/// Pending records at which the flusher is woken before its next tick.
pub(crate) const FLUSH_BATCH: usize = 100;

#[derive(Debug)]
struct Run {
    rec: Rec,
    /// Assigned when the run is first flushed or closed.
    seq: Option<u64>,
    /// The count already handed to the flusher.
    written: u64,
}

/// The buffer.
#[derive(Debug)]
pub(crate) struct LogBuf {
    enabled: bool,
    capacity: usize,
    next_seq: u64,
    last_t: u64,
    pending: Vec<Rec>,
    dropped: u64,
    dropped_total: u64,
    run: Option<Run>,
}

impl LogBuf {
    /// A buffer of `capacity` records whose first record will be `next_seq`; `enabled: false`
    /// records nothing.
    pub(crate) fn new(enabled: bool, capacity: usize, next_seq: u64) -> LogBuf {
        LogBuf {
            enabled,
            capacity: capacity.max(1),
            next_seq,
            last_t: 0,
            pending: Vec::new(),
            dropped: 0,
            dropped_total: 0,
            run: None,
        }
    }

    /// Stop logging and forget what is buffered (the agent's name was taken elsewhere).
    pub(crate) fn disable(&mut self) {
        self.enabled = false;
        self.pending.clear();
        self.run = None;
    }

    /// Records dropped because the buffer was full, since the agent attached.
    #[cfg(test)]
    pub(crate) fn dropped_total(&self) -> u64 {
        self.dropped_total
    }

    /// The next sequence number.
    #[cfg(test)]
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    fn now(&mut self) -> u64 {
        self.last_t = self.last_t.max(realtime_ns());
        self.last_t
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Buffer `rec` (stamped now unless it carries a time). Returns whether the flusher
    /// should be woken now.
    pub(crate) fn push(&mut self, rec: Rec) -> bool {
        if !self.enabled {
            return false;
        }
        self.close_run();
        self.push_raw(rec);
        self.pending.len() >= FLUSH_BATCH
    }

    /// A HIT of `version` of `key`: counted in the open run if it is one of that version of
    /// that key (no clock, no allocation), else a new run.
    #[inline]
    pub(crate) fn hit(&mut self, key: &str, version: Version, bytes: u64) {
        if !self.enabled {
            return;
        }
        if let Some(run) = &mut self.run
            && run.rec.version == version
            && run.rec.key.as_deref() == Some(key)
        {
            run.rec.count = run.rec.count.saturating_add(1);
            return;
        }
        self.start_run(key, version, bytes);
    }

    #[cold]
    fn start_run(&mut self, key: &str, version: Version, bytes: u64) {
        self.close_run();
        let t_ns = self.now();
        self.run = Some(Run {
            rec: Rec {
                t_ns,
                bytes,
                ..Rec::new(LogOp::Get, LogOutcome::Hit)
                    .on(key)
                    .versions(version, version)
            },
            seq: None,
            written: 0,
        });
    }

    fn push_raw(&mut self, mut rec: Rec) {
        if self.pending.len() >= self.capacity {
            self.dropped += 1;
            self.dropped_total += 1;
            return;
        }
        if let Some(lost) = self.lost() {
            self.pending.push(lost);
        }
        let t_ns = if rec.t_ns == 0 { self.now() } else { rec.t_ns };
        self.last_t = self.last_t.max(t_ns);
        rec.t_ns = self.last_t;
        rec.seq = self.take_seq();
        self.pending.push(rec);
    }

    /// The `lost` record for the records dropped so far, if any.
    fn lost(&mut self) -> Option<Rec> {
        if self.dropped == 0 {
            return None;
        }
        let t_ns = self.now();
        let seq = self.take_seq();
        Some(Rec {
            seq,
            t_ns,
            count: std::mem::take(&mut self.dropped),
            ..Rec::new(LogOp::Lost, LogOutcome::Ok)
        })
    }

    /// End the open run: its last count goes to `pending` (a dropped update of a run already
    /// flushed only undercounts it).
    fn close_run(&mut self) {
        let Some(run) = self.run.take() else { return };
        if run.rec.count <= run.written {
            return;
        }
        match run.seq {
            None => self.push_raw(run.rec),
            Some(seq) if self.pending.len() < self.capacity => {
                self.pending.push(Rec { seq, ..run.rec });
            }
            Some(_) => {}
        }
    }

    /// Everything to write now, in sequence order: the pending records, a `lost` record for
    /// drops, and the open run's record if its count grew since the last flush.
    pub(crate) fn drain(&mut self) -> Vec<Rec> {
        let mut out = std::mem::take(&mut self.pending);
        out.extend(self.lost());
        if let Some(run) = &self.run
            && run.rec.count > run.written
        {
            let seq = match run.seq {
                Some(seq) => seq,
                None => self.take_seq(),
            };
            if let Some(run) = &mut self.run {
                run.seq = Some(seq);
                run.written = run.rec.count;
                out.push(Rec {
                    seq,
                    ..run.rec.clone()
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str) -> Rec {
        Rec::new(LogOp::Put, LogOutcome::Ok).on(key).versions(1, 0)
    }

    fn summary(recs: &[Rec]) -> Vec<(u64, LogOp, u64)> {
        recs.iter().map(|r| (r.seq, r.op, r.count)).collect()
    }

    #[test]
    fn hits_are_counted_in_runs_and_reflushed_as_they_grow() {
        let mut buf = LogBuf::new(true, 16, 5);
        buf.push(put("a"));
        for _ in 0..3 {
            buf.hit("a", 1, 10);
        }
        let first = buf.drain();
        assert_eq!(summary(&first), [(5, LogOp::Put, 1), (6, LogOp::Get, 3)]);
        assert!(first.windows(2).all(|w| w[0].t_ns <= w[1].t_ns));
        assert!(buf.drain().is_empty(), "nothing new");
        buf.hit("a", 1, 10);
        buf.hit("a", 1, 10);
        assert_eq!(summary(&buf.drain()), [(6, LogOp::Get, 5)]);
        // Another version ends the run; so does any other record.
        buf.hit("a", 1, 10);
        buf.hit("a", 2, 10);
        buf.hit("b", 2, 10);
        buf.push(put("b"));
        assert_eq!(
            summary(&buf.drain()),
            [
                (6, LogOp::Get, 6),
                (7, LogOp::Get, 1),
                (8, LogOp::Get, 1),
                (9, LogOp::Put, 1)
            ]
        );
        assert_eq!(buf.next_seq(), 10);
    }

    #[test]
    fn a_full_buffer_drops_and_says_how_many_in_place() {
        let mut buf = LogBuf::new(true, 3, 0);
        for i in 0..10 {
            buf.push(put(&format!("k{i}")));
        }
        assert_eq!(buf.dropped_total(), 7);
        let out = buf.drain();
        assert_eq!(
            summary(&out),
            [
                (0, LogOp::Put, 1),
                (1, LogOp::Put, 1),
                (2, LogOp::Put, 1),
                (3, LogOp::Lost, 7)
            ]
        );
        // Drops between two flushes: the marker comes before the next record.
        for i in 0..5 {
            buf.push(put(&format!("x{i}")));
        }
        buf.drain();
        for i in 0..4 {
            buf.push(put(&format!("y{i}")));
        }
        buf.hit("z", 1, 1);
        buf.hit("z", 1, 1);
        let out = buf.drain();
        assert_eq!(
            summary(&out),
            [
                (8, LogOp::Put, 1),
                (9, LogOp::Put, 1),
                (10, LogOp::Put, 1),
                (11, LogOp::Lost, 1),
                (12, LogOp::Get, 2)
            ]
        );
        let mut off = LogBuf::new(false, 3, 0);
        off.push(put("a"));
        off.hit("a", 1, 1);
        assert!(off.drain().is_empty());
    }
}

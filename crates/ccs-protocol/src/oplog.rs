//! The operation log: one ring of fixed-size records per agent, in the segment.
//!
//! A ring per agent (after the per-CPU buffers of Linux's ftrace and LTTng) keeps agents off each
//! other's cache lines: an agent claims its next sequence number with a `fetch_add` on its own
//! ring header and fills the record there. Readers merge the rings by time. Nothing waits on a
//! reader: a reader that falls behind by more than a ring finds its records overwritten and is
//! told how many it missed.
//!
//! Each record is a seqlock over its words (the stamp is `seq + 1` when complete, `WRITING`
//! while being filled), plus a checksum of its fields: two threads of one agent that claimed the
//! same slot a whole ring apart, or hostile bytes, show as a record that fails its checksum and is
//! counted as missed, never as a torn record.
//!
//! Consecutive HITs of one agent on one version are counted in one record (its `count` word,
//! outside the checksum) instead of a record each: a HIT then costs a few loads and a store on the
//! agent's own lines, and the log still accounts for every read.

use crate::directory::{AgentId, Directory};
use crate::env::Env;
use crate::error::{ProtocolError, Result};
use crate::layout::{
    R_NEXT, R_RUN, R_RUN_HITS, R_RUN_SEQ, R_RUN_VERSION, RECORD_WORDS, RING_HEADER_WORDS,
    SWITCH_LOG_OFF,
};
use crate::opcodes::{LogOp, LogOutcome, WriteMode};
use crate::sync::{AtomicU64, Ordering, fence};

/// The stamp of a record being filled.
const WRITING: u64 = u64::MAX;

// Record words: the stamp; the checked fields (time, line|other agent|op|outcome|mode,
// version, held, bytes); the count; the checksum.
const W_STAMP: usize = 0;
const W_TIME: usize = 1;
const W_BYTES: usize = 5;
const W_COUNT: usize = 6;
const W_CHECK: usize = 7;

/// One operation to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogEntry {
    /// What was done.
    pub op: LogOp,
    /// How it ended.
    pub outcome: LogOutcome,
    /// The artifact's line, if any.
    pub line: Option<u32>,
    /// The version involved.
    pub version: u64,
    /// The version the agent held before.
    pub held: u64,
    /// The other agent involved (a holder), by slot.
    pub other: Option<u32>,
    /// Payload bytes.
    pub bytes: u64,
    /// A write's condition.
    pub mode: Option<WriteMode>,
    /// When, if taken inside the operation (writes take it while holding the line); now if
    /// `None`.
    pub t_ns: Option<u64>,
}

impl LogEntry {
    /// An entry for `op` ending in `outcome`, with no artifact.
    pub fn new(op: LogOp, outcome: LogOutcome) -> LogEntry {
        LogEntry {
            op,
            outcome,
            line: None,
            version: 0,
            held: 0,
            other: None,
            bytes: 0,
            mode: None,
            t_ns: None,
        }
    }

    /// The same entry on `line`.
    pub fn on(self, line: u32) -> LogEntry {
        LogEntry {
            line: Some(line),
            ..self
        }
    }

    /// The same entry with versions `version` (involved) and `held` (before).
    pub fn versions(self, version: u64, held: u64) -> LogEntry {
        LogEntry {
            version,
            held,
            ..self
        }
    }
}

/// A record read back from a ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord {
    /// The agent's slot.
    pub slot: u32,
    /// Its sequence number in the agent's ring.
    pub seq: u64,
    /// The entry.
    pub entry: LogEntry,
    /// Operations it stands for (more than 1 for a run of HITs).
    pub count: u64,
}

/// What reading one record found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordRead {
    /// The record, intact.
    Ready(RawRecord),
    /// Not written yet (its writer is filling it, or died doing so).
    NotYet,
    /// Overwritten by a later record, or found inconsistent (torn by two writers a ring apart,
    /// or corrupted): lost to the reader.
    Lost,
}

impl<E: Env> Directory<E> {
    /// Whether operations are being logged: the segment has rings and logging is not paused.
    #[inline]
    pub fn logging(&self) -> bool {
        self.geo.ring_words != 0 && self.switch_word().load(Ordering::Relaxed) & SWITCH_LOG_OFF == 0
    }

    /// Log `entry` as `agent`'s next record. Logging never fails an operation: a record that
    /// cannot be written (a corrupt ring header) is dropped.
    pub fn log(&self, agent: AgentId, entry: LogEntry) {
        if self.logging() {
            let _ = self.append(agent.slot, entry);
        }
    }

    /// Log a HIT of `agent` on `version` of `line`, counting it in the agent's open run of
    /// HITs on that version if its last record is one.
    #[inline]
    pub fn log_hit(&self, agent: AgentId, line: u32, version: u64, bytes: u64) {
        if self.logging() && !self.count_in_open_run(agent.slot, line, version) {
            self.open_hit_run(agent.slot, line, version, bytes);
        }
    }

    /// [`Directory::log_hit`] out of line, for a HIT path whose own code fills the registers
    /// (the zero-copy HIT: inlined there, the count took its 64 B HIT from 51.7 to 57.9 ns).
    #[inline(never)]
    pub(crate) fn log_hit_out_of_line(&self, agent: AgentId, line: u32, version: u64, bytes: u64) {
        self.log_hit(agent, line, version, bytes);
    }

    /// Count a HIT in `slot`'s open run if that run is one of `version` of `line`: four loads
    /// of one line (the ring header's) and a store to it, nothing that can fail on the way
    /// out. `false` when it is not (or the ring cannot be reached, which the slow path then
    /// finds too, or the count is full or not the run's). The count goes to the header, not
    /// to the run's record: reaching the record took a load that depended on another (its
    /// sequence number) and another line, 2 ns of a 13 ns HIT (docs/benchmarks.md).
    #[inline(always)]
    fn count_in_open_run(&self, slot: u32, line: u32, version: u64) -> bool {
        let Some(header) = self.ring_header(slot) else {
            return false;
        };
        let hits = &header[R_RUN_HITS];
        let counted = hits.load(Ordering::Relaxed);
        if header[R_RUN].load(Ordering::Relaxed) != u64::from(line) + 1
            || header[R_RUN_VERSION].load(Ordering::Relaxed) != version
            || run_hits(counted, header[R_RUN_SEQ].load(Ordering::Relaxed)).is_none()
            || counted as u32 == u32::MAX
        {
            return false;
        }
        // A load and a store, not a read-modify-write: the agent's threads rarely run HITs
        // concurrently. A racing thread that ends this run and opens another between the two
        // can have its new count overwritten by this run's tag: then its HITs go uncounted
        // (and its next HIT, finding the tag not its run's, opens a new record), an
        // undercount, never an overcount.
        hits.store(counted.wrapping_add(1), Ordering::Relaxed);
        true
    }

    /// The header of `slot`'s ring, checked against the geometry; `None` if the segment has
    /// no log or `slot` is out of range.
    #[inline(always)]
    #[allow(unsafe_code)] // checked against the geometry, which the words cover
    fn ring_header(&self, slot: u32) -> Option<&[AtomicU64; RING_HEADER_WORDS]> {
        if self.geo.ring_words == 0 || slot >= self.geo.config.max_agents {
            return None;
        }
        // SAFETY: a ring (of `ring_words >= RING_HEADER_WORDS` words) of a slot below
        // `max_agents` lies inside the rings region, inside the words (`Directory`'s
        // invariant).
        Some(unsafe { self.words.array_unchecked(self.geo.ring_word(slot, 0)) })
    }

    /// A HIT that no open run counts: its own record, which opens a run. A record that cannot
    /// be written (a corrupt ring header) is dropped, as [`Directory::log`] drops it.
    #[cold]
    #[inline(never)]
    fn open_hit_run(&self, slot: u32, line: u32, version: u64, bytes: u64) {
        let _ = self.append_hit_run(slot, line, version, bytes);
    }

    fn append_hit_run(&self, slot: u32, line: u32, version: u64, bytes: u64) -> Result<()> {
        let entry = LogEntry::new(LogOp::Get, LogOutcome::Hit)
            .on(line)
            .versions(version, version);
        let seq = self.append(slot, LogEntry { bytes, ..entry })?;
        let header = self
            .words
            .array::<RING_HEADER_WORDS>(self.geo.ring_word(slot, 0))?;
        header[R_RUN_SEQ].store(seq, Ordering::Relaxed);
        header[R_RUN_HITS].store(run_hits_word(seq, 0), Ordering::Relaxed);
        header[R_RUN_VERSION].store(version, Ordering::Relaxed);
        // The line last: a run is open only once its version, record and count are in place
        // (for this thread; the agent's threads racing here can at worst count a HIT in
        // another of its own records, as above). Pairs with the Acquire load in
        // `open_run_hits`.
        header[R_RUN].store(u64::from(line) + 1, Ordering::Release);
        Ok(())
    }

    fn append(&self, slot: u32, entry: LogEntry) -> Result<u64> {
        self.end_run(slot)?;
        let t_ns = entry.t_ns.unwrap_or_else(|| self.env.now_ns());
        // The agent's own cache line: no other agent contends on it.
        let seq = self
            .words
            .at(self.geo.ring_word(slot, R_NEXT))?
            .fetch_add(1, Ordering::Relaxed);
        let fields = encode(t_ns, &entry);
        let record = self
            .words
            .slice(self.geo.record_word(slot, seq), RECORD_WORDS)?;
        record[W_STAMP].store(WRITING, Ordering::Relaxed);
        // Pairs with the Acquire fence in `read_record`: a reader that sees any field below
        // sees the WRITING stamp (or a later one) on its re-check.
        fence(Ordering::Release);
        for (word, value) in record[W_TIME..=W_BYTES].iter().zip(&fields) {
            word.store(*value, Ordering::Relaxed);
        }
        record[W_COUNT].store(1, Ordering::Relaxed);
        record[W_CHECK].store(checksum(seq, &fields), Ordering::Relaxed);
        // Pairs with the Acquire load of the stamp in `read_record`.
        record[W_STAMP].store(seq.wrapping_add(1), Ordering::Release);
        Ok(seq)
    }

    /// End `slot`'s open run of HITs, if one is open: its header count folded into its
    /// record's. The swap lets one thread of the agent fold it, if two append at once; the
    /// load before it keeps a ring with no open run (every record but a HIT's) off a locked
    /// instruction.
    fn end_run(&self, slot: u32) -> Result<()> {
        let header = self
            .words
            .array::<RING_HEADER_WORDS>(self.geo.ring_word(slot, 0))?;
        let run = &header[R_RUN];
        if run.load(Ordering::Relaxed) == 0 || run.swap(0, Ordering::Relaxed) == 0 {
            return Ok(());
        }
        let seq = header[R_RUN_SEQ].load(Ordering::Relaxed);
        if let Some(hits) = run_hits(header[R_RUN_HITS].load(Ordering::Relaxed), seq)
            && hits != 0
        {
            let count = self.record_at(slot, seq, W_COUNT)?;
            // Release: pairs with the Acquire loads of the count in `read_record` and
            // `record_count`; a reader that sees the folded count then sees the run ended, and
            // does not add the header's count a second time.
            #[cfg(not(ccs_mutant = "run_fold_relaxed"))]
            let order = Ordering::Release;
            #[cfg(ccs_mutant = "run_fold_relaxed")]
            let order = Ordering::Relaxed;
            count.store(count.load(Ordering::Relaxed).wrapping_add(hits), order);
        }
        Ok(())
    }

    /// HITs counted in the header of `slot`'s ring for record `seq`, if that record's run is
    /// still open (0 otherwise): what a reader adds to the record's own count, once it has
    /// loaded that count (Acquire). A count already folded is seen with its run ended; a count
    /// of another run carries another tag.
    fn open_run_hits(&self, slot: u32, seq: u64) -> Result<u64> {
        let header = self
            .words
            .array::<RING_HEADER_WORDS>(self.geo.ring_word(slot, 0))?;
        // Pairs with the Release store of the line in `append_hit_run`: the count below is
        // then that run's reset or later, so a later run's count carries that run's tag. And
        // the caller's count, loaded with Acquire, may be the fold's Release store in
        // `end_run`: then this load sees the swap before it (0) or a later run.
        if header[R_RUN].load(Ordering::Acquire) == 0 {
            return Ok(0);
        }
        let counted = header[R_RUN_HITS].load(Ordering::Relaxed);
        #[cfg(ccs_mutant = "run_hits_untagged")]
        return Ok(u64::from(counted as u32));
        #[cfg(not(ccs_mutant = "run_hits_untagged"))]
        Ok(run_hits(counted, seq).unwrap_or(0))
    }

    fn record_at(&self, slot: u32, seq: u64, field: usize) -> Result<&AtomicU64> {
        self.words.at(self.geo.record_word(slot, seq) + field)
    }

    /// Records `slot` has claimed so far: the next record's sequence number.
    pub fn log_next(&self, slot: u32) -> Result<u64> {
        self.check_ring(slot)?;
        // Pairs with nothing in particular: a reader re-validates every record it reads.
        Ok(self
            .words
            .at(self.geo.ring_word(slot, R_NEXT))?
            .load(Ordering::Acquire))
    }

    /// Records each ring holds (0: the segment has no log).
    pub fn log_capacity(&self) -> u64 {
        u64::from(self.geo.config.log_records)
    }

    /// Read record `seq` of `slot`'s ring, validating it like everything read from the segment.
    pub fn read_record(&self, slot: u32, seq: u64) -> Result<RecordRead> {
        self.check_ring(slot)?;
        if seq == u64::MAX {
            return Ok(RecordRead::Lost);
        }
        let record = self
            .words
            .slice(self.geo.record_word(slot, seq), RECORD_WORDS)?;
        // Pairs with the Release store of the stamp in `append`.
        let stamp = record[W_STAMP].load(Ordering::Acquire);
        if stamp == WRITING || stamp <= seq {
            return Ok(RecordRead::NotYet);
        }
        if stamp != seq + 1 {
            return Ok(RecordRead::Lost);
        }
        let mut fields = [0u64; 5];
        for (value, word) in fields.iter_mut().zip(&record[W_TIME..=W_BYTES]) {
            *value = word.load(Ordering::Relaxed);
        }
        // Acquire: pairs with the Release store of the fold in `end_run` (see
        // `open_run_hits`, read below).
        let count = record[W_COUNT].load(Ordering::Acquire);
        let check = record[W_CHECK].load(Ordering::Relaxed);
        // Pairs with the Release fence in `append`: if a field came from a later writer of
        // this slot, the stamp is seen changed below.
        fence(Ordering::Acquire);
        #[cfg(ccs_mutant = "no_log_checksum")]
        let check = checksum(seq, &fields);
        if record[W_STAMP].load(Ordering::Relaxed) != stamp || check != checksum(seq, &fields) {
            return Ok(RecordRead::Lost);
        }
        let Some(entry) = decode(&fields, self.geo.lines as u32, self.geo.config.max_agents) else {
            return Ok(RecordRead::Lost);
        };
        let count = count.max(1).saturating_add(self.open_run_hits(slot, seq)?);
        Ok(RecordRead::Ready(RawRecord {
            slot,
            seq,
            entry,
            count,
        }))
    }

    /// The count word of record `seq` of `slot`, if that record is still intact: a run of HITs
    /// read earlier may have grown since.
    pub fn record_count(&self, slot: u32, seq: u64) -> Result<Option<u64>> {
        self.check_ring(slot)?;
        let stamp = self.record_at(slot, seq, W_STAMP)?;
        // Pairs with the Release store of the stamp in `append`.
        let before = stamp.load(Ordering::Acquire);
        // Acquire: pairs with the Release store of the fold in `end_run` (see
        // `open_run_hits`).
        let count = self.record_at(slot, seq, W_COUNT)?.load(Ordering::Acquire);
        fence(Ordering::Acquire);
        if before != seq.wrapping_add(1) || stamp.load(Ordering::Relaxed) != before {
            return Ok(None);
        }
        Ok(Some(count.saturating_add(self.open_run_hits(slot, seq)?)))
    }

    fn check_ring(&self, slot: u32) -> Result<()> {
        if self.geo.ring_words == 0 {
            return Err(ProtocolError::InvalidConfig(
                "this segment was created without an operation log (log_records = 0)".into(),
            ));
        }
        if slot >= self.geo.config.max_agents {
            return Err(ProtocolError::corrupt(format!("agent {slot} out of range")));
        }
        Ok(())
    }
}

/// Ring header word 4: `tag:32 | count:32`, the low 32 bits of the sequence number of the
/// run's record and the HITs counted since it. The tag ties the count to its run: a count
/// stored by a thread that raced the run's end is never read as the next run's.
fn run_hits_word(seq: u64, count: u32) -> u64 {
    (seq << 32) | u64::from(count)
}

/// The count of `word` if it is tagged with run `seq`.
fn run_hits(word: u64, seq: u64) -> Option<u64> {
    (word >> 32 == seq & u64::from(u32::MAX)).then_some(word & u64::from(u32::MAX))
}

/// The record's checked words: time, what, version, held, bytes. `what` is
/// `(line + 1):24 | (other + 1):16 | op:8 | outcome:8 | mode:8` (0 for no line or no other
/// agent): lines are fewer than 2^23 and agent slots fewer than 65,535 (`layout.rs`).
fn encode(t_ns: u64, entry: &LogEntry) -> [u64; 5] {
    let line = entry.line.map_or(0, |l| u64::from(l) + 1);
    let other = entry.other.map_or(0, |o| u64::from(o) + 1);
    let what = line << 40
        | (other & 0xffff) << 24
        | u64::from(entry.op.code()) << 16
        | u64::from(entry.outcome.code()) << 8
        | u64::from(WriteMode::code(entry.mode));
    [t_ns, what, entry.version, entry.held, entry.bytes]
}

/// Decode checked words; `None` if any field is out of range for this segment.
fn decode(fields: &[u64; 5], lines: u32, agents: u32) -> Option<LogEntry> {
    let [t_ns, what, version, held, bytes] = *fields;
    let line = match (what >> 40) as u32 {
        0 => None,
        n if n - 1 < lines => Some(n - 1),
        _ => return None,
    };
    let other = match ((what >> 24) & 0xffff) as u32 {
        0 => None,
        n if n - 1 < agents => Some(n - 1),
        _ => return None,
    };
    Some(LogEntry {
        op: LogOp::from_code((what >> 16) as u8)?,
        outcome: LogOutcome::from_code((what >> 8) as u8)?,
        line,
        version,
        held,
        other,
        bytes,
        mode: WriteMode::from_code(what as u8)?,
        t_ns: Some(t_ns),
    })
}

/// A 64-bit mix of the sequence number and the checked words (FNV-1a over words, then a
/// finaliser): any torn mixture of two records fails it.
fn checksum(seq: u64, fields: &[u64; 5]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64 ^ seq;
    for value in fields {
        hash = (hash ^ value).wrapping_mul(0x0100_0000_01b3);
        hash ^= hash >> 29;
    }
    hash ^ (hash >> 32)
}

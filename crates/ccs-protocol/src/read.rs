//! Reads: the HIT path, the MISS path and its race with an invalidating writer.
//!
//! An agent's valid bit in a line's mask means "I hold the current version" (S). A HIT is that
//! bit plus a check that the published version is the one the agent last read; it costs a few
//! atomic loads and the copy, no lock and no system call. A MISS reads the published version,
//! records it as the agent's view and sets the valid bit; then it must re-validate, because a
//! writer may have cleared the masks between the agent's read and its bit:
//!
//! ```text
//! writer: take line (head.holder = w) ; swap(mask, 0) ; publish v2 (CAS head)
//! reader: load head (v1) ; copy v1 ; fetch_or(mask, bit) ; fence(SeqCst) ; load head again
//! ```
//!
//! If the reader's `fetch_or` follows the writer's `swap` in the mask's modification order, the
//! `fetch_or` reads from the `swap` (both read-modify-writes, SeqCst) and so synchronises with
//! it: the reader's re-load then sees the line taken or moved on, and it clears its bit again.
//! Otherwise the `swap` clears the bit. Either way no bit survives on a superseded version.
//!
//! Payload copies are optimistic (the descriptor's owner word is the seqlock sequence, checked
//! before and after the copy, with an Acquire fence between); after a few failed attempts the
//! reader pins the descriptor instead, so a large copy cannot be starved by fast writers.

use crate::alloc::was_published_at;
use crate::directory::{AgentId, Directory, HitWords};
use crate::env::Env;
use crate::error::{ProtocolError, Result};
use crate::freshness::Strategy;
use crate::keys::LineRef;
use crate::layout::{A_PINS, D_CTL, D_FLAGS, D_OWNER, D_VERSION, PIN_RECORDS};
use crate::opcodes::{LogOp, LogOutcome};
use crate::oplog::LogEntry;
use crate::packing::{Head, unpack_owner};
use crate::sync::{AtomicU64, Ordering, fence, prefetch_read, prefetch_write};

/// What a read returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadInfo {
    /// Version of the bytes returned.
    pub version: u64,
    /// Whether the agent already held this version (its copy was current).
    pub hit: bool,
    /// Whether the agent now holds a valid (S) copy; false when a writer held the line.
    pub valid: bool,
}

impl ReadInfo {
    /// A HIT of `version`: the agent held it, and still holds it valid.
    pub fn hit(version: u64) -> ReadInfo {
        ReadInfo {
            version,
            hit: true,
            valid: true,
        }
    }

    fn miss(version: u64, valid: bool) -> ReadInfo {
        ReadInfo {
            version,
            hit: false,
            valid,
        }
    }
}

/// The agent's view of one artifact, without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewCheck {
    /// Version the agent last read or wrote (0: never).
    pub held: u64,
    /// The artifact's current version (0: never written).
    pub current: u64,
    /// The agent's valid bit is set: its copy is current (a HIT).
    pub valid: bool,
}

/// A version pinned for zero-copy reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pinned {
    /// The pinned descriptor; pass back to [`Directory::release_pin`].
    pub desc: u32,
    /// Its version.
    pub version: u64,
    /// First word of its payload (`None` for an empty payload).
    pub first_word: Option<usize>,
    /// Payload length in bytes.
    pub len: usize,
    /// The word of the reader's pin record naming this pin, if a record was free.
    pub(crate) record: Option<usize>,
    /// The reader's agent slot, under which a free done by the release is recorded
    /// (`records.rs`).
    pub(crate) slot: u32,
}

/// How a read takes the bytes of a published descriptor.
pub(crate) enum Take<'a> {
    /// Copy into this buffer.
    Copy(&'a mut Vec<u8>),
    /// Pin and lend.
    Pin,
}

enum Taken {
    /// The descriptor was reused under us; start over from the head.
    Moved,
    /// No version of the line's key.
    Absent,
    /// A tombstone: the key was deleted at `version`.
    Deleted { version: u64 },
    /// Read, with the pin if one was taken.
    Got { version: u64, pin: Option<Pinned> },
}

/// What one optimistic copy found: [`Taken`] without a pin, small enough to come back in
/// registers (a `Taken` carries a `Pinned`, and copying it out of an `Option` through memory
/// stalled the HIT path on store forwarding once versions were 64 bits).
enum Copied {
    /// The descriptor changed while copying: discard the copy.
    Torn,
    /// The descriptor was reused under us; start over from the head.
    Moved,
    /// A tombstone of this version.
    Deleted(u64),
    /// Copied this version.
    Got(u64),
}

/// Attempts at an optimistic copy before pinning.
const OPTIMISTIC_COPIES: u32 = 2;
/// Attempts at a MISS whose re-validation failed before returning the copy without a valid bit.
const MISS_ATTEMPTS: u32 = 3;

impl<E: Env> Directory<E> {
    /// Read `line` as `agent` into `out`.
    #[inline]
    pub fn read(&self, agent: AgentId, line: u32, out: &mut Vec<u8>) -> Result<ReadInfo> {
        match self.copy_hit(agent, line, out) {
            Some(version) => Ok(ReadInfo::hit(version)),
            None => self.read_copy(agent, line, out),
        }
    }

    /// [`Directory::read`] after its inline HIT declined: the general path.
    fn read_copy(&self, agent: AgentId, line: u32, out: &mut Vec<u8>) -> Result<ReadInfo> {
        self.read_with(agent, line, Take::Copy(out))
            .map(|(info, _)| info)
    }

    /// A copying read's HIT, inline and without error paths: `Some(version)` when `agent` holds
    /// the current version of `line` and a validated copy of it is now in `out`. `None` for
    /// anything else (no valid copy, a version moved on, a copy that raced a writer, an expired
    /// strategy, an index out of bounds), which `read_with` then takes from the start and
    /// answers in full. The steps of `read_with`'s HIT (docs/protocol.md §3.1, §3.3), in the
    /// same order, with nothing that is only needed for a MISS, a pin or an error.
    #[inline(always)]
    fn copy_hit(&self, agent: AgentId, line: u32, out: &mut Vec<u8>) -> Option<u64> {
        let (version, _) = self.copy_hit_unlogged(agent, line, out)?;
        self.log_hit(agent, line, version, out.len() as u64);
        Some(version)
    }

    /// [`Directory::copy_hit`] without its log record, which its callers write once they know
    /// the HIT stands ([`Directory::copy_hit_at`] checks the line's generation first).
    #[inline(always)]
    fn copy_hit_unlogged(
        &self,
        agent: AgentId,
        line: u32,
        out: &mut Vec<u8>,
    ) -> Option<(u64, HitWords<'_>)> {
        let (held, words, desc) = self.hit_candidate(agent, line)?;
        match self.copy_validated(line, words.head, desc, out) {
            Ok(Copied::Got(version)) if version == held && self.still_fresh_in_hit(agent, line) => {
                Some((version, words))
            }
            _ => None,
        }
    }

    /// The first steps of every inline HIT: `Some((held, words, desc))` when `agent` holds a
    /// copy of `line` (its view, `held`, is not 0) with its valid bit set, and `desc` is the
    /// descriptor the line's head publishes now; `words` are the line's words the HIT reads.
    /// Whether `desc` is still `held` is the caller's to check, once it has taken the version
    /// (a copy validated, or a pin).
    #[inline(always)]
    fn hit_candidate(&self, agent: AgentId, line: u32) -> Option<(u64, HitWords<'_>, u32)> {
        let words = self.hit_words(agent.slot, line)?;
        let held = words.view.load(Ordering::Relaxed);
        // Pairs with the SeqCst swap that clears the masks in `write.rs`.
        if held == 0 || words.mask.load(Ordering::SeqCst) & words.bit == 0 {
            return None;
        }
        // Pairs with the publishing compare-exchange in `write.rs`.
        let desc = Head::unpack(words.head.load(Ordering::Acquire)).desc_index()?;
        Some((held, words, desc))
    }

    /// [`Directory::still_fresh`] for the inline HIT: lazy and eager agents (no expiry) decide
    /// it from the strategy alone; the strategies that read a clock or count HITs are out of
    /// line, so that their code does not weigh on every HIT's.
    #[inline(always)]
    fn still_fresh_in_hit(&self, agent: AgentId, line: u32) -> bool {
        match agent.strategy {
            Strategy::Lazy | Strategy::Eager => true,
            Strategy::Lease { .. } | Strategy::AccessCount { .. } => {
                self.still_fresh_out_of_line(agent, line)
            }
        }
    }

    #[inline(never)]
    fn still_fresh_out_of_line(&self, agent: AgentId, line: u32) -> bool {
        self.still_fresh(agent, line) == Ok(true)
    }

    /// The HIT of [`Directory::read_at`] alone, inline and without error paths: `Some(version)`
    /// when `agent` holds the current version of `at`'s line, a validated copy of it is now in
    /// `out`, and the line is still the key's (its generation checked after the copy, as
    /// `read_at` does); the HIT is then logged. `None` for anything else, with nothing logged
    /// (`out` may hold bytes of no use): call [`Directory::read_at`], which takes the read
    /// from the start and answers in full. What a copying get through a resolved key runs
    /// first, so that a HIT is a few loads and the copy inlined into the caller.
    #[inline(always)]
    pub fn copy_hit_at(&self, agent: AgentId, at: LineRef, out: &mut Vec<u8>) -> Option<u64> {
        let (version, words) = self.copy_hit_unlogged(agent, at.line, out)?;
        if !self.owns_by(words.generation, at) {
            return None;
        }
        self.log_hit(agent, at.line, version, out.len() as u64);
        Some(version)
    }

    /// [`Directory::read`] of a key resolved as `at`: [`ProtocolError::LineReused`] if its
    /// line was given to another key since, whatever the read found (what it found may be the
    /// other key's). Checked after the read: a read that saw a version of a later key of the
    /// line saw the head that key's writer published after the reuser released the line, so
    /// this load sees the reuser's generation (docs/protocol.md §3.8).
    #[inline]
    pub fn read_at(&self, agent: AgentId, at: LineRef, out: &mut Vec<u8>) -> Result<ReadInfo> {
        // The HIT's answer is built from registers: merged with the general path's before it,
        // it went through the stack in pieces and was loaded back whole (a store-forwarding
        // stall, a third of a 64 B HIT).
        match self.copy_hit_at(agent, at, out) {
            Some(version) => Ok(ReadInfo::hit(version)),
            None => self.read_at_general(agent, at, out),
        }
    }

    /// [`Directory::read_at`] without its inline HIT, for a caller that has just tried
    /// [`Directory::copy_hit_at`] (a MISS, a line reused, an error): the general path, which
    /// answers every case (a HIT included), out of line so that the HIT inlines into its
    /// callers.
    #[inline(never)]
    pub fn read_at_general(
        &self,
        agent: AgentId,
        at: LineRef,
        out: &mut Vec<u8>,
    ) -> Result<ReadInfo> {
        let result = self.read_copy(agent, at.line, out);
        if !self.still_owns(at)? {
            return Err(ProtocolError::LineReused);
        }
        result
    }

    /// The HIT of [`Directory::read_pinned_at`] alone, inline and without error paths (as
    /// [`Directory::copy_hit_at`] is the copy's): `Some((version, pin))` when `agent` holds
    /// the current version of `at`'s line and it is now pinned (and recorded, as
    /// [`Directory::read_pinned`] records it), with the line still the key's (its generation
    /// checked after the pin); the HIT is then logged. `None` for anything else, with no pin
    /// held and nothing logged: call [`Directory::read_pinned_at`], which answers in full.
    /// The freshness of the agent's strategy is asked only once the pin holds the version it
    /// holds, so that an access-counting strategy counts the HIT once.
    #[inline(always)]
    pub fn pin_hit_at(&self, agent: AgentId, at: LineRef) -> Option<(u64, Pinned)> {
        let (held, _, desc) = self.hit_candidate(agent, at.line)?;
        let Ok(Taken::Got {
            version,
            pin: Some(pin),
        }) = self.take_pinned(at.line, desc, agent.slot)
        else {
            return None;
        };
        // The pin holds `desc` where it stood, so the version it names is the one borrowed.
        #[cfg(not(ccs_mutant = "pinned_hit_any_version"))]
        let held_now = version == held;
        #[cfg(ccs_mutant = "pinned_hit_any_version")]
        let held_now = true;
        if !held_now || !self.still_fresh_in_hit(agent, at.line) {
            // A failed unpin (a corrupt descriptor) is the general path's to report.
            let _ = self.unpin_as(desc, agent.slot);
            return None;
        }
        // Recorded here, not through `recorded`: through it the pin went through the stack and
        // was loaded back whole (zero-copy HIT 62.5 ns against 54.8, measured side by side).
        let Ok(record) = self.record_pin(agent, desc) else {
            let _ = self.unpin_as(desc, agent.slot);
            return None;
        };
        let pin = Pinned {
            record,
            slot: agent.slot,
            ..pin
        };
        #[cfg(not(ccs_mutant = "pinned_hit_unowned"))]
        let owned = self.still_owns(at) == Ok(true);
        #[cfg(ccs_mutant = "pinned_hit_unowned")]
        let owned = true;
        if !owned {
            let _ = self.release_pin(pin);
            return None;
        }
        self.log_hit_out_of_line(agent, at.line, version, pin.len as u64);
        Some((version, pin))
    }

    /// [`Directory::read_pinned`] of a key resolved as `at` (see [`Directory::read_at`]).
    pub fn read_pinned_at(&self, agent: AgentId, at: LineRef) -> Result<(ReadInfo, Pinned)> {
        let result = self.read_pinned(agent, at.line);
        if !self.still_owns(at)? {
            if let Ok((_, pin)) = result {
                self.release_pin(pin)?;
            }
            return Err(ProtocolError::LineReused);
        }
        result
    }

    /// Read `line` as `agent`, pinning the version instead of copying it.
    ///
    /// The pin is recorded in the agent's pin records, so that if this process dies holding
    /// it, the agent's next attach releases it.
    pub fn read_pinned(&self, agent: AgentId, line: u32) -> Result<(ReadInfo, Pinned)> {
        let (info, pin) = self.read_with(agent, line, Take::Pin)?;
        let pin = pin.ok_or_else(|| ProtocolError::corrupt("pinned read returned no pin"))?;
        Ok((info, self.recorded(agent, pin)?))
    }

    /// `pin`, taken as `agent`, noted in its pin records ([`Directory::read_pinned`]); if the
    /// records cannot be reached (a corrupt segment), the pin is dropped rather than leaked.
    fn recorded(&self, agent: AgentId, pin: Pinned) -> Result<Pinned> {
        match self.record_pin(agent, pin.desc) {
            Ok(record) => Ok(Pinned { record, ..pin }),
            Err(error) => {
                let _ = self.unpin_as(pin.desc, pin.slot);
                Err(error)
            }
        }
    }

    /// Drop a pin taken by [`Directory::read_pinned`]. The record goes first: a death between
    /// the two leaks the pin, which is safe, where the other order could release it twice.
    pub fn release_pin(&self, pin: Pinned) -> Result<()> {
        if let Some(record) = pin.record {
            self.words.at(record)?.store(0, Ordering::Release);
        }
        self.unpin_as(pin.desc, pin.slot)
    }

    /// Note `desc` in a free pin record of `agent`; `None` if all are taken.
    fn record_pin(&self, agent: AgentId, desc: u32) -> Result<Option<usize>> {
        let first = self.geo.agent_word(agent.slot, A_PINS);
        for (offset, record) in self.words.slice(first, PIN_RECORDS)?.iter().enumerate() {
            // Only this agent's process writes its records (the agent lock makes it the only
            // one), except its next attach, which first takes that lock; but several threads of
            // the agent may record at once, so a record is claimed with a compare-and-swap.
            #[cfg(ccs_mutant = "plain_view_store")]
            let claimed = record.load(Ordering::Relaxed) == 0 && {
                record.store(u64::from(desc) + 1, Ordering::Release);
                true
            };
            #[cfg(not(ccs_mutant = "plain_view_store"))]
            let claimed = record
                .compare_exchange(0, u64::from(desc) + 1, Ordering::Release, Ordering::Relaxed)
                .is_ok();
            if claimed {
                return Ok(Some(first + offset));
            }
        }
        Ok(None)
    }

    /// Release every pin recorded for `slot` by a process that is gone. The caller holds the
    /// agent's lock, so no live process owns these records.
    pub(crate) fn release_recorded_pins(&self, slot: u32) -> Result<u32> {
        let first = self.geo.agent_word(slot, A_PINS);
        let mut released = 0;
        for record in self.words.slice(first, PIN_RECORDS)? {
            let desc_plus_one = record.swap(0, Ordering::AcqRel);
            if let Some(desc) = u32::try_from(desc_plus_one)
                .ok()
                .and_then(|d| d.checked_sub(1))
            {
                self.unpin_as(desc, slot)?;
                released += 1;
            }
        }
        Ok(released)
    }

    /// A read, logged.
    #[inline]
    fn read_with(
        &self,
        agent: AgentId,
        line: u32,
        mut take: Take<'_>,
    ) -> Result<(ReadInfo, Option<Pinned>)> {
        self.check_line(line)?;
        let view = self.view(agent.slot, line)?;
        // The agent's view before the read: the HIT test's input and the MISS record's `held`,
        // loaded once.
        let seen = view.load(Ordering::Relaxed);
        let held = seen;
        let result = self.read_unlogged(agent, line, view, seen, &mut take);
        if !self.logging() {
            return result;
        }
        let bytes = |pin: &Option<Pinned>| match (&take, pin) {
            (Take::Copy(out), _) => out.len() as u64,
            (Take::Pin, Some(pin)) => pin.len as u64,
            (Take::Pin, None) => 0,
        };
        let entry = LogEntry::new(LogOp::Get, LogOutcome::Miss).on(line);
        match &result {
            Ok((info, pin)) if info.hit => self.log_hit(agent, line, info.version, bytes(pin)),
            Ok((info, pin)) => self.log(
                agent,
                LogEntry {
                    bytes: bytes(pin),
                    ..entry.versions(info.version, held)
                },
            ),
            Err(ProtocolError::NotFound) => self.log(
                agent,
                LogEntry {
                    outcome: LogOutcome::NotFound,
                    ..entry.versions(self.version(line).unwrap_or(0), held)
                },
            ),
            Err(_) => self.log(
                agent,
                LogEntry {
                    outcome: LogOutcome::Error,
                    ..entry.versions(0, held)
                },
            ),
        }
        result
    }

    fn read_unlogged(
        &self,
        agent: AgentId,
        line: u32,
        view: &AtomicU64,
        seen: u64,
        take: &mut Take<'_>,
    ) -> Result<(ReadInfo, Option<Pinned>)> {
        let (mask, bit) = self.valid_bit(agent.slot, line)?;
        let head_word = self.head(line)?;
        let held = seen;

        // HIT: pairs with the SeqCst swap that clears the masks in `write.rs`.
        if held != 0 && mask.load(Ordering::SeqCst) & bit != 0 {
            // Pairs with the publishing compare-exchange in `write.rs`.
            let head = Head::unpack(head_word.load(Ordering::Acquire));
            if let Taken::Got { version, pin } = self.take(line, head, take, agent.slot)? {
                if version == held && !self.still_fresh(agent, line)? {
                    // The strategy expired the copy: drop S and fetch again, as a MISS.
                    mask.fetch_and(!bit, Ordering::SeqCst);
                    self.drop_pin(pin)?;
                } else if version == held {
                    return Ok((
                        ReadInfo {
                            version,
                            hit: true,
                            valid: true,
                        },
                        pin,
                    ));
                } else {
                    self.drop_pin(pin)?;
                }
            }
        }

        // A MISS ends by setting its valid bit: a writer has just cleared the mask word, so its
        // line is in the writer's cache; ask for it now, so that it moves while the payload is
        // taken rather than when the `fetch_or` below stalls on it.
        prefetch_write(mask);
        let mut attempt = 0;
        // The head of the last attempt that found its descriptor moved on.
        let mut moved_from = None;
        loop {
            attempt += 1;
            let raw = if attempt == 1 {
                // Pairs with the publishing compare-exchange in `write.rs`.
                head_word.load(Ordering::Acquire)
            } else {
                // A retry: the head seen last time was superseded. A read-modify-write reads the
                // newest head in its modification order (a plain load may return the same stale
                // head again, without bound, and loom explores exactly that), so every retry
                // follows a write that really completed. Pairs with the publishing
                // compare-exchange in `write.rs`.
                head_word.fetch_add(0, Ordering::Acquire)
            };
            let head = Head::unpack(raw);
            let (version, pin) = match self.take(line, head, take, agent.slot)? {
                Taken::Got { version, pin } => (version, pin),
                Taken::Absent => {
                    // Seen absent: a ghost of the key (`ghosts.rs`) lets it be re-created.
                    self.saw_absent_on(agent, line)?;
                    return Err(ProtocolError::NotFound);
                }
                // Seen deleted: a tombstone is a version (docs/protocol.md §4), and the view
                // records it, so a write re-creating the key from it is not stale.
                Taken::Deleted { version } => {
                    self.advance_view(agent, line, view, version)?;
                    return Err(ProtocolError::NotFound);
                }
                Taken::Moved => {
                    moved_before(&mut moved_from, raw, attempt)?;
                    continue;
                }
            };
            self.advance_view(agent, line, view, version)?;
            if head.holder != 0 {
                // A writer holds the line: it may clear masks at any moment, so do not claim S.
                return Ok((ReadInfo::miss(version, false), pin));
            }
            mask.fetch_or(bit, Ordering::SeqCst);
            #[cfg(not(ccs_mutant = "no_recheck"))]
            {
                fence(Ordering::SeqCst);
                // Pairs with the taking compare-exchange and the mask swap in `write.rs`.
                if head_word.load(Ordering::SeqCst) != raw {
                    mask.fetch_and(!bit, Ordering::SeqCst);
                    if attempt < MISS_ATTEMPTS {
                        self.drop_pin(pin)?;
                        continue;
                    }
                    return Ok((ReadInfo::miss(version, false), pin));
                }
            }
            return Ok((ReadInfo::miss(version, true), pin));
        }
    }

    fn drop_pin(&self, pin: Option<Pinned>) -> Result<()> {
        match pin {
            Some(pin) => self.unpin_as(pin.desc, pin.slot),
            None => Ok(()),
        }
    }

    /// Read the descriptor published in `head` the way `take` asks.
    fn take(&self, line: u32, head: Head, take: &mut Take<'_>, slot: u32) -> Result<Taken> {
        let Some(desc) = head.desc_index() else {
            return Ok(Taken::Absent);
        };
        match take {
            Take::Pin => self.take_pinned(line, desc, slot),
            Take::Copy(out) => {
                let head_word = self.head(line)?;
                for _ in 0..OPTIMISTIC_COPIES {
                    match self.copy_validated(line, head_word, desc, out)? {
                        Copied::Got(version) => return Ok(Taken::Got { version, pin: None }),
                        Copied::Moved => return Ok(Taken::Moved),
                        Copied::Deleted(version) => return Ok(Taken::Deleted { version }),
                        Copied::Torn => continue,
                    }
                }
                match self.take_pinned(line, desc, slot)? {
                    Taken::Got {
                        version,
                        pin: Some(pin),
                    } => {
                        let copied = self.copy_pinned(&pin, out);
                        self.unpin_as(pin.desc, slot)?;
                        copied?;
                        Ok(Taken::Got { version, pin: None })
                    }
                    other => Ok(other),
                }
            }
        }
    }

    fn take_pinned(&self, line: u32, desc: u32, slot: u32) -> Result<Taken> {
        // The pin is a compare-and-swap on a line the writer has just written (a MISS) or that
        // other readers share (a HIT): fetch it exclusive at once, not shared for the load and
        // then again for the swap.
        prefetch_write(&self.desc_words(desc)?[D_CTL]);
        match self.pin_as(desc, line, slot)? {
            None => Ok(Taken::Moved),
            Some(info) if info.deleted => {
                self.unpin_as(desc, slot)?;
                Ok(Taken::Deleted {
                    version: info.version,
                })
            }
            Some(info) => {
                // A borrower reads the payload's start first: ask for it now, so that its line
                // moves from the writer's cache while the read finishes (view, valid bit, pin
                // record, log).
                if let Some(Ok(first)) = info.first_word.map(|first| self.words.at(first)) {
                    prefetch_read(first);
                }
                Ok(Taken::Got {
                    version: info.version,
                    pin: Some(Pinned {
                        desc,
                        version: info.version,
                        first_word: info.first_word,
                        len: info.len,
                        record: None,
                        slot,
                    }),
                })
            }
        }
    }

    #[inline(always)]
    fn copy_pinned(&self, pin: &Pinned, out: &mut Vec<u8>) -> Result<()> {
        match pin.first_word {
            Some(first) => self.words.copy_out(first, pin.len, out),
            None => {
                out.clear();
                Ok(())
            }
        }
    }

    /// One optimistic copy of `desc` (seqlock read). `Torn`: the descriptor changed while
    /// copying and the copy must be discarded.
    #[inline(always)]
    fn copy_validated(
        &self,
        line: u32,
        head: &AtomicU64,
        desc: u32,
        out: &mut Vec<u8>,
    ) -> Result<Copied> {
        // Bounds-checked once for every field below.
        let d = self.desc_words(desc)?;
        let owner_word = &d[D_OWNER];
        // Pairs with the publishing compare-exchange (the descriptor's fields are visible).
        let before = owner_word.load(Ordering::Acquire);
        match unpack_owner(before) {
            Some((owner_line, _)) if owner_line == line => {}
            _ => return Ok(Copied::Moved),
        }
        // Inside the seqlock window: if the descriptor is reused after this check, the owner
        // re-check below fails.
        #[cfg(not(ccs_mutant = "no_publish_check"))]
        if !was_published_at(desc, &d[D_CTL], head) {
            return Ok(Copied::Moved);
        }
        let copied = match self.slot_info_of(desc, d, before) {
            Ok(info) if !info.deleted => self
                .copy_pinned(
                    &Pinned {
                        desc,
                        version: info.version,
                        first_word: info.first_word,
                        len: info.len,
                        record: None,
                        slot: crate::records::NO_RECORD,
                    },
                    out,
                )
                .map(|()| info),
            other => other,
        };
        // Pairs with the Release fences in `alloc_slot`, `fill_slot` and `release_desc`: if any byte copied came from a later
        // writer of the block, the owner tag is seen changed below.
        fence(Ordering::Acquire);
        #[cfg(not(ccs_mutant = "no_seqlock_validate"))]
        if owner_word.load(Ordering::Relaxed) != before {
            return Ok(Copied::Torn);
        }
        let info = copied?;
        if info.deleted {
            return Ok(Copied::Deleted(info.version));
        }
        Ok(Copied::Got(info.version))
    }

    /// Whether `agent` holds the current version of `line`: its valid bit, one load. This is
    /// what a HIT costs before the copy; a spinning reader watches it to see an invalidation.
    #[inline]
    pub fn is_valid(&self, agent: AgentId, line: u32) -> Result<bool> {
        self.check_line(line)?;
        let (mask, bit) = self.valid_bit(agent.slot, line)?;
        // Pairs with the SeqCst swap that clears the masks in `write.rs`.
        Ok(mask.load(Ordering::SeqCst) & bit != 0)
    }

    /// Whether a writer holds `line` now: between a `put`'s take and its publication (or an
    /// `acquire` and its commit or release). One load of the head, which the writer changes
    /// only to take the line and to publish: a reader that saw its copy invalidated spins on
    /// it, sharing that cache line with the writer, instead of reading the version it already
    /// has again and again (each read pins that version's descriptor, which the writer must
    /// mark and retire, and asks for the mask line the writer needs). A put that invalidates
    /// before its take (`write.rs`) is not seen here until it takes the line: a read then
    /// returns the version the reader had. Pairs with the publishing compare-and-swap
    /// (Acquire): a read after `false` sees that publication.
    #[inline]
    pub fn being_written(&self, line: u32) -> Result<bool> {
        self.check_line(line)?;
        Ok(Head::unpack(self.head(line)?.load(Ordering::Acquire)).holder != 0)
    }

    /// Whether `agent` may serve `version` of `line` from a private copy of `bytes` bytes: its
    /// valid bit (set only while its view is the current version), its own view word, and its
    /// strategy's expiry. A HIT on a private copy, with no access to the shared payload; it is
    /// logged as a HIT like any other.
    #[inline]
    pub fn serve_private(
        &self,
        agent: AgentId,
        line: u32,
        version: u64,
        bytes: u64,
    ) -> Result<bool> {
        self.check_line(line)?;
        let (mask, bit) = self.valid_bit(agent.slot, line)?;
        let view = self.view(agent.slot, line)?;
        // Pairs with the SeqCst swap that clears the masks in `write.rs`; the view is this
        // agent's own word, stored before its bit was set.
        if version == 0 || mask.load(Ordering::SeqCst) & bit == 0 {
            return Ok(false);
        }
        let seen = view.load(Ordering::Relaxed);
        if seen != version || !self.still_fresh(agent, line)? {
            return Ok(false);
        }
        self.log_hit(agent, line, version, bytes);
        Ok(true)
    }

    /// The agent's view of `line` without reading the payload: a single load decides the HIT.
    pub fn check(&self, agent: AgentId, line: u32) -> Result<ViewCheck> {
        self.check_line(line)?;
        let (mask, bit) = self.valid_bit(agent.slot, line)?;
        // Pairs with the SeqCst swap that clears the masks in `write.rs`, and with the SeqCst
        // `fetch_or` that set the bit after its view (another thread of this agent): the view
        // is loaded after the bit, so it is at least the version the bit was set for.
        let bit_set = mask.load(Ordering::SeqCst) & bit != 0;
        let held = self.view(agent.slot, line)?.load(Ordering::Relaxed);
        let Current { version, base, .. } = self.current(line)?;
        let current = version;
        // A view at or below the base is of an earlier key of a reused line: none of this key.
        let held = if held <= base { 0 } else { held };
        let valid = held != 0 && bit_set;
        Ok(ViewCheck {
            held,
            current,
            valid,
        })
    }

    /// The current version of `line` and whether it is a tombstone (version 0: never written).
    pub(crate) fn current(&self, line: u32) -> Result<Current> {
        self.check_line(line)?;
        let head_word = self.head(line)?;
        let mut moved_from = None;
        // Counted from 1 as in `read_with`: `moved_before` yields every 64th attempt, and from 0
        // it yielded on the first retry, which on a loaded machine gave the CPU away for a time
        // slice whenever a writer published during the read (millisecond p99s of a `check` poll).
        for attempt in 1u32.. {
            // Pairs with the publishing compare-exchange in `write.rs`. A retry reads the newest
            // head with a read-modify-write (see `read_with`).
            let raw = if attempt == 1 {
                head_word.load(Ordering::Acquire)
            } else {
                head_word.fetch_add(0, Ordering::Acquire)
            };
            let head = Head::unpack(raw);
            let Some(desc) = head.desc_index() else {
                return self.above_base(line, 0, false, head);
            };
            let d = self.desc_words(desc)?;
            let owner_word = d[D_OWNER].load(Ordering::Acquire);
            match unpack_owner(owner_word) {
                Some((owner_line, _)) if owner_line == line => {
                    let flags = d[D_FLAGS].load(Ordering::Relaxed);
                    let version = d[D_VERSION].load(Ordering::Relaxed);
                    // Seqlock read: pairs with the Release fences in `alloc_slot`, `fill_slot`
                    // and `release_desc` (a field from a reuse shows as a changed owner tag).
                    fence(Ordering::Acquire);
                    // The head still pointing at the descriptor proves it was published (not a
                    // slot being filled that a stale head reached) and not reused meanwhile.
                    let unchanged = d[D_OWNER].load(Ordering::Relaxed) == owner_word;
                    #[cfg(not(ccs_mutant = "no_publish_check"))]
                    let unchanged = unchanged && head_word.load(Ordering::Relaxed) == raw;
                    if unchanged {
                        let deleted = flags & crate::alloc::FLAG_DELETED != 0;
                        return self.above_base(line, version, deleted, head);
                    }
                }
                _ => {}
            }
            moved_before(&mut moved_from, raw, attempt).map_err(|_| {
                ProtocolError::corrupt(format!(
                    "line {line} points at a descriptor it does not own"
                ))
            })?;
        }
        Err(ProtocolError::corrupt(format!(
            "line {line}: no consistent head in 2^32 attempts"
        )))
    }

    /// The line's state given its published `version`: a key given a reused line (or one
    /// whose home has a version floor) is absent at its base until its first write.
    fn above_base(&self, line: u32, version: u64, deleted: bool, head: Head) -> Result<Current> {
        let base = self.base(line)?;
        Ok(if base > version {
            Current {
                version: base,
                deleted: true,
                head,
                base,
            }
        } else {
            Current {
                version,
                deleted,
                head,
                base,
            }
        })
    }

    /// The current version of `line` (0: never written; a deleted artifact keeps its version).
    pub fn version(&self, line: u32) -> Result<u64> {
        Ok(self.current(line)?.version)
    }
}

/// A read found the descriptor of head `raw` moved on. Under heavy writing that is normal, and
/// the read starts over from the newest head (each retry reads it with a read-modify-write, so
/// it follows a write that really completed), yielding now and then so the writers can finish.
/// Only the same head failing twice is corruption: a head no writer changes points at a
/// descriptor it does not own (a published descriptor stays LIVE and tagged for its line until
/// the head has moved past it).
fn moved_before(moved_from: &mut Option<u64>, raw: u64, attempt: u32) -> Result<()> {
    if *moved_from == Some(raw) {
        return Err(ProtocolError::corrupt("line's descriptor keeps changing"));
    }
    *moved_from = Some(raw);
    if attempt.is_multiple_of(64) {
        crate::sync::yield_now();
    }
    Ok(())
}

/// A line's current version, read consistently.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Current {
    pub version: u64,
    pub deleted: bool,
    pub head: Head,
    /// The line's base: versions at or below it are of earlier keys of the line.
    pub base: u64,
}

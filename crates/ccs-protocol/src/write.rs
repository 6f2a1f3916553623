//! Writes: the single-writer right, invalidation, publication and fencing.
//!
//! A line's head word holds the published descriptor, the holder of the line's single-writer
//! right and an acquisition epoch (see `packing.rs`). A writer
//!
//! 1. takes the right: compare-and-swap the head from `holder = 0` to itself, bumping the
//!    epoch (a `put` holds it for one write, M; an `acquire` for a lease, E), and records its
//!    lease (an `acquire` at once; a `put` after step 3, so that nothing but loads separates
//!    the take from the invalidation peers wait for);
//! 2. checks its condition against the current version (stable while it holds the right);
//! 3. clears every agent's valid bit with SeqCst swaps (pairs with the reader's `fetch_or` and
//!    re-validation in `read.rs`);
//! 4. fills a fresh slot: the previous version is never touched, so a writer that dies at any
//!    instruction leaves it intact;
//! 5. publishes the new descriptor and gives up the right in one compare-and-swap of the head
//!    from exactly the value it took. If its right was reclaimed meanwhile (dead or lease
//!    expired), the epoch differs, the exchange fails, and the write is refused as
//!    [`ProtocolError::Fenced`]: a fenced holder can never publish.
//!
//! A holder found dead (its kernel lock is gone) is reclaimed at once; a live holder past its
//! lease is reclaimed and thereby fenced; a live exclusive holder within its lease makes an
//! `acquire` fail with [`ProtocolError::Held`] at once (never a silent preemption).

use crate::agents::DROPPED_VIEW;
use crate::directory::{AgentId, Directory};
use crate::env::Env;
use crate::error::{ProtocolError, Result};
#[cfg(not(loom))]
use crate::free_list::FreeList;
use crate::ghosts::Ghost;
use crate::keys::LineRef;
#[cfg(not(loom))]
use crate::layout::{D_BLOCK, class_for};
use crate::layout::{L_PUBLISHED, L_WAIT};
use crate::opcodes::{LogOp, LogOutcome, WriteMode};
use crate::oplog::LogEntry;
use crate::packing::{Head, Lease, desc_state};
#[cfg(not(loom))]
use crate::packing::{unpack_block_field, unpack_free_head};
use crate::records::{KillPoint, Moving};
#[cfg(not(loom))]
use crate::sync::prefetch_write;
use crate::sync::{Ordering, fence, spin_hint, yield_now};

/// What a write is conditional on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// The writer's own view: refused if it last read an older version than the current one.
    View,
    /// Exactly this current version (0: never written).
    Version(u64),
    /// Nothing: overwrite whatever is there.
    Blind,
}

/// The single-writer right on a line, held by one agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    /// The line held.
    pub line: u32,
    /// The head value the holder installed; publishing compares against it.
    pub(crate) head: Head,
    /// The holder.
    pub agent: AgentId,
    /// The current version when the right was taken.
    pub version: u64,
    /// Whether the artifact was deleted (a tombstone) when taken.
    pub deleted: bool,
    /// The line's base when taken: views at or below it are of earlier keys of the line.
    pub(crate) base: u64,
    /// The line's pending-slot word as found right after taking the line; recording a slot
    /// compares against it, so a holder whose right was reclaimed meanwhile cannot record.
    pub(crate) pending_seen: u64,
}

/// When a write clears the line's valid masks (docs/protocol.md §3.5, step 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Invalidation {
    /// Before the take, the line being free when the write started; after the take, only
    /// the mask words a reader set again meanwhile.
    BeforeTake,
    /// After the take: the line was held when the write started, or it is a commit.
    AfterTake,
}

/// Where a simulated crash stops a write (loom models of invariant 6).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopAt {
    /// Run to completion.
    Never,
    /// Right after taking the line.
    Taken,
    /// After clearing the masks.
    Invalidated,
    /// After filling the new slot (the masks already cleared).
    Filled,
}

/// Largest payload whose block is prefetched ahead of its copy, in cache lines: about what a
/// core keeps in flight at once. A larger copy is left to the processor's streaming stores,
/// which need not read the lines they overwrite (prefetching 16 lines of a 4 KiB block made an
/// in-process `put_peers/payload/4096` slower by a quarter).
#[cfg(not(loom))]
const PREFETCH_LINES: usize = 32;

/// Spins before a waiting writer starts probing the holder and yielding.
#[cfg(not(loom))]
const SPINS_BEFORE_PROBE: u32 = 32;
#[cfg(loom)]
const SPINS_BEFORE_PROBE: u32 = 0;

impl<E: Env> Directory<E> {
    /// Write `payload` to `line` as `agent` if `condition` holds. Returns the new version.
    pub fn put(
        &self,
        agent: AgentId,
        line: u32,
        payload: &[u8],
        condition: Condition,
    ) -> Result<u64> {
        self.write_logged(agent, line, None, Some(payload), condition)
    }

    /// [`Directory::put`] to a key resolved as `at`: [`ProtocolError::LineReused`] (nothing
    /// written) if its line was given to another key since.
    pub fn put_at(
        &self,
        agent: AgentId,
        at: LineRef,
        payload: &[u8],
        condition: Condition,
    ) -> Result<u64> {
        self.write_logged(agent, at.line, Some(at), Some(payload), condition)
    }

    /// Delete `line` as `agent` if `condition` holds: publishes a tombstone version.
    pub fn delete(&self, agent: AgentId, line: u32, condition: Condition) -> Result<u64> {
        self.write_logged(agent, line, None, None, condition)
    }

    /// [`Directory::delete`] of a key resolved as `at` (see [`Directory::put_at`]).
    pub fn delete_at(&self, agent: AgentId, at: LineRef, condition: Condition) -> Result<u64> {
        self.write_logged(agent, at.line, Some(at), None, condition)
    }

    fn write_logged(
        &self,
        agent: AgentId,
        line: u32,
        at: Option<LineRef>,
        payload: Option<&[u8]>,
        condition: Condition,
    ) -> Result<u64> {
        let held = match condition {
            Condition::Version(expected) => expected,
            Condition::View | Condition::Blind => {
                self.check_line(line)?;
                self.view(agent.slot, line)?.load(Ordering::Relaxed)
            }
        };
        let result = self
            .write_inner(agent, line, at, payload, condition, StopAt::Never)
            .and_then(|done| done.ok_or_else(|| ProtocolError::corrupt("write stopped")));
        let op = if payload.is_some() {
            LogOp::Put
        } else {
            LogOp::Delete
        };
        let entry = LogEntry {
            bytes: payload.map_or(0, |p| p.len() as u64),
            mode: Some(match condition {
                Condition::View => WriteMode::View,
                Condition::Version(_) => WriteMode::If,
                Condition::Blind => WriteMode::Blind,
            }),
            ..LogEntry::new(op, LogOutcome::Ok).on(line)
        };
        self.log_result(agent, entry, held, &result);
        result.map(|published| published.version)
    }

    /// Log the outcome of a write-like operation.
    fn log_result(&self, agent: AgentId, entry: LogEntry, held: u64, result: &Result<Published>) {
        if !self.logging() {
            return;
        }
        let entry = match result {
            Ok(published) => LogEntry {
                t_ns: Some(published.t_ns),
                ..entry.versions(published.version, held)
            },
            Err(error) => refused(entry, held, error),
        };
        self.log(agent, entry);
    }

    /// A write that can stop part-way, as if its process died there (`Ok(None)`), leaving the
    /// line held by an agent the environment must then report dead.
    #[doc(hidden)]
    pub fn write_stopping(
        &self,
        agent: AgentId,
        line: u32,
        payload: Option<&[u8]>,
        condition: Condition,
        stop: StopAt,
    ) -> Result<Option<u64>> {
        self.write_inner(agent, line, None, payload, condition, stop)
            .map(|done| done.map(|published| published.version))
    }

    fn write_inner(
        &self,
        agent: AgentId,
        line: u32,
        at: Option<LineRef>,
        payload: Option<&[u8]>,
        condition: Condition,
        stop: StopAt,
    ) -> Result<Option<Published>> {
        self.check_generation(agent)?;
        if let Some(bytes) = payload
            && bytes.len() as u64 > self.geo.config.max_payload
        {
            return Err(ProtocolError::PayloadTooLarge {
                len: bytes.len() as u64,
                max: self.geo.config.max_payload,
            });
        }
        // Relaxed: only a guess, read once for the prefetches and the early invalidation;
        // `win_line` reads the head for real.
        let guess = Head::unpack(self.head(line)?.load(Ordering::Relaxed));
        self.prefetch_write_set(line, guess);
        let invalidation =
            self.invalidate_before_take(agent, line, guess, payload.is_some(), condition)?;
        #[cfg(ccs_mutant = "check_before_take")]
        let early = self.current(line)?.version;
        // The lease is recorded after the invalidation (`publish_stopping`): what precedes the
        // swap that peers wait for is only the take, the condition and local loads.
        let (hold, lease_seen) = self.win_line(agent, line)?;
        self.still_held_for(hold, at)?;
        if stop == StopAt::Taken {
            return Ok(None);
        }
        #[cfg(ccs_mutant = "check_before_take")]
        let hold = Hold {
            version: early,
            ..hold
        };
        let refusal = if payload.is_none() && (hold.version == 0 || hold.deleted) {
            Some(ProtocolError::NotFound)
        } else {
            match condition {
                Condition::Blind => None,
                Condition::Version(expected) if expected == hold.version => None,
                Condition::Version(expected) => Some(ProtocolError::Conflict {
                    current: hold.version,
                    yours: expected,
                }),
                Condition::View => {
                    let held = self.view(agent.slot, line)?.load(Ordering::Relaxed);
                    // A view at or below the line's base is of an earlier key of the line: this
                    // agent never read this key here (as a view of 0 says), but may have read
                    // it on a line since reused (its ghost, `ghosts.rs`).
                    if held == 0 || held <= hold.base {
                        self.first_write(agent, hold)?
                    } else if held == hold.version {
                        None
                    } else {
                        Some(ProtocolError::Conflict {
                            current: hold.version,
                            yours: held,
                        })
                    }
                }
            }
        };
        if let Some(error) = refusal {
            self.unhold(hold)?;
            return Err(error);
        }
        let lease = Unrecorded {
            seen: lease_seen,
            ms: self.geo.config.write_lease_ms,
        };
        self.publish_stopping(hold, payload, stop, Some(lease), invalidation)
    }

    /// Clear every valid mask word of `line` before taking it, when no one holds it now and
    /// the write's condition will admit it, as far as the line's `published` hint tells: a
    /// blind put, a `put_if` that expects the published version, a put from a view of it.
    /// Peers then see the write one cache-line transfer after it starts, not two (the taking
    /// CAS's, then the swap's): the head and the mask are on lines peers read, and a SeqCst
    /// exchange cannot start before the one before it has finished. Otherwise
    /// [`Invalidation::AfterTake`]: a write the condition refuses leaves peers' copies alone
    /// (as docs/protocol.md §2 says), and a contended one may wait long for the line. The hint
    /// only chooses the order: a wrong guess costs peers a re-read, or the early transfer. A
    /// reader may set its bit again between this swap and the take (its re-validation finds
    /// the head untaken); the sweep after the take clears it (`invalidate`, §3.2).
    fn invalidate_before_take(
        &self,
        agent: AgentId,
        line: u32,
        guess: Head,
        put: bool,
        condition: Condition,
    ) -> Result<Invalidation> {
        if !self.invalidating() {
            return Ok(Invalidation::AfterTake);
        }
        // `guess` and the hint, both from the head's cache line, Relaxed: only a guess; the
        // take and the condition read the line for real.
        let free = guess.holder == 0;
        let published =
            || -> Result<u64> { Ok(self.line_word(line, L_PUBLISHED)?.load(Ordering::Relaxed)) };
        let admitted = match condition {
            // A delete is refused on an absent or deleted key, which the hint does not tell.
            _ if !put => false,
            Condition::Blind => true,
            Condition::Version(expected) => expected == published()?,
            Condition::View => {
                let view = self.view(agent.slot, line)?.load(Ordering::Relaxed);
                view != 0 && view == published()?
            }
        };
        if !(free && admitted) {
            return Ok(Invalidation::AfterTake);
        }
        // Pairs with the reader's fetch_or + fence + head re-load in `read.rs`, through the
        // sweep after the take.
        for index in 0..self.geo.mask_words {
            self.mask_word(line, index)?.swap(0, Ordering::SeqCst);
        }
        Ok(Invalidation::BeforeTake)
    }

    /// Clear `line`'s valid masks with this writer holding it: every word, or after
    /// [`Directory::invalidate_before_take`] only those a reader set again since. Their SeqCst
    /// loads follow the taking CAS in the single total order, so they see every bit whose
    /// reader's re-load of the head found it untaken (the `fetch_or` precedes that re-load,
    /// which precedes the take); a bit set later is cleared by its own reader, whose re-load
    /// finds the line taken. A word found 0 is left alone: on the writer's own cache line,
    /// peers are not disturbed again. The mutant skips the sweep: a reader that re-validated
    /// between the first swap and the take keeps its bit on the superseded version.
    fn invalidate(&self, line: u32, invalidation: Invalidation) -> Result<()> {
        if !self.invalidating() {
            return Ok(());
        }
        #[cfg(ccs_mutant = "unswept_early_swap")]
        if invalidation == Invalidation::BeforeTake {
            return Ok(());
        }
        for index in 0..self.geo.mask_words {
            let word = self.mask_word(line, index)?;
            // Pairs with the reader's fetch_or + fence + head re-load in `read.rs`.
            if invalidation == Invalidation::AfterTake || word.load(Ordering::SeqCst) != 0 {
                word.swap(0, Ordering::SeqCst);
            }
        }
        Ok(())
    }

    /// The refusal, if any, of a `View`-conditional write by `agent` with no view of the key on
    /// `hold`'s line: admitted unless a ghost says the agent knew an earlier incarnation of the
    /// key (then it must read first, as with a dropped view, `yours` = 0), except to re-create
    /// the key after seeing it deleted.
    fn first_write(&self, agent: AgentId, hold: Hold) -> Result<Option<ProtocolError>> {
        // No version of this key on its line yet (0 on a line that never had a key).
        let recreating = hold.version <= hold.base;
        let admitted = match self.ghost(agent, hold.line)? {
            Ghost::None => true,
            Ghost::SawDeletion => recreating,
            Ghost::Stale { recreate_ok } => recreate_ok && recreating,
        };
        Ok((!admitted).then_some(ProtocolError::Conflict {
            current: hold.version,
            yours: 0,
        }))
    }

    /// Take `line`'s single-writer right for `lease_ms` as an exclusive owner (E).
    pub fn acquire(&self, agent: AgentId, line: u32, lease_ms: u64) -> Result<Hold> {
        self.acquire_logged(agent, line, None, lease_ms)
    }

    /// [`Directory::acquire`] of a key resolved as `at` (see [`Directory::put_at`]).
    pub fn acquire_at(&self, agent: AgentId, at: LineRef, lease_ms: u64) -> Result<Hold> {
        self.acquire_logged(agent, at.line, Some(at), lease_ms)
    }

    /// With the line held: refuse (giving the right up) if `at`'s key no longer owns it. A
    /// reuser holds the line while it changes the generation, so the check holds until the
    /// hold ends.
    fn still_held_for(&self, hold: Hold, at: Option<LineRef>) -> Result<()> {
        match at {
            Some(at) if !self.still_owns(at)? => {
                self.unhold(hold)?;
                Err(ProtocolError::LineReused)
            }
            _ => Ok(()),
        }
    }

    fn acquire_logged(
        &self,
        agent: AgentId,
        line: u32,
        at: Option<LineRef>,
        lease_ms: u64,
    ) -> Result<Hold> {
        let result = self.check_generation(agent).and_then(|()| {
            let hold = self.take_line(agent, line, true, lease_ms)?;
            self.still_held_for(hold, at).map(|()| hold)
        });
        if self.logging() {
            let held = self
                .view(agent.slot, line)
                .map_or(0, |v| v.load(Ordering::Relaxed));
            let entry = LogEntry::new(LogOp::Acquire, LogOutcome::Ok).on(line);
            self.log(
                agent,
                match &result {
                    Ok(hold) => entry.versions(hold.version, held),
                    Err(error) => refused(entry, held, error),
                },
            );
        }
        result
    }

    /// Publish `payload` under `hold` and give the right up. Refused with
    /// [`ProtocolError::Fenced`] if the right was reclaimed.
    pub fn commit(&self, hold: Hold, payload: &[u8]) -> Result<u64> {
        let result = self.commit_unlogged(hold, payload);
        let entry = LogEntry {
            bytes: payload.len() as u64,
            mode: Some(WriteMode::View),
            ..LogEntry::new(LogOp::Commit, LogOutcome::Ok).on(hold.line)
        };
        self.log_result(hold.agent, entry, hold.version, &result);
        result.map(|published| published.version)
    }

    fn commit_unlogged(&self, hold: Hold, payload: &[u8]) -> Result<Published> {
        self.check_generation(hold.agent)?;
        // Same bound as `put`: a larger payload would get a block beyond the segment's size
        // classes, and every later read of it would be refused as corrupt. Like the other
        // refusals of a commit, it gives the right up.
        if payload.len() as u64 > self.geo.config.max_payload {
            let _ = self.unhold(hold);
            return Err(ProtocolError::PayloadTooLarge {
                len: payload.len() as u64,
                max: self.geo.config.max_payload,
            });
        }
        self.publish_stopping(
            hold,
            Some(payload),
            StopAt::Never,
            None,
            Invalidation::AfterTake,
        )?
        .ok_or_else(|| ProtocolError::corrupt("write stopped"))
    }

    /// Give the right up without writing. [`ProtocolError::Fenced`] if it had been reclaimed.
    pub fn release(&self, hold: Hold) -> Result<()> {
        let result = self.unhold(hold);
        self.log_hold_op(LogOp::Release, hold, &result);
        result
    }

    fn log_hold_op(&self, op: LogOp, hold: Hold, result: &Result<()>) {
        if self.logging() {
            let entry = LogEntry::new(op, LogOutcome::Ok)
                .on(hold.line)
                .versions(hold.version, hold.version);
            self.log(
                hold.agent,
                match result {
                    Ok(()) => entry,
                    Err(error) => refused(entry, hold.version, error),
                },
            );
        }
    }

    /// Give the right up, unlogged (a refused write's own hold).
    pub(crate) fn unhold(&self, hold: Hold) -> Result<()> {
        let released = Head {
            holder: 0,
            ..hold.head
        };
        self.head(hold.line)?
            .compare_exchange(
                hold.head.pack(),
                released.pack(),
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .map(|_| ())
            .map_err(|_| ProtocolError::Fenced)
    }

    /// Extend `hold`'s lease to `lease_ms` from now. [`ProtocolError::Fenced`] if reclaimed.
    pub fn renew(&self, hold: Hold, lease_ms: u64) -> Result<()> {
        let result = self.renew_unlogged(hold, lease_ms);
        self.log_hold_op(LogOp::Renew, hold, &result);
        result
    }

    fn renew_unlogged(&self, hold: Hold, lease_ms: u64) -> Result<()> {
        let lease = self.lease(hold.line)?;
        let current = lease.load(Ordering::Acquire);
        let mut renewed = Lease::unpack(current);
        if renewed.epoch != hold.head.epoch
            || self.head(hold.line)?.load(Ordering::Acquire) != hold.head.pack()
        {
            return Err(ProtocolError::Fenced);
        }
        renewed.deadline_ms = self.env.now_ms().saturating_add(lease_ms);
        lease
            .compare_exchange(current, renewed.pack(), Ordering::AcqRel, Ordering::Relaxed)
            .map(|_| ())
            .map_err(|_| ProtocolError::Fenced)
    }

    pub(crate) fn take_line(
        &self,
        agent: AgentId,
        line: u32,
        exclusive: bool,
        lease_ms: u64,
    ) -> Result<Hold> {
        let (hold, lease_seen) = self.win_line(agent, line)?;
        self.record_lease(hold, lease_seen, exclusive, lease_ms)?;
        Ok(hold)
    }

    /// Win `line`'s head for `agent` (reclaiming it from a dead or expired holder) and read
    /// what the hold needs; returns the hold and the lease word as found, from which
    /// [`Directory::record_lease`] must then record this hold's lease. Until it does, a
    /// contender that finds the holder alive waits (`Reclaim::Wait`).
    fn win_line(&self, agent: AgentId, line: u32) -> Result<(Hold, u64)> {
        self.check_line(line)?;
        let head_word = self.head(line)?;
        let mut spins = 0u32;
        // When this caller first saw the current head value: a holder that never records its
        // lease (stopped or killed between winning the head and writing the lease) is given
        // the write lease from then on.
        let mut first_seen: Option<(u64, u64)> = None;
        loop {
            let mut dead_head = None;
            let mut reclaimed = None;
            let raw = head_word.load(Ordering::Acquire);
            let head = Head::unpack(raw);
            let take = match head.holder_slot() {
                None => true,
                Some(holder) if holder == agent.slot => {
                    return Err(ProtocolError::Held { by: holder });
                }
                Some(holder) => {
                    spins += 1;
                    if spins < SPINS_BEFORE_PROBE {
                        spin_hint();
                        continue;
                    }
                    let seen_ms = match first_seen {
                        Some((seen_raw, at)) if seen_raw == raw => at,
                        _ => {
                            let now = self.env.now_ms();
                            first_seen = Some((raw, now));
                            now
                        }
                    };
                    match self.reclaimable(line, head, holder, seen_ms)? {
                        Reclaim::Dead => {
                            dead_head = Some(head);
                            reclaimed = Some(holder);
                            true
                        }
                        Reclaim::Expired => {
                            reclaimed = Some(holder);
                            true
                        }
                        Reclaim::Held => return Err(ProtocolError::Held { by: holder }),
                        Reclaim::Wait => {
                            yield_now();
                            continue;
                        }
                    }
                }
            };
            debug_assert!(take);
            let taken = head.taken_by(agent.slot);
            #[cfg(ccs_mutant = "unlocked_take")]
            let won = {
                head_word.store(taken.pack(), Ordering::SeqCst);
                true
            };
            // The SeqCst exchange orders "line taken" before this writer's mask swaps, which a
            // reader's re-validation relies on (see `read.rs`).
            #[cfg(not(ccs_mutant = "unlocked_take"))]
            let won = head_word
                .compare_exchange(raw, taken.pack(), Ordering::SeqCst, Ordering::Relaxed)
                .is_ok();
            if !won {
                continue;
            }
            if let Some(dead) = dead_head {
                self.discard_pending_of(line, dead, agent.slot, None)?;
            }
            // Both records are compare-and-swapped from the values found after winning the
            // head: if this holder is reclaimed before it records (it stalled), the reclaimer's
            // records change the words and this holder's late ones fail instead of clobbering.
            let pending_seen = self.pending(line)?.load(Ordering::Acquire);
            let lease_seen = self.lease(line)?.load(Ordering::Acquire);
            let current = self.current(line)?;
            let hold = Hold {
                line,
                head: taken,
                agent,
                version: current.version,
                deleted: current.deleted,
                base: current.base,
                pending_seen,
            };
            if let Some(holder) = reclaimed {
                self.log(
                    agent,
                    LogEntry {
                        other: Some(holder),
                        ..LogEntry::new(LogOp::Reclaim, LogOutcome::Ok)
                            .on(line)
                            .versions(current.version, current.version)
                    },
                );
            }
            return Ok((hold, lease_seen));
        }
    }

    /// Record `hold`'s lease, `lease_ms` from now, over `lease_seen` (the lease word as found
    /// right after winning the head). [`ProtocolError::Fenced`] if the right was reclaimed.
    fn record_lease(
        &self,
        hold: Hold,
        lease_seen: u64,
        exclusive: bool,
        lease_ms: u64,
    ) -> Result<()> {
        let recorded = Lease {
            deadline_ms: self.env.now_ms().saturating_add(lease_ms),
            exclusive,
            epoch: hold.head.epoch,
        }
        .pack();
        // Pairs with the Acquire load in `reclaimable`.
        self.record(self.lease(hold.line)?, lease_seen, recorded, hold)
    }

    fn reclaimable(&self, line: u32, head: Head, holder: u32, seen_ms: u64) -> Result<Reclaim> {
        #[cfg(not(ccs_mutant = "ignore_dead_holder"))]
        if !self.env.agent_alive(holder)? {
            return Ok(Reclaim::Dead);
        }
        // Pairs with the Release store in `take_line`.
        let lease = Lease::unpack(self.lease(line)?.load(Ordering::Acquire));
        if lease.epoch != head.epoch {
            // Not recorded yet (normally a matter of nanoseconds).
            let unrecorded_for = self.env.now_ms().saturating_sub(seen_ms);
            return Ok(if unrecorded_for >= self.geo.config.write_lease_ms {
                Reclaim::Expired
            } else {
                Reclaim::Wait
            });
        }
        let now = self.env.now_ms();
        // A `put`'s lease is never longer than the write lease: a longer one is not a correct
        // writer's (a hostile or corrupt word), and must not stall writers until it ends.
        let overlong = !lease.exclusive
            && lease.deadline_ms > now.saturating_add(self.geo.config.write_lease_ms);
        if now >= lease.deadline_ms || overlong {
            Ok(Reclaim::Expired)
        } else if lease.exclusive {
            Ok(Reclaim::Held)
        } else {
            Ok(Reclaim::Wait)
        }
    }

    fn publish_stopping(
        &self,
        hold: Hold,
        payload: Option<&[u8]>,
        stop: StopAt,
        lease: Option<Unrecorded>,
        invalidation: Invalidation,
    ) -> Result<Option<Published>> {
        let line = hold.line;
        // Never refused in practice (2^64 − 2 writes of one key at 10^9 a second take 584
        // years; only a corrupted version word gets here), and it keeps `DROPPED_VIEW` above
        // every version ever published (see `agents.rs`).
        let Some(version) = hold.version.checked_add(1).filter(|&v| v != DROPPED_VIEW) else {
            let _ = self.unhold(hold);
            return Err(ProtocolError::CapacityExceeded {
                what: "versions of one artifact",
                limit: DROPPED_VIEW - 1,
            });
        };
        #[cfg(ccs_mutant = "retire_before_publish")]
        if let Some(old) = hold.head.desc_index() {
            self.retire_known(old, self.incarnation_of(old)?, hold.agent.slot)?;
        }
        // Invalidate before filling (docs/design.md, "The protocol": take, invalidate, fill,
        // publish; a free line's masks were cleared before the take already), so peers learn
        // of the write as early as possible; a write that then fails only costs them a re-read.
        self.invalidate(line, invalidation)?;
        if stop == StopAt::Invalidated {
            return Ok(None);
        }
        self.prefetch_new_slot(hold.agent.slot, payload.map(<[u8]>::len));
        let (desc, filling) = match self.alloc_slot(hold.agent.slot, line, payload) {
            Ok(slot) => slot,
            Err(e) => {
                let _ = self.unhold(hold);
                return Err(e);
            }
        };
        // A `put`'s lease, now that peers know of the write, right before the pending record
        // (the same cache line, so the second exchange usually finds it still here). Refused
        // only if the right was reclaimed meanwhile: peers then re-read the version they had
        // (a spurious MISS).
        if let Some(lease) = lease
            && let Err(e) = self.record_lease(hold, lease.seen, false, lease.ms)
        {
            // One name at a time (`records.rs`): the agent's record of the descriptor goes
            // before the descriptor goes back, else a recovery would free it a second time.
            self.note_taken(hold.agent.slot, None)?;
            self.release_desc(desc)?;
            return Err(e);
        }
        // Recorded before the slot is filled, so a reclaimer of this writer, if it dies from
        // here on, frees the slot and its block. The agent's own tagged record of the descriptor stays until the
        // pending word names it, so a death on either side of the exchange is recovered: its
        // recovery takes the record back from the pending word as a reclaimer would, or
        // discards the slot (`records.rs`, `release_filling`). The mutant clears it first, as
        // before, and a death before the exchange leaks the descriptor.
        #[cfg(ccs_mutant = "taken_cleared_before_pending")]
        self.note_taken(hold.agent.slot, None)?;
        self.env.kill_point(hold.agent.slot, KillPoint::Pending);
        if let Err(e) = self.record(
            self.pending(line)?,
            hold.pending_seen,
            pending(desc, hold.head.epoch),
            hold,
        ) {
            self.note_taken(hold.agent.slot, None)?;
            self.release_desc(desc)?;
            return Err(e);
        }
        self.env.kill_point(hold.agent.slot, KillPoint::Pended);
        self.note_taken(hold.agent.slot, None)?;
        if let Err(e) = self.fill_slot(desc, line, version, filling, hold.agent.slot) {
            self.clear_pending(line, desc, hold)?;
            self.release_desc(desc)?;
            let _ = self.unhold(hold);
            return Err(e);
        }
        if stop == StopAt::Filled {
            return Ok(None);
        }
        let published = Head {
            desc: desc + 1,
            holder: 0,
            epoch: hold.head.epoch,
        };
        let head_word = self.head(line)?;
        // What the retire record names, read before publishing (`records.rs`).
        let superseded = self.superseded(hold.head.desc_index())?;
        // Taken while holding the line, so the log orders one key's writes by version.
        let t_ns = if self.logging() { self.env.now_ns() } else { 0 };
        // The supersede recorded and the superseded version marked before the exchange, so
        // that this agent's recovery can tell whether the exchange happened if its process
        // dies on either side of it (docs/protocol.md §3.9).
        if let Some((old, _)) = superseded {
            self.mark_superseding(old, hold.agent.slot, hold.head.epoch)?;
        }
        self.env.kill_point(hold.agent.slot, KillPoint::Publishing);
        #[cfg(ccs_mutant = "unfenced_publish")]
        head_word.store(published.pack(), Ordering::SeqCst);
        // Pairs with the Acquire loads of the head by readers: the slot's bytes and fields are
        // visible to whoever sees the new head.
        #[cfg(not(ccs_mutant = "unfenced_publish"))]
        if head_word
            .compare_exchange(
                hold.head.pack(),
                published.pack(),
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .is_err()
        {
            self.clear_pending(line, desc, hold)?;
            self.discard_slot(desc, hold.agent.slot)?;
            return Err(ProtocolError::Fenced);
        }
        self.env.kill_point(hold.agent.slot, KillPoint::Published);
        // The hint of `invalidate_before_take`, on the head's line, which the exchange has just
        // brought here: only a published version (a fenced writer stores nothing). A writer
        // that stalls here may store it after a later one's: a guess that lags, and a stale
        // guess costs peers a re-read at most.
        self.line_word(line, L_PUBLISHED)?
            .store(version, Ordering::Relaxed);
        // Retire the superseded version first (its `Superseding` record and mark cover a death
        // from the exchange to here).
        // An overwrite by a payload of the size class it frees keeps it as the writer's spare
        // for its next put of that class; a delete gives it back to everyone (`spare.rs`).
        #[cfg(not(ccs_mutant = "retire_before_publish"))]
        if let Some((old, incarnation)) = superseded {
            match payload {
                Some(bytes) => self.retire_superseded(
                    old,
                    incarnation,
                    hold.agent.slot,
                    crate::layout::class_for(bytes.len() as u64),
                )?,
                None => self.retire_known(old, incarnation, hold.agent.slot)?,
            };
        }
        self.clear_pending(line, desc, hold)?;
        self.notify(line)?;
        self.push_events(line, version, hold.agent.slot, payload.is_none());
        self.adopt(hold.agent, line, published, version)?;
        Ok(Some(Published { version, t_ns }))
    }

    /// Start bringing to this core the cache lines a write to `line` changes after its take:
    /// the valid mask, cleared right after it, and the current version's descriptor, retired
    /// after the publication. A peer that read the artifact holds both; requested now, their
    /// transfers overlap the take's instead of following it. Only a hint (`prefetch_write`):
    /// it reads nothing the write relies on, and loom's models do without it.
    #[inline]
    fn prefetch_write_set(&self, line: u32, guess: Head) {
        #[cfg(not(loom))]
        {
            if let Ok(mask) = self.mask_word(line, 0) {
                prefetch_write(mask);
            }
            if let Some(old) = guess.desc_index()
                && let Ok(desc) = self.desc_words(old)
            {
                prefetch_write(&desc[0]);
            }
        }
        #[cfg(loom)]
        let _ = (line, guess);
    }

    /// Start bringing to this core the descriptor and the first lines of the block that
    /// `alloc_slot` would take now for `slot`'s payload of `len` bytes: the writer's spare of
    /// that size class (`spare.rs`), else the tops of the free lists. Either was freed by an
    /// earlier write, its lines still held by the peers that read that version (a copying
    /// reader holds every line of its block). Requested now, their transfers overlap the
    /// records and the allocation instead of stalling the fill. Only a hint: a stale or wrong
    /// guess costs a useless prefetch (the allocator reads the spare and the lists for real).
    /// Not inlined: the loads and the prefetches, out of the way of the put's own code.
    #[inline(never)]
    fn prefetch_new_slot(&self, slot: u32, len: Option<usize>) {
        #[cfg(not(loom))]
        {
            let class = len.map(|len| class_for(len as u64));
            // Relaxed: only addresses to prefetch (granule or descriptor + 1, 0 for none).
            let top = |list: FreeList| {
                self.list_head(list)
                    .map_or(0, |head| unpack_free_head(head.load(Ordering::Relaxed).0).1)
            };
            let (desc, block) = match class.and_then(|class| self.spare_for(slot, class)) {
                Some(desc) => (
                    u64::from(desc) + 1,
                    self.desc_at(desc, D_BLOCK).map_or(0, |block| {
                        unpack_block_field(block.load(Ordering::Relaxed)).0 + 1
                    }),
                ),
                None => (
                    top(FreeList::Descs),
                    class.map_or(0, |class| top(FreeList::Blocks(class))),
                ),
            };
            if desc != 0
                && let Ok(words) = self.desc_words((desc - 1) as u32)
            {
                prefetch_write(&words[0]);
            }
            let Some(len) = len.filter(|&len| len <= PREFETCH_LINES * 64) else {
                return;
            };
            if block == 0 || block > self.geo.arena_granules() {
                return;
            }
            let first = self.geo.granule_word(block - 1);
            for line in 0..len.div_ceil(64) {
                if let Ok(word) = self.words.at(first + line * 8) {
                    prefetch_write(word);
                }
            }
        }
        #[cfg(loom)]
        let _ = (slot, len);
    }

    /// Compare-and-swap a holder's record (`lease` or `pending` word) from `seen` to `value`,
    /// re-reading while the holder still holds the line: a stalled earlier holder's one late
    /// record may land first, and must neither win nor make this holder give up.
    fn record(
        &self,
        word: &crate::sync::AtomicU64,
        mut seen: u64,
        value: u64,
        hold: Hold,
    ) -> Result<()> {
        loop {
            match word.compare_exchange(seen, value, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(now) if self.head(hold.line)?.load(Ordering::Acquire) == hold.head.pack() => {
                    seen = now
                }
                Err(_) => return Err(ProtocolError::Fenced),
            }
        }
    }

    /// Forget the pending record of `desc` if it is still this holder's.
    fn clear_pending(&self, line: u32, desc: u32, hold: Hold) -> Result<()> {
        // A failed exchange means a reclaimer already took the record over.
        let _ = self.pending(line)?.compare_exchange(
            pending(desc, hold.head.epoch),
            0,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
        Ok(())
    }

    /// After reclaiming `line` from a dead holder whose head was `dead`, free the slot it was
    /// filling, if it had recorded one under that hold (the discard recorded under `slot`).
    /// With `this_use` (a control word's tag), only a slot of that use of its descriptor is
    /// taken: the writer's own recovery, which knows the use it recorded. Whether this call
    /// took the record.
    pub(crate) fn discard_pending_of(
        &self,
        line: u32,
        dead: Head,
        slot: u32,
        this_use: Option<u64>,
    ) -> Result<bool> {
        let word = self.pending(line)?;
        let record = word.load(Ordering::Acquire);
        let (desc_plus_one, epoch) = ((record >> 32) as u32, (record & 0xff_ffff) as u32);
        if desc_plus_one == 0 || epoch != dead.epoch {
            return Ok(false);
        }
        let (desc, incarnation) = (desc_plus_one - 1, self.incarnation_of(desc_plus_one - 1)?);
        // The discard is recorded before the record is taken, so that if this process dies
        // between the two its recovery discards the slot (docs/protocol.md §3.9); the mutant
        // records it only after. The incarnation read above is the slot's only if nobody took
        // the record before that load: an exchange that leaves the word as it was proves it
        // (AcqRel: a taker after it exchanges later, so frees the slot after the load). If the
        // taking exchange below then fails, another took the record and discards the same use:
        // two discards of one use free it once (`discard_slot_known`).
        #[cfg(not(ccs_mutant = "discard_after_taking"))]
        {
            if word
                .compare_exchange(record, record, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                return Ok(false);
            }
            // The use is proven by that exchange too: the record is of the use the
            // incarnation read before it names.
            if this_use.is_some_and(|tag| desc_state::tag(incarnation) != tag) {
                return Ok(false);
            }
            self.note_moving(slot, Moving::Discard { desc, incarnation })?;
        }
        #[cfg(ccs_mutant = "discard_after_taking")]
        if this_use.is_some_and(|tag| desc_state::tag(incarnation) != tag) {
            return Ok(false);
        }
        if word
            .compare_exchange(record, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.env.kill_point(slot, KillPoint::TookPending);
            self.discard_slot_known(desc, incarnation, slot)?;
            Ok(true)
        } else {
            self.note_moving(slot, Moving::None)?;
            Ok(false)
        }
    }

    /// For loom models: a reader's transient pin on the slot `line`'s holder has filled and not
    /// published (as a reader that reached it through a stale head takes it, before it finds it
    /// unpublished and lets go: [`Directory::unpin_slot`]). Returns the descriptor.
    #[doc(hidden)]
    pub fn pin_pending_slot(&self, line: u32) -> Result<u32> {
        let desc_plus_one = (self.pending(line)?.load(Ordering::Acquire) >> 32) as u32;
        let desc = desc_plus_one
            .checked_sub(1)
            .ok_or_else(|| ProtocolError::corrupt(format!("line {line} has no pending slot")))?;
        let ctl = self.desc_at(desc, crate::layout::D_CTL)?;
        let current = ctl.load(Ordering::Acquire);
        if current >> desc_state::SHIFT != desc_state::LIVE {
            return Err(ProtocolError::corrupt(format!(
                "pending slot {desc} of line {line} is not filled"
            )));
        }
        ctl.compare_exchange(current, current + 1, Ordering::Acquire, Ordering::Relaxed)
            .map_err(|_| ProtocolError::corrupt(format!("pending slot {desc} changed")))?;
        Ok(desc)
    }

    /// For loom models: drop a pin of [`Directory::pin_pending_slot`] (the last one of a
    /// discarded slot frees it).
    #[doc(hidden)]
    pub fn unpin_slot(&self, desc: u32) -> Result<()> {
        self.unpin(desc)
    }

    /// After publishing, the writer holds what it wrote: view = version, and S if nothing moved.
    fn adopt(&self, agent: AgentId, line: u32, published: Head, version: u64) -> Result<()> {
        self.advance_view(agent, line, self.view(agent.slot, line)?, version)?;
        let (mask, bit) = self.valid_bit(agent.slot, line)?;
        mask.fetch_or(bit, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        // Same re-validation as a MISS (see `read.rs`).
        if self.head(line)?.load(Ordering::SeqCst) != published.pack() {
            mask.fetch_and(!bit, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Bump the line's change counter and wake waiters, if any.
    pub(crate) fn notify(&self, line: u32) -> Result<()> {
        let base = self.geo.line_word(line, L_WAIT) * 2;
        self.bump_and_wake(self.words.at32(base)?, self.words.at32(base + 1)?);
        Ok(())
    }
}

/// A `put`'s lease, still to be recorded once its invalidation is done: the lease word as found
/// after winning the head, and the lease's length.
#[derive(Debug, Clone, Copy)]
struct Unrecorded {
    seen: u64,
    ms: u64,
}

/// A version published, and when (for the log).
#[derive(Debug, Clone, Copy)]
struct Published {
    version: u64,
    t_ns: u64,
}

/// `entry` as refused by `error`.
fn refused(entry: LogEntry, held: u64, error: &ProtocolError) -> LogEntry {
    let entry = entry.versions(0, held);
    match *error {
        ProtocolError::Conflict { current, yours } => LogEntry {
            outcome: LogOutcome::Conflict,
            ..entry.versions(current, yours)
        },
        ProtocolError::Held { by } => LogEntry {
            outcome: LogOutcome::Held,
            other: Some(by),
            ..entry
        },
        ProtocolError::Fenced => LogEntry {
            outcome: LogOutcome::Fenced,
            ..entry
        },
        ProtocolError::NotFound => LogEntry {
            outcome: LogOutcome::NotFound,
            ..entry
        },
        _ => LogEntry {
            outcome: LogOutcome::Error,
            ..entry
        },
    }
}

/// A pending-slot record: the descriptor a holder is filling, under its hold's epoch.
fn pending(desc: u32, epoch: u32) -> u64 {
    (u64::from(desc + 1) << 32) | u64::from(epoch & 0xff_ffff)
}

enum Reclaim {
    /// The holder's process is gone: reclaim, and free the slot it was filling.
    Dead,
    /// The holder outlived its lease: reclaim (fencing it); it frees its own slot.
    Expired,
    Held,
    Wait,
}

//! Freshness strategies: when an agent's valid copy stops being served as a HIT.
//!
//! After the strategies of the Python project `agent-coherence` (lazy, eager, lease,
//! access-count). Invalidation by writers is the same for all of them; a strategy can only
//! make a copy expire *earlier*, never keep an invalidated one:
//!
//! - `Lazy`: valid until a peer writes (the MESI default).
//! - `Eager`: as lazy, and the agent also receives change events for the prefixes it
//!   subscribes to (see `inbox.rs`).
//! - `Lease(ms)`: valid for at most `ms` after it was fetched.
//! - `AccessCount(n)`: at most `n` HITs per fetch; the next read is a MISS.
//!
//! The expiry state lives in the agent's *stamp* word for the line (the stamps table, indexed
//! like the views): the fetch time in milliseconds since the segment was created (lease), or
//! the HITs served since the fetch (access count). The view word is the version alone, 64 bits.
//! Lazy and eager agents never touch their stamps: their HIT path loads no stamp, and the
//! stamps table's pages stay untouched for them.
//!
//! **Why a separate word is sound.** A HIT needs the agent's valid bit and a view word equal to
//! the published version (`read.rs`); the stamp is consulted only after both said "current",
//! and can only answer "expired", turning the HIT into a MISS. So no stamp value, however
//! stale, torn from its view or corrupted, can produce a stale HIT: at worst it makes a copy
//! expire early (a future or garbage lease stamp counts as expired). Only the agent itself
//! writes its stamps, but several of its threads may at once: a fetch resets the stamp (a
//! plain store, after its view advanced) while another thread's HIT counts on it (a
//! compare-and-swap from the value it loaded). The reset and the count are ordered one way or
//! the other: a HIT counted just before a reset is forgotten (the new fetch gets one HIT more
//! than its count, a HIT of a copy that was current either way); a reset between a HIT's load
//! and its compare-and-swap fails the swap (that HIT is served as a MISS), or, if the reset
//! stored the value the HIT loaded, the HIT is counted against the new fetch (one HIT fewer).
//! A lease stamp racing a HIT is seen either before (an earlier expiry) or after the reset (the
//! lease of the fetch just done). Two overlapping fetches by two threads leave the stamp of
//! whichever stores last. Only the fetch whose view update took effect resets the stamp (see
//! [`Directory::advance_view`]), so a late fetch of an older version never extends the lease of
//! a newer one. Only the agent itself writes its view words, and the version in a view word
//! never goes back.

use crate::agents::DROPPED_VIEW;
use crate::directory::{AgentId, Directory};
use crate::env::Env;
use crate::error::{ProtocolError, Result};
use crate::layout::H_CREATED_MS;
use crate::sync::{AtomicU64, Ordering};

/// How long an agent's valid copy is served as a HIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    /// Until a peer writes.
    #[default]
    Lazy,
    /// Until a peer writes; the agent is also told of writes to its subscriptions.
    Eager,
    /// Until a peer writes, or this many milliseconds after the fetch (≥ 1).
    Lease {
        /// Lifetime of a fetched copy.
        ms: u32,
    },
    /// Until a peer writes, or for this many HITs after the fetch (≥ 1).
    AccessCount {
        /// HITs served per fetch.
        hits: u32,
    },
}

const KIND_LAZY: u64 = 0;
const KIND_EAGER: u64 = 1;
const KIND_LEASE: u64 = 2;
const KIND_ACCESS_COUNT: u64 = 3;

impl Strategy {
    /// The agent-slot word recording this strategy: kind << 32 | argument.
    pub(crate) fn pack(self) -> u64 {
        match self {
            Strategy::Lazy => KIND_LAZY << 32,
            Strategy::Eager => KIND_EAGER << 32,
            Strategy::Lease { ms } => KIND_LEASE << 32 | u64::from(ms),
            Strategy::AccessCount { hits } => KIND_ACCESS_COUNT << 32 | u64::from(hits),
        }
    }

    /// Decode a word written by [`Strategy::pack`]; `None` if it is not one.
    pub(crate) fn unpack(word: u64) -> Option<Strategy> {
        let arg = word as u32;
        match word >> 32 {
            KIND_LAZY if arg == 0 => Some(Strategy::Lazy),
            KIND_EAGER if arg == 0 => Some(Strategy::Eager),
            KIND_LEASE if arg != 0 => Some(Strategy::Lease { ms: arg }),
            KIND_ACCESS_COUNT if arg != 0 => Some(Strategy::AccessCount { hits: arg }),
            _ => None,
        }
    }

    /// Refuse arguments that cannot work.
    pub fn validate(self) -> Result<Strategy> {
        match self {
            Strategy::Lease { ms: 0 } => Err(ProtocolError::InvalidConfig(
                "a lease strategy needs a lifetime of at least 1 ms".into(),
            )),
            Strategy::AccessCount { hits: 0 } => Err(ProtocolError::InvalidConfig(
                "an access-count strategy needs at least 1 HIT per fetch".into(),
            )),
            ok => Ok(ok),
        }
    }
}

impl<E: Env> Directory<E> {
    /// Record in `view` (`agent`'s view of `line`) that it read or wrote `version`, and give
    /// its strategy a fresh expiry stamp. The version never goes back: two threads of one agent
    /// may finish reads of v1 and v2 in either order, and a late "v1" must not sit under a
    /// valid bit set for v2 (a stale HIT). A read-modify-write, so no thread's update is lost
    /// between another's load and store.
    pub(crate) fn advance_view(
        &self,
        agent: AgentId,
        line: u32,
        view: &AtomicU64,
        version: u64,
    ) -> Result<()> {
        // The mutant keeps the low 32 bits of the version, as the view words did before they
        // were widened (loom: `versions_cross_the_old_32_bit_limit`).
        #[cfg(ccs_mutant = "truncated_view")]
        let version = version & u64::from(u32::MAX);
        #[cfg(ccs_mutant = "plain_view_store")]
        {
            view.store(version, Ordering::Relaxed);
            return self.restamp(agent, line);
        }
        // Relaxed: the view is ordered for other threads of the agent by the SeqCst valid-bit
        // operations that follow it (`read.rs`, `write.rs`).
        // A dropped view (`DROPPED_VIEW`, a re-used slot's "no view") is below every version.
        let mut current = view.load(Ordering::Relaxed);
        while current <= version || current == DROPPED_VIEW {
            match view.compare_exchange_weak(current, version, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return self.restamp(agent, line),
                Err(seen) => current = seen,
            }
        }
        Ok(())
    }

    /// A fetch of `line` by `agent` took effect: restart its strategy's expiry (nothing for
    /// lazy and eager agents, whose stamps stay untouched).
    fn restamp(&self, agent: AgentId, line: u32) -> Result<()> {
        let fresh = match agent.strategy {
            Strategy::Lazy | Strategy::Eager => return Ok(()),
            Strategy::Lease { .. } => self.lease_clock()?,
            Strategy::AccessCount { .. } => 0,
        };
        // Relaxed: only this agent reads its stamps, and a stamp never decides a HIT alone
        // (module docs).
        self.stamp(agent.slot, line)?
            .store(fresh, Ordering::Relaxed);
        Ok(())
    }

    /// Whether `agent`'s valid copy of `line` (valid bit set, view equal to the published
    /// version: the caller checked both) may still be served as a HIT, counting the HIT for an
    /// access-count strategy. Lazy and eager agents pay nothing here.
    #[inline]
    pub(crate) fn still_fresh(&self, agent: AgentId, line: u32) -> Result<bool> {
        match agent.strategy {
            Strategy::Lazy | Strategy::Eager => Ok(true),
            Strategy::Lease { ms } => {
                let fetched = self.stamp(agent.slot, line)?.load(Ordering::Relaxed);
                // Wrapping: a stamp ahead of the clock (garbage, or a clock that restarted) is
                // far in the past, so the copy expires.
                Ok(self.lease_clock()?.wrapping_sub(fetched) < u64::from(ms))
            }
            Strategy::AccessCount { hits } => {
                let stamp = self.stamp(agent.slot, line)?;
                let served = stamp.load(Ordering::Relaxed);
                if served >= u64::from(hits) {
                    return Ok(false);
                }
                // Another thread of this agent may count or reset meanwhile: count this HIT
                // only on the stamp as seen, else serve a MISS (never a HIT past the count).
                Ok(stamp
                    .compare_exchange(served, served + 1, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok())
            }
        }
    }

    /// Milliseconds since the segment was created (wrapping, like the clock's difference).
    fn lease_clock(&self) -> Result<u64> {
        let created = self.words.at(H_CREATED_MS)?.load(Ordering::Relaxed);
        Ok(self.env.now_ms().wrapping_sub(created))
    }

    /// The lease clock, `None` if the clock is behind the segment's creation (for `fsck`).
    #[cfg(not(loom))]
    pub(crate) fn lease_clock_since_creation(&self) -> Result<Option<u64>> {
        let created = self.words.at(H_CREATED_MS)?.load(Ordering::Relaxed);
        Ok(self.env.now_ms().checked_sub(created))
    }
}

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
//! The expiry state lives in the upper half of the agent's view word (the lower half is the
//! version): the fetch time in milliseconds since the segment was created (lease), or the HITs
//! served since the fetch (access count). Only the agent itself writes its view words, but an
//! agent may be used by several threads at once: every update is a read-modify-write, and the
//! version in a view word never goes back (see [`Directory::advance_view`]).

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
    /// The view word recording that `agent` now holds `version`, with the strategy's fresh
    /// expiry state.
    pub(crate) fn fresh_view(&self, agent: AgentId, version: u32) -> Result<u64> {
        let stamp = match agent.strategy {
            Strategy::Lease { .. } => self.lease_clock()?,
            _ => 0,
        };
        Ok(u64::from(stamp) << 32 | u64::from(version))
    }

    /// Record in `view` that `agent` read or wrote `version`, with a fresh expiry stamp. The
    /// version never goes back: two threads of one agent may finish reads of v1 and v2 in
    /// either order, and a late "v1" must not sit under a valid bit set for v2 (a stale HIT).
    /// A read-modify-write, so no thread's update is lost between another's load and store.
    pub(crate) fn advance_view(
        &self,
        agent: AgentId,
        view: &AtomicU64,
        version: u32,
    ) -> Result<()> {
        let fresh = self.fresh_view(agent, version)?;
        #[cfg(ccs_mutant = "plain_view_store")]
        {
            view.store(fresh, Ordering::Relaxed);
            return Ok(());
        }
        // Relaxed: the view is ordered for other threads of the agent by the SeqCst valid-bit
        // operations that follow it (`read.rs`, `write.rs`).
        // A dropped view (`DROPPED_VIEW`, a re-used slot's "no view") is below every version.
        let mut current = view.load(Ordering::Relaxed);
        while current as u32 <= version || current as u32 == DROPPED_VIEW {
            match view.compare_exchange_weak(current, fresh, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break,
                Err(seen) => current = seen,
            }
        }
        Ok(())
    }

    /// Whether a valid copy whose view word is `view` may still be served as a HIT, counting
    /// the HIT for an access-count strategy. Lazy and eager agents pay nothing here.
    #[inline]
    pub(crate) fn still_fresh(&self, agent: AgentId, view: &AtomicU64, seen: u64) -> Result<bool> {
        match agent.strategy {
            Strategy::Lazy | Strategy::Eager => Ok(true),
            Strategy::Lease { ms } => {
                let fetched = (seen >> 32) as u32;
                // Wrapping: the clock is kept modulo 2^32 ms (49.7 days); see docs/observability.md.
                Ok(self.lease_clock()?.wrapping_sub(fetched) < ms)
            }
            Strategy::AccessCount { hits } => {
                let served = (seen >> 32) as u32;
                if served >= hits {
                    return Ok(false);
                }
                // Another thread of this agent may update the word meanwhile: count this HIT
                // only on the word as seen, else serve a MISS (never a HIT past the count).
                Ok(view
                    .compare_exchange(seen, seen + (1 << 32), Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok())
            }
        }
    }

    /// Milliseconds since the segment was created, modulo 2^32.
    fn lease_clock(&self) -> Result<u32> {
        let created = self.words.at(H_CREATED_MS)?.load(Ordering::Relaxed);
        Ok(self.env.now_ms().wrapping_sub(created) as u32)
    }
}

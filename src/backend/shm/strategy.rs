//! Strategies as the segment stores them: a lease in whole milliseconds (`u32`), an access
//! count. The conversion happens here, at the shared-memory backend's edge.

use std::time::Duration;

use ccs_protocol::Strategy as Wire;

use crate::Strategy;
use crate::error::{Error, Result};

/// `strategy` as the segment records it, or why it cannot be one.
pub(crate) fn to_wire(strategy: Strategy) -> Result<Wire> {
    let wire = match strategy.validate().map_err(Error::InvalidConfig)? {
        Strategy::Lazy => Wire::Lazy,
        Strategy::Eager => Wire::Eager,
        Strategy::Lease(duration) => Wire::Lease {
            // `validate` bounded it to 1 ms ..= 2^31 ms.
            ms: u32::try_from(duration.as_millis()).map_err(|_| {
                Error::InvalidConfig(format!("a lease of {duration:?} does not fit a segment"))
            })?,
        },
        Strategy::AccessCount(hits) => Wire::AccessCount { hits },
    };
    wire.validate()
        .map_err(|e| Error::InvalidConfig(e.to_string()))
}

/// The strategy a segment recorded.
pub(crate) fn from_wire(wire: Wire) -> Strategy {
    match wire {
        Wire::Lazy => Strategy::Lazy,
        Wire::Eager => Strategy::Eager,
        Wire::Lease { ms } => Strategy::Lease(Duration::from_millis(u64::from(ms))),
        Wire::AccessCount { hits } => Strategy::AccessCount(hits),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_survive_the_segment_and_bad_ones_are_refused() {
        for strategy in [
            Strategy::Lazy,
            Strategy::Eager,
            Strategy::Lease(Duration::from_millis(1500)),
            Strategy::AccessCount(3),
        ] {
            assert_eq!(from_wire(to_wire(strategy).expect("valid")), strategy);
        }
        assert!(to_wire(Strategy::Lease(Duration::ZERO)).is_err());
        assert!(to_wire(Strategy::AccessCount(0)).is_err());
    }
}

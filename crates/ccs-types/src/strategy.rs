//! Freshness strategies, chosen per agent when it attaches: how long a valid copy is served as
//! a HIT. Writers' invalidation applies to all of them; see `docs/observability.md`. Every
//! backend takes the same strategies, with the same limits ([`Strategy::validate`]).

use std::time::Duration;

/// How long an agent's valid copy is served as a HIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    /// Until a peer writes; the next read is a MISS (the default).
    #[default]
    Lazy,
    /// As lazy, and the agent receives change events for the prefixes it subscribes to
    /// (`Agent::subscribe`).
    Eager,
    /// Until a peer writes, or for at most this long after the fetch (1 ms to 24 days).
    Lease(Duration),
    /// Until a peer writes, or for this many HITs after the fetch (at least 1).
    AccessCount(u32),
}

/// The longest lease a [`Strategy::Lease`] may have, in whole milliseconds: 2^31, about 24 days.
pub const MAX_LEASE_MS: u128 = 1 << 31;

impl Strategy {
    /// `self` if every backend can apply it; otherwise why not: a lease must last 1 ms to
    /// [`MAX_LEASE_MS`] (whole milliseconds), an access count must be at least 1.
    pub fn validate(self) -> Result<Strategy, String> {
        match self {
            Strategy::Lease(duration) if !(1..=MAX_LEASE_MS).contains(&duration.as_millis()) => {
                Err(format!(
                    "a lease strategy's lifetime must be 1 ms to 24 days, not {duration:?}"
                ))
            }
            Strategy::AccessCount(0) => {
                Err("an access-count strategy needs at least 1 HIT per fetch".to_owned())
            }
            valid => Ok(valid),
        }
    }

    /// Parse `lazy`, `eager`, `lease:DURATION` (`500ms`, `2s`, `1m`) or `access_count:N`.
    pub fn parse(text: &str) -> Option<Strategy> {
        let (kind, arg) = match text.split_once(':') {
            Some((kind, arg)) => (kind, Some(arg)),
            None => (text, None),
        };
        match (kind, arg) {
            ("lazy", None) => Some(Strategy::Lazy),
            ("eager", None) => Some(Strategy::Eager),
            ("lease", Some(arg)) => parse_duration(arg).map(Strategy::Lease),
            ("access_count" | "access-count", Some(arg)) => arg
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .map(Strategy::AccessCount),
            _ => None,
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Strategy::Lazy => f.write_str("lazy"),
            Strategy::Eager => f.write_str("eager"),
            Strategy::Lease(d) => write!(f, "lease:{}ms", d.as_millis()),
            Strategy::AccessCount(n) => write!(f, "access_count:{n}"),
        }
    }
}

fn parse_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let ms = match unit {
        "ms" => number,
        "s" => number.checked_mul(1000)?,
        "m" => number.checked_mul(60_000)?,
        "h" => number.checked_mul(3_600_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_parse_and_print() {
        for text in ["lazy", "eager", "lease:1500ms", "access_count:3"] {
            let parsed = Strategy::parse(text).expect(text);
            assert_eq!(parsed.to_string(), text);
        }
        assert_eq!(
            Strategy::parse("lease:2s"),
            Some(Strategy::Lease(Duration::from_secs(2)))
        );
        for bad in [
            "",
            "lease",
            "lease:2",
            "lease:xs",
            "access_count:0",
            "eager:1",
            "fast",
        ] {
            assert_eq!(Strategy::parse(bad), None, "{bad}");
        }
        assert!(Strategy::Lease(Duration::ZERO).validate().is_err());
        assert!(Strategy::AccessCount(0).validate().is_err());
    }
}

//! An artifact's payload: the file's [`FileState`] and, while a session's edit is in flight
//! (between its PreToolUse and PostToolUse), that session's claim.
//!
//! Two lines of text, readable with `ccs get`: the state, then `claim until=MS by=AGENT` while
//! claimed. A claim is void after `until` (milliseconds since the epoch): an edit whose
//! PostToolUse never comes (the tool failed before running, the user refused the permission)
//! must not lock the file for ever.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::fingerprint::FileState;

/// How long a claim holds: edits take milliseconds, but PreToolUse runs before Claude Code's
/// permission prompt, which waits for a person.
pub const CLAIM_LEASE: Duration = Duration::from_secs(120);

/// One artifact payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The file as last published.
    pub state: FileState,
    /// The session editing it now, if any.
    pub claim: Option<Claim>,
}

/// A session's edit in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The agent editing.
    pub by: String,
    /// Void after this time, in milliseconds since the epoch.
    pub until_ms: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Claim {
    /// A claim by `by` for [`CLAIM_LEASE`] from now.
    pub fn new(by: &str) -> Claim {
        Claim {
            by: by.to_owned(),
            until_ms: now_ms().saturating_add(CLAIM_LEASE.as_millis() as u64),
        }
    }
}

impl Record {
    /// The file's state, unclaimed.
    pub fn unclaimed(state: FileState) -> Record {
        Record { state, claim: None }
    }

    /// The agent, other than `me`, whose claim is still in force.
    pub fn claimed_by_other(&self, me: &str) -> Option<&str> {
        self.claim
            .as_ref()
            .filter(|c| c.by != me && c.until_ms > now_ms())
            .map(|c| c.by.as_str())
    }

    /// The payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = self.state.encode();
        if let Some(claim) = &self.claim {
            bytes.extend_from_slice(
                format!("claim until={} by={}\n", claim.until_ms, claim.by).as_bytes(),
            );
        }
        bytes
    }

    /// Parse a payload; `None` if this module did not write it.
    pub fn decode(bytes: &[u8]) -> Option<Record> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut lines = text.lines();
        let state = FileState::decode(lines.next()?.as_bytes())?;
        let claim = match lines.next() {
            None => None,
            Some(line) => {
                let rest = line.strip_prefix("claim until=")?;
                let (until, by) = rest.split_once(" by=")?;
                Some(Claim {
                    by: by.to_owned(),
                    until_ms: until.parse().ok()?,
                })
            }
        };
        Some(Record { state, claim })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_expiry() {
        let state = FileState::Present {
            hash: "ab".repeat(32),
            size: 3,
            mtime_ns: 7,
        };
        let claimed = Record {
            state: state.clone(),
            claim: Some(Claim::new("s1/sub 2")),
        };
        assert_eq!(Record::decode(&claimed.encode()), Some(claimed.clone()));
        assert_eq!(claimed.claimed_by_other("s2"), Some("s1/sub 2"));
        assert_eq!(claimed.claimed_by_other("s1/sub 2"), None);
        let expired = Record {
            state: state.clone(),
            claim: Some(Claim {
                by: "s1".into(),
                until_ms: 1,
            }),
        };
        assert_eq!(expired.claimed_by_other("s2"), None);
        let plain = Record::unclaimed(state);
        assert_eq!(Record::decode(&plain.encode()), Some(plain));
        assert_eq!(Record::decode(b"claim until=1 by=x\n"), None);
    }
}

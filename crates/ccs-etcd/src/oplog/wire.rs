//! A record's value in etcd: one JSON object with short field names, absent fields meaning
//! none / 0, for example
//!
//! ```text
//! {"t":1767000000123456789,"op":"get","out":"miss","key":"task/spec","ver":2,"held":1,"n":1,"bytes":412,"rev":5121}
//! ```
//!
//! | field | meaning |
//! |---|---|
//! | `t` | `CLOCK_REALTIME` nanoseconds |
//! | `op`, `out`, `mode` | the names of `LogOp`, `LogOutcome`, `WriteMode` (`mode` absent: none) |
//! | `key`, `other` | artifact key, other agent (absent: none) |
//! | `ver`, `held`, `bytes` | as in the record (absent: 0) |
//! | `n` | count (at least 1) |
//! | `rev` | etcd revision (absent: none) |
//!
//! The agent and the sequence number are in the etcd key. Reading refuses anything this
//! engine would not write: a value over [`MAX_VALUE`] bytes, not JSON, an unknown op, outcome
//! or mode, a count of 0, a key where the op has none (or none where it needs one), a key or
//! name that is not valid.

use serde::{Deserialize, Serialize};

use super::{LogOp, LogOutcome, Rec, WriteMode};
use crate::layout::{check_key, check_name};

/// Longest value a record can have (keys are at most 1024 bytes, names 128).
pub(crate) const MAX_VALUE: usize = 2048;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Serialize)]
struct Out<'a> {
    t: u64,
    op: &'static str,
    out: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "is_zero")]
    ver: u64,
    #[serde(skip_serializing_if = "is_zero")]
    held: u64,
    n: u64,
    #[serde(skip_serializing_if = "is_zero")]
    bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    other: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rev: Option<u64>,
}

#[derive(Deserialize)]
struct In {
    t: u64,
    op: String,
    out: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    ver: u64,
    #[serde(default)]
    held: u64,
    n: u64,
    #[serde(default)]
    bytes: u64,
    #[serde(default)]
    other: Option<String>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    rev: Option<u64>,
}

/// Encode a record's value.
pub(crate) fn encode(rec: &Rec) -> Vec<u8> {
    let out = Out {
        t: rec.t_ns,
        op: rec.op.name(),
        out: rec.outcome.name(),
        key: rec.key.as_deref(),
        ver: rec.version,
        held: rec.held,
        n: rec.count,
        bytes: rec.bytes,
        other: rec.other.as_deref(),
        mode: rec.mode.map(WriteMode::name),
        rev: rec.rev,
    };
    // Serialising plain fields into a Vec cannot fail.
    serde_json::to_vec(&out).unwrap_or_default()
}

/// Decode a record's value (its seq comes from the etcd key); `None` if it is not one this
/// engine writes.
pub(crate) fn decode(seq: u64, value: &[u8]) -> Option<Rec> {
    if value.len() > MAX_VALUE {
        return None;
    }
    let wire: In = serde_json::from_slice(value).ok()?;
    let op = LogOp::from_name(&wire.op)?;
    let outcome = LogOutcome::from_name(&wire.out)?;
    let mode = match wire.mode {
        Some(name) => Some(WriteMode::from_name(&name)?),
        None => None,
    };
    let keyless = matches!(op, LogOp::Attach | LogOp::Detach | LogOp::Lost);
    match &wire.key {
        Some(key) if !keyless => check_key(key).ok()?,
        None if keyless => {}
        _ => return None,
    }
    if let Some(other) = &wire.other {
        check_name(other).ok()?;
    }
    if wire.n == 0 || wire.rev == Some(0) {
        return None;
    }
    Some(Rec {
        seq,
        t_ns: wire.t,
        op,
        outcome,
        key: wire.key,
        version: wire.ver,
        held: wire.held,
        count: wire.n,
        bytes: wire.bytes,
        other: wire.other,
        mode,
        rev: wire.rev,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let rec = Rec {
            seq: 7,
            t_ns: 1_767_000_000_123_456_789,
            rev: Some(5121),
            mode: Some(WriteMode::Blind),
            other: Some("planner".into()),
            bytes: 412,
            count: 3,
            ..Rec::new(LogOp::Put, LogOutcome::Held)
                .on("task/spec")
                .versions(2, 1)
        };
        let value = encode(&rec);
        assert!(value.len() < 200, "{}", String::from_utf8_lossy(&value));
        assert_eq!(decode(7, &value), Some(rec));
        let attach = Rec {
            t_ns: 5,
            ..Rec::new(LogOp::Attach, LogOutcome::Ok)
        };
        let value = encode(&attach);
        assert_eq!(
            String::from_utf8_lossy(&value),
            r#"{"t":5,"op":"attach","out":"ok","n":1}"#
        );
        assert_eq!(decode(0, &value), Some(attach));
    }

    #[test]
    fn garbage_is_refused() {
        let longest = Rec {
            other: Some("o".repeat(128)),
            mode: Some(WriteMode::View),
            rev: Some(u64::MAX),
            ..Rec::new(LogOp::Put, LogOutcome::Conflict)
                .on(&"k".repeat(1024))
                .versions(u64::MAX, u64::MAX)
        };
        assert!(encode(&longest).len() <= MAX_VALUE);
        for bad in [
            &b""[..],
            b"null",
            b"[1]",
            b"{}",
            br#"{"t":1,"op":"fly","out":"ok","n":1}"#,
            br#"{"t":1,"op":"attach","out":"maybe","n":1}"#,
            br#"{"t":1,"op":"attach","out":"ok","n":0}"#,
            br#"{"t":1,"op":"attach","out":"ok","n":1,"key":"k"}"#,
            br#"{"t":1,"op":"get","out":"hit","n":1}"#,
            br#"{"t":1,"op":"get","out":"hit","n":1,"key":""}"#,
            br#"{"t":1,"op":"put","out":"ok","n":1,"key":"k","mode":"sideways"}"#,
            br#"{"t":1,"op":"put","out":"held","n":1,"key":"k","other":""}"#,
            br#"{"t":-1,"op":"attach","out":"ok","n":1}"#,
            br#"{"t":1,"op":"attach","out":"ok","n":1,"rev":0}"#,
            br#"{"t":1,"op":"get","out":"hit","n":1,"key":"k","ver":"2"}"#,
        ] {
            assert_eq!(decode(0, bad), None, "{}", String::from_utf8_lossy(bad));
        }
        let mut huge = br#"{"t":1,"op":"attach","out":"ok","n":1,"pad":""#.to_vec();
        huge.extend(std::iter::repeat_n(b'x', MAX_VALUE));
        huge.extend(br#""}"#);
        assert_eq!(decode(0, &huge), None);
    }
}

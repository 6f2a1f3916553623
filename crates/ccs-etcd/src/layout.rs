//! The key space under a cluster prefix, and the encoding of every value the engine stores.
//!
//! Under the root `ccs/<prefix>/`:
//!
//! | key | value | lease |
//! |-----|-------|-------|
//! | `m/<key>` | artifact meta: version, flags (deleted), payload length, writer | none |
//! | `d/<key>` | artifact payload (empty for a deletion) | none |
//! | `h/<key>` | hold: holder name and its session's identity | the hold's own lease |
//! | `j/<key>` | hold journal: the last hold taken and not yet ended by its holder (same value) | none |
//! | `c/<key>\0<agent>` | a registered valid copy: the version held | the agent's session |
//! | `v/<agent>\0<key>` | the agent's view: the version it last read or wrote | none |
//! | `s/<agent>` | the agent's live session: `host:pid` | the agent's session |
//! | `a/<agent>` | the agent's registration (it has attached once) | none |
//! | `l/<agent>\0<seq>` | one operation-log record (`seq`: 16 lowercase hex digits), JSON | none |
//!
//! `m/` and `d/` of one artifact are always written by the same transaction, so they carry the
//! same `mod_revision`. Keys and agent names may not contain NUL, which separates them.

use crate::error::{Error, Result};

/// Longest artifact key, in bytes.
pub const MAX_KEY: usize = 1024;
/// Longest agent name, in bytes.
pub const MAX_NAME: usize = 128;
/// Largest payload: below etcd's default request limit (1.5 MiB) with room for the rest of
/// the write transaction.
pub const MAX_PAYLOAD: usize = 1024 * 1024;

/// Check an artifact key.
pub fn check_key(key: &str) -> Result<()> {
    let reason = if key.is_empty() {
        "keys must not be empty"
    } else if key.len() > MAX_KEY {
        "keys are at most 1024 bytes"
    } else if key.contains('\0') {
        "keys must not contain NUL"
    } else {
        return Ok(());
    };
    Err(Error::BadKey {
        key: key.chars().take(80).collect(),
        reason,
    })
}

/// Check an agent name.
pub fn check_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "names must not be empty"
    } else if name.len() > MAX_NAME {
        "names are at most 128 bytes"
    } else if name.contains('\0') {
        "names must not contain NUL"
    } else {
        return Ok(());
    };
    Err(Error::BadName {
        name: name.chars().take(80).collect(),
        reason,
    })
}

/// The key space of one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: String,
}

impl Layout {
    /// The layout under `ccs/<prefix>/`.
    pub fn new(prefix: &str) -> Layout {
        Layout {
            root: format!("ccs/{prefix}/"),
        }
    }

    /// Everything of this prefix.
    pub fn root(&self) -> &str {
        &self.root
    }

    fn join(&self, kind: &str, parts: &[&str]) -> String {
        let mut key = String::with_capacity(
            self.root.len() + 2 + parts.iter().map(|p| p.len() + 1).sum::<usize>(),
        );
        key.push_str(&self.root);
        key.push_str(kind);
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                key.push('\0');
            }
            key.push_str(part);
        }
        key
    }

    /// Prefix of every artifact meta key.
    pub fn metas(&self) -> String {
        self.join("m/", &[])
    }
    /// An artifact's meta key.
    pub fn meta(&self, key: &str) -> String {
        self.join("m/", &[key])
    }
    /// An artifact's payload key.
    pub fn data(&self, key: &str) -> String {
        self.join("d/", &[key])
    }
    /// Prefix of every hold key.
    pub fn holds(&self) -> String {
        self.join("h/", &[])
    }
    /// An artifact's hold key.
    pub fn hold(&self, key: &str) -> String {
        self.join("h/", &[key])
    }
    /// An artifact's hold journal: written with the hold, removed when its holder commits or
    /// releases (or its hold is reclaimed). Present while `h/<key>` is absent means the hold
    /// expired with its lease, unended.
    pub fn journal(&self, key: &str) -> String {
        self.join("j/", &[key])
    }
    /// Prefix of every copy registration.
    pub fn all_copies(&self) -> String {
        self.join("c/", &[])
    }
    /// Prefix of the copy registrations of one artifact.
    pub fn copies(&self, key: &str) -> String {
        let mut prefix = self.join("c/", &[key]);
        prefix.push('\0');
        prefix
    }
    /// `agent`'s copy registration of `key`.
    pub fn copy(&self, key: &str, agent: &str) -> String {
        self.join("c/", &[key, agent])
    }
    /// Prefix of every view.
    pub fn all_views(&self) -> String {
        self.join("v/", &[])
    }
    /// `agent`'s view of `key`.
    pub fn view(&self, agent: &str, key: &str) -> String {
        self.join("v/", &[agent, key])
    }
    /// Prefix of every live session.
    pub fn sessions(&self) -> String {
        self.join("s/", &[])
    }
    /// `agent`'s live session.
    pub fn session(&self, agent: &str) -> String {
        self.join("s/", &[agent])
    }
    /// Prefix of every agent registration.
    pub fn agents(&self) -> String {
        self.join("a/", &[])
    }
    /// `agent`'s registration.
    pub fn agent(&self, agent: &str) -> String {
        self.join("a/", &[agent])
    }

    /// Prefix of the whole operation log.
    pub fn logs(&self) -> String {
        self.join("l/", &[])
    }
    /// Prefix of `agent`'s log records.
    pub fn agent_log(&self, agent: &str) -> String {
        let mut prefix = self.join("l/", &[agent]);
        prefix.push('\0');
        prefix
    }
    /// `agent`'s log record `seq` (fixed-width hex, so key order is seq order).
    pub fn log_record(&self, agent: &str, seq: u64) -> String {
        format!("{}{seq:016x}", self.agent_log(agent))
    }
    /// (agent, seq) of a log record key, if it is one.
    pub fn split_log<'a>(&self, key: &'a [u8]) -> Option<(&'a str, u64)> {
        let rest = key.strip_prefix(self.logs().as_bytes())?;
        let rest = std::str::from_utf8(rest).ok()?;
        let (agent, seq) = rest.split_once('\0')?;
        if seq.len() != 16
            || !seq
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        check_name(agent).ok()?;
        Some((agent, u64::from_str_radix(seq, 16).ok()?))
    }

    /// The artifact key of a meta key, if it is one.
    pub fn key_of_meta<'a>(&self, meta: &'a [u8]) -> Option<&'a str> {
        let rest = meta.strip_prefix(self.metas().as_bytes())?;
        std::str::from_utf8(rest).ok()
    }

    /// The agent of a copy registration of `key`.
    pub fn agent_of_copy<'a>(&self, key: &str, copy: &'a [u8]) -> Option<&'a str> {
        let rest = copy.strip_prefix(self.copies(key).as_bytes())?;
        std::str::from_utf8(rest).ok()
    }

    /// (key, agent) of any copy registration.
    pub fn split_copy<'a>(&self, copy: &'a [u8]) -> Option<(&'a str, &'a str)> {
        let rest = copy.strip_prefix(self.all_copies().as_bytes())?;
        let rest = std::str::from_utf8(rest).ok()?;
        rest.rsplit_once('\0')
    }

    /// The text after a kind prefix (`s/`, `a/`, `h/`).
    pub fn tail<'a>(&self, prefix: &str, key: &'a [u8]) -> Option<&'a str> {
        std::str::from_utf8(key.strip_prefix(prefix.as_bytes())?).ok()
    }
}

const META_MAGIC: u8 = b'c';
const META_FORMAT: u8 = 1;
const FLAG_DELETED: u8 = 1;

/// What the meta key of an artifact says about its current version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Per-artifact version: 1 for the first write, +1 per write (a deletion included).
    pub version: u64,
    /// This version is a deletion (a tombstone).
    pub deleted: bool,
    /// Payload length.
    pub len: u64,
    /// The agent that wrote it.
    pub writer: String,
}

impl Meta {
    /// `magic, format, flags, version (u64 BE), len (u64 BE), writer (UTF-8)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(19 + self.writer.len());
        out.push(META_MAGIC);
        out.push(META_FORMAT);
        out.push(if self.deleted { FLAG_DELETED } else { 0 });
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.len.to_be_bytes());
        out.extend_from_slice(self.writer.as_bytes());
        out
    }

    /// Decode, refusing anything this engine does not write.
    pub fn decode(bytes: &[u8]) -> Result<Meta> {
        let corrupt = |why: &str| Error::Corrupt(format!("artifact meta: {why}"));
        if bytes.len() < 19 || bytes[0] != META_MAGIC {
            return Err(corrupt("not written by ccs-etcd"));
        }
        if bytes[1] != META_FORMAT {
            return Err(corrupt("unknown format version"));
        }
        if bytes[2] & !FLAG_DELETED != 0 {
            return Err(corrupt("unknown flags"));
        }
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(b)
        };
        let version = word(3);
        if version == 0 {
            return Err(corrupt("version 0"));
        }
        let writer = std::str::from_utf8(&bytes[19..])
            .map_err(|_| corrupt("writer is not UTF-8"))?
            .to_owned();
        Ok(Meta {
            version,
            deleted: bytes[2] & FLAG_DELETED != 0,
            len: word(11),
            writer,
        })
    }
}

/// The value of a hold key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldValue {
    /// The holding agent.
    pub holder: String,
    /// The create revision of the holder's session key when it acquired: the holder is alive
    /// exactly while `s/<holder>` exists with this create revision.
    pub session: i64,
}

impl HoldValue {
    /// `session (decimal) NUL holder`.
    pub fn encode(&self) -> Vec<u8> {
        format!("{}\0{}", self.session, self.holder).into_bytes()
    }

    /// Decode.
    pub fn decode(bytes: &[u8]) -> Result<HoldValue> {
        let corrupt = || Error::Corrupt("hold value not written by ccs-etcd".to_owned());
        let text = std::str::from_utf8(bytes).map_err(|_| corrupt())?;
        let (session, holder) = text.split_once('\0').ok_or_else(corrupt)?;
        Ok(HoldValue {
            holder: holder.to_owned(),
            session: session.parse().map_err(|_| corrupt())?,
        })
    }
}

/// Encode a version (copy registrations, views): decimal.
pub fn encode_version(version: u64) -> Vec<u8> {
    version.to_string().into_bytes()
}

/// Decode a version.
pub fn decode_version(bytes: &[u8]) -> Result<u64> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| Error::Corrupt("a version that is not a decimal number".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_garbage_is_refused() {
        let meta = Meta {
            version: 7,
            deleted: true,
            len: 3,
            writer: "planner".into(),
        };
        assert_eq!(Meta::decode(&meta.encode()).ok(), Some(meta));
        assert!(Meta::decode(b"hello").is_err());
        let hold = HoldValue {
            holder: "a".into(),
            session: 42,
        };
        assert_eq!(HoldValue::decode(&hold.encode()).ok(), Some(hold));
        assert!(HoldValue::decode(b"x").is_err());
        assert_eq!(decode_version(&encode_version(9)).ok(), Some(9));
    }

    #[test]
    fn keys_are_unambiguous() {
        let l = Layout::new("p");
        assert_eq!(
            l.split_copy(l.copy("a/b", "c").as_bytes()),
            Some(("a/b", "c"))
        );
        assert!(!l.copy("a/b", "c").starts_with(&l.copies("a")));
        assert_eq!(l.key_of_meta(l.meta("x/y").as_bytes()), Some("x/y"));
        assert!(check_key("").is_err() && check_key("a\0b").is_err() && check_key("ok").is_ok());
        assert!(check_name("").is_err() && check_name("planner").is_ok());
        let rec = l.log_record("planner", 0x2a);
        assert!(rec.starts_with(&l.agent_log("planner")) && rec.starts_with(&l.logs()));
        assert!(!l.log_record("plan", 1).starts_with(&l.agent_log("planner")));
        assert_eq!(l.split_log(rec.as_bytes()), Some(("planner", 42)));
        assert!(l.log_record("a", 1) < l.log_record("a", 0x10));
        let short = format!("{}{}", l.agent_log("a"), "1".repeat(15));
        let upper = format!("{}{}", l.agent_log("a"), "A".repeat(16));
        let nameless = format!("{}\0{}", l.logs(), "1".repeat(16));
        for bad in [short, upper, nameless, l.logs() + "a"] {
            assert_eq!(l.split_log(bad.as_bytes()), None, "{bad:?}");
        }
    }
}

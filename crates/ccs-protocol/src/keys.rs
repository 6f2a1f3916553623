//! Keys: an open-addressing hash table of directory lines, probed without locks.
//!
//! A line's key-meta word is 0 until the key's bytes are in place, then
//! `1 << 63 | len << 48 | hash48`, stored with Release (pairs with the Acquire load in
//! [`Directory::find_key`]), so a reader never sees a half-written key. Inserts are rare and
//! serialised by the environment's structural lock. A line, once given a key, keeps it for the
//! life of the segment (a delete leaves a tombstone version); so a process may cache the
//! key → line mapping forever. (A descriptor's owner tag does not rely on this: it carries an
//! incarnation counter, see `packing.rs`.)

use crate::directory::Directory;
use crate::env::Env;
use crate::error::{ProtocolError, Result};
use crate::layout::{H_KEY_COUNT, L_HEAD, L_KEY, L_KEYMETA, MAX_KEY_BYTES};
use crate::packing::Head;
use crate::sync::Ordering;

const READY: u64 = 1 << 63;
const HASH_MASK: u64 = (1 << 48) - 1;

/// FNV-1a, 64-bit: stable across processes and builds.
pub(crate) fn hash_key(key: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for &byte in key {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn key_meta(hash: u64, len: usize) -> u64 {
    READY | ((len as u64) << 48) | (hash & HASH_MASK)
}

/// Refuse keys that are empty or longer than [`MAX_KEY_BYTES`].
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(ProtocolError::BadKey {
            len: key.len(),
            max: MAX_KEY_BYTES,
        });
    }
    Ok(())
}

impl<E: Env> Directory<E> {
    /// The line holding `key`, if the key was ever written.
    pub fn find_key(&self, key: &str) -> Result<Option<u32>> {
        validate_key(key)?;
        self.probe(key.as_bytes(), hash_key(key.as_bytes()))
            .map(|found| found.ok())
    }

    /// The line holding `key`, adding the key if it is new.
    pub fn find_or_insert_key(&self, key: &str) -> Result<u32> {
        validate_key(key)?;
        let bytes = key.as_bytes();
        let hash = hash_key(bytes);
        if let Ok(line) = self.probe(bytes, hash)? {
            return Ok(line);
        }
        self.env
            .with_structure_lock(|| self.insert_locked(bytes, hash))?
    }

    fn insert_locked(&self, bytes: &[u8], hash: u64) -> Result<u32> {
        let empty = match self.probe(bytes, hash)? {
            Ok(line) => return Ok(line),
            Err(None) => return Err(self.directory_full()),
            Err(Some(empty)) => empty,
        };
        let count = self.words.at(H_KEY_COUNT)?;
        if count.load(Ordering::Relaxed) >= u64::from(self.geo.config.max_artifacts) {
            return Err(self.directory_full());
        }
        self.words
            .copy_in(self.geo.line_word(empty, L_KEY), bytes)?;
        self.subscribe_new_line(empty, bytes)?;
        // Pairs with the Acquire load in `probe`: the key bytes are visible before the meta.
        self.words
            .at(self.geo.line_word(empty, L_KEYMETA))?
            .store(key_meta(hash, bytes.len()), Ordering::Release);
        count.fetch_add(1, Ordering::Relaxed);
        Ok(empty)
    }

    fn directory_full(&self) -> ProtocolError {
        ProtocolError::CapacityExceeded {
            what: "artifacts",
            limit: u64::from(self.geo.config.max_artifacts),
        }
    }

    /// Ok(line) if found; Err(Some(first empty line)) or Err(None) if the table is full.
    fn probe(&self, bytes: &[u8], hash: u64) -> Result<Result<u32, Option<u32>>> {
        let lines = self.geo.lines;
        let want = key_meta(hash, bytes.len());
        for step in 0..lines {
            let line = ((hash as usize).wrapping_add(step) & (lines - 1)) as u32;
            // Pairs with the Release store in `insert_locked`.
            let meta = self
                .words
                .at(self.geo.line_word(line, L_KEYMETA))?
                .load(Ordering::Acquire);
            if meta == 0 {
                return Ok(Err(Some(line)));
            }
            if meta == want && self.key_equals(line, bytes)? {
                return Ok(Ok(line));
            }
        }
        Ok(Err(None))
    }

    /// Compare a line's key words with `bytes` in place (no allocation on the lookup path).
    fn key_equals(&self, line: u32, bytes: &[u8]) -> Result<bool> {
        let first = self.geo.line_word(line, L_KEY);
        for (index, chunk) in bytes.chunks(8).enumerate() {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            if self.words.at(first + index)?.load(Ordering::Relaxed) != u64::from_le_bytes(word) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The key of `line`, if it has one.
    pub fn key_of(&self, line: u32) -> Result<Option<String>> {
        self.check_line(line)?;
        let meta = self
            .words
            .at(self.geo.line_word(line, L_KEYMETA))?
            .load(Ordering::Acquire);
        if meta == 0 {
            return Ok(None);
        }
        let len = ((meta >> 48) & 0x7fff) as usize;
        if meta & READY == 0 || len == 0 || len > MAX_KEY_BYTES {
            return Err(ProtocolError::corrupt(format!(
                "line {line} has a bad key header"
            )));
        }
        let mut bytes = Vec::with_capacity(len);
        self.words
            .copy_out(self.geo.line_word(line, L_KEY), len, &mut bytes)?;
        if hash_key(&bytes) & HASH_MASK != meta & HASH_MASK {
            return Err(ProtocolError::corrupt(format!(
                "line {line}: key does not match its hash"
            )));
        }
        String::from_utf8(bytes)
            .map_err(|_| ProtocolError::corrupt(format!("line {line}: key is not UTF-8")))
            .map(Some)
    }

    /// Every line that has a key, with the key, in line order.
    pub fn keyed_lines(&self) -> Result<Vec<(u32, String)>> {
        let mut out = Vec::new();
        for line in 0..self.geo.lines as u32 {
            if let Some(key) = self.key_of(line)? {
                out.push((line, key));
            }
        }
        Ok(out)
    }

    /// Keys starting with `prefix` whose artifact currently exists (written, not deleted),
    /// sorted.
    pub fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        for (line, key) in self.keyed_lines()? {
            if !key.starts_with(prefix) {
                continue;
            }
            let head = Head::unpack(
                self.words
                    .at(self.geo.line_word(line, L_HEAD))?
                    .load(Ordering::Acquire),
            );
            if head.desc != 0 && !self.current(line)?.deleted {
                keys.push(key);
            }
        }
        keys.sort();
        Ok(keys)
    }
}

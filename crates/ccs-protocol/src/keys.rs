//! Keys: an open-addressing hash table of directory lines, probed without locks, whose lines
//! are reused for new keys once their key is deleted.
//!
//! A line's key-meta word is 0 until the key's bytes are in place, then
//! `1 << 63 | len << 48 | hash48`, stored with Release (pairs with the Acquire load in
//! [`Directory::find_key`]), so a reader never sees a half-written key. Inserts are rare and
//! serialised by the environment's structural lock.
//!
//! **Line reuse.** A line whose key was deleted (its head publishes a tombstone) may be given to
//! another key. The line's *generation* word (`L_GEN`) says which key owns it: even while a key
//! does, odd while the reuser rewrites the key words. It is the sequence of a seqlock over the
//! key words (Lamport 1977, "Concurrent reading and writing"; Boehm 2012 for the fences):
//! reading a key's text loads it before and after; a lookup loads it before comparing the key
//! and returns it with the line as a [`LineRef`] (a reuse after that load is caught by the
//! re-check at every use). Every later use re-checks it: a writer
//! while it holds the line (the reuser holds the line too while it bumps the generation, so no
//! write of the old key can land after the reuse), a reader after its read (a read that saw a
//! version of the new key sees the new generation: the version was published after the
//! reuser's release of the line, see docs/protocol.md §3.8).
//!
//! **Versions never go back.** The reused line keeps its tombstone head, so the new key's
//! versions continue above the old key's; and a line's *base* word (`L_BASE`) lifts the first
//! version of a key above the *floor* of its home line (`L_FLOOR`: the highest tombstone
//! version of any key with that home whose line was reused), so a key re-created on another
//! line still starts above every version it had before.

use crate::agents::DROPPED_VIEW;
use crate::directory::{AgentId, Directory};
use crate::env::Env;
use crate::error::{ProtocolError, Result};
use crate::layout::{H_KEY_COUNT, L_BASE, L_FLOOR, L_GEN, L_HEAD, L_KEY, L_KEYMETA, MAX_KEY_BYTES};
use crate::packing::Head;
use crate::sync::{AtomicU64, Ordering, fence};

const READY: u64 = 1 << 63;
pub(crate) const HASH_MASK: u64 = (1 << 48) - 1;

/// A key's directory line, with the generation the key was found in: the line still belongs
/// to the key while its generation is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LineRef {
    /// The line.
    pub line: u32,
    /// The line's generation when the key was found on it (even).
    pub generation: u64,
}

/// XXH3-64 with the default secret and seed 0 (Collet, xxHash specification, `XXH3_64bits`):
/// stable across processes, builds and versions, as a hash stored in the segment must be, and a
/// few multiplies for a key of any length up to 240 bytes where FNV-1a (layout ≤ 12) took one
/// dependent multiply per byte.
pub(crate) fn hash_key(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
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

/// Whether `version` of a line whose base is `base` is a version of the line's current key (a
/// line with base 0 never had another key).
pub fn version_of_key(version: u64, base: u64) -> bool {
    base == 0 || version > base
}

/// Raise `word` to at least `value` (under the structure lock: its only writer).
fn raise(word: &AtomicU64, value: u64) {
    if word.load(Ordering::Relaxed) < value {
        word.store(value, Ordering::Relaxed);
    }
}

/// What probing found.
enum Probe {
    /// The key, on this line.
    Found(LineRef),
    /// The key is absent; the probe sequence ended at this empty line.
    Empty(u32),
    /// The key is absent and every line has a key.
    Full,
}

impl<E: Env> Directory<E> {
    /// The line holding `key`, if the key was ever written.
    pub fn find_key(&self, key: &str) -> Result<Option<u32>> {
        Ok(self.find_key_ref(key)?.map(|found| found.line))
    }

    /// The line holding `key` and its generation, if the key has a line.
    pub fn find_key_ref(&self, key: &str) -> Result<Option<LineRef>> {
        validate_key(key)?;
        match self.probe(key.as_bytes(), hash_key(key.as_bytes()))? {
            Probe::Found(found) => Ok(Some(found)),
            Probe::Empty(_) | Probe::Full => Ok(None),
        }
    }

    /// The line holding `key`, adding the key on an empty line if it is new (never reusing a
    /// deleted key's line: that needs an agent to hold it, see [`Directory::insert_key`]).
    pub fn find_or_insert_key(&self, key: &str) -> Result<u32> {
        self.resolve(None, key).map(|found| found.line)
    }

    /// The line holding `key` and its generation, adding the key if it is new: on an empty
    /// line while fewer than `max_artifacts` lines ever had a key, else on the line of a
    /// deleted key (`agent` holds that line while giving it to `key`), else on an empty line
    /// while one is left.
    pub fn insert_key(&self, agent: AgentId, key: &str) -> Result<LineRef> {
        self.check_generation(agent)?;
        self.resolve(Some(agent), key)
    }

    fn resolve(&self, reuser: Option<AgentId>, key: &str) -> Result<LineRef> {
        validate_key(key)?;
        let bytes = key.as_bytes();
        let hash = hash_key(bytes);
        if let Probe::Found(found) = self.probe(bytes, hash)? {
            return Ok(found);
        }
        self.env
            .with_structure_lock(|| self.insert_locked(reuser, bytes, hash))?
    }

    fn insert_locked(&self, reuser: Option<AgentId>, bytes: &[u8], hash: u64) -> Result<LineRef> {
        let empty = match self.probe(bytes, hash)? {
            Probe::Found(found) => return Ok(found),
            Probe::Empty(line) => Some(line),
            Probe::Full => None,
        };
        let count = self.words.at(H_KEY_COUNT)?;
        let keyed = count.load(Ordering::Relaxed);
        if let Some(line) = empty
            && keyed < u64::from(self.geo.config.max_artifacts)
        {
            return self.insert_fresh(line, bytes, hash);
        }
        let Some(agent) = reuser else {
            return Err(self.directory_full());
        };
        // The limit counts keys that exist (written and not deleted, or not written yet).
        if keyed.saturating_sub(self.tombstones()?) >= u64::from(self.geo.config.max_artifacts) {
            return Err(self.directory_full());
        }
        // Every line on the key's probe sequence before the empty one (or all, when none is
        // empty) may hold it; the first reusable tombstone among them takes it.
        for step in 0..self.geo.lines {
            let line = self.probe_line(hash, step);
            if Some(line) == empty {
                break;
            }
            if let Some(found) = self.try_reuse(agent, line, Some((bytes, hash)))? {
                return Ok(found);
            }
        }
        // No deleted key's line on the way. Fewer keys than `max_artifacts` exist (the others
        // are deleted): take the empty line beyond the nominal count of lines, as long as one
        // more stays empty (lookups of absent keys stop there).
        match empty {
            Some(line) => {
                if keyed + 1 == self.geo.lines as u64 {
                    // The last empty line: empty the deleted key's line before it, if there is
                    // one (no key's probe sequence passes a line followed by an empty one, so
                    // no key is lost: Knuth, TAOCP vol. 3, 6.4, Algorithm R's condition). Else
                    // every line gets a key, and probes cover the whole table.
                    let before = line.wrapping_sub(1) & (self.geo.lines as u32 - 1);
                    self.try_reuse(agent, before, None)?;
                }
                self.insert_fresh(line, bytes, hash)
            }
            _ => Err(self.directory_full()),
        }
    }

    /// Lines whose key is deleted (a scan; only when the directory is at its limit).
    fn tombstones(&self) -> Result<u64> {
        let mut count = 0;
        for line in 0..self.geo.lines as u32 {
            count += u64::from(self.reusable(line)?);
        }
        Ok(count)
    }

    /// Whether `line` has a key that was deleted: its head publishes a tombstone of that key
    /// (above the line's base). A key inserted and never written yet is not reusable: its
    /// creator is about to write it.
    fn reusable(&self, line: u32) -> Result<bool> {
        if self.line_word(line, L_KEYMETA)?.load(Ordering::Acquire) == 0 {
            return Ok(false);
        }
        let current = self.current(line)?;
        Ok(current.head.desc != 0 && current.deleted && current.version > current.base)
    }

    /// Put a new key on the never-used `line`.
    fn insert_fresh(&self, line: u32, bytes: &[u8], hash: u64) -> Result<LineRef> {
        self.words.copy_in(self.geo.line_word(line, L_KEY), bytes)?;
        // A line emptied after a deletion keeps its base: its versions go on above.
        let floor = self.floor_of(hash)?.load(Ordering::Relaxed);
        let base = floor.max(self.base(line)?);
        self.line_word(line, L_BASE)?.store(base, Ordering::Release);
        if base > 0 {
            self.undrop_views(line)?;
        }
        self.subscribe_new_line(line, bytes)?;
        // Pairs with the Acquire load in `probe`: the key bytes (and base) are visible before
        // the meta.
        self.line_word(line, L_KEYMETA)?
            .store(key_meta(hash, bytes.len()), Ordering::Release);
        self.words.at(H_KEY_COUNT)?.fetch_add(1, Ordering::Relaxed);
        Ok(LineRef {
            line,
            generation: self.line_word(line, L_GEN)?.load(Ordering::Relaxed),
        })
    }

    /// Give `line` to the key `new` (its bytes and hash), or empty it if `new` is `None`, if it
    /// holds a deleted key and no live agent holds it exclusively; `None` if it cannot be
    /// reused now. Runs under the structure lock, holding the line as `agent`.
    fn try_reuse(
        &self,
        agent: AgentId,
        line: u32,
        new: Option<(&[u8], u64)>,
    ) -> Result<Option<LineRef>> {
        if !self.reusable(line)? {
            return Ok(None);
        }
        // A live exclusive holder makes this `Held` (skip the line); a put in progress is
        // waited for; a dead holder (a reuser that died half-way included) is reclaimed.
        // Holding the line excludes every writer: one that resolved the old key re-checks the
        // generation while it holds the line, after this hold ends.
        let hold = match self.take_line(agent, line, false, self.geo.config.write_lease_ms) {
            Ok(hold) => hold,
            Err(ProtocolError::Held { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        if !(hold.deleted && hold.version > hold.base) {
            self.unhold(hold)?;
            return Ok(None);
        }
        // The old key's home remembers its last version, for the day it is re-created.
        let old_meta = self.line_word(line, L_KEYMETA)?.load(Ordering::Relaxed);
        #[cfg(not(ccs_mutant = "no_version_floor"))]
        if old_meta & READY != 0 {
            raise(self.floor_of(old_meta)?, hold.version);
        }
        let gen_word = self.line_word(line, L_GEN)?;
        let old = gen_word.load(Ordering::Relaxed);
        let odd = old + 1 + (old & 1);
        gen_word.store(odd, Ordering::Relaxed);
        // Seqlock writer: the odd generation is visible before any key word changes (pairs
        // with the Acquire fence in `key_read`).
        fence(Ordering::Release);
        let floor = match new {
            Some((bytes, hash)) => {
                self.words.copy_in(self.geo.line_word(line, L_KEY), bytes)?;
                self.floor_of(hash)?.load(Ordering::Relaxed)
            }
            None => 0,
        };
        let base = hold.version.max(floor);
        // Release: whoever sees the new base sees the odd generation (a reader's later
        // generation check then fails).
        self.line_word(line, L_BASE)?.store(base, Ordering::Release);
        for index in 0..2 * self.geo.mask_words {
            // Valid bits of the old key's tombstone and its subscribers go; the new key's
            // subscribers are set below, before the key is visible.
            self.mask_word(line, index)?.swap(0, Ordering::SeqCst);
        }
        // The old key's views stop meaning anything here: its agents keep a ghost of it.
        if old_meta & READY != 0 {
            self.leave_ghosts(line, old_meta, hold.base, hold.version)?;
        }
        let meta = match new {
            Some((bytes, hash)) => {
                self.undrop_views(line)?;
                self.subscribe_new_line(line, bytes)?;
                key_meta(hash, bytes.len())
            }
            None => {
                self.words.at(H_KEY_COUNT)?.fetch_sub(1, Ordering::Relaxed);
                0
            }
        };
        self.line_word(line, L_KEYMETA)?
            .store(meta, Ordering::Release);
        // Pairs with the Acquire loads of the generation in `probe` and the checks of a
        // `LineRef`: the new key's words are visible with the even generation.
        gen_word.store(odd + 1, Ordering::Release);
        // Gives the line up with no version published (the base carries the versions on) and
        // retires the tombstone. The SeqCst exchange orders all of the above before any later
        // holder's take of the line (which then sees the new generation and base).
        let emptied = Head {
            desc: 0,
            holder: 0,
            epoch: hold.head.epoch,
        };
        // Recorded and marked first, as a publish does (`write.rs`): a reuser that dies after
        // the exchange has the tombstone retired by its recovery. Its incarnation is read
        // before, so the retire below touches only the use this exchange supersedes.
        let tombstone = self.superseded(hold.head.desc_index())?;
        if let Some((tombstone, _)) = tombstone {
            self.mark_superseding(tombstone, hold.agent.slot, hold.head.epoch)?;
        }
        self.head(line)?
            .compare_exchange(
                hold.head.pack(),
                emptied.pack(),
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .map_err(|_| ProtocolError::Fenced)?;
        if let Some((tombstone, incarnation)) = tombstone {
            self.retire_known(tombstone, incarnation, hold.agent.slot)?;
        }
        self.notify(line)?;
        Ok(Some(LineRef {
            line,
            generation: odd + 1,
        }))
    }

    /// A new key on a line that had another: views dropped by a slot reset (`DROPPED_VIEW`,
    /// "may have read the line's key") were about that earlier key, and nobody has read the
    /// new one, so they become 0 ("never read"). Under the structure lock, which slot resets
    /// take too; a compare-and-swap, so an agent's own concurrent read of the line wins.
    fn undrop_views(&self, line: u32) -> Result<()> {
        for slot in 0..self.agent_count()? {
            let view = self.view(slot, line)?;
            let seen = view.load(Ordering::Relaxed);
            if seen == DROPPED_VIEW {
                let _ = view.compare_exchange(seen, 0, Ordering::Relaxed, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Make `key`, which must not have a line yet, start above version `floor` when it is
    /// added: raises the floor of its home line (so other new keys with that home start above
    /// it too; versions only ever go up, so nothing else changes). For tests that take a key
    /// across a version boundary (2^32) without writing it 2^32 times.
    #[doc(hidden)]
    pub fn raise_version_floor(&self, key: &str, floor: u64) -> Result<()> {
        validate_key(key)?;
        let bytes = key.as_bytes();
        let hash = hash_key(bytes);
        self.env.with_structure_lock(|| {
            if let Probe::Found(_) = self.probe(bytes, hash)? {
                return Err(ProtocolError::InvalidConfig(format!(
                    "key {key} exists already: only a new key's first version can be raised"
                )));
            }
            raise(self.floor_of(hash)?, floor);
            Ok(())
        })?
    }

    fn directory_full(&self) -> ProtocolError {
        ProtocolError::CapacityExceeded {
            what: "artifacts",
            limit: u64::from(self.geo.config.max_artifacts),
        }
    }

    #[inline]
    pub(crate) fn line_word(&self, line: u32, field: usize) -> Result<&AtomicU64> {
        self.words.at(self.geo.line_word(line, field))
    }

    /// The floor word of keys whose hash (or key meta) is `hash`: that of their home line.
    fn floor_of(&self, hash: u64) -> Result<&AtomicU64> {
        self.line_word(self.probe_line(hash, 0), L_FLOOR)
    }

    /// The line `key`'s probes start at (its home), where it lands unless another key is there:
    /// for tests and tools that need two keys to meet on a line.
    pub fn home_line(&self, key: &str) -> Result<u32> {
        validate_key(key)?;
        Ok(self.home_of(hash_key(key.as_bytes())))
    }

    /// The home line of keys whose hash (or key meta) is `hash`: the first of their probes.
    pub(crate) fn home_of(&self, hash: u64) -> u32 {
        self.probe_line(hash, 0)
    }

    fn probe_line(&self, hash: u64, step: usize) -> u32 {
        // Lines are a power of two, and at most 2^23: the low 48 bits of the hash suffice.
        (((hash & HASH_MASK) as usize).wrapping_add(step) & (self.geo.lines - 1)) as u32
    }

    /// The generation of `line` now (Acquire: pairs with the reuser's Release store, so a
    /// caller that sees the generation it resolved sees that key's words).
    #[inline]
    pub fn generation(&self, line: u32) -> Result<u64> {
        Ok(self.line_word(line, L_GEN)?.load(Ordering::Acquire))
    }

    /// Whether `at`'s line still belongs to the key it was resolved for. Checked after a read
    /// (a version of a later key is seen with its generation) and by a writer holding the line.
    #[inline]
    pub fn still_owns(&self, at: LineRef) -> Result<bool> {
        Ok(self.owns_by(self.line_word(at.line, L_GEN)?, at))
    }

    /// [`Directory::still_owns`] given the generation word of `at`'s line, already found (a
    /// HIT's, [`Directory::hit_words`]).
    #[inline(always)]
    pub(crate) fn owns_by(&self, generation: &AtomicU64, at: LineRef) -> bool {
        #[cfg(ccs_mutant = "no_generation_check")]
        {
            let _ = (generation, at);
            true
        }
        // Acquire: as in `generation`.
        #[cfg(not(ccs_mutant = "no_generation_check"))]
        {
            generation.load(Ordering::Acquire) == at.generation
        }
    }

    /// The base version of `line`: every version of its current key is above it.
    pub(crate) fn base(&self, line: u32) -> Result<u64> {
        // Pairs with the Release store in `try_reuse`.
        Ok(self.line_word(line, L_BASE)?.load(Ordering::Acquire))
    }

    fn probe(&self, bytes: &[u8], hash: u64) -> Result<Probe> {
        let want = key_meta(hash, bytes.len());
        for step in 0..self.geo.lines {
            let line = self.probe_line(hash, step);
            // Pairs with the Release stores of the meta in `try_reuse` and `insert_fresh`.
            let meta = self.line_word(line, L_KEYMETA)?.load(Ordering::Acquire);
            if meta == 0 {
                return Ok(Probe::Empty(line));
            }
            if meta != want {
                continue;
            }
            // The generation is loaded before the key bytes (Acquire: pairs with the Release
            // store of the even generation, so a generation after a reuse comes with the new
            // key's bytes). A reuse after this load is caught where the result is used: every
            // use of a `LineRef` re-checks the generation, and it only grows. So a half-new key
            // compared here is harmless, and no second load is needed. Odd: a key not inserted
            // yet.
            let generation = self.line_word(line, L_GEN)?.load(Ordering::Acquire);
            if generation & 1 == 0 && self.key_equals(line, bytes)? {
                return Ok(Probe::Found(LineRef { line, generation }));
            }
        }
        Ok(Probe::Full)
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
        Ok(self.key_read(line)?.map(|(key, _, _)| key))
    }

    /// The key whose `version` of `line` was published: `None` if the line had another key
    /// then (the line was reused since: every version of its current key is above its base).
    /// For log records and events, which name a line and a version.
    pub fn key_of_version(&self, line: u32, version: u64) -> Result<Option<String>> {
        Ok(self
            .key_read(line)?
            .and_then(|(key, _, base)| version_of_key(version, base).then_some(key)))
    }

    /// The key of `line` with its generation and base, read consistently (a seqlock read
    /// against a reuse, see the module doc).
    pub fn key_read(&self, line: u32) -> Result<Option<(String, u64, u64)>> {
        self.check_line(line)?;
        let gen_word = self.line_word(line, L_GEN)?;
        for attempt in 0u32..1 << 20 {
            if attempt > 0 && attempt.is_multiple_of(16) {
                crate::sync::yield_now();
            }
            // Pairs with the Release stores in `try_reuse` and `insert_fresh`.
            let generation = gen_word.load(Ordering::Acquire);
            let meta = self.line_word(line, L_KEYMETA)?.load(Ordering::Acquire);
            if meta == 0 {
                return Ok(None);
            }
            if generation & 1 == 1 {
                // Being given to a key not yet inserted (or its reuser died: the next reuse
                // of the line finishes the job).
                return Ok(None);
            }
            let len = ((meta >> 48) & 0x7fff) as usize;
            let mut bytes = Vec::with_capacity(len);
            let copied = if meta & READY == 0 || len == 0 || len > MAX_KEY_BYTES {
                Err(ProtocolError::corrupt(format!(
                    "line {line} has a bad key header"
                )))
            } else {
                self.words
                    .copy_out(self.geo.line_word(line, L_KEY), len, &mut bytes)
            };
            let base = self.base(line)?;
            // Seqlock read: pairs with the Release fence in `try_reuse`.
            fence(Ordering::Acquire);
            if gen_word.load(Ordering::Relaxed) != generation {
                continue;
            }
            copied?;
            if hash_key(&bytes) & HASH_MASK != meta & HASH_MASK {
                return Err(ProtocolError::corrupt(format!(
                    "line {line}: key does not match its hash"
                )));
            }
            let key = String::from_utf8(bytes)
                .map_err(|_| ProtocolError::corrupt(format!("line {line}: key is not UTF-8")))?;
            return Ok(Some((key, generation, base)));
        }
        Err(ProtocolError::corrupt(format!(
            "line {line}: its key kept changing (a reuse that never finished)"
        )))
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

#[cfg(test)]
mod tests {
    use super::hash_key;

    /// The key hash is part of the layout (every key meta and probe sequence holds it), so it
    /// must never change with the crate that computes it. Reference values from the xxHash
    /// project's C library (Python `xxhash.xxh3_64_intdigest`), one per code path of XXH3-64's
    /// short inputs (1–3, 4–8, 9–16, 17–128, 129–240 and over 240 bytes).
    #[test]
    fn the_key_hash_is_xxh3_64() {
        let cases: [(&[u8], u64); 8] = [
            (b"a", 0xe6c6_32b6_1e96_4e1f),
            (b"ab", 0xa873_719c_24d5_735c),
            (b"plan", 0x02c1_b8fd_c52a_313c),
            (b"task/42/", 0xddaf_8d63_d2e3_ba88),
            (b"task/42/plan", 0x7702_d2db_a08b_1dce),
            (b"bench/ops/0000500", 0xcaec_08c5_4a5e_0ea8),
            (&[b'x'; 200], 0x50ef_124f_b1e4_de53),
            (&[b'y'; 256], 0x5277_4c7a_83ee_4798),
        ];
        for (key, want) in cases {
            assert_eq!(hash_key(key), want, "key of {} bytes", key.len());
        }
    }
}

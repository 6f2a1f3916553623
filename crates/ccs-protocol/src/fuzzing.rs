//! Hostile segment images for the fuzzer (`fuzz/fuzz_targets/segment_image.rs`) and for the
//! regular test that replays its corpus (`tests/fuzz_corpus.rs`). Not part of the API.
//!
//! [`run_image`] takes arbitrary bytes and runs every protocol operation on segments made from
//! them, ignoring the results: any `Ok` or error is fine, a panic, a hang or an out-of-bounds
//! access is a bug. Each input is tried three ways:
//!
//! 1. **Raw**: the bytes are the whole segment (little-endian words, padded to a whole word,
//!    capped at [`MAX_IMAGE_BYTES`]), opened with [`Directory::open`]. This exercises header
//!    validation; a random input rarely gets past the magic and checksum.
//! 2. **Overlay**: bytes 0..4 choose a small geometry, a valid header is written for it, and
//!    the bytes from 5 on are copied over the words after the header's checksummed part
//!    (from word 16: counters, free lists, agents, lines, views, descriptors, arena), so the
//!    fuzzer explores the interior instead of header rejection.
//! 3. **Patched**: the same geometry, populated by a short honest history (two agents, two
//!    keys, a few versions, a pin), then the bytes from 5 on are read as 12-byte patches
//!    (`u32` word index modulo the segment, `u64` value), the way
//!    `hostile_words_give_errors_not_panics` overwrites single words.
//!
//! The environment is [`MemEnv`], whose clock only moves when told. Every agent slot except
//! the fuzzer's own (and every slot beyond `max_agents` that `MemEnv` has a bit for) is marked
//! dead, so a line that a hostile image shows as held by another
//! agent is reclaimed at once rather than waited for (with a live holder and a frozen clock
//! a `put` would wait forever, by design: see `take_line`).
//!
//! ```
//! ccs_protocol::fuzzing::run_image(b"any bytes at all");
//! ```

use crate::directory::{AgentId, Directory};
use crate::error::Result;
use crate::layout::{Config, Geometry};
use crate::sync::Ordering;
use crate::testing::MemEnv;
use crate::words::HeapWords;
use crate::write::Condition;

/// Largest image the fuzzer's inputs are turned into, in bytes.
pub const MAX_IMAGE_BYTES: usize = 1 << 20;

/// First header word the overlay writes (words 0..16 hold the magic, the checksummed sizes and
/// the unused words after them).
const OVERLAY_FROM_WORD: usize = 16;

/// Run every operation on the segments made from `data` (see the module docs). Never panics
/// on its own account; a panic from inside the protocol is a bug the fuzzer reports.
pub fn run_image(data: &[u8]) {
    run_raw(data);
    if let Some(config) = small_config(data) {
        let rest = data.get(5..).unwrap_or(&[]);
        run_overlay(config, rest);
        run_patched(config, rest);
    }
}

/// Words of `bytes`, little-endian, the last one zero-padded.
fn words_of(bytes: &[u8]) -> impl Iterator<Item = u64> + '_ {
    bytes.chunks(8).map(|chunk| {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        u64::from_le_bytes(word)
    })
}

fn run_raw(data: &[u8]) {
    let data = &data[..data.len().min(MAX_IMAGE_BYTES)];
    let bytes = data.len().div_ceil(8) * 8;
    let heap = HeapWords::new(bytes);
    let words = heap.words();
    for (index, value) in words_of(data).enumerate() {
        if let Ok(word) = words.at(index) {
            word.store(value, Ordering::Relaxed);
        }
    }
    let Ok(geometry) = Geometry::read(&words, bytes as u64) else {
        return;
    };
    let env = MemEnv::new(geometry.config.max_agents);
    if let Ok(dir) = Directory::open_on_heap(heap, bytes as u64, env) {
        exercise(&dir);
    }
}

/// A small geometry chosen by bytes 0..4: 1–4 agents, 1–8 artifacts, a 64 B – 8 KiB arena.
fn small_config(data: &[u8]) -> Option<Config> {
    let [agents, artifacts, arena, payload, ..] = *data else {
        return None;
    };
    let arena_bytes = 64u64 << (arena % 8);
    let config = Config {
        max_agents: 1 + u32::from(agents % 4),
        max_artifacts: 1 + u32::from(artifacts % 8),
        arena_bytes,
        max_payload: (arena_bytes >> (payload % 4)).max(1),
        write_lease_ms: 1 + u64::from(payload >> 4),
        log_records: 4 >> (artifacts >> 6),
        inbox_events: 2 >> (agents >> 7),
    };
    Geometry::new(config).ok().map(|_| config)
}

/// A fresh segment for `config` with a valid header, on the heap.
fn fresh(config: Config) -> Option<(HeapWords, Geometry)> {
    let geometry = Geometry::new(config).ok()?;
    let bytes = usize::try_from(geometry.total_bytes).ok()?;
    if bytes > MAX_IMAGE_BYTES {
        return None;
    }
    Some((HeapWords::new(bytes), geometry))
}

fn run_overlay(config: Config, rest: &[u8]) {
    let Some((heap, geometry)) = fresh(config) else {
        return;
    };
    let words = heap.words();
    if geometry.initialise(&words, 1).is_err() {
        return;
    }
    for (offset, value) in words_of(rest).enumerate() {
        match words.at(OVERLAY_FROM_WORD + offset) {
            Ok(word) => word.store(value, Ordering::Relaxed),
            Err(_) => break,
        }
    }
    let env = MemEnv::new(config.max_agents);
    if let Ok(dir) = Directory::open_on_heap(heap, geometry.total_bytes, env) {
        exercise(&dir);
    }
}

fn run_patched(config: Config, rest: &[u8]) {
    let Some((heap, geometry)) = fresh(config) else {
        return;
    };
    let Ok(dir) = Directory::create_on_heap(heap, config, MemEnv::new(config.max_agents)) else {
        return;
    };
    // An honest history; steps that do not fit the geometry just fail.
    let _ = populate(&dir);
    let total_words = geometry.total_bytes / 8;
    for patch in rest.chunks_exact(12) {
        let mut index = [0u8; 4];
        let mut value = [0u8; 8];
        index.copy_from_slice(&patch[..4]);
        value.copy_from_slice(&patch[4..]);
        let index = u64::from(u32::from_le_bytes(index)) % total_words.max(1);
        if let Some(word) = usize::try_from(index)
            .ok()
            .and_then(|i| dir.words().at(i).ok())
        {
            word.store(u64::from_le_bytes(value), Ordering::Relaxed);
        }
    }
    exercise(&dir);
}

fn populate(dir: &Directory<MemEnv>) -> Result<()> {
    let a = dir.begin_attach(dir.register_agent("a")?, 1)?;
    let k = dir.find_or_insert_key("k")?;
    dir.put(a, k, &[1; 40], Condition::View)?;
    dir.put(a, k, &[2; 100], Condition::View)?;
    let b = dir.begin_attach(dir.register_agent("b")?, 2)?;
    let j = dir.find_or_insert_key("dir/j")?;
    dir.put(b, j, b"j1", Condition::Blind)?;
    dir.read(a, j, &mut Vec::new())?;
    // A pin left recorded, as a dead reader would leave it.
    let _ = dir.read_pinned(b, k)?;
    dir.delete(a, j, Condition::View)?;
    let hold = dir.acquire(a, j, 50)?;
    dir.commit(hold, b"j3")?;
    Ok(())
}

/// Every operation on `dir`, results ignored.
fn exercise(dir: &Directory<MemEnv>) {
    let _ = dir.agent_rows();
    let _ = dir.artifact_rows();
    let _ = dir.keys_with_prefix("");
    let _ = dir.find_key("k");
    let _ = dir.find_agent("fuzz");
    let Ok(me) = dir
        .register_agent("fuzz")
        .and_then(|slot| dir.begin_attach(slot, 7))
    else {
        return;
    };
    // MemEnv keeps liveness in 64-slot words and calls every slot it has a bit for alive,
    // including slots at or beyond `max_agents`, which a hostile head may name as its holder.
    let env_slots = dir.geometry().config.max_agents.div_ceil(64) * 64;
    for slot in 0..env_slots {
        if slot != me.slot {
            dir.env().set_alive(slot, false);
        }
    }
    let mut lines: Vec<u32> = dir
        .keyed_lines()
        .map(|keyed| keyed.into_iter().map(|(line, _)| line).take(4).collect())
        .unwrap_or_default();
    if let Ok(line) = dir.find_or_insert_key("fuzz/new") {
        lines.push(line);
    }
    for line in lines {
        exercise_line(dir, me, line);
    }
    let _ = dir.keys_with_prefix("fuzz/");
    let _ = dir.artifact_rows();
    let _ = dir.detach(me);
}

fn exercise_line(dir: &Directory<MemEnv>, me: AgentId, line: u32) {
    let mut buf = Vec::new();
    let _ = dir.key_of(line);
    let _ = dir.read(me, line, &mut buf);
    let _ = dir.read(me, line, &mut buf);
    if let Ok((_, pin)) = dir.read_pinned(me, line) {
        let _ = dir.release_pin(pin);
    }
    let current = dir.check(me, line).map(|check| check.current).unwrap_or(0);
    let _ = dir.cell(me.slot, line);
    let _ = dir.put(me, line, b"fuzz view", Condition::View);
    let _ = dir.put(me, line, &[7; 70], Condition::Version(current));
    let _ = dir.put(me, line, b"", Condition::Blind);
    let _ = dir.read(me, line, &mut buf);
    let _ = dir.delete(me, line, Condition::View);
    if let Ok(hold) = dir.acquire(me, line, 10) {
        let _ = dir.renew(hold, 20);
        let _ = dir.commit(hold, b"committed");
        // A second commit of the same hold is stale: it must be refused, not publish.
        let _ = dir.commit(hold, b"again");
    }
    if let Ok(hold) = dir.acquire(me, line, 10) {
        let _ = dir.release(hold);
        let _ = dir.release(hold);
    }
    let _ = dir.wait_changed(line, 0, Some(0));
    let _ = dir.wait_changed(line, u64::MAX, Some(0));
    let _ = dir.serve_private(me, line, current, 0);
    let _ = dir.check(me, line);
}

//! The payload arena's buddy allocator on a heap layout: freed space merges back (issue 20's
//! story), the allocator never writes into payload bytes (issue 13, hole 4), and a merge a dead
//! process left half-done is finished by the next one.

#![cfg(not(loom))]

mod common;

use ccs_protocol::sync::Ordering;
use ccs_protocol::testing::MemEnv;
use ccs_protocol::{Condition, Config, Directory, FsckReport, KillPoint, ProtocolError};
use common::{agent, fixture};

const MIB: usize = 1 << 20;

fn assert_clean(report: &FsckReport) {
    assert!(report.is_clean(), "{:#?}", report.problems);
}

/// `ccs init S --arena 4M --max-payload 1M` with the other limits at a small size.
fn story_config() -> Config {
    Config {
        max_agents: 4,
        max_artifacts: 256,
        arena_bytes: 4 << 20,
        max_payload: 1 << 20,
        write_lease_ms: 1000,
        log_records: 0,
        inbox_events: 0,
    }
}

/// Small-payload churn: `rounds` writes of 64 B .. 8 KiB payloads to `keys` rotating keys.
fn churn(dir: &Directory<MemEnv>, who: ccs_protocol::AgentId, prefix: &str, rounds: usize) {
    let keys = 64;
    for i in 0..rounds {
        let line = dir
            .find_or_insert_key(&format!("{prefix}/{}", i % keys))
            .expect("key");
        let len = 64 << (i % 8);
        dir.put(who, line, &vec![(i % 251) as u8; len], Condition::Blind)
            .expect("small put");
    }
}

/// Issue 20's third story: three 1 MB payloads, small churn, the big keys overwritten with
/// small values, more churn, then 1 MB payloads again. Without merging the third big payload
/// was refused with about 1 MB free.
#[test]
fn big_payloads_fit_again_after_small_churn() {
    let f = fixture(story_config());
    let dir = &f.dir;
    let a = agent(dir, "orchestrator");
    let big: Vec<u32> = (0..3)
        .map(|i| dir.find_or_insert_key(&format!("big/{i}")).expect("key"))
        .collect();
    for &line in &big {
        dir.put(a, line, &vec![1; MIB], Condition::Blind)
            .expect("first 1 MB payloads");
    }
    churn(dir, a, "small", 2000);
    for &line in &big {
        dir.put(a, line, &[2; 100], Condition::Blind)
            .expect("big key made small");
    }
    churn(dir, a, "more", 2000);
    for (i, &line) in big.iter().enumerate() {
        dir.put(a, line, &vec![3; MIB], Condition::Blind)
            .unwrap_or_else(|e| panic!("1 MB payload {i} after churn: {e}"));
    }
    let mut buf = Vec::new();
    for &line in &big {
        dir.read(a, line, &mut buf).expect("read");
        assert!(buf.len() == MIB && buf.iter().all(|&b| b == 3));
    }
    assert_clean(&dir.fsck().expect("fsck"));
}

/// Churn across every size class in a segment whose live data always fits: no capacity error,
/// and the accounting stays exact.
#[test]
fn size_churn_never_runs_out_while_live_data_fits() {
    let f = fixture(story_config());
    let dir = &f.dir;
    let a = agent(dir, "churner");
    let keys: Vec<u32> = (0..4)
        .map(|i| dir.find_or_insert_key(&format!("k/{i}")).expect("key"))
        .collect();
    // At most four live payloads of at most 512 KiB each (2 MiB live of a 4 MiB arena), sizes
    // from 64 B upwards in a pattern that defeats size-class reuse without merging.
    let mut seed = 12345u64;
    for round in 0..3000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = 64usize << (seed % 14);
        let line = keys[round % keys.len()];
        dir.put(a, line, &vec![round as u8; len], Condition::Blind)
            .unwrap_or_else(|e| panic!("round {round}, {len} bytes: {e}"));
    }
    assert_clean(&dir.fsck().expect("fsck"));
}

/// Issue 13, hole 4, at the root: no allocator path (bump, split, free, merge) stores into a
/// block's bytes, so nothing but a writer's own copy (after its Release fence) can reach a
/// reader copying the block's previous version. A payload's bytes stay as written after it is
/// freed, split into small blocks, freed again and merged.
#[test]
#[cfg_attr(ccs_mutant = "links_in_payload", should_panic)]
fn allocator_never_writes_payload_bytes() {
    let f = fixture(story_config());
    let dir = &f.dir;
    let a = agent(dir, "writer");
    let geo = *dir.geometry();
    let big = dir.find_or_insert_key("big").expect("key");
    // Fill the whole arena with four 1 MB payloads of 0xAB, then free them all.
    let lines: Vec<u32> = (0..4)
        .map(|i| dir.find_or_insert_key(&format!("fill/{i}")).expect("key"))
        .collect();
    for &line in &lines {
        dir.put(a, line, &vec![0xAB; MIB], Condition::Blind)
            .expect("fill");
    }
    for &line in &lines {
        dir.delete(a, line, Condition::Blind).expect("free");
    }
    // Splits down to 64 B blocks, frees, and a merge (the 1 MB put finds no free 1 MB block).
    let small = dir.find_or_insert_key("small").expect("key");
    for len in [64, 128, 4096, 65536, 64] {
        dir.put(a, small, &vec![0xCD; len], Condition::Blind)
            .expect("small");
    }
    dir.delete(a, small, Condition::Blind).expect("delete");
    for _ in 0..4 {
        dir.put(a, big, &vec![0xEF; MIB], Condition::Blind)
            .expect("big after merge");
    }
    // Every arena byte is one some payload wrote: 0xAB, 0xCD or 0xEF, never a link.
    let words = dir.words();
    for granule in 0..geo.config.arena_bytes / 64 {
        let first = geo.arena_at + granule as usize * 8;
        for index in first..first + 8 {
            let word = words.at(index).expect("arena").load(Ordering::Relaxed);
            let byte = word.to_le_bytes()[0];
            assert!(
                [0xAB, 0xCD, 0xEF].contains(&byte) && word == u64::from_le_bytes([byte; 8]),
                "arena word {index} (granule {granule}) holds {word:#x}: not payload bytes"
            );
        }
    }
}

/// A four-granule arena whose granules 0 and 1 were freed one after the other (waiting on the
/// one-granule list, unmerged) while key `k/2` holds granules 2-3; the writer and the keys.
fn two_free_buddies() -> (common::Fixture, ccs_protocol::AgentId, Vec<u32>) {
    let config = Config {
        arena_bytes: 256,
        max_payload: 128,
        ..story_config()
    };
    let f = fixture(config);
    let dir = &f.dir;
    let a = agent(dir, "writer");
    let lines: Vec<u32> = (0..3)
        .map(|i| dir.find_or_insert_key(&format!("k/{i}")).expect("key"))
        .collect();
    dir.put(a, lines[0], &[1; 64], Condition::Blind)
        .expect("g0");
    dir.put(a, lines[1], &[2; 64], Condition::Blind)
        .expect("g1");
    dir.put(a, lines[2], &[3; 128], Condition::Blind)
        .expect("g2-3");
    dir.delete(a, lines[0], Condition::Blind).expect("free g0");
    dir.delete(a, lines[1], Condition::Blind).expect("free g1");
    (f, a, lines)
}

/// A merge never leaves a merged-away buddy's block word 0, the word of a granule never handed
/// out, which a bumper that read the arena's bump pointer long ago would claim (its claim is a
/// compare-and-swap from 0): granule 1, merged into granules 0-1, reads `INSIDE`. The mutant
/// `merged_words_zeroed` clears it to 0. (The race itself is the loom model
/// `a_stale_bumper_never_claims_a_merged_granule`.)
#[test]
#[cfg_attr(ccs_mutant = "merged_words_zeroed", should_panic)]
fn a_merged_away_buddy_is_never_unclaimed() {
    let (f, a, lines) = two_free_buddies();
    let dir = &f.dir;
    let geo = *dir.geometry();
    // A two-granule payload needs the merge of granules 0 and 1.
    dir.put(a, lines[1], &[4; 128], Condition::Blind)
        .expect("merged block");
    let upper = dir
        .words()
        .at(geo.blocks_at + 1)
        .expect("block word")
        .load(Ordering::Relaxed);
    assert_eq!(upper, 1 << 41, "granule 1's word is {upper:#x}, not INSIDE");
    assert_clean(&dir.fsck().expect("fsck"));
}

/// A merger killed between its two stores of a pair merge (the upper buddy cleared, the lower
/// not yet grown) leaves the pair recorded in the header; the next allocation that merges
/// finishes it, and nothing is lost.
#[test]
fn a_dead_mergers_half_done_pair_is_finished() {
    let (f, a, lines) = two_free_buddies();
    let dir = &f.dir;
    let geo = *dir.geometry();
    // What the dead merger left: both granules off the free list (head 36 = class 0: the
    // lists are four words each from 32, the descriptors' first), g0
    // stashed at class 0, g1 already cleared, the pair recorded in header word 20.
    let poke = |index: usize, value: u64| {
        dir.words()
            .at(index)
            .expect("in range")
            .store(value, Ordering::Relaxed)
    };
    let blocks_at = geo.blocks_at;
    poke(36, 7 << 32); // empty, tag 7
    poke(37, 0); // no pop to acknowledge
    poke(blocks_at, 3 << 62); // STASHED, class 0
    poke(blocks_at + 1, 1 << 41); // INSIDE: cleared by the merge (never 0 once handed out)
    poke(20, 1 << 8); // granule 0 + 1, class 0
    // A two-granule payload needs the merge: it must get granules 0-1.
    dir.put(a, lines[1], &[4; 128], Condition::Blind)
        .expect("merged block");
    assert_eq!(
        dir.words().at(20).expect("header").load(Ordering::Relaxed),
        0
    );
    let report = dir.fsck().expect("fsck");
    assert_clean(&report);
    assert_eq!(report.arena.leaked_bytes, 0);
    // And the arena is full again, not corrupt.
    assert!(matches!(
        dir.put(a, lines[0], &[5; 64], Condition::Blind),
        Err(ProtocolError::CapacityExceeded { .. })
    ));
}

/// A bumper killed between its claims and the pointer moves (docs/protocol.md §3.9): the claim
/// of the descriptor at the descriptor pointer, and of the granules at the arena pointer with
/// its `Bumping` record, are left as a dead process leaves them. Another agent's writes are
/// not held up (they move the pointers past the claims), and the dead agent's next attach
/// gives both back: nothing leaked, before any repair.
#[test]
fn a_dead_bumpers_claims_stop_nobody_and_are_given_back() {
    let config = Config {
        arena_bytes: 64 << 10,
        max_payload: 4096,
        ..story_config()
    };
    let f = fixture(config);
    let dir = &f.dir;
    let a = agent(dir, "a");
    let d = agent(dir, "d");
    let geo = *dir.geometry();
    let [x, y, z] = ["x", "y", "z"].map(|k| dir.find_or_insert_key(k).expect("key"));
    dir.put(a, x, &[1; 64], Condition::Blind).expect("x");
    let word = |index: usize| dir.words().at(index).expect("in range");
    // Header words 17 and 19: the descriptor and arena bump pointers.
    let (desc_at, granule_at) = (
        word(17).load(Ordering::Relaxed),
        word(19).load(Ordering::Relaxed),
    );
    // d's claims, as `bump_desc` and `claim_at_bump` write them (class 0: one granule, at the
    // odd granule after x's).
    let d_slot = u64::from(d.slot);
    word(geo.descs_at + desc_at as usize * 8 + 1)
        .store((1 << 31 | (d_slot + 1)) << 32, Ordering::Relaxed);
    word(geo.blocks_at + granule_at as usize).store(1 << 40 | d_slot, Ordering::Relaxed);
    // Agent slot word 7: `Bumping { granule, class: 0 }`.
    word(geo.agents_at + d.slot as usize * 32 + 7).store(8 << 60 | granule_at, Ordering::Relaxed);
    dir.env().set_alive(d.slot, false);
    // a bumps past both claims.
    dir.put(a, y, &[2; 128], Condition::Blind)
        .expect("y past the claims");
    assert_eq!(word(17).load(Ordering::Relaxed), desc_at + 2);
    assert!(word(19).load(Ordering::Relaxed) >= granule_at + 3);
    // d's next attach recovers its claims.
    let d = reattach_gives_back(dir, d, 64);
    // The given-back descriptor and granules are handed out again.
    dir.put(d, z, &[3; 128], Condition::Blind).expect("z");
    assert_eq!(word(17).load(Ordering::Relaxed), desc_at + 2);
    assert_clean(&dir.fsck().expect("fsck"));

    // Killed again the same way, and re-attached before anyone bumps: the recovery itself
    // moves both pointers past its claims (the descriptor one past the pointer is swept too).
    let (desc_at, granule_at) = (
        word(17).load(Ordering::Relaxed),
        word(19).load(Ordering::Relaxed),
    );
    assert_eq!(granule_at % 2, 0);
    let claim_class = 1;
    word(geo.descs_at + desc_at as usize * 8 + 1)
        .store((1 << 31 | (d_slot + 1)) << 32, Ordering::Relaxed);
    word(geo.blocks_at + granule_at as usize)
        .store(1 << 40 | claim_class << 32 | d_slot, Ordering::Relaxed);
    word(geo.agents_at + d.slot as usize * 32 + 7)
        .store(8 << 60 | claim_class << 32 | granule_at, Ordering::Relaxed);
    dir.env().set_alive(d.slot, false);
    dir.env().set_alive(d.slot, true);
    dir.begin_attach(d.slot, 3).expect("re-attach");
    assert_eq!(word(17).load(Ordering::Relaxed), desc_at + 1);
    assert_eq!(word(19).load(Ordering::Relaxed), granule_at + 2);
    let report = dir.fsck().expect("fsck");
    assert_clean(&report);
    assert_eq!(report.descriptors.leaked, 0);
    assert_eq!(report.arena.leaked_bytes, 0);
}

/// The dead agent `d` holds one descriptor and `bytes` of the arena that only its records
/// name (fsck, which does not read them, counts them as leaked); its next attach gives them
/// back. Returns its new handle.
fn reattach_gives_back(
    dir: &Directory<MemEnv>,
    d: ccs_protocol::AgentId,
    bytes: u64,
) -> ccs_protocol::AgentId {
    let before = dir.fsck().expect("fsck");
    assert_eq!(before.descriptors.leaked, 1, "{:#?}", before.problems);
    assert_eq!(before.arena.leaked_bytes, bytes, "{:#?}", before.problems);
    dir.env().set_alive(d.slot, true);
    let d = dir.begin_attach(d.slot, 2).expect("re-attach");
    let after = dir.fsck().expect("fsck");
    assert_clean(&after);
    assert_eq!(after.descriptors.leaked, 0);
    assert_eq!(after.arena.leaked_bytes, 0);
    d
}

/// A writer killed between its block's two names (the block stored in the block field of its
/// FILLING descriptor, the block's own record not yet cleared): until its recovery the
/// descriptor and the block are held by its records only (fsck, which does not read them,
/// counts them as leaked); its next attach gives both back, once: nothing leaked, and the
/// granules go to one payload each afterwards, not to two.
#[test]
fn a_writer_killed_with_its_block_named_twice_gives_it_back_once() {
    let f = fixture(story_config());
    let dir = &f.dir;
    let a = agent(dir, "a");
    let d = agent(dir, "d");
    let [x, y, z] = ["x", "y", "z"].map(|k| dir.find_or_insert_key(k).expect("key"));
    dir.put(a, x, &[1; 4096], Condition::Blind).expect("x");
    dir.env().kill_at(d.slot, KillPoint::BlockNamed);
    let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = dir.put(d, y, &[2; 4096], Condition::Blind);
    }));
    assert!(died.is_err(), "the write never reached the kill point");
    dir.env().set_alive(d.slot, false);
    let d = reattach_gives_back(dir, d, 4096);
    // Given back once: two payloads of that class land in two blocks and read back whole.
    dir.put(d, y, &[3; 4096], Condition::Blind).expect("y");
    dir.put(a, z, &[4; 4096], Condition::Blind).expect("z");
    let mut buf = Vec::new();
    for (line, byte) in [(x, 1), (y, 3), (z, 4)] {
        dir.read(a, line, &mut buf).expect("read");
        assert!(buf.len() == 4096 && buf.iter().all(|&b| b == byte));
    }
    assert_clean(&dir.fsck().expect("fsck"));
}

/// Two threads of one agent share its record words. When the list head names one thread's pop,
/// the record word may hold a sibling thread's record of a pop it lost on the same list at the
/// same tag; the acknowledgement (by whoever next pushes or pops that list) must leave that
/// record alone: turned into the winner's entry, it would be a false record, and the agent's
/// recovery would free the block under the winner's published version. The head and the record
/// name the thread (its nonce), not only the slot. The mutant `acknowledged_by_slot` matches
/// the slot and the tag only, and turns the record.
#[test]
#[cfg_attr(ccs_mutant = "acknowledged_by_slot", should_panic)]
fn an_acknowledgement_never_turns_a_sibling_threads_record() {
    let f = fixture(story_config());
    let dir = &f.dir;
    let a = agent(dir, "a");
    let d = agent(dir, "d");
    let geo = *dir.geometry();
    let [x, y, z] = ["x", "y", "z"].map(|k| dir.find_or_insert_key(k).expect("key"));
    dir.put(a, x, &[1; 4096], Condition::Blind).expect("x");
    dir.delete(a, x, Condition::Blind).expect("x freed");
    // d (this thread) pops x's block: the head of class 6 (4096 bytes), header words 60-61
    // (four words a list from word 32, the descriptors' first), names d's slot and this
    // thread's nonce.
    dir.put(d, y, &[2; 4096], Condition::Blind).expect("y");
    let word = |index: usize| dir.words().at(index).expect("in range");
    let (class, head) = (6u64, 32 + 4 * (1 + 6));
    let tag = word(head).load(Ordering::Relaxed) >> 32;
    assert_eq!(
        word(head + 1).load(Ordering::Relaxed) >> 48,
        u64::from(d.slot) + 1,
        "the head names d's pop"
    );
    // A sibling thread's record of a pop it lost at the tag before d's pop: agent slot word 7,
    // `Popping { class, nonce, tag }` (kind 9).
    let sibling = u64::from(ccs_protocol::sync::thread_nonce().wrapping_add(1));
    let record = 9 << 60 | class << 48 | sibling << 32 | (tag - 1);
    let moving = word(geo.agents_at + d.slot as usize * 32 + 7);
    moving.store(record, Ordering::Relaxed);
    // As if d's winning thread had not yet said beside the head that its pop is recorded
    // (the list's third word): the acknowledgement then reads the record word.
    word(head + 2).store(0, Ordering::Relaxed);
    // a's write of z, on another thread (this one skips its own last pop), pops that list
    // (empty now: the acknowledgement still runs), then bumps.
    std::thread::scope(|scope| {
        scope.spawn(|| dir.put(a, z, &[3; 4096], Condition::Blind).expect("z"));
    });
    assert_eq!(
        moving.load(Ordering::Relaxed),
        record,
        "the sibling's record was turned"
    );
    // d dies with that record; its recovery finds no pop of its own and gives nothing back.
    dir.env().set_alive(d.slot, false);
    dir.env().set_alive(d.slot, true);
    dir.begin_attach(d.slot, 2).expect("re-attach");
    dir.put(a, z, &[4; 4096], Condition::Blind)
        .expect("z again");
    let mut buf = Vec::new();
    for (line, byte) in [(y, 2), (z, 4)] {
        dir.read(a, line, &mut buf).expect("read");
        assert!(buf.len() == 4096 && buf.iter().all(|&b| b == byte));
    }
    assert_clean(&dir.fsck().expect("fsck"));
}

/// A merger killed in its drain, right after taking a block off its list (the pop recorded in
/// header word 21, the block not yet STASHED): fsck counts the block as free, not leaked, and
/// the next allocation that merges finishes the drain (the block stashed, then merged with its
/// buddy) and clears the record. Before, the drain's pops were unrecorded and such a block
/// leaked until `fsck --repair`.
#[test]
fn a_dead_mergers_drained_block_is_merged_by_the_next() {
    let (f, a, lines) = two_free_buddies();
    let dir = &f.dir;
    let geo = *dir.geometry();
    let word = |index: usize| dir.words().at(index).expect("in range");
    // What the dead merger left: granule 1 (the top of the class-0 list, head words 36-37)
    // popped, its block word still FREE, and the pop recorded in header word 21 as
    // `Block { granule: 1, class: 0 }` (kind 1).
    let (head, drain) = (36, 21);
    let low = word(head).load(Ordering::Relaxed);
    assert_eq!(low & 0xffff_ffff, 2, "granule 1 tops the class-0 list");
    let link = word(geo.blocks_at + 1).load(Ordering::Relaxed) & 0xffff_ffff;
    word(head).store(((low >> 32) + 1) << 32 | link, Ordering::Relaxed);
    word(head + 1).store(0, Ordering::Relaxed);
    word(drain).store(1 << 60 | 1, Ordering::Relaxed);
    let before = dir.fsck().expect("fsck");
    assert_clean(&before);
    assert_eq!(before.arena.leaked_bytes, 0);
    // A two-granule payload needs the merge of granules 0 and 1.
    dir.put(a, lines[1], &[4; 128], Condition::Blind)
        .expect("merged block");
    assert_eq!(word(drain).load(Ordering::Relaxed), 0);
    let after = dir.fsck().expect("fsck");
    assert_clean(&after);
    assert_eq!(after.arena.leaked_bytes, 0);
    let mut buf = Vec::new();
    dir.read(a, lines[1], &mut buf).expect("read");
    assert!(buf.len() == 128 && buf.iter().all(|&b| b == 4));
}

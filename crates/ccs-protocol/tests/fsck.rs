//! `Directory::fsck` and `Directory::fsck_repair` on a heap layout: clean segments stay clean,
//! a dead writer's hold and leaked slots are found and repaired, corrupted words are reported
//! (never panicked on).

#![cfg(not(loom))]

mod common;

use ccs_protocol::sync::Ordering;
use ccs_protocol::testing::MemEnv;
use ccs_protocol::{
    Condition, Config, Directory, FsckKind, FsckReport, Geometry, KillPoint, StopAt, Strategy,
};
use common::{Fixture, agent, config, fixture};

fn fsck(dir: &Directory<MemEnv>) -> FsckReport {
    dir.fsck().expect("fsck")
}

fn assert_clean(report: &FsckReport) {
    assert!(report.is_clean(), "{:#?}", report.problems);
}

/// A line's pending word (docs/layout.md §4).
const L_PENDING: usize = 10;

/// Word index helpers (layout.md).
fn line_word(geo: &Geometry, line: u32, field: usize) -> usize {
    geo.lines_at + line as usize * geo.line_words + field
}

fn desc_word(geo: &Geometry, desc: u32, field: usize) -> usize {
    geo.descs_at + desc as usize * 8 + field
}

fn poke(dir: &Directory<MemEnv>, index: usize, value: u64) {
    dir.words()
        .at(index)
        .expect("in range")
        .store(value, Ordering::Relaxed);
}

fn peek(dir: &Directory<MemEnv>, index: usize) -> u64 {
    dir.words()
        .at(index)
        .expect("in range")
        .load(Ordering::Relaxed)
}

/// Usable arena bytes of `config()`.
const ARENA: u64 = 64 << 10;

#[test]
fn fresh_and_busy_segments_are_clean() {
    let f = fixture(config());
    let report = fsck(&f.dir);
    assert_clean(&report);
    assert_eq!(report.arena.untouched_bytes, ARENA);
    assert_eq!(report.descriptors.live, 0);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.starts_with("operation log: ")),
        "{:?}",
        report.notes
    );

    let (a, b) = (agent(&f.dir, "a"), agent(&f.dir, "b"));
    let mut lines = Vec::new();
    for i in 0..10 {
        lines.push(f.dir.find_or_insert_key(&format!("k/{i}")).expect("key"));
    }
    for round in 0..5u8 {
        for (i, &line) in lines.iter().enumerate() {
            let size = 1 + (i * 700 + usize::from(round) * 300) % 5000;
            f.dir
                .put(a, line, &vec![round; size], Condition::Blind)
                .expect("put");
            f.dir.read(b, line, &mut Vec::new()).expect("read");
        }
    }
    f.dir.delete(a, lines[3], Condition::Blind).expect("delete");
    let (_, pin) = f.dir.read_pinned(b, lines[1]).expect("pin");
    f.dir
        .put(a, lines[1], b"newer", Condition::Blind)
        .expect("put over a pin");
    let hold = f.dir.acquire(a, lines[2], 500).expect("acquire");

    let report = fsck(&f.dir);
    assert_clean(&report);
    let arena = report.arena;
    assert_eq!(arena.leaked_bytes, 0);
    assert!(arena.live_bytes > 0 && arena.free_bytes > 0, "{arena:?}");
    assert_eq!(
        arena.live_bytes + arena.free_bytes + arena.untouched_bytes,
        ARENA
    );
    // 10 current versions (one a tombstone) and the pinned, superseded one (a's last write, of
    // another size class than its spare's, gave the spare back, `spare.rs`).
    assert_eq!(report.descriptors.live, 11);
    assert_eq!(report.descriptors.leaked, 0);

    f.dir.release_pin(pin).expect("unpin");
    f.dir.release(hold).expect("release");
    assert_clean(&fsck(&f.dir));
}

#[test]
fn a_dead_writers_hold_is_reported_and_repaired() {
    let f = fixture(config());
    let (a, b) = (agent(&f.dir, "a"), agent(&f.dir, "b"));
    let line = f.dir.find_or_insert_key("task/spec").expect("key");
    f.dir.put(a, line, b"v1", Condition::View).expect("v1");
    let stopped = f
        .dir
        .write_stopping(a, line, Some(&[7u8; 300]), Condition::View, StopAt::Filled)
        .expect("stopped write");
    assert_eq!(stopped, None);
    f.dir.env().set_alive(a.slot, false);

    let report = fsck(&f.dir);
    let held: Vec<_> = report
        .problems
        .iter()
        .filter(|p| p.kind == FsckKind::Lock && p.subject == format!("line {line} (task/spec)"))
        .collect();
    assert!(
        held.len() == 1 && held[0].repairable && held[0].message.contains("agent slot 0 (a)"),
        "{:#?}",
        report.problems
    );
    // Its pending slot is in use (the pending record names it), not leaked.
    assert_eq!(report.descriptors.leaked, 0, "{:#?}", report.problems);
    assert!(report.problems.iter().all(|p| p.repairable));

    let repaired = f.dir.fsck_repair(&[a.slot], false, || {}).expect("repair");
    assert_clean(&repaired);
    assert!(repaired.found >= 2, "{repaired:#?}");
    assert!(
        repaired.repaired.iter().any(|r| r.contains("freed 1 line")),
        "{repaired:#?}"
    );
    assert!(repaired.not_repaired.is_empty(), "{repaired:#?}");
    assert_eq!(repaired.descriptors.live, 1);
    assert_eq!(f.dir.put(b, line, b"v2", Condition::Blind), Ok(2));
    assert_clean(&fsck(&f.dir));
}

/// A writer that died between popping a slot and recording it: simulated by a stopped write
/// whose pending record is then cleared by hand.
#[test]
fn a_leaked_slot_is_found_and_repaired_only_when_quiescent() {
    let f = fixture(config());
    let geo = *f.dir.geometry();
    let (a, b) = (agent(&f.dir, "a"), agent(&f.dir, "b"));
    let line = f.dir.find_or_insert_key("k").expect("key");
    f.dir.put(a, line, b"v1", Condition::View).expect("v1");
    f.dir
        .write_stopping(a, line, Some(&[1u8; 200]), Condition::Blind, StopAt::Filled)
        .expect("stopped");
    poke(&f.dir, line_word(&geo, line, L_PENDING), 0);
    // Also leak two granules the bump pointer handed out that no one recorded.
    let bump = peek(&f.dir, 19);
    poke(&f.dir, 19, bump + 2);

    let report = fsck(&f.dir);
    assert_eq!(report.descriptors.leaked, 1, "{:#?}", report.problems);
    assert_eq!(report.arena.leaked_bytes, 256 + 128, "{:?}", report.arena);
    let kinds: Vec<_> = report.problems.iter().map(|p| p.kind).collect();
    assert!(kinds.contains(&FsckKind::Descriptor) && kinds.contains(&FsckKind::Arena));
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.subject == format!("arena granules {bump}..{}", bump + 2)),
        "{:#?}",
        report.problems
    );

    // Agents attached: the leak is reported, not repaired.
    let refused = f.dir.fsck_repair(&[], false, || {}).expect("repair");
    assert_eq!(refused.descriptors.leaked, 1);
    assert!(
        refused.not_repaired.iter().any(|r| r.contains(
            "2 leaked slots cannot be repaired while agents are attached: stop them and run fsck --repair again"
        )),
        "{refused:#?}"
    );

    // Everyone gone (the caller holds every lock): repaired.
    f.dir.env().set_alive(a.slot, false);
    f.dir.env().set_alive(b.slot, false);
    let repaired = f
        .dir
        .fsck_repair(&[a.slot, b.slot], true, || {})
        .expect("repair");
    assert_clean(&repaired);
    assert!(repaired.not_repaired.is_empty(), "{repaired:#?}");
    assert_eq!(repaired.descriptors.leaked, 0);
    assert_eq!(repaired.arena.leaked_bytes, 0);
    assert_eq!(
        repaired.arena.live_bytes + repaired.arena.free_bytes + repaired.arena.untouched_bytes,
        ARENA
    );
    f.dir.env().set_alive(b.slot, true);
    let b = f.dir.begin_attach(b.slot, 3).expect("re-attach");
    assert_eq!(f.dir.put(b, line, &[9u8; 200], Condition::Blind), Ok(2));
    assert_clean(&fsck(&f.dir));
}

/// A live agent's spare (the version its overwrite freed, kept for its next put) is in use;
/// once its agent is dead it is a repairable leak until the agent's next attach, which gives
/// it back.
#[test]
fn a_spare_is_in_use_until_its_agent_dies() {
    let f = fixture(config());
    let a = agent(&f.dir, "a");
    let line = f.dir.find_or_insert_key("k").expect("key");
    for v in 1..=2u8 {
        f.dir
            .put(a, line, &[v; 100], Condition::Blind)
            .expect("put");
    }
    let report = fsck(&f.dir);
    assert_clean(&report);
    assert_eq!(report.descriptors.live, 2, "v2 and a's spare, v1");
    assert_eq!(report.arena.live_bytes, 256);
    f.dir.env().set_alive(a.slot, false);
    assert_repairable_leak(&f, 1, 128);
    let a = f.dir.begin_attach(a.slot, 2).expect("re-attach");
    f.dir.env().set_alive(a.slot, true);
    let report = fsck(&f.dir);
    assert_clean(&report);
    assert_eq!(report.descriptors.live, 1);
    assert_eq!(report.arena.live_bytes, 128);
}

/// A free won and not finished. The claim a writer killed right after winning `try_free`
/// leaves in the control word (its slot + 1) is a repairable leak until its next attach, which
/// finishes the free; a claim that names no slot (a free nobody records) stays a leak, which
/// fsck reports as repairable and `--repair` returns.
#[test]
fn claimed_frees_are_finished_by_the_next_attach_or_repaired() {
    let f = fixture(config());
    let geo = *f.dir.geometry();
    let (a, b) = (agent(&f.dir, "a"), agent(&f.dir, "b"));
    let line = f.dir.find_or_insert_key("k").expect("key");
    f.dir
        .put(a, line, &[1u8; 100], Condition::Blind)
        .expect("v1");
    let old = head_desc(&f, line);
    // A delete: it keeps nothing as a spare, so its free goes all the way.
    f.dir.env().kill_at(a.slot, KillPoint::Claimed);
    let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        f.dir.delete(a, line, Condition::Blind)
    }));
    assert!(died.is_err(), "the delete never won the free of v1");
    assert_eq!(
        peek(&f.dir, desc_word(&geo, old, 0)),
        (1 << 61) | u64::from(a.slot + 1),
        "v1's descriptor carries a's claim"
    );
    assert_repairable_leak(&f, 1, 128);
    // a's next attach finishes the free.
    let a = f.dir.begin_attach(a.slot, 2).expect("re-attach");
    f.dir.env().set_alive(a.slot, true);
    assert_clean(&fsck(&f.dir));
    assert_eq!(peek(&f.dir, desc_word(&geo, old, 0)), 0);

    // A slot being filled, named by nothing, claimed by a free that records no slot.
    f.dir
        .write_stopping(a, line, Some(&[3u8; 200]), Condition::Blind, StopAt::Filled)
        .expect("stopped");
    let pending = peek(&f.dir, line_word(&geo, line, L_PENDING));
    let filling = (pending >> 32) as u32 - 1;
    poke(&f.dir, line_word(&geo, line, L_PENDING), 0);
    poke(&f.dir, desc_word(&geo, filling, 0), 1 << 61);
    assert_repairable_leak(&f, 1, 256);
    f.dir.env().set_alive(a.slot, false);
    f.dir.env().set_alive(b.slot, false);
    let repaired = f
        .dir
        .fsck_repair(&[a.slot, b.slot], true, || {})
        .expect("repair");
    assert_clean(&repaired);
    assert_eq!(repaired.descriptors.leaked, 0);
    assert_eq!(repaired.arena.leaked_bytes, 0);
}

/// fsck finds `descs` leaked descriptors and `bytes` leaked arena bytes, and can repair every
/// problem it finds.
fn assert_repairable_leak(f: &Fixture, descs: u64, bytes: u64) {
    let report = fsck(&f.dir);
    assert_eq!(report.descriptors.leaked, descs, "{:#?}", report.problems);
    assert_eq!(report.arena.leaked_bytes, bytes, "{:?}", report.arena);
    assert!(
        report.problems.iter().all(|p| p.repairable),
        "{:#?}",
        report.problems
    );
}

fn busy() -> (Fixture, Vec<u32>) {
    let f = fixture(config());
    let a = agent(&f.dir, "a");
    let mut lines = Vec::new();
    for i in 0..4 {
        let line = f.dir.find_or_insert_key(&format!("k{i}")).expect("key");
        for v in 0..3u8 {
            f.dir
                .put(a, line, &[v; 100], Condition::Blind)
                .expect("put");
        }
        lines.push(line);
    }
    // The writer's spare back on the free lists, so that they hold something to check.
    assert_eq!(f.dir.give_back_spares().expect("spare"), 1);
    (f, lines)
}

fn head_desc(f: &Fixture, line: u32) -> u32 {
    let geo = f.dir.geometry();
    (peek(&f.dir, line_word(geo, line, 1)) >> 40) as u32 - 1
}

#[test]
fn a_head_out_of_range_is_reported() {
    let (f, lines) = busy();
    let geo = *f.dir.geometry();
    let index = line_word(&geo, lines[1], 1);
    poke(&f.dir, index, peek(&f.dir, index) | (0x00ff_fff0 << 40));
    let report = fsck(&f.dir);
    let problem = report
        .problems
        .iter()
        .find(|p| p.kind == FsckKind::Line)
        .expect("a line problem");
    assert_eq!(problem.subject, format!("line {} (k1)", lines[1]));
    assert!(problem.message.contains("beyond"), "{problem:?}");
    assert!(!problem.repairable);
    // The descriptor it no longer names is now unreferenced.
    assert_eq!(report.descriptors.leaked, 1);
    let refused = f.dir.fsck_repair(&[0], true, || {}).expect("repair");
    assert!(!refused.is_clean());
    assert!(
        refused
            .not_repaired
            .iter()
            .any(|r| r.contains("fsck cannot repair")),
        "{refused:#?}"
    );
}

/// Views and stamps (layout.md §5, §5a): versions above 2^32 are clean; a view ahead of its
/// line and a lease agent's stamp ahead of the segment's clock are reported; a lazy agent's
/// stamps are never read.
#[test]
fn views_above_2_pow_32_are_clean_and_stamps_ahead_of_the_clock_are_reported() {
    let f = fixture(config());
    f.dir
        .raise_version_floor("hot", (1 << 32) - 1)
        .expect("floor");
    let line = f.dir.find_or_insert_key("hot").expect("key");
    let writer = agent(&f.dir, "writer");
    let slot = f.dir.register_agent("leased").expect("register");
    let leased = f
        .dir
        .begin_attach_with(slot, 2, Strategy::Lease { ms: 1000 })
        .expect("attach");
    assert_eq!(f.dir.put(writer, line, b"v", Condition::Blind), Ok(1 << 32));
    let mut out = Vec::new();
    assert_eq!(
        f.dir.read(leased, line, &mut out).expect("read").version,
        1 << 32
    );
    assert_clean(&fsck(&f.dir));

    let geo = *f.dir.geometry();
    let stamp = geo.stamps_at + slot as usize * geo.lines + line as usize;
    poke(&f.dir, stamp, u64::MAX / 2);
    let report = fsck(&f.dir);
    let problem = report
        .problems
        .iter()
        .find(|p| p.kind == FsckKind::View)
        .expect("a stamp problem");
    assert!(problem.subject.contains("lease stamp"), "{problem:?}");
    poke(&f.dir, stamp, 0);
    // The writer is lazy: a stamp of its is not a lease stamp.
    poke(
        &f.dir,
        geo.stamps_at + writer.slot as usize * geo.lines + line as usize,
        u64::MAX,
    );
    assert_clean(&fsck(&f.dir));

    let view = geo.views_at + slot as usize * geo.lines + line as usize;
    poke(&f.dir, view, (1 << 32) + 1);
    let report = fsck(&f.dir);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.kind == FsckKind::View && p.message.contains("4294967297")),
        "{:#?}",
        report.problems
    );
}

#[test]
fn a_head_pointing_at_another_lines_descriptor_is_reported() {
    let (f, lines) = busy();
    let geo = *f.dir.geometry();
    let other = head_desc(&f, lines[0]);
    let index = line_word(&geo, lines[1], 1);
    let raw = peek(&f.dir, index);
    poke(
        &f.dir,
        index,
        (raw & ((1 << 40) - 1)) | (u64::from(other + 1) << 40),
    );
    let report = fsck(&f.dir);
    assert!(
        report.problems.iter().any(|p| p.kind == FsckKind::Line
            && p.message
                == format!(
                    "head points at descriptor {other} owned by line {} (version 3)",
                    lines[0]
                )),
        "{:#?}",
        report.problems
    );
}

#[test]
fn a_free_list_cycle_is_reported() {
    let (f, _) = busy();
    let geo = *f.dir.geometry();
    let top = (peek(&f.dir, 32) & 0xffff_ffff) as u32; // the descriptors' free-list head
    assert!(top > 0, "busy() leaves free descriptors");
    poke(&f.dir, desc_word(&geo, top - 1, 5), u64::from(top));
    let report = fsck(&f.dir);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.kind == FsckKind::FreeList && p.message.contains("cycle")),
        "{:#?}",
        report.problems
    );
}

#[test]
fn an_overlapping_block_is_reported() {
    let (f, lines) = busy();
    let geo = *f.dir.geometry();
    let (d0, d1) = (head_desc(&f, lines[0]), head_desc(&f, lines[1]));
    let block = peek(&f.dir, desc_word(&geo, d0, 2));
    poke(&f.dir, desc_word(&geo, d1, 2), block);
    let report = fsck(&f.dir);
    assert!(
        report.problems.iter().any(|p| p.kind == FsckKind::Arena
            && p.message.contains(&format!("descriptor {d0}"))
            && p.message.contains(&format!("descriptor {d1}"))),
        "{:#?}",
        report.problems
    );
    // d1's own block is now leaked, and cannot be repaired on an inconsistent segment.
    assert!(report.arena.leaked_bytes > 0);
    let refused = f.dir.fsck_repair(&[0], true, || {}).expect("repair");
    assert!(
        refused
            .not_repaired
            .iter()
            .any(|r| r.contains("leaked slots not repaired")),
        "{refused:#?}"
    );
}

/// Overwrite every word of a small populated segment, one at a time, with hostile values: fsck
/// and its repair return (a report or an error), never panic or hang.
#[test]
fn fsck_survives_every_single_word_corruption() {
    let config = Config {
        max_agents: 2,
        max_artifacts: 2,
        arena_bytes: 1024,
        max_payload: 256,
        write_lease_ms: 10,
        log_records: 64,
        inbox_events: 16,
    };
    let geometry = Geometry::new(config).expect("config");
    let words_total = geometry.total_bytes as usize / 8;
    let mut found = 0;
    for hostile in [u64::MAX, 1 << 40 | 3, 0x8000_0000_0000_0001, 5, 1] {
        for index in 0..words_total {
            let f = fixture(config);
            let a = agent(&f.dir, "a");
            let line = f.dir.find_or_insert_key("k").expect("key");
            f.dir
                .put(a, line, &[1u8; 100], Condition::View)
                .expect("v1");
            f.dir
                .put(a, line, &[2u8; 200], Condition::View)
                .expect("v2");
            let _ = f.dir.read_pinned(a, line).expect("pin");
            let before = peek(&f.dir, index);
            poke(&f.dir, index, hostile);
            if let Ok(report) = f.dir.fsck()
                && !report.is_clean()
            {
                found += 1;
            }
            f.dir.env().set_alive(a.slot, false);
            let _ = f.dir.fsck_repair(&[a.slot], true, || {});
            let _ = f.dir.fsck();
            let _ = before;
        }
    }
    assert!(found > 0);
}

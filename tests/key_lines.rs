//! Deleted keys' lines reused for other keys (issue 20), through the facade: a pre-resolved
//! `Key`, a `Cached` copy, a zero-copy pin, a subscription's events and a log reader that refer
//! to a line given to another key never return or report that key's data.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;

use agent_coherence::trace::{LogOp, LogOutcome};
use agent_coherence::{Cached, Config, Error, Segment, Strategy};
use common::SegGuard;

/// A segment of 4 agents and 4 artifacts (8 lines) with a log of 4096 records per agent.
fn small_segment(guard: &SegGuard) -> Segment {
    Segment::create(
        &guard.name,
        Config {
            max_agents: 4,
            max_artifacts: 4,
            arena_bytes: 1 << 20,
            max_payload: 4 << 10,
            log_records: 4096,
            ..Config::default()
        },
    )
    .unwrap()
}

#[test]
fn references_to_a_reused_line_never_reach_the_new_key() {
    let guard = SegGuard::shm("key-lines");
    let seg = small_segment(&guard);
    let writer = seg.attach("writer").unwrap();
    let reader = seg.attach("reader").unwrap();
    let eager = seg.attach_with("eager", Strategy::Eager).unwrap();
    eager.subscribe("task/").unwrap();
    let mut log = seg.log_reader().unwrap();

    // (key, version) of every write made, to check what is reported against.
    let mut written: HashSet<(String, u64)> = HashSet::new();
    let old = writer.key("task/old").unwrap();
    for payload in [&b"old-1"[..], b"old-2", b"old-3"] {
        written.insert(("task/old".into(), writer.put(&old, payload).unwrap()));
    }
    let mut cached = Cached::new(reader.key("task/old").unwrap());
    assert!(!reader.refresh(&mut cached).unwrap());
    assert!(
        reader.refresh(&mut cached).unwrap(),
        "a HIT before the reuse"
    );
    let pinned = reader.read(&old).unwrap();
    let deleted = writer.delete(&old).unwrap();
    written.insert(("task/old".into(), deleted));

    // Churn many times more keys than the segment's 8 lines: the old key's line is reused.
    for n in 0..200 {
        let key = format!("task/{n}");
        written.insert((key.clone(), writer.put(&key, key.as_bytes()).unwrap()));
        if n < 199 {
            written.insert((key.clone(), writer.delete(&key).unwrap()));
        }
    }
    let live = "task/199";

    // The stale key, copy and check see the old key's absence, never the live key's data.
    assert!(matches!(reader.get(&old), Err(Error::NotFound { .. })));
    assert!(matches!(
        reader.refresh(&mut cached),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(cached.bytes(), b"old-3", "the copy keeps what it had");
    assert!(!reader.is_valid(&old).unwrap());
    assert_eq!(reader.check(&old).unwrap().held, None);
    // The pinned version stays the old key's bytes.
    assert_eq!(pinned.bytes(), b"old-3");
    drop(pinned);
    // A write through the stale key re-creates the old key, above its old versions, and
    // leaves the live key alone.
    let again = writer.put(&old, b"old-again").unwrap();
    assert!(
        again > deleted,
        "re-created at {again}, not above {deleted}"
    );
    written.insert(("task/old".into(), again));
    assert_eq!(reader.get("task/old").unwrap().bytes, b"old-again");
    assert_eq!(reader.get(live).unwrap().bytes, live.as_bytes());
    assert!(!reader.refresh(&mut cached).unwrap());
    assert_eq!(
        (cached.bytes(), cached.version()),
        (&b"old-again"[..], again)
    );

    // Events and log records name the key that wrote each version (or the line, if it has
    // been reused since), never another key.
    let events = eager.try_events(1 << 12).unwrap();
    assert!(!events.events.is_empty());
    for event in &events.events {
        assert!(
            event.key.starts_with("#line") || written.contains(&(event.key.clone(), event.version)),
            "event names a key that did not write that version: {event:?}"
        );
    }
    let records = log.poll().unwrap().records;
    let mut named = 0;
    for record in records.iter().filter(|r| r.agent == "writer") {
        if let Some(key) = &record.key
            && !key.starts_with("#line")
            && record.version > 0
            && matches!(
                record.op,
                agent_coherence::trace::LogOp::Put | agent_coherence::trace::LogOp::Delete
            )
        {
            named += 1;
            assert!(
                written.contains(&(key.clone(), record.version)),
                "log record names a key that did not write that version: {record:?}"
            );
        }
    }
    assert!(named > 10, "{named} named records");
    let report = seg.fsck(false).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    drop((writer, reader, eager, log));
    drop(seg);
}

/// Issue 20, "versions never run out": a key started just below the old 32-bit limit of the
/// segment's versions (through the test hook `raise_version_floor`) and written across it.
/// Versions, HIT/MISS, conditional writes (`put` on the view, `put_if`), a private copy, a
/// pinned read, an exclusive hold, events, the log, the status and `wait_changed` all carry
/// versions above 2^32 unchanged.
#[test]
fn a_key_is_written_across_the_old_32_bit_limit() {
    const LIMIT: u64 = 1 << 32;
    let guard = SegGuard::shm("versions64");
    let seg = small_segment(&guard);
    seg.raise_version_floor("hot", LIMIT - 3).unwrap();
    let writer = seg.attach("writer").unwrap();
    let reader = seg.attach("reader").unwrap();
    let eager = seg.attach_with("eager", Strategy::Eager).unwrap();
    eager.subscribe("hot").unwrap();
    let key = writer.key("hot").unwrap();
    assert!(
        seg.raise_version_floor("hot", 1).is_err(),
        "an existing key's versions cannot be moved"
    );

    assert_eq!(writer.put(&key, b"a").unwrap(), LIMIT - 2);
    assert_eq!(writer.put(&key, b"b").unwrap(), LIMIT - 1);
    let miss = reader.get("hot").unwrap();
    assert_eq!((miss.version, miss.hit), (LIMIT - 1, false));
    assert!(reader.get("hot").unwrap().hit);
    let mut cached = Cached::new(reader.key("hot").unwrap());
    assert!(
        !reader.refresh(&mut cached).unwrap(),
        "a new copy is fetched"
    );
    assert!(
        reader.refresh(&mut cached).unwrap(),
        "a HIT below the limit"
    );

    // The first version 32 bits cannot hold: the writer's view is current, so it is admitted.
    assert_eq!(writer.put(&key, b"c").unwrap(), LIMIT);
    assert!(!reader.refresh(&mut cached).unwrap(), "a stale copy served");
    assert_eq!(cached.version(), LIMIT);
    assert!(
        reader.refresh(&mut cached).unwrap(),
        "no HIT above the limit"
    );
    let check = reader.check("hot").unwrap();
    assert_eq!(
        (check.held, check.current, check.valid),
        (Some(LIMIT), LIMIT, true)
    );
    let hit = reader.get("hot").unwrap();
    assert_eq!(
        (hit.version, hit.hit, hit.bytes.as_slice()),
        (LIMIT, true, &b"c"[..])
    );
    assert_eq!(reader.read("hot").unwrap().version(), LIMIT);

    // put_if: a stale expected version refused, the current one admitted.
    match reader.put_if("hot", LIMIT - 1, b"stale") {
        Err(Error::Conflict(c)) => assert_eq!((c.current, c.yours), (LIMIT, LIMIT - 1)),
        other => panic!("put_if on a stale version: {other:?}"),
    }
    assert_eq!(reader.put_if("hot", LIMIT, b"d").unwrap(), LIMIT + 1);
    // The writer's view (LIMIT) is now stale: its conditional put is refused.
    match writer.put(&key, b"stale") {
        Err(Error::Conflict(c)) => assert_eq!((c.current, c.yours), (LIMIT + 1, LIMIT)),
        other => panic!("a stale view above the limit: {other:?}"),
    }
    assert_eq!(writer.get(&key).unwrap().version, LIMIT + 1);
    let hold = writer
        .acquire(&key, std::time::Duration::from_secs(5))
        .unwrap();
    assert_eq!(hold.version(), LIMIT + 1);
    assert_eq!(hold.commit(b"e").unwrap(), LIMIT + 2);
    assert_eq!(
        reader
            .wait_changed("hot", LIMIT + 1, Some(std::time::Duration::from_secs(5)))
            .unwrap(),
        Some(LIMIT + 2)
    );

    let events = eager.try_events(16).unwrap();
    let versions: Vec<u64> = events.events.iter().map(|e| e.version).collect();
    assert_eq!(
        versions,
        [LIMIT - 2, LIMIT - 1, LIMIT, LIMIT + 1, LIMIT + 2],
        "{events:?}"
    );
    let records = seg.log_records().unwrap();
    let puts: Vec<(u64, u64)> = records
        .iter()
        .filter(|r| r.key.as_deref() == Some("hot") && r.outcome == LogOutcome::Ok)
        .filter(|r| r.op == LogOp::Put)
        .map(|r| (r.version, r.held))
        .collect();
    assert!(puts.contains(&(LIMIT, LIMIT - 1)), "{puts:?}");
    assert!(puts.contains(&(LIMIT + 1, LIMIT)), "{puts:?}");
    let conflict = records
        .iter()
        .find(|r| r.outcome == LogOutcome::Conflict && r.agent == "writer")
        .expect("the refused put is logged");
    assert_eq!((conflict.version, conflict.held), (LIMIT + 1, LIMIT));
    let status = seg.status().unwrap();
    let row = status.artifacts.iter().find(|a| a.key == "hot").unwrap();
    assert_eq!(row.version, LIMIT + 2);
    let report = seg.fsck(false).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
}

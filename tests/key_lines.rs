//! Deleted keys' lines reused for other keys (issue 20), through the facade: a pre-resolved
//! `Key`, a `Cached` copy, a zero-copy pin, a subscription's events and a log reader that refer
//! to a line given to another key never return or report that key's data.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;

use agent_coherence::{Cached, Config, Error, Segment, Strategy};
use common::SegGuard;

#[test]
fn references_to_a_reused_line_never_reach_the_new_key() {
    let guard = SegGuard::shm("key-lines");
    let seg = Segment::create(
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
    .unwrap();
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

//! The operation log, freshness strategies and subscriptions, through the facade; across real
//! processes where the claim is about processes.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use agent_coherence::trace::{LogOp, LogOutcome, LogRecord, WriteMode};
use agent_coherence::{Cached, Error, Segment, Strategy};
use common::{SegGuard, small_config};

fn ops(records: &[LogRecord], agent: &str) -> Vec<String> {
    records
        .iter()
        .filter(|r| r.agent == agent)
        .map(|r| {
            format!(
                "{} {} {} v{} h{} x{}",
                r.op,
                r.outcome,
                r.key.as_deref().unwrap_or("-"),
                r.version,
                r.held,
                r.count
            )
        })
        .collect()
}

#[test]
fn every_operation_is_logged_with_versions_and_hit_runs_counted() {
    let guard = SegGuard::shm("log-ops");
    let seg = Segment::create(&guard.name, small_config()).unwrap();
    let planner = seg.attach("planner").unwrap();
    let executor = seg.attach("executor").unwrap();
    planner.put("task/spec", b"v1").unwrap();
    executor.get("task/spec").unwrap();
    for _ in 0..5 {
        assert!(executor.get("task/spec").unwrap().hit);
    }
    planner.put("task/spec", b"v2").unwrap();
    let refused = executor.put_if("task/spec", 1, b"stale");
    assert!(matches!(refused, Err(Error::Conflict { .. })));
    executor.get("task/spec").unwrap();
    let guard_w = planner
        .acquire("task/spec", Duration::from_secs(5))
        .unwrap();
    guard_w.commit(b"v3").unwrap();
    executor.put_blind("task/spec", b"v4 blind").unwrap();
    assert!(matches!(executor.get("nope"), Err(Error::NotFound { .. })));
    drop(executor);

    let records = seg.log_records().unwrap();
    assert_eq!(
        ops(&records, "executor"),
        [
            "attach ok - v0 h0 x1",
            "get miss task/spec v1 h0 x1",
            "get hit task/spec v1 h1 x5",
            "put conflict task/spec v2 h1 x1",
            "get miss task/spec v2 h1 x1",
            "put ok task/spec v4 h2 x1",
            "detach ok - v0 h0 x1",
        ]
    );
    assert_eq!(
        ops(&records, "planner"),
        [
            "attach ok - v0 h0 x1",
            "put ok task/spec v1 h0 x1",
            "put ok task/spec v2 h1 x1",
            "acquire ok task/spec v2 h2 x1",
            "commit ok task/spec v3 h2 x1",
        ]
    );
    let blind = records
        .iter()
        .find(|r| r.agent == "executor" && r.op == LogOp::Put && r.outcome == LogOutcome::Ok)
        .unwrap();
    assert_eq!(blind.mode, Some(WriteMode::Blind));
    assert_eq!(blind.bytes, 8);
    // Per agent, sequence numbers are consecutive; the merge is by time.
    for agent in ["planner", "executor"] {
        let seqs: Vec<u64> = records
            .iter()
            .filter(|r| r.agent == agent)
            .map(|r| r.seq)
            .collect();
        assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    }
    assert!(records.windows(2).all(|w| w[0].t_ns <= w[1].t_ns));
    drop((planner, seg));
    guard.finish();
}

#[test]
fn access_count_serves_n_hits_then_a_miss() {
    let guard = SegGuard::shm("strategy-count");
    let seg = Segment::create(&guard.name, small_config()).unwrap();
    let writer = seg.attach("writer").unwrap();
    let reader = seg.attach_with("reader", Strategy::AccessCount(3)).unwrap();
    assert_eq!(reader.strategy(), Strategy::AccessCount(3));
    writer.put("plan", b"v1").unwrap();
    let hits: Vec<bool> = (0..9).map(|_| reader.get("plan").unwrap().hit).collect();
    // A MISS, three HITs, a MISS, ...
    assert_eq!(
        hits,
        [false, true, true, true, false, true, true, true, false]
    );
    // The private-copy path obeys the same count. The first refresh fills the empty copy
    // (its read is the first HIT of the new fetch), two more HITs, then the copy expires.
    let mut cached = Cached::new(reader.key("plan").unwrap());
    let fresh: Vec<bool> = (0..6)
        .map(|_| reader.refresh(&mut cached).unwrap())
        .collect();
    assert_eq!(fresh, [false, true, true, false, true, true]);
    // A peer's write still invalidates at once.
    writer.put("plan", b"v2").unwrap();
    assert!(!reader.get("plan").unwrap().hit);
    drop((writer, reader, seg));
    guard.finish();
}

#[test]
fn lease_expires_a_copy_after_its_lifetime() {
    let guard = SegGuard::shm("strategy-lease");
    let seg = Segment::create(&guard.name, small_config()).unwrap();
    let writer = seg.attach("writer").unwrap();
    let lease = Duration::from_millis(150);
    let reader = seg.attach_with("reader", Strategy::Lease(lease)).unwrap();
    writer.put("plan", b"v1").unwrap();
    assert!(!reader.get("plan").unwrap().hit);
    let fetched = std::time::Instant::now();
    // Every read within the lease is a HIT; the first after it, a MISS. The clock is read
    // around each get, so the assertion holds however slow the machine is.
    loop {
        let before = fetched.elapsed();
        let hit = reader.get("plan").unwrap().hit;
        let after = fetched.elapsed();
        if after < lease {
            assert!(hit, "a HIT within the lease ({after:?})");
        } else if before >= lease + Duration::from_millis(2) {
            assert!(!hit, "a MISS after the lease ({before:?})");
            break;
        } else if !hit {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Refetched: HITs again.
    assert!(reader.get("plan").unwrap().hit);
    assert!(
        Segment::open(&guard.name)
            .unwrap()
            .attach_with("bad", Strategy::Lease(Duration::ZERO))
            .is_err()
    );
    drop((writer, reader, seg));
    guard.finish();
}

#[test]
fn only_eager_agents_subscribe_and_a_full_inbox_reports_losses() {
    let guard = SegGuard::shm("inbox-full");
    let config = agent_coherence::Config {
        inbox_events: 4,
        ..small_config()
    };
    let seg = Segment::create(&guard.name, config).unwrap();
    let lazy = seg.attach("lazy").unwrap();
    assert!(lazy.subscribe("task/").is_err());
    let eager = seg.attach_with("eager", Strategy::Eager).unwrap();
    eager.subscribe("task/").unwrap();
    eager.subscribe("task/").unwrap(); // idempotent
    assert_eq!(eager.subscriptions().unwrap(), ["task/"]);
    for i in 0..10 {
        lazy.put("task/spec", format!("v{i}").as_bytes()).unwrap();
    }
    lazy.put("other/x", b"not subscribed").unwrap();
    eager
        .put("task/own", b"own writes are not reported")
        .unwrap();
    let events = eager.try_events(100).unwrap();
    assert_eq!(events.lost, 6);
    let versions: Vec<u64> = events.events.iter().map(|e| e.version).collect();
    assert_eq!(versions, [7, 8, 9, 10]);
    assert!(
        events
            .events
            .iter()
            .all(|e| e.key == "task/spec" && e.writer == "lazy")
    );
    assert_eq!(eager.try_events(100).unwrap(), Default::default());
    // A key created after subscribing is covered too; an unsubscribed prefix is not.
    lazy.put("task/new", b"1").unwrap();
    let events = eager.wait_events(10, Some(Duration::from_secs(5))).unwrap();
    assert_eq!(events.events[0].key, "task/new");
    assert!(eager.unsubscribe("task/").unwrap());
    lazy.put("task/new", b"2").unwrap();
    let nothing = eager
        .wait_events(10, Some(Duration::from_millis(50)))
        .unwrap();
    assert_eq!(nothing, Default::default());
    drop((lazy, eager, seg));
    guard.finish();
}

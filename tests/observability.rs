//! The operation log, freshness strategies and subscriptions, through the facade; across real
//! processes where the claim is about processes.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use agent_coherence::trace::{LogOp, LogOutcome, LogRecord, WriteMode};
use agent_coherence::{Cached, Error, Segment, Strategy};
use common::{SegGuard, arg, say, small_config};

/// Puts each log-writer child makes.
const PUTS: u64 = 3000;

#[test]
fn child_entry() {
    common::child_main(|role, seg, args| match role {
        "log-writer" => log_writer(seg, &args[0], arg(args, 1)),
        "eager" => eager_listener(seg, &args[0], &args[1]),
        "strategy-reader" => strategy_reader(seg, &args[0], &args[1]),
        other => panic!("unknown role {other}"),
    });
}

/// Put `puts` versions of the agent's own key, payload `i % 997 + 1` bytes for put `i`, so
/// that every logged put says which it was.
fn log_writer(seg: &str, name: &str, puts: u64) {
    let segment = Segment::open(seg).unwrap();
    let agent = segment.attach(name).unwrap();
    say("READY");
    assert_eq!(common::hear(), "go");
    let key = format!("own/{name}");
    let payload = vec![7u8; 1000];
    for i in 0..puts {
        agent.put(&key, &payload[..(i % 997 + 1) as usize]).unwrap();
        // Interleave a HIT now and then, so runs and records mix.
        if i % 7 == 0 {
            agent.get(&key).unwrap();
        }
    }
    say("DONE");
}

/// An agent attached with `strategy`: answers `get KEY` with `HIT v` or `MISS v` until `quit`.
fn strategy_reader(seg: &str, name: &str, strategy: &str) {
    let segment = Segment::open(seg).unwrap();
    let strategy = Strategy::parse(strategy).unwrap();
    let agent = segment.attach_with(name, strategy).unwrap();
    say("READY");
    loop {
        let line = common::hear();
        let Some(key) = line.strip_prefix("get ") else {
            break;
        };
        let read = agent.get(key).unwrap();
        say(format!(
            "{} {}",
            if read.hit { "HIT" } else { "MISS" },
            read.version
        ));
    }
}

/// An eager agent subscribed to `prefix`: report every event until `count` were seen.
fn eager_listener(seg: &str, name: &str, prefix: &str) {
    let segment = Segment::open(seg).unwrap();
    let agent = segment.attach_with(name, Strategy::Eager).unwrap();
    agent.subscribe(prefix).unwrap();
    say("READY");
    loop {
        let events = agent
            .wait_events(64, Some(Duration::from_secs(60)))
            .unwrap();
        assert!(!events.events.is_empty() || events.lost > 0, "timed out");
        if events.lost > 0 {
            say(format!("LOST {}", events.lost));
        }
        for event in events.events {
            say(format!(
                "EVENT {} {} {}",
                event.key, event.version, event.writer
            ));
            if event.key.ends_with("/stop") {
                return;
            }
        }
    }
}

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
    // A run still open when the log is read: its first HIT is the record, the other two are
    // counted in the ring's header until the run ends, and the reader adds them.
    assert!(!planner.get("task/spec").unwrap().hit);
    for _ in 0..3 {
        assert!(planner.get("task/spec").unwrap().hit);
    }

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
            "get miss task/spec v4 h3 x1",
            "get hit task/spec v4 h4 x3",
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
    // And so does the zero-copy read through a resolved key (its HIT is taken inline, the
    // count asked once the pin holds the version): the copy the fourth refresh fetched has
    // served two HITs of three, so a HIT, a MISS, three HITs.
    let key = reader.key("plan").unwrap();
    let pinned: Vec<bool> = (0..5).map(|_| reader.read(&key).unwrap().hit()).collect();
    assert_eq!(pinned, [true, false, true, true, true]);
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

#[test]
fn the_log_under_concurrent_writer_processes_has_no_torn_record_keeps_order_and_counts_gaps() {
    let guard = SegGuard::shm("log-concurrent");
    // A small ring, so that the reader below falls behind and must count what it missed.
    let config = agent_coherence::Config {
        log_records: 256,
        ..small_config()
    };
    let seg = Segment::create(&guard.name, config).unwrap();
    let names = ["w0", "w1", "w2"];
    let mut writers: Vec<_> = names
        .iter()
        .map(|name| guard.spawn("log-writer", &[name, &PUTS.to_string()]))
        .collect();
    for writer in &mut writers {
        writer.expect("READY");
    }
    let mut reader = seg.log_reader().unwrap();
    for writer in &mut writers {
        writer.send("go");
    }
    let mut seen: std::collections::HashMap<String, Vec<LogRecord>> = Default::default();
    let mut missed: std::collections::HashMap<String, u64> = Default::default();
    let mut collect = |batch: agent_coherence::trace::LogBatch| {
        for record in batch.records {
            if record.op == LogOp::Lost {
                *missed.entry(record.agent.clone()).or_default() += record.count;
            } else {
                seen.entry(record.agent.clone()).or_default().push(record);
            }
        }
    };
    let mut done = 0;
    while done < writers.len() {
        collect(reader.poll().unwrap());
        std::thread::sleep(Duration::from_micros(200));
        done += writers
            .iter_mut()
            .filter_map(|w| w.try_line())
            .filter(|line| line == "DONE")
            .count();
    }
    for writer in writers {
        writer.wait_ok();
    }
    collect(reader.poll().unwrap());
    for name in names {
        let records = &seen[name];
        // Order per agent: sequence numbers strictly increase (a grown HIT run repeats its seq).
        let mut last = None;
        for record in records {
            if let Some(last) = last {
                assert!(
                    record.seq > last || (record.seq == last && record.outcome == LogOutcome::Hit)
                );
            }
            last = Some(record.seq);
        }
        // No torn record: every put says consistently which put it was.
        let mut puts = 0;
        for record in records.iter().filter(|r| r.op == LogOp::Put) {
            let i = record.version - 1;
            assert_eq!(record.bytes, i % 997 + 1, "{record:?}");
            assert_eq!(record.key.as_deref(), Some(format!("own/{name}").as_str()));
            assert_eq!(record.outcome, LogOutcome::Ok);
            puts += 1;
        }
        // Gaps counted: every record made (attach, puts, runs of HITs, detach) was either
        // returned or counted as missed.
        let distinct: std::collections::BTreeSet<u64> = records.iter().map(|r| r.seq).collect();
        let made = reader_total(&seg, name);

        assert_eq!(
            distinct.len() as u64 + missed.get(name).copied().unwrap_or(0),
            made,
            "{name}: returned {} + missed {:?} != made {made}",
            distinct.len(),
            missed.get(name)
        );
        assert!(puts > 0);
    }
    drop(seg);
    guard.finish();
}

/// Records `name` made, from a fresh reader: the sequence number after its last record.
fn reader_total(seg: &Segment, name: &str) -> u64 {
    seg.log_records()
        .unwrap()
        .iter()
        .filter(|r| r.agent == name && r.op != LogOp::Lost)
        .map(|r| r.seq + 1)
        .max()
        .unwrap()
}

#[test]
fn an_eager_agent_in_another_process_is_woken_by_each_write_to_its_prefix() {
    let guard = SegGuard::shm("eager-processes");
    let seg = Segment::create(&guard.name, small_config()).unwrap();
    let mut listener = guard.spawn("eager", &["listener", "task/"]);
    listener.expect("READY");
    let planner = seg.attach("planner").unwrap();
    planner.put("task/spec", b"v1").unwrap();
    planner.put("notes/x", b"not subscribed").unwrap();
    planner.put("task/spec", b"v2").unwrap();
    planner.delete("task/spec").unwrap();
    planner.put("task/stop", b"").unwrap();
    let lines: Vec<String> = (0..4).map(|_| listener.line()).collect();
    assert_eq!(
        lines,
        [
            "EVENT task/spec 1 planner",
            "EVENT task/spec 2 planner",
            "EVENT task/spec 3 planner",
            "EVENT task/stop 1 planner",
        ]
    );
    listener.wait_ok();
    drop((planner, seg));
    guard.finish();
}

#[test]
fn strategies_hold_across_processes() {
    let guard = SegGuard::shm("strategies-processes");
    let seg = Segment::create(&guard.name, small_config()).unwrap();
    let writer = seg.attach("writer").unwrap();
    writer.put("plan", b"v1").unwrap();
    let mut lazy = guard.spawn("strategy-reader", &["lazy-reader", "lazy"]);
    let mut counted = guard.spawn("strategy-reader", &["counted-reader", "access_count:2"]);
    let mut leased = guard.spawn("strategy-reader", &["leased-reader", "lease:200ms"]);
    for child in [&mut lazy, &mut counted, &mut leased] {
        child.expect("READY");
    }
    let gets = |child: &mut common::Proc, n: usize| -> Vec<String> {
        (0..n).map(|_| common::ask(child, "get plan")).collect()
    };
    assert_eq!(gets(&mut lazy, 4), ["MISS 1", "HIT 1", "HIT 1", "HIT 1"]);
    assert_eq!(
        gets(&mut counted, 5),
        ["MISS 1", "HIT 1", "HIT 1", "MISS 1", "HIT 1"]
    );
    let started = std::time::Instant::now();
    assert_eq!(gets(&mut leased, 1), ["MISS 1"]);
    let second = gets(&mut leased, 1);
    if started.elapsed() < Duration::from_millis(200) {
        assert_eq!(second, ["HIT 1"]);
    }
    std::thread::sleep(Duration::from_millis(250));
    assert_eq!(gets(&mut leased, 1), ["MISS 1"], "the lease expired");
    // A write in this process invalidates every strategy's copy in the others.
    writer.put("plan", b"v2").unwrap();
    for child in [&mut lazy, &mut counted, &mut leased] {
        assert_eq!(common::ask(child, "get plan"), "MISS 2");
        child.send("quit");
    }
    for child in [lazy, counted, leased] {
        child.wait_ok();
    }
    let status = seg.status().unwrap();
    let strategy_of = |name: &str| {
        status
            .agents
            .iter()
            .find(|a| a.name == name)
            .unwrap()
            .strategy
    };
    assert_eq!(strategy_of("counted-reader"), Strategy::AccessCount(2));
    assert_eq!(
        strategy_of("leased-reader"),
        Strategy::Lease(Duration::from_millis(200))
    );
    drop((writer, seg));
    guard.finish();
}

//! The operation log on a real etcd cluster: every operation kind recorded with the fields of
//! the shared-memory engine's records, runs of HITs counted in memory, a full buffer's drops
//! and a small ring's overwrites reported as lost, a live follower, and two processes logging
//! at once.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ccs_etcd::{
    Cluster, Condition, Error, LogOp, LogOutcome, LogRecord, Options, WriteMode, merge_order,
};
use common::{Prefix, Proc, arg, say};

#[test]
fn child_entry() {
    common::child_main(|role, url, args| match role {
        "logger" => logger(url, &args[0], arg(args, 1), arg(args, 2)),
        other => panic!("unknown role {other}"),
    });
}

/// `ops` operations on keys shared with the other loggers, as agent `name` with a ring of
/// `ring` records; reports the seq its records end at.
fn logger(url: &str, name: &str, ops: u64, ring: u32) {
    let options = Options {
        log_records: ring,
        ..common::options()
    };
    let cluster = Cluster::connect_with(url, options).unwrap();
    let agent = cluster.attach(name).unwrap();
    say("READY");
    assert_eq!(common::hear(), "go");
    for i in 0..ops {
        let key = format!("shared/{}", i % 3);
        match i % 4 {
            0 => match agent.put(&key, format!("{name} {i}").as_bytes(), Condition::View) {
                Ok(_) | Err(Error::Conflict { .. }) => {}
                Err(e) => panic!("{e}"),
            },
            1 => {
                let _ = agent.put(&key, b"blind", Condition::Blind).unwrap();
            }
            _ => match agent.get(&key) {
                Ok(_) | Err(Error::NotFound { .. }) => {}
                Err(e) => panic!("{e}"),
            },
        }
    }
    agent.flush_log().unwrap();
    drop(agent);
    say("DONE");
}

/// What a record says, compactly, for comparisons.
fn shape(r: &LogRecord) -> String {
    let mut s = format!("{} {}", r.op, r.outcome);
    if let Some(key) = &r.key {
        s += &format!(" {key} v{} h{}", r.version, r.held);
    }
    if r.count != 1 {
        s += &format!(" x{}", r.count);
    }
    if let Some(other) = &r.other {
        s += &format!(" other={other}");
    }
    if let Some(mode) = r.mode {
        s += &format!(" {mode}");
    }
    s
}

fn of<'a>(records: &'a [LogRecord], agent: &str) -> Vec<&'a LogRecord> {
    records.iter().filter(|r| r.agent == agent).collect()
}

/// Each agent's records in seq order, without gaps: a reader's gap marker (a `lost` record
/// with the seq of the record after the gap) moves the expected seq; an agent's own `lost`
/// record (its drops) has a seq of its own.
fn assert_seq_order(records: &[LogRecord]) {
    let mut next: HashMap<&str, u64> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        let expected = next.entry(&r.agent).or_insert(r.seq);
        let marker = r.op == LogOp::Lost
            && records[i + 1..]
                .iter()
                .find(|n| n.agent == r.agent)
                .is_some_and(|n| n.seq == r.seq);
        if marker {
            assert!(
                r.seq >= *expected,
                "{}'s gap marker goes back: {r:?}",
                r.agent
            );
            *expected = r.seq;
        } else {
            if r.seq != *expected {
                let around: Vec<String> = records
                    .iter()
                    .filter(|n| n.agent == r.agent && n.seq + 4 >= r.seq && n.seq <= r.seq + 4)
                    .map(|n| format!("{} {} {}", n.seq, n.t_ns, shape(n)))
                    .collect();
                panic!(
                    "{}'s records out of order at {r:?}:\n{}",
                    r.agent,
                    around.join("\n")
                );
            }
            *expected += 1;
        }
    }
}

#[test]
fn every_operation_is_logged_with_its_fields() {
    let Some(p) = Prefix::new("log-ops") else {
        return;
    };
    let cluster = p.cluster();
    let a = cluster.attach("a").unwrap();
    let b = cluster.attach("b").unwrap();

    a.put("k", b"v1", Condition::View).unwrap();
    b.get("k").unwrap();
    for _ in 0..3 {
        assert!(b.get("k").unwrap().hit);
    }
    assert!(matches!(b.get("never"), Err(Error::NotFound { .. })));
    a.put("k", b"v2!", Condition::View).unwrap();
    assert!(b.put("k", b"x", Condition::View).is_err());
    b.get("k").unwrap();
    assert!(b.put_if("k", 1, b"x").is_err());
    b.put("k", b"blind", Condition::Blind).unwrap();
    a.delete("k", Condition::Blind).unwrap();
    assert!(matches!(b.get("k"), Err(Error::NotFound { .. })));
    assert!(matches!(
        a.delete("k", Condition::View),
        Err(Error::NotFound { .. })
    ));

    // Holds: acquire, refusals, renew, commit, release.
    a.put("doc", b"d1", Condition::View).unwrap();
    let mut hold = a.acquire("doc", Duration::from_secs(30)).unwrap();
    assert!(b.acquire("doc", Duration::from_secs(30)).is_err());
    assert!(b.put("doc", b"no", Condition::Blind).is_err());
    a.renew(&mut hold, Duration::from_secs(30)).unwrap();
    a.commit(hold, b"d2").unwrap();
    let hold = a.acquire("doc", Duration::from_secs(30)).unwrap();
    a.release(hold).unwrap();
    // An expired hold is reclaimed by the next taker; its holder's commit is fenced.
    let late = a.acquire("doc", Duration::from_secs(1)).unwrap();
    std::thread::sleep(Duration::from_millis(3000));
    let taken = b.acquire("doc", Duration::from_secs(30)).unwrap();
    assert!(matches!(a.commit(late, b"late"), Err(Error::Fenced { .. })));
    b.release(taken).unwrap();
    // A dead holder's hold is reclaimed by a writer.
    let c = cluster.attach("c").unwrap();
    let kept = c.acquire("doc", Duration::from_secs(60)).unwrap();
    drop(kept);
    drop(c);
    b.put("doc", b"d3", Condition::Blind).unwrap();

    a.flush_log().unwrap();
    b.flush_log().unwrap();
    let records = cluster.log_records().unwrap();
    assert_seq_order(&records);
    let shapes = |agent| {
        of(&records, agent)
            .into_iter()
            .map(shape)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        shapes("a"),
        [
            "attach ok",
            "put ok k v1 h0 view",
            "put ok k v2 h1 view",
            "delete ok k v4 h2 blind",
            "delete not_found k v0 h4 view",
            "put ok doc v1 h0 view",
            "acquire ok doc v1 h1",
            "renew ok doc v1 h1",
            "commit ok doc v2 h1 view",
            "acquire ok doc v2 h2",
            "release ok doc v2 h2",
            "acquire ok doc v2 h2",
            "commit fenced doc v0 h2 view",
        ]
    );
    assert_eq!(
        shapes("b"),
        [
            "attach ok",
            "get miss k v1 h0",
            "get hit k v1 h1 x3",
            "put conflict k v2 h1 view",
            "get miss k v2 h1",
            "put conflict k v2 h1 if",
            "put ok k v3 h2 blind",
            "get not_found k v4 h3",
            "acquire held doc v0 h0 other=a",
            "put held doc v0 h0 other=a blind",
            "reclaim ok doc v2 h2 other=a",
            "acquire ok doc v2 h0",
            "release ok doc v2 h2",
            "reclaim ok doc v2 h2 other=c",
            "put ok doc v3 h0 blind",
        ]
    );
    assert_eq!(
        shapes("c"),
        ["attach ok", "acquire ok doc v2 h0", "detach ok"]
    );
    // Payload bytes, revisions and times.
    let a_recs = of(&records, "a");
    assert_eq!(a_recs[2].bytes, 3);
    for r in &records {
        assert!(r.t_ns > 1_600_000_000_000_000_000, "not realtime: {r:?}");
        let has_rev = r.revision.is_some();
        match (r.op, r.outcome) {
            (LogOp::Put | LogOp::Delete | LogOp::Commit, LogOutcome::Ok)
            | (LogOp::Get, LogOutcome::Miss | LogOutcome::NotFound)
            | (LogOp::Acquire | LogOp::Release | LogOp::Renew | LogOp::Reclaim, LogOutcome::Ok)
            | (LogOp::Attach, _) => assert!(has_rev, "no revision: {r:?}"),
            (LogOp::Get, LogOutcome::Hit) | (LogOp::Detach, _) => assert!(!has_rev, "{r:?}"),
            _ => {}
        }
    }
    // The writes of `k` come in revision order, which is version order.
    let k_writes: Vec<_> = records
        .iter()
        .filter(|r| r.is_successful_write() && r.key.as_deref() == Some("k"))
        .map(|r| (r.version, r.revision.unwrap()))
        .collect();
    assert_eq!(
        k_writes.iter().map(|w| w.0).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    assert!(k_writes.windows(2).all(|w| w[0].1 < w[1].1));
    // A reclaim comes right before the operation that took the hold, at its revision.
    let b_recs = of(&records, "b");
    assert_eq!(b_recs[10].revision, b_recs[11].revision);
    assert_eq!(b_recs[0].mode, None);
    assert_eq!(b_recs[6].mode, Some(WriteMode::Blind));
}

#[test]
fn hit_runs_are_counted_in_memory_and_come_again_as_they_grow() {
    let Some(p) = Prefix::new("log-runs") else {
        return;
    };
    let cluster = p.cluster();
    let a = cluster.attach("a").unwrap();
    a.put("k", b"v", Condition::View).unwrap();
    a.flush_log().unwrap();
    let mut follower = cluster.log_follow().unwrap();
    assert_eq!(follower.poll().unwrap().records.len(), 2, "attach, put");
    for _ in 0..999 {
        assert!(a.get("k").unwrap().hit);
    }
    a.flush_log().unwrap();
    let first = wait_for(&mut follower, 1);
    assert_eq!(
        first.iter().map(shape).collect::<Vec<_>>(),
        ["get hit k v1 h1 x999"]
    );
    for _ in 0..500 {
        assert!(a.get("k").unwrap().hit);
    }
    a.flush_log().unwrap();
    let more = wait_for(&mut follower, 1);
    assert_eq!(
        more.iter().map(shape).collect::<Vec<_>>(),
        ["get hit k v1 h1 x500"]
    );
    assert_eq!(more[0].seq, first[0].seq, "the same run, grown");
    let all = cluster.log_records().unwrap();
    assert_eq!(
        all.iter().map(shape).collect::<Vec<_>>(),
        ["attach ok", "put ok k v1 h0 view", "get hit k v1 h1 x1499"]
    );
}

/// Poll until at least `n` records came (or 10 s passed).
fn wait_for(follower: &mut ccs_etcd::LogFollower, n: usize) -> Vec<LogRecord> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        let batch = follower.poll_wait(Duration::from_millis(200)).unwrap();
        assert_eq!(batch.malformed, 0);
        got.extend(batch.records);
    }
    got
}

#[test]
fn a_full_buffer_drops_records_and_says_how_many() {
    let Some(p) = Prefix::new("log-drops") else {
        return;
    };
    let options = Options {
        log_buffer: 8,
        ..common::options()
    };
    let cluster = Cluster::connect_with(&p.url, options).unwrap();
    let a = cluster.attach("a").unwrap();
    a.put("x", b"1", Condition::View).unwrap();
    a.put("y", b"1", Condition::View).unwrap();
    // Alternating keys: every HIT is a record of its own, far faster than any flush.
    const HITS: u64 = 20_000;
    for i in 0..HITS {
        assert!(a.get(if i % 2 == 0 { "x" } else { "y" }).unwrap().hit);
    }
    a.flush_log().unwrap();
    let records = cluster.log_records().unwrap();
    assert_seq_order(&records);
    let hits: u64 = records
        .iter()
        .filter(|r| r.outcome == LogOutcome::Hit)
        .map(|r| r.count)
        .sum();
    let lost: u64 = records
        .iter()
        .filter(|r| r.op == LogOp::Lost)
        .map(|r| r.count)
        .sum();
    assert!(lost > 0, "nothing was dropped");
    // Each dropped record was one HIT: nothing unaccounted for, and no gap in the seqs (the
    // agent's own lost records carry seqs of their own).
    assert_eq!(hits + lost, HITS);
    eprintln!(
        "{HITS} alternating HITs with an 8-record buffer: {} records written, {lost} dropped",
        records.len()
    );
}

#[test]
fn a_small_ring_keeps_the_newest_and_readers_count_the_rest_as_lost() {
    let Some(p) = Prefix::new("log-ring") else {
        return;
    };
    const RING: u32 = 16;
    let options = Options {
        log_records: RING,
        ..common::options()
    };
    let cluster = Cluster::connect_with(&p.url, options).unwrap();
    let a = cluster.attach("a").unwrap();
    for i in 0..40u64 {
        a.put("k", i.to_string().as_bytes(), Condition::Blind)
            .unwrap();
        if i % 7 == 0 {
            a.flush_log().unwrap();
        }
    }
    a.flush_log().unwrap();
    let records = cluster.log_records().unwrap();
    assert_seq_order(&records);
    // attach (seq 0) + 40 puts (1..=40): the ring holds 25..=40.
    assert_eq!(records.len(), RING as usize + 1);
    assert_eq!(
        (records[0].op, records[0].seq, records[0].count),
        (LogOp::Lost, 25, 25)
    );
    assert_eq!(records[1].seq, 25);
    assert_eq!(records.last().unwrap().version, 40);
    // A new session of the same name continues the sequence.
    drop(a);
    let again = cluster.attach("a").unwrap();
    again.flush_log().unwrap();
    let records = cluster.log_records().unwrap();
    let tail: Vec<_> = records
        .iter()
        .rev()
        .take(2)
        .map(|r| (r.op, r.seq))
        .collect();
    assert_eq!(tail, [(LogOp::Attach, 42), (LogOp::Detach, 41)]);
}

#[test]
fn a_follower_sees_new_records_live() {
    let Some(p) = Prefix::new("log-follow") else {
        return;
    };
    let cluster = p.cluster();
    let a = cluster.attach("a").unwrap();
    a.put("old", b"1", Condition::View).unwrap();
    a.flush_log().unwrap();
    let mut follower = cluster.log_follow().unwrap();
    follower.skip_to_end().unwrap();
    let watcher_side = Cluster::connect_with(&p.url, common::options()).unwrap();
    let b = watcher_side.attach("b").unwrap();
    let started = Instant::now();
    a.put("new", b"1", Condition::View).unwrap();
    b.get("new").unwrap();
    // Not flushed by hand: the flushers write within tens of milliseconds.
    let got = merge_order(wait_for(&mut follower, 3));
    let seen = started.elapsed();
    let lines: Vec<String> = got
        .iter()
        .map(|r| format!("{} {}", r.agent, shape(r)))
        .collect();
    assert_eq!(
        lines,
        [
            "b attach ok",
            "a put ok new v1 h0 view",
            "b get miss new v1 h0"
        ]
    );
    eprintln!("follower saw 3 new records {seen:?} after the first operation");
    assert!(follower.poll().unwrap().records.is_empty());
}

#[test]
fn two_processes_log_concurrently() {
    let Some(p) = Prefix::new("log-procs") else {
        return;
    };
    const OPS: u64 = 150;
    const RING: u32 = 64;
    let cluster = p.cluster();
    let mut follower = cluster.log_follow().unwrap();
    follower.skip_to_end().unwrap();
    let mut procs: Vec<Proc> = (0..2)
        .map(|i| {
            Proc::spawn(
                "logger",
                &p.url,
                &[&format!("p{i}"), &OPS.to_string(), &RING.to_string()],
            )
        })
        .collect();
    for proc in &procs {
        proc.expect("READY");
    }
    for proc in &mut procs {
        proc.tell("go");
    }
    let waiter = std::thread::spawn(move || {
        for proc in &procs {
            proc.expect("DONE");
        }
        procs
    });
    let mut live = Vec::new();
    let mut malformed = 0;
    while !waiter.is_finished() {
        let batch = follower.poll_wait(Duration::from_millis(100)).unwrap();
        malformed += batch.malformed;
        live.extend(batch.records);
    }
    let procs = waiter.join().unwrap();
    // Everything was flushed before DONE; the watch may still be delivering it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let batch = follower.poll_wait(Duration::from_millis(300)).unwrap();
        malformed += batch.malformed;
        if batch.records.is_empty() {
            break;
        }
        live.extend(batch.records);
    }
    for proc in procs {
        proc.wait_ok();
    }
    assert_eq!(malformed, 0);
    let live = merge_order(live);
    assert_seq_order(&live);
    let puts_each = (0..OPS).filter(|i| i % 4 < 2).count();
    for name in ["p0", "p1"] {
        let mine = of(&live, name);
        // The follower watched from before the first record: it saw every one, none lost,
        // although the ring keeps only 64.
        assert_eq!(mine[0].op, LogOp::Attach);
        assert_eq!(mine[0].seq, 0);
        assert_eq!(mine.last().unwrap().op, LogOp::Detach);
        let lost: Vec<_> = mine.iter().filter(|r| r.op == LogOp::Lost).collect();
        assert!(lost.is_empty(), "{name} lost records: {lost:?}");
        let puts = mine.iter().filter(|r| r.op == LogOp::Put).count();
        assert_eq!(puts, puts_each, "{name}'s puts");
        let gets: u64 = mine
            .iter()
            .filter(|r| r.op == LogOp::Get)
            .map(|r| r.count)
            .sum();
        assert!(gets <= OPS - puts_each as u64);
    }
    // The two processes' writes of each key, merged: in revision order, so in version order.
    for key in ["shared/0", "shared/1", "shared/2"] {
        let versions: Vec<u64> = live
            .iter()
            .filter(|r| r.is_successful_write() && r.key.as_deref() == Some(key))
            .map(|r| r.version)
            .collect();
        assert!(!versions.is_empty());
        assert!(
            versions.windows(2).all(|w| w[0] + 1 == w[1]),
            "{key}: {versions:?}"
        );
    }
    // Read at once, the log holds the newest 64 of each; the rest are counted as lost.
    let mut reader = cluster.log_follow().unwrap();
    let batch = reader.poll().unwrap();
    assert_eq!(batch.malformed, 0);
    assert_seq_order(&batch.records);
    let mut missed = 0;
    for name in ["p0", "p1"] {
        let mine = of(&batch.records, name);
        let total = of(&live, name).iter().map(|r| r.seq).max().unwrap() + 1;
        assert_eq!(mine[0].op, LogOp::Lost);
        assert_eq!(mine[0].count, total - u64::from(RING));
        assert_eq!(mine.len(), RING as usize + 1);
        missed += mine[0].count;
    }
    assert_eq!(batch.missed, missed);
}

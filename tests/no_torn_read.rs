//! No torn read across processes: two writer processes churn self-checking payloads of random
//! sizes while two reader processes verify every copy (`get`) and every zero-copy guard
//! (`read`), including a guard kept across later writes, and that versions never decrease.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use agent_coherence::Segment;
use common::{Rng, SegGuard, arg, payload, say, small_config, verify};

const KEY: &str = "churn";
const STOP: &str = "churn/stop";
const WRITES_EACH: u64 = 20_000;
const MIN_SIZE: u64 = 16;
const MAX_SIZE: u64 = 32 << 10;

#[test]
fn child_entry() {
    common::child_main(|role, seg, args| match role {
        "writer" => writer(seg, &args[0], arg(args, 1)),
        "reader" => reader(seg, &args[0]),
        other => panic!("unknown role {other}"),
    });
}

/// Write `count` payloads of random sizes; half blind, half conditional on a fresh read.
fn writer(seg: &str, name: &str, count: u64) {
    let segment = Segment::open(seg).unwrap();
    let agent = segment.attach(name).unwrap();
    let mut rng = Rng::from_entropy();
    say("READY");
    assert_eq!(common::hear(), "go");
    let mut last = 0;
    for i in 0..count {
        let bytes = payload(rng.range(MIN_SIZE, MAX_SIZE + 1) as usize, rng.next());
        let version = if i % 2 == 0 {
            agent.put_blind(KEY, &bytes).unwrap()
        } else {
            let seen = agent.get(KEY).unwrap();
            verify(&seen.bytes).unwrap_or_else(|e| panic!("{name}: torn get: {e}"));
            match agent.put_if(KEY, seen.version, &bytes) {
                Ok(version) => version,
                Err(e) if e.is_contention() => continue,
                Err(e) => panic!("{name}: {e:?}"),
            }
        };
        assert!(
            version > last,
            "{name}: version went from {last} to {version}"
        );
        last = version;
    }
    say(format!("DONE {last}"));
}

/// Verify every read until the stop artifact appears; report `DONE <reads> <versions seen>`.
fn reader(seg: &str, name: &str) {
    let segment = Segment::open(seg).unwrap();
    let agent = segment.attach(name).unwrap();
    say("READY");
    let (mut last, mut reads, mut distinct, mut misses) = (0u64, 0u64, 0u64, 0u64);
    let mut see = |version: u64, what: &str| {
        assert!(
            version >= last,
            "{name}: {what} went back from v{last} to v{version}"
        );
        if version > last {
            distinct += 1;
        }
        last = version;
    };
    let mut kept = None;
    for i in 0u64.. {
        let copy = agent.get(KEY).unwrap();
        verify(&copy.bytes)
            .unwrap_or_else(|e| panic!("{name}: torn get of v{}: {e}", copy.version));
        see(copy.version, "get");
        misses += u64::from(!copy.hit);
        let guard = agent.read(KEY).unwrap();
        verify(&guard).unwrap_or_else(|e| panic!("{name}: torn read of v{}: {e}", guard.version()));
        see(guard.version(), "read");
        // A guard kept across later writes still holds its version, intact.
        if let Some(old) = kept.take() {
            let old: agent_coherence::ReadGuard<'_> = old;
            verify(&old).unwrap_or_else(|e| {
                panic!(
                    "{name}: pinned v{} changed under its guard: {e}",
                    old.version()
                )
            });
        }
        kept = Some(guard);
        reads += 2;
        if i % 64 == 0 && agent.check(STOP).unwrap().current > 0 {
            break;
        }
    }
    drop(kept);
    say(format!("DONE {reads} {distinct} {misses} {last}"));
}

#[test]
fn readers_never_see_a_torn_payload_or_an_older_version() {
    let guard = SegGuard::shm("torn");
    let segment = Segment::create(&guard.name, small_config()).unwrap();
    let boss = segment.attach("boss").unwrap();
    boss.put(KEY, &payload(64, 1)).unwrap();

    let mut readers: Vec<_> = (0..2)
        .map(|i| guard.spawn("reader", &[&format!("reader{i}")]))
        .collect();
    for reader in &mut readers {
        reader.expect("READY");
    }
    let count = WRITES_EACH.to_string();
    let mut writers: Vec<_> = (0..2)
        .map(|i| guard.spawn("writer", &[&format!("writer{i}"), &count]))
        .collect();
    for writer in &mut writers {
        writer.expect("READY");
    }
    for writer in &mut writers {
        writer.send("go");
    }
    for mut writer in writers {
        writer.expect("DONE");
        writer.wait_ok();
    }
    boss.put(STOP, b"stop").unwrap();
    for mut reader in readers {
        let done = reader.expect("DONE");
        eprintln!(
            "no_torn_read: reader verified (reads, versions seen, get misses, last version) = {done}"
        );
        reader.wait_ok();
    }
    let last = boss.get(KEY).unwrap();
    verify(&last.bytes).unwrap();
    drop((boss, segment));
    guard.finish();
}

//! Durability of a segment on a file. What a process crash keeps (everything acknowledged: the
//! shared mapping outlives the process) and what a flush makes durable (tested by dropping
//! every mapping and reading the file afresh; a real power loss cannot be tested here). See
//! docs/durability.md.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::Instant;

use agent_coherence::{OpenOptions, Segment};
use common::{SegGuard, arg, payload, say, small_config, verify};

const KEY: &str = "report";

#[test]
fn child_entry() {
    common::child_main(|role, seg, args| match role {
        // `put SEED DURABLE(0|1) FLUSH(0|1)`: write a self-checking payload, optionally flush,
        // report `PUT <version>`, then wait to be killed (or told to exit).
        "put" => {
            let seed: u64 = arg(args, 0);
            let durable: u8 = arg(args, 1);
            let flush: u8 = arg(args, 2);
            let segment = OpenOptions::new()
                .durable_puts(durable == 1)
                .open(seg)
                .unwrap();
            let agent = segment.attach("writer").unwrap();
            let version = agent.put_blind(KEY, &payload(4000, seed)).unwrap();
            if flush == 1 {
                segment.flush().unwrap();
            }
            say(format!("PUT {version}"));
            // Killed here, or released by the parent: either way no clean-up beyond drops.
            let _ = common::hear();
        }
        other => panic!("unknown role {other}"),
    });
}

/// Open the segment afresh (a new mapping, read from the page cache or the disk) and return
/// the key's version and payload seed.
fn read_back(seg: &str) -> (u64, u64) {
    let segment = Segment::open(seg).unwrap();
    let agent = segment.attach("auditor").unwrap();
    let read = agent.get(KEY).unwrap();
    (read.version, verify(&read.bytes).unwrap())
}

#[test]
fn a_killed_writer_loses_nothing_it_acknowledged() {
    for guard in [SegGuard::file("crash"), SegGuard::shm("crash")] {
        // The parent keeps no mapping: the kill leaves the file as the only copy.
        drop(Segment::create(&guard.name, small_config()).unwrap());
        let mut last = 0;
        for seed in 1..=5u64 {
            let mut child = guard.spawn("put", &[&seed.to_string(), "0", "0"]);
            let version: u64 = child.expect("PUT").parse().unwrap();
            child.kill(); // SIGKILL right after the acknowledgement
            assert_eq!(read_back(&guard.name), (version, seed), "{}", guard.name);
            assert!(version > last);
            last = version;
        }
        guard.finish();
    }
}

#[test]
fn a_flushed_write_is_in_the_file_after_every_mapping_is_gone() {
    for (durable, flush) in [("0", "1"), ("1", "0")] {
        let guard = SegGuard::file("flush");
        drop(Segment::create(&guard.name, small_config()).unwrap());
        let mut child = guard.spawn("put", &["77", durable, flush]);
        let version: u64 = child.expect("PUT").parse().unwrap();
        child.send("exit");
        child.wait_ok();
        // No process maps the segment now. The written bytes are in the file itself, as read
        // with read(2), not only in someone's mapping...
        let file = std::fs::read(&guard.name).unwrap();
        let expected = payload(4000, 77);
        assert!(
            file.windows(expected.len())
                .any(|w| w == expected.as_slice()),
            "payload not in the file (durable {durable}, flush {flush})"
        );
        // ...and a fresh mapping of the file reads them as the current version.
        assert_eq!(read_back(&guard.name), (version, 77));
        guard.finish();
    }
}

#[test]
fn flush_on_shared_memory_succeeds_and_does_nothing_durable() {
    let guard = SegGuard::shm("flush-shm");
    let segment = OpenOptions::new()
        .durable_puts(true)
        .create(&guard.name, small_config())
        .unwrap();
    assert!(segment.durable_puts());
    let agent = segment.attach("a").unwrap();
    assert_eq!(agent.put("k", b"v").unwrap(), 1);
    segment.flush().unwrap();
    drop((agent, segment));
    guard.finish();
}

#[test]
fn every_kind_of_write_is_flushed_with_durable_puts() {
    let guard = SegGuard::file("kinds");
    let segment = OpenOptions::new()
        .durable_puts(true)
        .create(&guard.name, small_config())
        .unwrap();
    let agent = segment.attach("a").unwrap();
    assert_eq!(agent.put("k", b"1").unwrap(), 1);
    assert_eq!(agent.put_if("k", 1, b"2").unwrap(), 2);
    assert_eq!(agent.put_blind("k", b"3").unwrap(), 3);
    let hold = agent
        .acquire("k", std::time::Duration::from_secs(10))
        .unwrap();
    assert_eq!(hold.commit(b"4").unwrap(), 4);
    assert_eq!(agent.delete("k").unwrap(), 5);
    drop((agent, segment));
    guard.finish();
}

/// Not an assertion: prints what a durable put costs here, for docs/durability.md.
#[test]
fn durable_put_cost_is_reported() {
    let guard = SegGuard::file("cost");
    drop(Segment::create(&guard.name, small_config()).unwrap());
    let bytes = payload(1024, 1);
    for durable in [false, true] {
        let segment = OpenOptions::new()
            .durable_puts(durable)
            .open(&guard.name)
            .unwrap();
        let agent = segment.attach("a").unwrap();
        let n = 50;
        let started = Instant::now();
        for _ in 0..n {
            agent.put_blind(KEY, &bytes).unwrap();
        }
        let per_put = started.elapsed() / n;
        eprintln!("1 KiB put_blind on a file segment, durable_puts {durable}: {per_put:?} per put");
    }
    guard.finish();
}

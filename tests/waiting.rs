//! Waiting across processes: a child blocked in `wait_changed` (a futex in the segment) wakes
//! when another process writes, and times out when nobody does.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use agent_coherence::Segment;
use common::{SegGuard, arg, say, small_config};

#[test]
fn child_entry() {
    common::child_main(|role, seg, args| match role {
        "waiter" => waiter(seg, &args[0], &args[1], arg(args, 2)),
        other => panic!("unknown role {other}"),
    });
}

/// Report `READY`, wait for `key` to pass version 1 for at most `timeout_ms`; report
/// `CHANGED <version>` or `TIMEOUT`.
fn waiter(seg: &str, name: &str, key: &str, timeout_ms: u64) {
    let segment = Segment::open(seg).unwrap();
    let agent = segment.attach(name).unwrap();
    say("READY");
    match agent
        .wait_changed(key, 1, Some(Duration::from_millis(timeout_ms)))
        .unwrap()
    {
        Some(version) => say(format!("CHANGED {version}")),
        None => say("TIMEOUT"),
    }
}

#[test]
fn blocked_waiters_wake_on_another_process_write() {
    let guard = SegGuard::shm("wait");
    let segment = Segment::create(&guard.name, small_config()).unwrap();
    let writer = segment.attach("writer").unwrap();
    writer.put("doc", b"v1").unwrap();

    let mut waiters: Vec<_> = (0..3)
        .map(|i| guard.spawn("waiter", &[&format!("waiter{i}"), "doc", "30000"]))
        .collect();
    for waiter in &mut waiters {
        waiter.expect("READY");
    }
    // Give them a moment to block in the kernel (if they have not, they return at once anyway).
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(writer.put("doc", b"v2").unwrap(), 2);
    for mut waiter in waiters {
        assert_eq!(waiter.line(), "CHANGED 2");
        waiter.wait_ok();
    }
    drop((writer, segment));
    guard.finish();
}

#[test]
fn a_waiter_times_out_when_nothing_changes() {
    let guard = SegGuard::shm("wait-timeout");
    let segment = Segment::create(&guard.name, small_config()).unwrap();
    let writer = segment.attach("writer").unwrap();
    writer.put("doc", b"v1").unwrap();
    writer.put("other", b"v1").unwrap();

    let mut waiter = guard.spawn("waiter", &["waiter", "doc", "100"]);
    waiter.expect("READY");
    // A write to another artifact does not count as a change of this one.
    writer.put("other", b"v2").unwrap();
    assert_eq!(waiter.line(), "TIMEOUT");
    waiter.wait_ok();
    assert_eq!(writer.get("doc").unwrap().version, 1);
    drop((writer, segment));
    guard.finish();
}

//! Agents across processes: one live process per agent name, a dead one's name reclaimed at
//! once, coherence state that outlives a process, and exclusive holds of dead or expired
//! holders reclaimed (at once for the dead, fenced for the expired).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use agent_coherence::{Error, Segment};
use common::{SegGuard, ask, small_config};

#[test]
fn child_entry() {
    common::child_main(|role, seg, args| match role {
        "agent" => common::scripted_agent(seg, &args[0]),
        "try_attach" => common::try_attach(seg, &args[0]),
        other => panic!("unknown role {other}"),
    });
}

#[test]
fn a_name_is_attached_by_one_live_process_and_freed_by_its_death() {
    let guard = SegGuard::shm("busy");
    let segment = Segment::create(&guard.name, small_config()).unwrap();
    let writer = segment.attach("writer").unwrap();
    writer.put("doc", b"v1").unwrap();

    let mut alice = guard.spawn("agent", &["alice"]);
    let alice_pid = alice.expect("READY");
    assert_eq!(alice_pid, alice.pid().to_string());
    assert_eq!(ask(&mut alice, "get doc"), "MISS 1 v1");

    // A second live process cannot attach as alice; nor can this one.
    let mut second = guard.spawn("try_attach", &["alice"]);
    assert_eq!(second.line(), format!("BUSY {alice_pid}"));
    second.wait_ok();
    assert!(matches!(
        segment.attach("alice"),
        Err(Error::AgentBusy { pid, .. }) if pid.to_string() == alice_pid
    ));

    // Once alice's process is killed, the name is free at once (no retry in the child).
    alice.kill();
    let mut third = guard.spawn("try_attach", &["alice"]);
    assert_eq!(third.line(), "ATTACHED");
    third.wait_ok();

    // The state alice built survives her death: she still holds v1, valid.
    let mut alice = guard.spawn("agent", &["alice"]);
    alice.expect("READY");
    assert_eq!(ask(&mut alice, "check doc"), "CHECK 1 1 true");
    assert_eq!(ask(&mut alice, "get doc"), "HIT 1 v1");
    alice.send("quit");
    alice.wait_ok();
    drop((writer, segment));
    guard.finish();
}

#[test]
fn coherence_state_persists_across_detach_and_attach() {
    let guard = SegGuard::shm("persist");
    let segment = Segment::create(&guard.name, small_config()).unwrap();
    let carol = segment.attach("carol").unwrap();
    carol.put("plan", b"v1").unwrap();

    // bob reads v1 in one process, then detaches (exits).
    let mut bob = guard.spawn("agent", &["bob"]);
    bob.expect("READY");
    assert_eq!(ask(&mut bob, "get plan"), "MISS 1 v1");
    bob.send("quit");
    bob.wait_ok();

    // carol writes v2 while bob is away.
    assert_eq!(carol.put("plan", b"v2").unwrap(), 2);

    // bob, in a new process, is known to hold the stale v1: his write is refused.
    let mut bob = guard.spawn("agent", &["bob"]);
    bob.expect("READY");
    assert_eq!(ask(&mut bob, "check plan"), "CHECK 1 2 false");
    assert_eq!(ask(&mut bob, "put plan built on v1"), "CONFLICT 2 1");
    assert_eq!(ask(&mut bob, "get plan"), "MISS 2 v2");
    assert_eq!(ask(&mut bob, "put plan built on v2"), "OK 3");
    bob.send("quit");
    bob.wait_ok();
    assert_eq!(carol.get("plan").unwrap().bytes, b"built on v2");
    drop((carol, segment));
    guard.finish();
}

#[test]
fn a_dead_holders_acquire_is_reclaimed_at_once() {
    let guard = SegGuard::shm("acquire");
    let segment = Segment::create(&guard.name, small_config()).unwrap();
    let mut holder = guard.spawn("agent", &["holder"]);
    let mut other = guard.spawn("agent", &["other"]);
    holder.expect("READY");
    other.expect("READY");

    // A ten-minute lease: only the holder's death can free the artifact within the test.
    assert_eq!(ask(&mut holder, "acquire design 600000"), "ACQUIRED 0");
    assert_eq!(ask(&mut other, "acquire design 600000"), "HELD holder");
    assert_eq!(
        ask(&mut other, "blind design sneaking in"),
        "ERR Held(Held { key: \"design\", by: \"holder\" })"
    );
    holder.kill();
    assert_eq!(ask(&mut other, "acquire design 600000"), "ACQUIRED 0");
    assert_eq!(ask(&mut other, "commit decided"), "OK 1");
    other.send("quit");
    other.wait_ok();
    drop(segment);
    guard.finish();
}

#[test]
fn a_holder_past_its_lease_is_reclaimed_and_fenced() {
    let guard = SegGuard::shm("fence");
    let segment = Segment::create(&guard.name, small_config()).unwrap();
    let mut slow = guard.spawn("agent", &["slow"]);
    let mut other = guard.spawn("agent", &["other"]);
    slow.expect("READY");
    other.expect("READY");

    assert_eq!(ask(&mut slow, "acquire design 100"), "ACQUIRED 0");
    // Not a timing assertion: after this sleep the 100 ms lease has run out on any machine.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ask(&mut other, "acquire design 600000"), "ACQUIRED 0");
    // The reclaimed holder, still alive, cannot publish.
    assert_eq!(ask(&mut slow, "commit too late"), "FENCED");
    assert_eq!(ask(&mut other, "commit on time"), "OK 1");
    assert_eq!(ask(&mut slow, "get design"), "MISS 1 on time");
    slow.send("quit");
    other.send("quit");
    slow.wait_ok();
    other.wait_ok();
    drop(segment);
    guard.finish();
}

/// A zero-copy guard keeps its agent: while it lives the name cannot be attached again (an
/// attach releases the agent's recorded pins as a dead holder's, which would free the slot
/// under the guard's bytes), and those bytes stay put through later writes that reuse slots.
/// `Agent::read` borrows the agent (dropping the agent first does not compile: `ReadGuard`'s
/// doc test); `Agent::read_owned`, tested here, holds it.
#[test]
fn a_read_guard_keeps_its_agent_attached() {
    let guard = SegGuard::shm("guardkeeps");
    let segment = Segment::create(&guard.name, small_config()).unwrap();
    let reader = std::sync::Arc::new(segment.attach("reader").unwrap());
    let writer = segment.attach("writer").unwrap();
    writer.put("doc", &[1; 100]).unwrap();
    let pinned = reader.read_owned("doc").unwrap();
    drop(reader);
    match segment.attach("reader") {
        Err(Error::AgentBusy { .. }) => {}
        other => panic!("re-attached under a live guard: {other:?}"),
    }
    for version in 2..=8u8 {
        writer.put("doc", &[version; 100]).unwrap();
    }
    assert_eq!(pinned.version(), 1);
    assert!(pinned.iter().all(|&b| b == 1), "pinned bytes changed");
    drop(pinned);
    let again = segment.attach("reader").unwrap();
    let now = again.read("doc").unwrap();
    assert_eq!(now.version(), 8);
    assert!(now.iter().all(|&b| b == 8));
}

/// An owned guard is the last thing keeping the mapping: with its agent and segment handles
/// dropped, its bytes are still the pinned version's and its drop releases the pin in a live
/// mapping (the pinned read points at the agent's mapping without a count of its own).
#[test]
fn an_owned_read_guard_outlives_its_agent_and_segment() {
    let guard = SegGuard::shm("guardlast");
    let segment = Segment::create(&guard.name, small_config()).unwrap();
    segment
        .attach("writer")
        .unwrap()
        .put("doc", &[7; 4000])
        .unwrap();
    let reader = std::sync::Arc::new(segment.attach("reader").unwrap());
    let pinned = reader.read_owned("doc").unwrap();
    drop((reader, segment));
    let handle = std::thread::spawn(move || {
        assert_eq!(pinned.version(), 1);
        assert!(pinned.iter().all(|&b| b == 7), "pinned bytes changed");
        drop(pinned);
    });
    handle.join().unwrap();
    let segment = Segment::open(&guard.name).unwrap();
    let again = segment.attach("reader").unwrap();
    assert_eq!(again.read("doc").unwrap().version(), 1);
}

/// The same for an owned write guard: with its agent and segment handles dropped, it commits
/// from another thread into a live mapping (the hold points at the agent's mapping without a
/// count of its own), and a second one, dropped the same way, gives its hold up.
#[test]
fn an_owned_write_guard_outlives_its_agent_and_segment() {
    let guard = SegGuard::shm("holdlast");
    let segment = Segment::create(&guard.name, small_config()).unwrap();
    let writer = std::sync::Arc::new(segment.attach("writer").unwrap());
    let hold = writer
        .acquire_owned("doc", Duration::from_secs(30))
        .unwrap();
    drop((writer, segment));
    let committed = std::thread::spawn(move || hold.commit(&[9; 4000]).unwrap());
    assert_eq!(committed.join().unwrap(), 1);

    let segment = Segment::open(&guard.name).unwrap();
    let writer = std::sync::Arc::new(segment.attach("writer").unwrap());
    let hold = writer
        .acquire_owned("doc", Duration::from_secs(30))
        .unwrap();
    assert_eq!(hold.version(), 1);
    drop((writer, segment));
    std::thread::spawn(move || drop(hold)).join().unwrap();

    let segment = Segment::open(&guard.name).unwrap();
    let reader = segment.attach("reader").unwrap();
    let read = reader.read("doc").unwrap();
    assert_eq!(read.version(), 1);
    assert!(read.iter().all(|&b| b == 9), "the committed bytes");
    drop(read);
    let next = reader.acquire("doc", Duration::from_secs(30)).unwrap();
    assert_eq!(
        next.commit(b"after").unwrap(),
        2,
        "the dropped hold was given up"
    );
}

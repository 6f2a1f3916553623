//! Stuck and dead holders, with real processes: a holder stopped with SIGSTOP keeps its
//! artifact until its lease ends, then is reclaimed and fenced; a reader killed while pinning
//! versions gets its pins released, and the memory reused, when its death is detected (the next
//! attach under its name).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use agent_coherence::{Config, Error, Segment};
use common::{SegGuard, ask, say, small_config};

#[test]
fn child_entry() {
    common::child_main(|role, seg, args| match role {
        "agent" => common::scripted_agent(seg, &args[0]),
        "pinner" => pinner(seg, &args[0]),
        "attach_once" => attach_once(seg, &args[0]),
        other => panic!("unknown role {other}"),
    });
}

/// Attach as `name`, then on every line `pin KEY` take a zero-copy guard of KEY and keep it
/// (`PINNED <version>`), until killed.
fn pinner(seg: &str, name: &str) {
    let segment = Segment::open(seg).unwrap();
    let agent = segment.attach(name).unwrap();
    let mut guards = Vec::new();
    say("READY");
    loop {
        let line = common::hear();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["pin", key] => {
                let guard = agent.read(*key).unwrap();
                say(format!("PINNED {}", guard.version()));
                guards.push(guard);
            }
            ["quit"] => break,
            other => panic!("unknown command {other:?}"),
        }
    }
}

/// Attach as `name` and detach at once.
fn attach_once(seg: &str, name: &str) {
    let segment = Segment::open(seg).unwrap();
    drop(segment.attach(name).unwrap());
    say("ATTACHED");
}

fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) with a pid we spawned and a valid signal number has no memory effects.
    let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal})");
}

#[test]
fn a_stopped_holder_is_held_until_its_lease_ends_then_fenced() {
    let guard = SegGuard::shm("sigstop");
    let segment = Segment::create(&guard.name, small_config()).unwrap();
    let mut slow = guard.spawn("agent", &["slow"]);
    let mut other = guard.spawn("agent", &["other"]);
    slow.expect("READY");
    other.expect("READY");

    assert_eq!(ask(&mut slow, "put design v1"), "OK 1");
    assert_eq!(ask(&mut slow, "acquire design 1000"), "ACQUIRED 1");
    signal(slow.pid(), libc::SIGSTOP);
    // Stopped, not dead: its kernel lock is still held, so within the lease others are refused.
    assert_eq!(ask(&mut other, "acquire design 600000"), "HELD slow");
    let refused = ask(&mut other, "put design too-early");
    assert!(refused.starts_with("ERR Held"), "{refused}");
    // Not a timing assertion: after this sleep the 1 s lease has run out on any machine.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(ask(&mut other, "acquire design 600000"), "ACQUIRED 1");
    assert_eq!(ask(&mut other, "commit v2 by other"), "OK 2");
    signal(slow.pid(), libc::SIGCONT);
    assert_eq!(ask(&mut slow, "commit v2 by slow"), "FENCED");
    assert_eq!(ask(&mut slow, "get design"), "MISS 2 v2 by other");
    slow.send("quit");
    other.send("quit");
    slow.wait_ok();
    other.wait_ok();
    drop(segment);
    guard.finish();
}

#[test]
fn a_dead_readers_pins_are_released_when_its_death_is_detected() {
    let guard = SegGuard::shm("pins");
    // 256 KiB arena, 32 KiB payloads: eight blocks in all.
    let config = Config {
        arena_bytes: 256 << 10,
        max_payload: 32 << 10,
        ..small_config()
    };
    let segment = Segment::create(&guard.name, config).unwrap();
    let writer = segment.attach("writer").unwrap();
    let mut reader = guard.spawn("pinner", &["reader"]);
    reader.expect("READY");

    // The reader pins seven successive versions; with the current one they fill the arena.
    for version in 1..=7u64 {
        assert_eq!(
            writer
                .put_blind("doc", &vec![version as u8; 32 << 10])
                .unwrap(),
            version
        );
        reader.send("pin doc");
        assert_eq!(reader.expect("PINNED"), version.to_string());
    }
    assert_eq!(writer.put_blind("doc", &[8u8; 32 << 10]).unwrap(), 8);
    assert!(matches!(
        writer.put_blind("doc", &[9u8; 32 << 10]),
        Err(Error::CapacityExceeded { .. })
    ));

    // The reader dies holding its guards: its pins stay until its death is detected.
    reader.kill();
    assert!(matches!(
        writer.put_blind("doc", &[9u8; 32 << 10]),
        Err(Error::CapacityExceeded { .. })
    ));
    let mut next = guard.spawn("attach_once", &["reader"]);
    next.expect("ATTACHED");
    next.wait_ok();
    for version in 9..=20u64 {
        assert_eq!(
            writer
                .put_blind("doc", &vec![version as u8; 32 << 10])
                .unwrap(),
            version
        );
    }
    drop(writer);
    drop(segment);
    guard.finish();
}

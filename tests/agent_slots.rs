//! Agent slots across processes: a dead agent's slot is taken over when the table is full
//! (a live one never is), and a name whose views were dropped cannot turn a stale decision
//! into an admitted write (docs/protocol.md, "Agent slots").

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use agent_coherence::{Config, Error, Segment};
use common::{SegGuard, ask};

#[test]
fn child_entry() {
    common::child_main(|role, seg, args| match role {
        "agent" => common::scripted_agent(seg, &args[0]),
        "try_attach" => common::try_attach(seg, &args[0]),
        other => panic!("unknown role {other}"),
    });
}

fn two_agents() -> Config {
    Config {
        max_agents: 2,
        max_artifacts: 64,
        arena_bytes: 1 << 20,
        max_payload: 64 << 10,
        ..Config::default()
    }
}

#[test]
fn a_dead_agents_slot_is_reused_and_a_returning_name_cannot_write_stale() {
    let guard = SegGuard::shm("slots");
    let segment = Segment::create(&guard.name, two_agents()).unwrap();
    let carol = segment.attach("carol").unwrap();
    carol.put("plan", b"v1").unwrap();

    // bob reads v1 and exits: the table (2 slots) is now full, bob dead.
    let mut bob = guard.spawn("agent", &["bob"]);
    bob.expect("READY");
    assert_eq!(ask(&mut bob, "get plan"), "MISS 1 v1");
    bob.send("quit");
    bob.wait_ok();

    // dave is new: he takes over bob's slot, then is killed (no detach).
    let mut dave = guard.spawn("agent", &["dave"]);
    dave.expect("READY");
    let slots = segment.agent_slots().unwrap();
    let names: Vec<_> = slots.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["carol", "dave"]);
    // A live agent is never evicted: with carol and dave alive, a third name is refused,
    // and the message says what frees a slot.
    let mut eve = guard.spawn("try_attach", &["eve"]);
    let full = eve.line();
    assert!(full.starts_with("FULL "), "{full}");
    assert!(
        full.contains("dead agent's slot is reused automatically"),
        "{full}"
    );
    eve.wait_ok();
    dave.kill();

    // carol writes v2 while bob is away and his views are gone.
    assert_eq!(carol.put("plan", b"v2").unwrap(), 2);

    // bob returns (taking dave's slot) with his decision built on v1: refused, not admitted.
    let mut bob = guard.spawn("agent", &["bob"]);
    bob.expect("READY");
    assert_eq!(ask(&mut bob, "check plan"), "CHECK - 2 false");
    assert_eq!(ask(&mut bob, "put plan built on v1"), "CONFLICT 2 0");
    // A key never written before is his to create.
    assert_eq!(ask(&mut bob, "put fresh new"), "OK 1");
    // Once he has read the current version, his write goes through.
    assert_eq!(ask(&mut bob, "get plan"), "MISS 2 v2");
    assert_eq!(ask(&mut bob, "put plan built on v2"), "OK 3");
    bob.send("quit");
    bob.wait_ok();
    assert_eq!(carol.get("plan").unwrap().bytes, b"built on v2");

    // Forgetting: a live agent is refused, a detached one freed.
    assert!(matches!(
        segment.forget_agent("carol"),
        Err(Error::AgentAlive { .. })
    ));
    assert!(segment.forget_agent("bob").unwrap());
    assert!(!segment.forget_agent("bob").unwrap());
    let names: Vec<_> = segment
        .agent_slots()
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["carol"]);
    assert!(segment.fsck(false).unwrap().is_clean());
    drop((carol, segment));
    guard.finish();
}

#[test]
fn agent_churn_never_fills_the_table() {
    let guard = SegGuard::shm("churn");
    let segment = Segment::create(&guard.name, two_agents()).unwrap();
    let keeper = segment.attach("keeper").unwrap();
    keeper.put("shared", b"v1").unwrap();
    // Twenty short-lived workers with unique names, one at a time, in one slot.
    for n in 0..20 {
        let mut worker = guard.spawn("agent", &[&format!("worker-{n}")]);
        worker.expect("READY");
        assert_eq!(ask(&mut worker, &format!("put task-{n} done")), "OK 1");
        worker.send("quit");
        worker.wait_ok();
    }
    assert_eq!(segment.agent_slots().unwrap().len(), 2);
    assert!(segment.fsck(false).unwrap().is_clean());
    drop((keeper, segment));
    guard.finish();
}

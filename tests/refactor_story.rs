//! The refactor story of the landing page, across real processes: a planner writes v1 of the
//! task spec, an executor reads it, the planner writes v2, and the executor's write from its
//! stale v1 view is refused until it re-reads.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use agent_coherence::Segment;
use common::{SegGuard, ask, small_config};

#[test]
fn child_entry() {
    common::child_main(|role, seg, args| match role {
        "agent" => common::scripted_agent(seg, &args[0]),
        other => panic!("unknown role {other}"),
    });
}

const V1: &str =
    "Rename validateUser to authenticateUser; update middleware.ts login.ts refresh.ts";
const V2: &str =
    "Rename validateUser to authenticateUser; update middleware.ts login.ts refresh.ts session.ts";

#[test]
fn stale_executor_is_refused_then_succeeds_after_rereading() {
    let guard = SegGuard::shm("story");
    let segment = Segment::create(&guard.name, small_config()).unwrap();
    let mut planner = guard.spawn("agent", &["planner"]);
    let mut executor = guard.spawn("agent", &["executor"]);
    planner.expect("READY");
    executor.expect("READY");

    // t=0: the planner writes v1.
    assert_eq!(ask(&mut planner, &format!("put task/spec {V1}")), "OK 1");
    // t=1: the executor reads v1: a MISS, then a HIT.
    assert_eq!(ask(&mut executor, "get task/spec"), format!("MISS 1 {V1}"));
    assert_eq!(ask(&mut executor, "get task/spec"), format!("HIT 1 {V1}"));
    assert_eq!(ask(&mut executor, "check task/spec"), "CHECK 1 1 true");
    // t=2: the planner finds a fourth caller and writes v2 (its own view is v1: admitted).
    assert_eq!(ask(&mut planner, &format!("put task/spec {V2}")), "OK 2");
    // The executor's copy was invalidated before the planner's put returned.
    assert_eq!(ask(&mut executor, "check task/spec"), "CHECK 1 2 false");
    // t=3: its write from the stale v1 view is refused and writes nothing.
    assert_eq!(
        ask(
            &mut executor,
            "put task/spec done: renamed 3 callers per v1"
        ),
        "CONFLICT 2 1"
    );
    assert_eq!(ask(&mut planner, "get task/spec"), format!("HIT 2 {V2}"));
    // It re-reads: a MISS on v2; then its write is admitted as v3.
    assert_eq!(ask(&mut executor, "get task/spec"), format!("MISS 2 {V2}"));
    assert_eq!(
        ask(
            &mut executor,
            "put task/spec done: renamed 4 callers per v2"
        ),
        "OK 3"
    );
    // The planner's copy was invalidated in turn.
    assert_eq!(
        ask(&mut planner, "get task/spec"),
        "MISS 3 done: renamed 4 callers per v2"
    );

    planner.send("quit");
    executor.send("quit");
    planner.wait_ok();
    executor.wait_ok();

    // The parent sees the same history.
    let status = segment.status().unwrap();
    let spec = status
        .artifacts
        .iter()
        .find(|a| a.key == "task/spec")
        .unwrap();
    assert_eq!(spec.version, 3);
    assert_eq!(spec.writer.as_deref(), Some("executor"));
    drop(segment);
    guard.finish();
}

//! No lost update across processes: N processes (distinct agents) increment one counter with
//! conditional writes; every increment that was admitted is in the final value.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use agent_coherence::Conflict;
use agent_coherence::{Error, Segment};
use common::{SegGuard, arg, say, small_config};

const KEY: &str = "counter";
const PROCESSES: usize = 4;
const WINS_EACH: u64 = 300;

#[test]
fn child_entry() {
    common::child_main(|role, seg, args| match role {
        "incrementer" => incrementer(seg, &args[0], arg(args, 1)),
        other => panic!("unknown role {other}"),
    });
}

/// Increment until `wins` increments were admitted; report `DONE <wins> <conflicts>`.
fn incrementer(seg: &str, name: &str, wins: u64) {
    let segment = Segment::open(seg).unwrap();
    let agent = segment.attach(name).unwrap();
    say("READY");
    assert_eq!(common::hear(), "go");
    let (mut won, mut conflicts) = (0u64, 0u64);
    let mut rng = common::Rng::from_entropy();
    while won < wins {
        let read = agent.get(KEY).unwrap();
        let n: u64 = std::str::from_utf8(&read.bytes).unwrap().parse().unwrap();
        // Widen the window between read and write so that writes really race.
        for _ in 0..rng.range(0, 2000) {
            std::hint::spin_loop();
        }
        match agent.put(KEY, (n + 1).to_string().as_bytes()) {
            Ok(version) => {
                assert_eq!(
                    version,
                    read.version + 1,
                    "a write adds exactly one version"
                );
                won += 1;
            }
            Err(Error::Conflict(Conflict { current, yours, .. })) => {
                assert_eq!(yours, read.version, "the conflict names my view");
                assert!(current > yours, "the conflict names a newer version");
                conflicts += 1;
            }
            Err(e) => panic!("{name}: unexpected {e:?}"),
        }
    }
    say(format!("DONE {won} {conflicts}"));
}

#[test]
fn racing_conditional_increments_lose_nothing() {
    let guard = SegGuard::shm("counter");
    let segment = Segment::create(&guard.name, small_config()).unwrap();
    let init = segment.attach("init").unwrap();
    assert_eq!(init.put(KEY, b"0").unwrap(), 1);

    let wins = WINS_EACH.to_string();
    let mut procs: Vec<_> = (0..PROCESSES)
        .map(|i| guard.spawn("incrementer", &[&format!("inc{i}"), &wins]))
        .collect();
    for proc in &mut procs {
        proc.expect("READY");
    }
    for proc in &mut procs {
        proc.send("go");
    }
    let (mut total_wins, mut total_conflicts) = (0u64, 0u64);
    for mut proc in procs {
        let done = proc.expect("DONE");
        let (won, conflicts) = done.split_once(' ').unwrap();
        total_wins += won.parse::<u64>().unwrap();
        total_conflicts += conflicts.parse::<u64>().unwrap();
        proc.wait_ok();
    }
    eprintln!(
        "no_lost_update: {total_wins} increments admitted, {total_conflicts} stale writes refused"
    );

    let last = init.get(KEY).unwrap();
    let value: u64 = std::str::from_utf8(&last.bytes).unwrap().parse().unwrap();
    assert_eq!(total_wins, PROCESSES as u64 * WINS_EACH);
    assert_eq!(value, total_wins, "the counter lost an update");
    assert_eq!(
        last.version,
        total_wins + 1,
        "one version per admitted write"
    );
    drop((init, segment));
    guard.finish();
}

//! Nothing lost on a crash: a writer process SIGKILLed at random points, often mid-copy of a
//! 1 MiB payload, leaves the last published version intact and readable, and the artifact
//! writable at once by another agent (the dead holder is reclaimed because the kernel released
//! its lock; no lease runs out). Fresh processes re-attach under the dead writer's name.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt as _;
use std::sync::mpsc::channel;
use std::time::Duration;

use agent_coherence::{Config, Segment};
use common::{PATIENCE, Rng, SegGuard, arg, payload, say, verify};

const KEY: &str = "big";
const ROUNDS: u64 = 20;
/// Payload sizes: all in the 1 MiB size class.
const MIN_SIZE: u64 = (512 << 10) + 1;
const MAX_SIZE: u64 = 1 << 20;
/// Distinct payloads each writer cycles through.
const PAYLOADS: u64 = 4;

#[test]
fn child_entry() {
    common::child_main(|role, seg, args| match role {
        "crasher" => crasher(seg, arg(args, 0)),
        other => panic!("unknown role {other}"),
    });
}

/// The seed of write `i` of round `round`.
fn seed(round: u64, i: u64) -> u64 {
    round << 32 | i
}

/// Attach as `writer`, verify the current version, then write 1 MiB-class payloads as fast as
/// possible, reporting `W <i> <version>` after each, until killed.
fn crasher(seg: &str, round: u64) {
    let segment = Segment::open(seg).unwrap();
    let agent = segment.attach("writer").unwrap();
    let current = agent.get(KEY).unwrap();
    verify(&current.bytes).unwrap();
    // Made beforehand, so that the loop spends its time inside `put` and most kills land
    // there: write `i` is payload `i % PAYLOADS`.
    let mut rng = Rng::new(round);
    let payloads: Vec<Vec<u8>> = (0..PAYLOADS)
        .map(|k| payload(rng.range(MIN_SIZE, MAX_SIZE + 1) as usize, seed(round, k)))
        .collect();
    say(format!("READY {}", current.version));
    for i in 0.. {
        let version = agent.put(KEY, &payloads[(i % PAYLOADS) as usize]).unwrap();
        say(format!("W {i} {version}"));
    }
}

#[test]
fn killed_writers_lose_nothing_and_block_no_one() {
    // Room for a block leaked by every killed writer: see the next test for the leak.
    kill_rounds("crash", 64 << 20, false);
}

/// Invariant 6 says the artifact stays writable without manual repair: the block a killed
/// writer was filling must come back, or repeated crashes fill the arena. With 8 MiB (eight
/// 1 MiB blocks), twenty kills mid-`put` exhaust it if those blocks leak. And nothing is left
/// for a repair (docs/protocol.md §3.9): once the dead writer's name attached again, a
/// read-only `fsck` finds no leaked descriptor and no leaked byte.
#[test]
fn killed_writers_leak_no_payload_space() {
    kill_rounds("crash-leak", 8 << 20, true);
}

/// Kill `ROUNDS` writers at random points, checking after each kill that the last published
/// version is intact and another agent can write at once; then, if `refill`, write 16 more
/// 1 MiB payloads.
fn kill_rounds(tag: &str, arena_bytes: u64, refill: bool) {
    let guard = SegGuard::shm(tag);
    let config = Config {
        max_agents: 16,
        max_artifacts: 256,
        arena_bytes,
        max_payload: 1 << 20,
        // Far beyond the test's patience: only reclaiming the dead holder lets writes proceed.
        write_lease_ms: 10 * 60 * 1000,
        log_records: 1024,
        inbox_events: 256,
    };
    let segment = Segment::create(&guard.name, config).unwrap();
    let observer = segment.attach("observer").unwrap();
    observer.put(KEY, &payload(1 << 20, u64::MAX)).unwrap();
    // version → seed of every version this test knows the content of.
    let mut known: HashMap<u64, u64> = HashMap::from([(1, u64::MAX)]);
    let mut rng = Rng::from_entropy();
    let (mut writes, mut in_flight_published) = (0, 0);

    for round in 1..=ROUNDS {
        let mut child = guard.spawn("crasher", &[&round.to_string()]);
        let start: u64 = child.expect("READY").parse().unwrap();
        std::thread::sleep(Duration::from_micros(rng.range(0, 50_000)));
        let status = child.kill();
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "round {round}: the writer failed before it was killed ({status}): see its stderr"
        );
        // Everything the child reported before it died.
        let mut last_i = None;
        let mut last_version = start;
        for line in child.rest() {
            let mut words = line.split(' ').skip(1).map(|w| w.parse::<u64>().unwrap());
            let (i, version) = (words.next().unwrap(), words.next().unwrap());
            assert_eq!(version, last_version + 1, "writer versions grow by one");
            known.insert(version, seed(round, i % PAYLOADS));
            (last_i, last_version) = (Some(i), version);
            writes += 1;
        }
        // The write in flight when it died may or may not have been published.
        let next_seed = seed(round, last_i.map_or(0, |i| i + 1) % PAYLOADS);

        let seen = observer.get(KEY).unwrap();
        let got = verify(&seen.bytes)
            .unwrap_or_else(|e| panic!("round {round}: v{} is torn: {e}", seen.version));
        if seen.version == last_version + 1 {
            assert_eq!(
                got, next_seed,
                "round {round}: v{} has the wrong payload",
                seen.version
            );
            known.insert(seen.version, got);
            in_flight_published += 1;
        } else {
            assert_eq!(
                seen.version, last_version,
                "round {round}: the last published version is {last_version}"
            );
            assert_eq!(
                Some(&got),
                known.get(&seen.version),
                "round {round}: wrong payload"
            );
        }
        let zero_copy = observer.read(KEY).unwrap();
        assert_eq!(zero_copy.version(), seen.version);
        assert_eq!(&*zero_copy, &seen.bytes[..]);
        drop(zero_copy);

        // Another agent can write at once: run the write on a thread only to bound the wait.
        let mine = payload(4096, seed(round, u64::from(u32::MAX)));
        let (tx, rx) = channel();
        std::thread::scope(|s| {
            s.spawn(|| tx.send(observer.put(KEY, &mine)));
            let written = rx
                .recv_timeout(PATIENCE)
                .unwrap_or_else(|_| panic!("round {round}: the dead writer still blocks the key"))
                .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
            assert_eq!(written, seen.version + 1);
            known.insert(written, seed(round, u64::from(u32::MAX)));
        });
    }
    eprintln!(
        "{tag}: {ROUNDS} writers killed after {writes} reported writes; \
         {in_flight_published} kills landed between a publish and its report"
    );

    // The arena leaked nothing the dead writers were filling: 16 more 1 MiB writes fit in it.
    for i in 0..if refill { 16 } else { 0 } {
        let bytes = payload(MAX_SIZE as usize, seed(ROUNDS + 1, i));
        observer
            .put(KEY, &bytes)
            .unwrap_or_else(|e| panic!("write {i} after the kills: {e}"));
    }
    verify(&observer.get(KEY).unwrap().bytes).unwrap();
    if refill {
        // The dead writers' next attach recovers what they were allocating, freeing or retiring.
        drop(segment.attach("writer").unwrap());
        let report = segment.fsck(false).unwrap();
        let problems: Vec<String> = report
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.subject, p.message))
            .collect();
        assert_eq!(
            (report.arena.leaked_bytes, report.descriptors.leaked),
            (0, 0),
            "leaked before any repair: {problems:?}"
        );
    }
    drop((observer, segment));
    guard.finish();
}

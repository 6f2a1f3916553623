//! Conformance: each behavioural guarantee of the facade, written once and run on both
//! backends: `shm::*` on a fresh shared-memory segment, `etcd::*` on a fresh prefix of an etcd
//! cluster. A test takes a [`Place`] (its segment's location, destroyed afterwards) and uses
//! only the facade, so the same code checks that the guarantee holds twice.
//!
//! The etcd variants use the etcd test kit's cluster (`ccs-etcd-testkit`): the one
//! `CCS_ETCD_ENDPOINTS` names, or a private three-member cluster that stops when the test
//! process exits. If etcd is not installed and no cluster is named, they fail: a conformance
//! test never passes without running. The few operations that exist on shared memory only are
//! checked here to fail with `Error::Unsupported` on etcd (`docs/backends.md`).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use agent_coherence::{Conflict, Held};
use std::time::{Duration, Instant};

use agent_coherence::trace::{self, FindingKind, LogOp, LogOutcome, LogRecord, WriteMode};
use agent_coherence::{Backend, Cached, Error, Mesi, Segment, Strategy};
use common::{Proc, SegGuard, arg, ask, say, small_config};

/// The same test, instantiated for each backend.
macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod shm {
            $(
                #[test]
                fn $test() {
                    super::$test(&super::Place::shm(stringify!($test)));
                }
            )*
        }
        #[cfg(feature = "etcd")]
        mod etcd {
            $(
                #[test]
                fn $test() {
                    super::$test(&super::Place::etcd(stringify!($test)));
                }
            )*
        }
    };
}

conformance!(
    miss_hit_and_invalidation,
    private_copies_and_read_guards,
    conditional_writes,
    versions_grow_by_one_across_delete_and_recreate,
    holds_exclude_other_writers,
    a_write_in_flight_is_seen,
    an_expired_hold_is_fenced,
    waiting_for_a_change,
    listing_keys,
    status_shows_agents_states_and_holders,
    eager_agents_receive_events,
    strategies_bound_hits,
    views_outlive_an_attach,
    names_and_keys_are_checked_alike,
    one_live_process_per_agent_name,
    shared_memory_only_operations,
    the_operation_log_records_operations,
    racing_increments_across_processes_lose_nothing,
    no_stale_hit_once_a_put_has_returned_across_processes,
    a_waiter_in_another_process_wakes,
);

#[test]
fn child_entry() {
    common::child_main(|role, seg, args| match role {
        "scripted" => common::scripted_agent(seg, &args[0]),
        "incrementer" => incrementer(seg, &args[0], arg(args, 1)),
        "waiter" => waiter(seg, &args[0], arg(args, 1)),
        other => panic!("unknown role {other}"),
    });
}

/// Where one test's segment lives: created (or, on etcd, just named) for the test, destroyed
/// when the test ends, with its child processes killed.
struct Place {
    guard: SegGuard,
    backend: Backend,
}

impl Place {
    fn shm(test: &str) -> Place {
        let guard = SegGuard::shm(test);
        Segment::create(&guard.name, small_config()).unwrap();
        Place {
            guard,
            backend: Backend::SharedMemory,
        }
    }

    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    fn etcd(test: &str) -> Place {
        let hosts = ccs_etcd_testkit::hosts(etcd_endpoints());
        let prefix = format!("ccs-conformance/{}", common::unique_name(test));
        Place {
            guard: SegGuard::at(format!("etcd://{hosts}/{prefix}")),
            backend: Backend::Etcd,
        }
    }

    /// A new handle on the segment.
    fn open(&self) -> Segment {
        let segment = Segment::open(&self.guard.name).unwrap();
        assert_eq!(segment.backend(), self.backend);
        segment
    }

    fn spawn(&self, role: &str, args: &[&str]) -> Proc {
        self.guard.spawn(role, args)
    }

    fn is_etcd(&self) -> bool {
        self.backend == Backend::Etcd
    }
}

/// The endpoints of the etcd test kit's shared cluster (`CCS_ETCD_ENDPOINTS`, or a private
/// cluster of this process). Panics (the test fails) if neither can be had.
#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
fn etcd_endpoints() -> &'static str {
    ccs_etcd_testkit::shared_endpoints().expect(
        "the etcd conformance tests need a cluster: set CCS_ETCD_ENDPOINTS, or install etcd \
         (scripts/deps)",
    )
}

/// Retry `f` until it returns `Some`, for at most `patience`.
fn eventually<T>(patience: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(started.elapsed() < patience, "not within {patience:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn conflict(result: agent_coherence::Result<u64>) -> (u64, u64) {
    match result {
        Err(Error::Conflict(Conflict { current, yours, .. })) => (current, yours),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// The guarantees.

/// The refactor story: a MISS fetches and registers, a HIT is served locally, and a peer's
/// write invalidates the copy before it returns.
fn miss_hit_and_invalidation(place: &Place) {
    let seg = place.open();
    let (planner, executor) = (
        seg.attach("planner").unwrap(),
        seg.attach("executor").unwrap(),
    );
    assert!(matches!(
        executor.get("task/spec"),
        Err(Error::NotFound { .. })
    ));
    assert!(!executor.is_valid("task/spec").unwrap());
    assert_eq!(planner.put("task/spec", b"rename foo").unwrap(), 1);

    let first = executor.get("task/spec").unwrap();
    assert_eq!(
        (first.bytes.as_slice(), first.version, first.hit),
        (&b"rename foo"[..], 1, false)
    );
    let again = executor.get("task/spec").unwrap();
    assert_eq!((again.version, again.hit), (1, true));
    assert!(executor.is_valid("task/spec").unwrap());
    let check = executor.check("task/spec").unwrap();
    assert_eq!((check.held, check.current, check.valid), (Some(1), 1, true));
    assert!(check.is_current());

    assert_eq!(planner.put("task/spec", b"rename bar").unwrap(), 2);
    // Invalid before the put returned: no waiting needed.
    assert!(!executor.is_valid("task/spec").unwrap());
    let check = executor.check("task/spec").unwrap();
    assert_eq!(
        (check.held, check.current, check.valid),
        (Some(1), 2, false)
    );
    let fresh = executor.get("task/spec").unwrap();
    assert_eq!(
        (fresh.bytes.as_slice(), fresh.version, fresh.hit),
        (&b"rename bar"[..], 2, false)
    );
    assert!(executor.get("task/spec").unwrap().hit);

    // get_into reuses a buffer, with the same HIT/MISS story.
    let mut buffer = Vec::new();
    assert_eq!(
        executor.get_into("task/spec", &mut buffer).unwrap(),
        (2, true)
    );
    assert_eq!(buffer, b"rename bar");
    planner.put("task/spec", b"v3").unwrap();
    assert_eq!(
        executor.get_into("task/spec", &mut buffer).unwrap(),
        (3, false)
    );
    assert_eq!(buffer, b"v3");

    // A pre-resolved key behaves as its text.
    let key = executor.key("task/spec").unwrap();
    assert_eq!(key.as_str(), "task/spec");
    assert_eq!(executor.get(&key).unwrap().version, 3);
}

/// `Cached` + `refresh`: a HIT leaves the copy where it is; a peer's write makes the next
/// refresh a MISS that fetches. A read guard holds one version's bytes.
fn private_copies_and_read_guards(place: &Place) {
    let seg = place.open();
    let (planner, executor) = (
        seg.attach("planner").unwrap(),
        seg.attach("executor").unwrap(),
    );
    planner.put("plan", b"v1").unwrap();
    let mut plan = Cached::new(executor.key("plan").unwrap());
    assert_eq!((plan.version(), plan.bytes()), (0, &b""[..]));
    assert!(
        !executor.refresh(&mut plan).unwrap(),
        "first refresh is a MISS"
    );
    assert!(executor.refresh(&mut plan).unwrap(), "then a HIT");
    assert_eq!((plan.version(), plan.bytes()), (1, &b"v1"[..]));
    planner.put("plan", b"v2").unwrap();
    assert!(
        !executor.refresh(&mut plan).unwrap(),
        "a peer's write: MISS"
    );
    assert_eq!((plan.version(), plan.bytes()), (2, &b"v2"[..]));
    assert!(executor.refresh(&mut plan).unwrap());

    let guard = executor.read("plan").unwrap();
    assert_eq!(
        (guard.version(), guard.hit(), &*guard),
        (2, true, &b"v2"[..])
    );
    planner.put("plan", b"v3").unwrap();
    // The guard still holds version 2, intact.
    assert_eq!((guard.version(), guard.bytes()), (2, &b"v2"[..]));
    drop(guard);
    let guard = executor.read("plan").unwrap();
    assert_eq!(
        (guard.version(), guard.hit(), guard.bytes()),
        (3, false, &b"v3"[..])
    );
    assert!(matches!(
        executor.read("nothing"),
        Err(Error::NotFound { .. })
    ));
}

/// Writes are conditional on the writer's view by default; `put_if` is compare-and-set;
/// a blind write needs its own call. Every refusal names the current version and yours.
fn conditional_writes(place: &Place) {
    let seg = place.open();
    let (a, b, c) = (
        seg.attach("a").unwrap(),
        seg.attach("b").unwrap(),
        seg.attach("c").unwrap(),
    );
    assert_eq!(a.put("doc", b"a1").unwrap(), 1);
    assert_eq!(b.get("doc").unwrap().version, 1);
    assert_eq!(a.put("doc", b"a2").unwrap(), 2);
    // b's view is version 1: refused, nothing written.
    assert_eq!(conflict(b.put("doc", b"b on v1")), (2, 1));
    assert!(b.put("doc", b"b on v1").unwrap_err().is_contention());
    assert_eq!(a.get("doc").unwrap().bytes, b"a2");
    // An agent that never read the artifact is admitted.
    assert_eq!(c.put("doc", b"c3").unwrap(), 3);
    // Compare-and-set.
    assert_eq!(conflict(b.put_if("doc", 2, b"b on v2")), (3, 2));
    assert_eq!(b.put_if("doc", 3, b"b4").unwrap(), 4);
    assert_eq!(conflict(a.put_if("fresh", 1, b"x")), (0, 1));
    assert_eq!(a.put_if("fresh", 0, b"first").unwrap(), 1);
    assert_eq!(conflict(b.put_if("fresh", 0, b"also first")), (1, 0));
    // A blind write from a stale view goes through.
    assert_eq!(conflict(a.put("doc", b"a on v2")), (4, 2));
    assert_eq!(a.put_blind("doc", b"a5").unwrap(), 5);
    assert_eq!(c.get("doc").unwrap().bytes, b"a5");
    // After reading, the view is current again.
    assert_eq!(b.get("doc").unwrap().version, 5);
    assert_eq!(b.put("doc", b"b6").unwrap(), 6);
}

/// Each write adds exactly one version; a delete is a version; a re-create continues.
fn versions_grow_by_one_across_delete_and_recreate(place: &Place) {
    let seg = place.open();
    let (a, b) = (seg.attach("a").unwrap(), seg.attach("b").unwrap());
    for expected in 1..=5 {
        assert_eq!(
            a.put("k", format!("v{expected}").as_bytes()).unwrap(),
            expected
        );
    }
    assert_eq!(b.get("k").unwrap().version, 5);
    assert_eq!(a.delete("k").unwrap(), 6);
    // b's view is 5, the deletion is 6: its write is refused.
    assert_eq!(conflict(b.put("k", b"b on v5")), (6, 5));
    // Reading the deletion is knowing the current version (a tombstone is a version): "read it
    // again, then write" works for a deleted artifact too, and b re-creates it at 7.
    assert!(matches!(b.get("k"), Err(Error::NotFound { .. })));
    assert!(!b.is_valid("k").unwrap());
    let check = b.check("k").unwrap();
    assert_eq!((check.held, check.current), (Some(6), 6));
    assert_eq!(b.put("k", b"again").unwrap(), 7);
    // a, which wrote the deletion, did not see the re-creation.
    assert_eq!(conflict(a.put("k", b"a on v6")), (7, 6));
    let read = a.get("k").unwrap();
    assert_eq!((read.version, read.bytes.as_slice()), (7, &b"again"[..]));
    assert_eq!(a.put("k", b"a on v7").unwrap(), 8);
    assert!(matches!(a.delete("never"), Err(Error::NotFound { .. })));
    let unknown = a.check("never").unwrap();
    assert_eq!(
        (unknown.held, unknown.current, unknown.valid),
        (None, 0, false)
    );
}

/// `acquire` takes the artifact exclusively: other agents can neither acquire nor write it
/// until the holder commits (one version) or releases (none).
fn holds_exclude_other_writers(place: &Place) {
    let seg = place.open();
    let (a, b) = (seg.attach("a").unwrap(), seg.attach("b").unwrap());
    let lease = Duration::from_secs(30);
    a.put("design", b"draft").unwrap();
    let hold = a.acquire("design", lease).unwrap();
    assert_eq!((hold.version(), hold.key()), (1, "design"));
    match b.acquire("design", lease) {
        Err(Error::Held(Held { by, .. })) => assert_eq!(by, "a"),
        other => panic!("expected Held, got {other:?}"),
    }
    assert!(matches!(
        b.put_blind("design", b"sneak"),
        Err(Error::Held { .. })
    ));
    b.get("design").unwrap(); // reading is never blocked
    assert_eq!(hold.commit(b"decided").unwrap(), 2);
    let read = b.get("design").unwrap();
    assert_eq!((read.version, read.bytes.as_slice()), (2, &b"decided"[..]));

    // Release writes nothing; dropping a guard releases too.
    let hold = b.acquire("design", lease).unwrap();
    hold.release().unwrap();
    drop(a.acquire("design", lease).unwrap());
    let mut hold = b.acquire("design", lease).unwrap();
    hold.renew(lease).unwrap();
    assert_eq!(hold.commit(b"b's").unwrap(), 3);
    assert_eq!(a.get("design").unwrap().version, 3);
    // A key never written can be held; its first commit is version 1.
    let hold = a.acquire("new/design", lease).unwrap();
    assert_eq!(hold.version(), 0);
    assert_eq!(hold.commit(b"first").unwrap(), 1);
}

/// `being_written` sees a hold from its acquire to its commit or release, on shared memory;
/// on etcd, where a write is one transaction, it is `Unsupported`.
fn a_write_in_flight_is_seen(place: &Place) {
    let seg = place.open();
    let (a, b) = (seg.attach("a").unwrap(), seg.attach("b").unwrap());
    a.put("design", b"draft").unwrap();
    if place.is_etcd() {
        assert!(matches!(
            b.being_written("design"),
            Err(Error::Unsupported {
                backend: Backend::Etcd,
                ..
            })
        ));
        return;
    }
    assert!(!b.being_written("design").unwrap());
    assert!(!b.being_written("never/written").unwrap());
    let hold = a.acquire("design", Duration::from_secs(30)).unwrap();
    assert!(b.being_written("design").unwrap());
    assert!(a.being_written("design").unwrap());
    assert_eq!(hold.commit(b"decided").unwrap(), 2);
    assert!(!b.being_written("design").unwrap());
    let key = b.key("design").unwrap();
    let hold = a.acquire(&key, Duration::from_secs(30)).unwrap();
    assert!(b.being_written(&key).unwrap());
    hold.release().unwrap();
    assert!(!b.being_written(&key).unwrap());
}

/// A hold whose lease ran out is reclaimed by the next acquirer, and its holder is fenced:
/// neither renew nor commit changes anything.
fn an_expired_hold_is_fenced(place: &Place) {
    let seg = place.open();
    let (a, b) = (seg.attach("a").unwrap(), seg.attach("b").unwrap());
    a.put("plan", b"v1").unwrap();
    // One second: etcd's shortest lease, and a whole one (the engine rounds up).
    let mut stale = a.acquire("plan", Duration::from_secs(1)).unwrap();
    let taken = eventually(Duration::from_secs(20), || {
        match b.acquire("plan", Duration::from_secs(30)) {
            Ok(hold) => Some(hold),
            Err(Error::Held { .. }) => None,
            Err(e) => panic!("{e}"),
        }
    });
    assert!(matches!(
        stale.renew(Duration::from_secs(30)),
        Err(Error::Fenced { .. })
    ));
    assert!(matches!(stale.commit(b"late"), Err(Error::Fenced { .. })));
    assert_eq!(
        a.get("plan").unwrap().bytes,
        b"v1",
        "the fenced commit wrote nothing"
    );
    assert_eq!(taken.commit(b"v2 by b").unwrap(), 2);
    assert_eq!(a.get("plan").unwrap().version, 2);
}

/// `wait_changed` returns at once when the version is already past `since`, times out with
/// `None`, and refuses a key never written.
fn waiting_for_a_change(place: &Place) {
    let seg = place.open();
    let a = seg.attach("a").unwrap();
    assert!(matches!(
        a.wait_changed("none", 0, Some(Duration::from_millis(10))),
        Err(Error::NotFound { .. })
    ));
    a.put("k", b"1").unwrap();
    a.put("k", b"2").unwrap();
    assert_eq!(a.wait_changed("k", 1, None).unwrap(), Some(2));
    let started = Instant::now();
    assert_eq!(
        a.wait_changed("k", 2, Some(Duration::from_millis(300)))
            .unwrap(),
        None
    );
    assert!(started.elapsed() >= Duration::from_millis(250));
}

/// `list` returns the existing keys under a prefix, sorted; a deleted artifact is not listed.
fn listing_keys(place: &Place) {
    let seg = place.open();
    let a = seg.attach("a").unwrap();
    assert!(seg.list("").unwrap().is_empty());
    for key in ["task/b", "task/a", "notes/x", "task/c"] {
        a.put(key, b"x").unwrap();
    }
    a.delete("task/c").unwrap();
    assert_eq!(seg.list("task/").unwrap(), ["task/a", "task/b"]);
    assert_eq!(a.list("").unwrap(), ["notes/x", "task/a", "task/b"]);
    assert!(seg.list("zzz").unwrap().is_empty());
    // Another handle on the same segment sees the same.
    assert_eq!(place.open().list("notes/").unwrap(), ["notes/x"]);
}

/// The status snapshot: agents with liveness, artifacts with version, size, writer, holder,
/// and every agent's M/E/S/I state and held version.
fn status_shows_agents_states_and_holders(place: &Place) {
    let seg = place.open();
    let (writer, reader) = (seg.attach("writer").unwrap(), seg.attach("reader").unwrap());
    writer.put("plan", b"12345").unwrap();
    reader.get("plan").unwrap();
    let status = seg.status().unwrap();
    assert_eq!(status.backend, place.backend);
    assert_eq!(status.revision.is_some(), place.is_etcd());
    let names: Vec<&str> = status.agents.iter().map(|a| a.name.as_str()).collect();
    assert!(
        names.contains(&"writer") && names.contains(&"reader"),
        "{names:?}"
    );
    assert!(status.agents.iter().all(|a| a.alive));
    let me = std::process::id();
    assert!(
        status.agents.iter().all(|a| a.pid == Some(me)),
        "{:?}",
        status.agents
    );
    let plan = &status.artifacts[0];
    assert_eq!(
        (
            plan.key.as_str(),
            plan.version,
            plan.size,
            plan.writer.as_deref(),
            plan.deleted
        ),
        ("plan", 1, 5, Some("writer"), false)
    );
    let state = |status: &agent_coherence::Status, agent: &str| {
        let s = status.artifacts[0]
            .states
            .iter()
            .find(|s| s.agent == agent)
            .unwrap();
        (s.state, s.held)
    };
    assert_eq!(state(&status, "reader"), (Mesi::Shared, Some(1)));

    writer.put("plan", b"v2").unwrap();
    let status = seg.status().unwrap();
    assert_eq!(state(&status, "reader"), (Mesi::Invalid, Some(1)));
    let hold = writer.acquire("plan", Duration::from_secs(30)).unwrap();
    let status = seg.status().unwrap();
    assert_eq!(status.artifacts[0].holder.as_deref(), Some("writer"));
    assert_eq!(state(&status, "writer").0, Mesi::Exclusive);
    hold.release().unwrap();
    assert_eq!(seg.status().unwrap().artifacts[0].holder, None);

    drop(reader);
    let status = seg.status().unwrap();
    let reader = status.agents.iter().find(|a| a.name == "reader").unwrap();
    assert!(!reader.alive, "a detached agent is not alive");
}

/// An eager agent receives an event for each write by another agent to a key under its
/// subscriptions, in order, with the writer's name; its own writes are not reported; an
/// unsubscribed prefix stops.
fn eager_agents_receive_events(place: &Place) {
    let seg = place.open();
    let lazy = seg.attach("lazy").unwrap();
    assert!(matches!(
        lazy.subscribe("task/"),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(lazy.try_events(8), Err(Error::InvalidConfig(_))));
    let eager = seg.attach_with("watcher", Strategy::Eager).unwrap();
    assert_eq!(eager.strategy(), Strategy::Eager);
    eager.subscribe("task/").unwrap();
    assert_eq!(eager.subscriptions().unwrap(), ["task/"]);
    assert!(eager.try_events(8).unwrap().events.is_empty());

    lazy.put("task/a", b"1").unwrap();
    lazy.put("other/x", b"1").unwrap();
    eager.put("task/mine", b"1").unwrap();
    lazy.put("task/b", b"1").unwrap();
    lazy.delete("task/a").unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let batch = eager.wait_events(8, Some(Duration::from_secs(10))).unwrap();
        assert_eq!(batch.lost, 0);
        assert!(
            !batch.events.is_empty(),
            "no event within 10 s; got {seen:?}"
        );
        seen.extend(
            batch
                .events
                .into_iter()
                .map(|e| (e.key, e.version, e.writer, e.deleted)),
        );
    }
    let lazy_name = || "lazy".to_owned();
    assert_eq!(
        seen,
        [
            ("task/a".to_owned(), 1, lazy_name(), false),
            ("task/b".to_owned(), 1, lazy_name(), false),
            ("task/a".to_owned(), 2, lazy_name(), true),
        ]
    );

    // Unsubscribed: writes under task/ stop. A write under a new subscription, made after
    // one under task/, arrives alone.
    assert!(eager.unsubscribe("task/").unwrap());
    assert!(!eager.unsubscribe("task/").unwrap());
    eager.subscribe("other/").unwrap();
    assert_eq!(eager.subscriptions().unwrap(), ["other/"]);
    lazy.put("task/c", b"1").unwrap();
    lazy.put("other/y", b"1").unwrap();
    let batch = eager.wait_events(8, Some(Duration::from_secs(10))).unwrap();
    let keys: Vec<&str> = batch.events.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["other/y"]);
}

/// Strategies bound how long a valid copy is served: `access_count:N` for N HITs, `lease:D`
/// for D after the fetch; a peer's write invalidates under either.
fn strategies_bound_hits(place: &Place) {
    let seg = place.open();
    let writer = seg.attach("writer").unwrap();
    writer.put("k", b"v1").unwrap();
    let counted = seg
        .attach_with("counted", Strategy::AccessCount(2))
        .unwrap();
    assert_eq!(counted.strategy(), Strategy::AccessCount(2));
    let hits: Vec<bool> = (0..5).map(|_| counted.get("k").unwrap().hit).collect();
    assert_eq!(hits, [false, true, true, false, true]);

    let leased = seg
        .attach_with("leased", Strategy::Lease(Duration::from_millis(300)))
        .unwrap();
    assert!(!leased.get("k").unwrap().hit);
    assert!(leased.get("k").unwrap().hit);
    std::thread::sleep(Duration::from_millis(400));
    assert!(!leased.get("k").unwrap().hit, "lease over: MISS");
    assert!(leased.get("k").unwrap().hit);
    writer.put("k", b"v2").unwrap();
    assert!(!leased.get("k").unwrap().hit, "a peer's write: MISS");
    assert!(!counted.get("k").unwrap().hit, "a peer's write: MISS");
    assert!(matches!(
        seg.attach_with("bad", Strategy::AccessCount(0)),
        Err(Error::InvalidConfig(_))
    ));
    assert!(matches!(
        seg.attach_with("bad", Strategy::Lease(Duration::ZERO)),
        Err(Error::InvalidConfig(_))
    ));
}

/// What an agent last read (its view) outlives its attach: after detaching and attaching
/// again, a write from that view is still refused once a peer wrote meanwhile.
fn views_outlive_an_attach(place: &Place) {
    let seg = place.open();
    let peer = seg.attach("peer").unwrap();
    peer.put("doc", b"v1").unwrap();
    let agent = seg.attach("agent").unwrap();
    assert_eq!(agent.get("doc").unwrap().version, 1);
    drop(agent);
    peer.put("doc", b"v2").unwrap();
    let agent = place.open().attach("agent").unwrap();
    assert_eq!(agent.check("doc").unwrap().held, Some(1));
    assert_eq!(conflict(agent.put("doc", b"on v1")), (2, 1));
    assert_eq!(agent.get("doc").unwrap().version, 2);
    assert_eq!(agent.put("doc", b"on v2").unwrap(), 3);
}

/// Keys and agent names have the same limits on every backend, with the same errors.
fn names_and_keys_are_checked_alike(place: &Place) {
    let seg = place.open();
    let a = seg.attach("a").unwrap();
    let long_key = "k".repeat(agent_coherence::MAX_KEY_BYTES + 1);
    assert!(matches!(a.put(&long_key, b"x"), Err(Error::BadKey { .. })));
    assert!(matches!(a.put("", b"x"), Err(Error::BadKey { .. })));
    assert!(matches!(a.key(&long_key), Err(Error::BadKey { .. })));
    let longest = "k".repeat(agent_coherence::MAX_KEY_BYTES);
    assert_eq!(a.put(&longest, b"x").unwrap(), 1);
    let long_name = "n".repeat(agent_coherence::MAX_NAME_BYTES + 1);
    assert!(matches!(seg.attach(&long_name), Err(Error::BadName { .. })));
    assert!(matches!(seg.attach(""), Err(Error::BadName { .. })));
    let too_big = vec![0u8; seg.config().max_payload as usize + 1];
    assert!(matches!(
        a.put("big", &too_big),
        Err(Error::PayloadTooLarge { .. })
    ));
}

/// One live process per agent name: a second attach is refused with the holder's pid, and
/// the name is free again once the first detaches.
fn one_live_process_per_agent_name(place: &Place) {
    let seg = place.open();
    let first = seg.attach("solo").unwrap();
    match place.open().attach("solo") {
        Err(Error::AgentBusy { name, pid }) => {
            assert_eq!((name.as_str(), pid), ("solo", std::process::id()));
        }
        other => panic!("expected AgentBusy, got {other:?}"),
    }
    drop(first);
    let again = eventually(Duration::from_secs(10), || seg.attach("solo").ok());
    assert_eq!(again.name(), "solo");
}

/// The operations that exist on shared memory only work there and are refused with
/// `Unsupported` on etcd; flush and durable_puts answer on both.
fn shared_memory_only_operations(place: &Place) {
    let seg = place.open();
    seg.attach("a").unwrap().put("k", b"x").unwrap();
    seg.flush().unwrap();
    assert!(seg.config().max_payload > 0);
    let results = [
        ("fsck", seg.fsck(false).map(drop)),
        ("switches", seg.switches().map(drop)),
        ("set_logging", seg.set_logging(true)),
        ("set_invalidation", seg.set_invalidation(true)),
    ];
    for (what, result) in results {
        match (place.backend, result) {
            (Backend::SharedMemory, Ok(())) => {}
            (Backend::Etcd, Err(Error::Unsupported { backend, .. })) => {
                assert_eq!(backend, Backend::Etcd, "{what}");
            }
            (backend, other) => panic!("{what} on {backend:?}: {other:?}"),
        }
    }
    assert_eq!(seg.durable_puts(), place.is_etcd());
}

/// The operation log records each operation of each agent, with its outcome and versions,
/// and a follower sees new records as they are made.
fn the_operation_log_records_operations(place: &Place) {
    let seg = place.open();
    let mut follower = seg.log_reader().unwrap();
    follower.skip_to_end().unwrap();
    {
        let (writer, reader) = (seg.attach("writer").unwrap(), seg.attach("reader").unwrap());
        writer.put("plan", b"v1").unwrap();
        reader.get("plan").unwrap();
        reader.get("plan").unwrap();
        writer.put("plan", b"v2").unwrap();
        conflict(reader.put("plan", b"on v1"));
        writer.put_blind("plan", b"v3").unwrap();
    } // detached: an etcd agent flushes what it still buffers
    let interesting = |records: &[LogRecord]| -> Vec<(String, LogOp, LogOutcome, u64, u64)> {
        records
            .iter()
            .filter(|r| r.key.as_deref() == Some("plan"))
            .map(|r| (r.agent.clone(), r.op, r.outcome, r.version, r.held))
            .collect()
    };
    let expected = vec![
        ("writer".to_owned(), LogOp::Put, LogOutcome::Ok, 1, 0),
        ("reader".to_owned(), LogOp::Get, LogOutcome::Miss, 1, 0),
        ("reader".to_owned(), LogOp::Get, LogOutcome::Hit, 1, 1),
        ("writer".to_owned(), LogOp::Put, LogOutcome::Ok, 2, 1),
        ("reader".to_owned(), LogOp::Put, LogOutcome::Conflict, 2, 1),
        ("writer".to_owned(), LogOp::Put, LogOutcome::Ok, 3, 2),
    ];
    let records = seg.log_records().unwrap();
    assert_eq!(interesting(&records), expected, "{records:#?}");
    let blind = records.iter().rfind(|r| r.op == LogOp::Put).unwrap();
    assert_eq!(blind.mode, Some(WriteMode::Blind));
    assert_eq!(blind.revision.is_some(), place.is_etcd());
    assert!(trace::diagnose(&records).count(FindingKind::BlindOverwrite) <= 1);

    // The follower, positioned before these operations, sees them too.
    let mut followed = Vec::new();
    eventually(Duration::from_secs(10), || {
        followed.extend(follower.poll().unwrap().records);
        (interesting(&followed).len() >= expected.len()).then_some(())
    });
    assert_eq!(interesting(&followed), expected);
}

/// Processes increment one counter with conditional writes: every admitted increment is in
/// the final value, each admitted write added exactly one version, and every refusal named a
/// newer version than the writer's view.
fn racing_increments_across_processes_lose_nothing(place: &Place) {
    let (processes, wins) = if place.is_etcd() { (3, 15) } else { (4, 200) };
    let seg = place.open();
    seg.attach("init").unwrap().put("counter", b"0").unwrap();
    let mut children: Vec<Proc> = (0..processes)
        .map(|i| place.spawn("incrementer", &[&format!("inc{i}"), &wins.to_string()]))
        .collect();
    for child in &mut children {
        assert_eq!(child.line(), "READY");
    }
    for child in &mut children {
        child.send("go");
    }
    let mut conflicts = 0;
    for mut child in children {
        let done = child.expect("DONE");
        let (won, lost) = done.split_once(' ').unwrap();
        assert_eq!(won.parse::<u64>().unwrap(), wins);
        conflicts += lost.parse::<u64>().unwrap();
        child.wait_ok();
    }
    let total = processes as u64 * wins;
    let read = seg.attach("check").unwrap().get("counter").unwrap();
    assert_eq!(read.bytes, total.to_string().as_bytes());
    assert_eq!(read.version, 1 + total);
    eprintln!("{total} increments, {conflicts} refused and retried");
}

fn incrementer(seg: &str, name: &str, wins: u64) {
    let agent = Segment::open(seg).unwrap().attach(name).unwrap();
    say("READY");
    assert_eq!(common::hear(), "go");
    let (mut won, mut conflicts) = (0u64, 0u64);
    while won < wins {
        let read = agent.get("counter").unwrap();
        let n: u64 = std::str::from_utf8(&read.bytes).unwrap().parse().unwrap();
        match agent.put("counter", (n + 1).to_string().as_bytes()) {
            Ok(version) => {
                assert_eq!(
                    version,
                    read.version + 1,
                    "a write adds exactly one version"
                );
                won += 1;
            }
            Err(Error::Conflict(Conflict { current, yours, .. })) => {
                assert_eq!(yours, read.version, "the refusal names my view");
                assert!(current > yours, "the refusal names a newer version");
                conflicts += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    say(format!("DONE {won} {conflicts}"));
}

/// Across processes: once a writer's `put` has returned, the reader's next read is a MISS on
/// that version (never a HIT on an older one); the read after it is a HIT.
fn no_stale_hit_once_a_put_has_returned_across_processes(place: &Place) {
    let rounds = if place.is_etcd() { 20 } else { 100 };
    let mut writer = place.spawn("scripted", &["writer"]);
    let mut reader = place.spawn("scripted", &["reader"]);
    assert!(writer.expect("READY").parse::<u32>().is_ok());
    assert!(reader.expect("READY").parse::<u32>().is_ok());
    for round in 1..=rounds {
        assert_eq!(
            ask(&mut writer, &format!("put plan r{round}")),
            format!("OK {round}")
        );
        assert_eq!(
            ask(&mut reader, "get plan"),
            format!("MISS {round} r{round}")
        );
        assert_eq!(
            ask(&mut reader, "get plan"),
            format!("HIT {round} r{round}")
        );
    }
    // The reader's view is current; the writer's stale view is refused.
    assert_eq!(
        ask(&mut reader, "put plan by reader"),
        format!("OK {}", rounds + 1)
    );
    assert_eq!(
        ask(&mut writer, "put plan by writer"),
        format!("CONFLICT {} {rounds}", rounds + 1)
    );
    writer.send("quit");
    reader.send("quit");
    writer.wait_ok();
    reader.wait_ok();
}

/// A process blocked in `wait_changed` wakes with the new version when another writes.
fn a_waiter_in_another_process_wakes(place: &Place) {
    let seg = place.open();
    let writer = seg.attach("writer").unwrap();
    writer.put("k", b"1").unwrap();
    let mut waiter = place.spawn("waiter", &["waiter", "1"]);
    assert_eq!(waiter.line(), "READY");
    // Give it time to block (the outcome is the same if it has not yet).
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(writer.put("k", b"2").unwrap(), 2);
    assert_eq!(waiter.expect("CHANGED"), "2");
    waiter.wait_ok();
}

fn waiter(seg: &str, name: &str, since: u64) {
    let agent = Segment::open(seg).unwrap().attach(name).unwrap();
    say("READY");
    match agent
        .wait_changed("k", since, Some(common::PATIENCE))
        .unwrap()
    {
        Some(version) => say(format!("CHANGED {version}")),
        None => say("TIMEOUT"),
    }
}

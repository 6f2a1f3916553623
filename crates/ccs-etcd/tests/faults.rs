//! Faults, each on a private three-member cluster: the etcd leader killed in the middle of a
//! workload (writes continue after re-election, no acknowledged write is lost, no stale HIT),
//! the whole cluster killed and restarted from its data directory (versions continue, an
//! agent that lived through the outage serves no HIT from before it), the quorum lost and
//! returned (every call answers within its bound meanwhile, detaching included), and the
//! leader or a follower paused with SIGSTOP, and the leader cut off from the other members by a
//! network partition (writes go on through the others: no stall for the length of the fault,
//! no stale read).
//!
//! Clusters and their ports come from the etcd test kit (`ccs-etcd-testkit`).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use ccs_etcd::Conflict;
use std::time::{Duration, Instant};

use ccs_etcd::{Cluster, Condition, Error, LogOp, LogOutcome};
use ccs_etcd_testkit::{TestCluster, installed as etcd_installed};
use common::Prefix;

/// Write `value` as version `expected + 1`, retrying through an election. A retried write whose
/// first attempt was applied but not answered shows up as a conflict naming exactly the version
/// it would have written: it is in the cluster, so it counts as written.
fn put_through_faults(agent: &ccs_etcd::EtcdAgent, key: &str, expected: u64, value: &[u8]) -> u64 {
    put_timing_attempts(agent, key, expected, value, |_| {})
}

/// [`put_through_faults`], telling `attempt` how long each call of `put_if` took.
fn put_timing_attempts(
    agent: &ccs_etcd::EtcdAgent,
    key: &str,
    expected: u64,
    value: &[u8],
    mut attempt: impl FnMut(Duration),
) -> u64 {
    let started = Instant::now();
    loop {
        let call = Instant::now();
        let result = agent.put_if(key, expected, value);
        attempt(call.elapsed());
        match result {
            Ok(v) => return v,
            Err(Error::Conflict(Conflict { current, .. })) if current == expected + 1 => {
                return current;
            }
            Err(Error::Unavailable(why)) => {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "no progress: {why}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

fn get_through_faults(agent: &ccs_etcd::EtcdAgent, key: &str) -> ccs_etcd::Read {
    let started = Instant::now();
    loop {
        match agent.get(key) {
            Ok(read) => return read,
            Err(Error::Unavailable(why)) => {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "no progress: {why}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn killing_the_leader_loses_no_acknowledged_write() {
    if !etcd_installed() {
        return;
    }
    let etcd = TestCluster::start();
    let p = Prefix::on(etcd.endpoints(), "leader");
    let writer = Cluster::connect_with(&p.url, common::options()).unwrap();
    let reader = Cluster::connect_with(&p.url, common::options()).unwrap();
    let w = writer.attach("writer").unwrap();
    let r = reader.attach("reader").unwrap();
    const N: u64 = 60;
    let mut killed = None;
    for i in 1..=N {
        if i == N / 3 {
            let leader = etcd.leader();
            etcd.kill(&leader);
            killed = Some((leader, Instant::now()));
        }
        let v = put_through_faults(&w, "k", i - 1, i.to_string().as_bytes());
        assert_eq!(v, i);
        // The put returned: the reader sees it (a MISS), never an older HIT.
        let read = get_through_faults(&r, "k");
        assert_eq!(read.version, i, "stale read after an acknowledged put");
        assert_eq!(read.bytes, i.to_string().as_bytes());
        let again = get_through_faults(&r, "k");
        assert_eq!(again.version, i);
    }
    let (leader, at) = killed.unwrap();
    eprintln!(
        "leader m{leader} killed; {N} writes done {:?} later",
        at.elapsed()
    );
    let fresh = Cluster::connect_with(&p.url, common::options()).unwrap();
    let c = fresh.attach("checker").unwrap();
    let read = get_through_faults(&c, "k");
    assert_eq!((read.version, read.bytes), (N, N.to_string().into_bytes()));

    // The operation log lived through it: the flushers' transactions that failed during the
    // election were sent again after it, and the agents' last records were flushed as they
    // detached.
    drop((w, r));
    let records = fresh.log_records().unwrap();
    for agent in ["writer", "reader"] {
        let mine: Vec<_> = records.iter().filter(|r| r.agent == agent).collect();
        assert_eq!(mine[0].op, LogOp::Attach);
        assert_eq!(mine.last().unwrap().op, LogOp::Detach);
        for (i, r) in mine.iter().enumerate() {
            assert_eq!(r.seq, i as u64, "{agent}: a record is missing before {r:?}");
        }
    }
    // Every version written is in the log: a put that succeeded, or a retried put refused as a
    // conflict naming the version its first attempt wrote.
    let mut versions: Vec<u64> = records
        .iter()
        .filter(|r| r.agent == "writer" && r.op == LogOp::Put)
        .filter(|r| r.outcome == LogOutcome::Ok || r.outcome == LogOutcome::Conflict)
        .map(|r| r.version)
        .collect();
    versions.dedup();
    assert_eq!(versions, (1..=N).collect::<Vec<_>>());
    let errors = records
        .iter()
        .filter(|r| r.outcome == LogOutcome::Error)
        .count();
    eprintln!(
        "log after the leader kill: {} records, {errors} of failed attempts, none missing",
        records.len()
    );
    etcd.revive(&leader);
}

#[test]
fn a_restarted_cluster_continues_versions() {
    if !etcd_installed() {
        return;
    }
    let etcd = TestCluster::start();
    let p = Prefix::on(etcd.endpoints(), "restart");
    let cluster = Cluster::connect_with(&p.url, common::options()).unwrap();
    let a = cluster.attach("a").unwrap();
    let b = cluster.attach("b").unwrap();
    for i in 1..=3u64 {
        assert_eq!(
            a.put("k", i.to_string().as_bytes(), Condition::View)
                .unwrap(),
            i
        );
    }
    assert_eq!(a.put("gone", b"x", Condition::View).unwrap(), 1);
    assert_eq!(a.delete("gone", Condition::View).unwrap(), 2);
    assert!(!b.get("k").unwrap().hit);
    assert!(b.get("k").unwrap().hit);

    for n in ["0", "1", "2"] {
        etcd.kill(n);
    }
    let down = Instant::now();
    // With the cluster down, the reader's copy stops being a HIT once its lease deadline
    // passes (a get then fails: nothing can be fetched).
    std::thread::sleep(Duration::from_secs(3));
    assert!(!b.is_valid("k").unwrap());
    etcd.restart();
    eprintln!("cluster restarted from its data after {:?}", down.elapsed());

    // Its session lease outlived the outage (etcd keeps leases across restarts and extends
    // them), so its registration did too: version 3 is still current, and may be a HIT again.
    let read = get_through_faults(&b, "k");
    assert_eq!(read.version, 3);
    let fresh = Cluster::connect_with(&p.url, common::options()).unwrap();
    let c = fresh.attach("c").unwrap();
    assert!(matches!(c.get("gone"), Err(Error::NotFound { .. })));
    assert_eq!(put_through_faults(&c, "gone", 2, b"back"), 3);
    assert_eq!(put_through_faults(&c, "k", 3, b"4"), 4);
    let read = get_through_faults(&b, "k");
    assert_eq!((read.version, read.hit), (4, false));
}

/// A put whose wait for the acknowledgements failed is in the cluster, unreturned; the caller
/// that retries it is refused with a `Conflict` naming its version and reads that as "my write
/// is in" (as `put_timing_attempts` does). The refusal must come as the write's return would:
/// once no holder still HITs the older version. It was decided on the writer's local copy,
/// which did not say who had written it, and came at once, while a holder still HIT; the stall
/// tests saw the stale read (a paused leader, 1 write in 1,500).
#[test]
fn a_retried_put_whose_ack_wait_failed_is_refused_only_once_the_holders_acknowledge() {
    if !etcd_installed() {
        return;
    }
    let etcd = TestCluster::start();
    let leader = etcd.leader();
    let followers = TestCluster::others(&leader);
    let (stalled, quorum) = (&followers[0], &followers[1]);
    let p = Prefix::on(etcd.endpoints(), "ackwait");
    // Sessions outlive the whole fault: the writer's copy stays coherent (the retry is decided
    // on it), and the reader would HIT its stale copy throughout.
    let options = ccs_etcd::Options {
        session_ttl: Duration::from_secs(30),
        op_timeout: Duration::from_secs(4),
        request_timeout: Duration::from_secs(1),
        ..common::options()
    };
    // The reader reaches the cluster only through `stalled` (paused, it cannot acknowledge);
    // the writer only through the two others (it commits at once, then loses the quorum).
    let members: Vec<&str> = etcd.endpoints().split(',').collect();
    let through = |indices: &[&String]| {
        let endpoints: Vec<&str> = indices
            .iter()
            .map(|i| members[i.parse::<usize>().unwrap()])
            .collect();
        let url = p.url.replacen(
            &ccs_etcd_testkit::hosts(etcd.endpoints()),
            &ccs_etcd_testkit::hosts(&endpoints.join(",")),
            1,
        );
        assert_ne!(url, p.url, "a URL naming only some members");
        url
    };
    let writer = Cluster::connect_with(&through(&[&leader, quorum]), options).unwrap();
    let reader_url = through(&[stalled]);
    let reader = Cluster::connect_with(&reader_url, options).unwrap();
    let w = writer.attach("writer").unwrap();
    let r = reader.attach("reader").unwrap();
    assert_eq!(w.put_if("k", 0, b"1").unwrap(), 1);
    assert_eq!(r.get("k").unwrap().version, 1);
    assert!(r.is_valid("k").unwrap());

    etcd.pause(stalled);
    std::thread::scope(|scope| {
        // Commit with the quorum, then lose it while waiting for the reader.
        scope.spawn(|| {
            std::thread::sleep(Duration::from_secs(1));
            etcd.pause(quorum);
        });
        let first = w.put_if("k", 1, b"2");
        assert!(
            matches!(first, Err(Error::Unavailable(_))),
            "the first put must lose its wait for the acknowledgement: {first:?}"
        );
    });
    assert!(
        w.is_valid("k").unwrap(),
        "the writer's copy of version 2 is coherent: the retry is decided on it"
    );
    assert!(r.is_valid("k").unwrap(), "the reader still HITs version 1");
    etcd.resume(quorum);
    etcd.resume(stalled);
    let started = Instant::now();
    loop {
        match w.put_if("k", 1, b"2") {
            Err(Error::Conflict(Conflict { current: 2, .. })) => break,
            Err(Error::Unavailable(why)) => {
                assert!(started.elapsed() < Duration::from_secs(30), "{why}");
                std::thread::sleep(Duration::from_millis(50));
            }
            other => panic!("the retry must be refused with version 2 current: {other:?}"),
        }
    }
    assert!(
        !r.is_valid("k").unwrap(),
        "the retry was refused while the reader still HIT version 1"
    );
    assert_eq!(get_through_faults(&r, "k").version, 2);
}

/// Test options with a short operation timeout: every call on a cluster without quorum must
/// answer within it (or within its own timeout, for a wait; within the detach timeout, for a
/// drop).
fn short() -> ccs_etcd::Options {
    ccs_etcd::Options {
        op_timeout: Duration::from_secs(3),
        request_timeout: Duration::from_secs(1),
        detach_timeout: Duration::from_secs(2),
        ..common::options()
    }
}

/// How long `f` took, and what it returned.
fn timed<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let started = Instant::now();
    let out = f();
    (started.elapsed(), out)
}

#[test]
fn with_no_quorum_every_call_answers_within_its_bound_and_the_quorum_returns() {
    if !etcd_installed() {
        return;
    }
    let etcd = TestCluster::start();
    let p = Prefix::on(etcd.endpoints(), "quorum");
    let options = short();
    let cluster = Cluster::connect_with(&p.url, options).unwrap();
    let a = cluster.attach("a").unwrap();
    let b = cluster.attach("b").unwrap();
    assert_eq!(a.put("k", b"1", Condition::View).unwrap(), 1);
    assert!(!b.get("k").unwrap().hit);

    let killed = TestCluster::others(&etcd.leader());
    for n in &killed {
        etcd.kill(n);
    }
    let slack = Duration::from_millis(1500);
    // A plain read of a valid copy is served locally (until the session's lease deadline); a
    // linearizable one needs the cluster to confirm the version, and cannot.
    let plain = b.get("k");
    let (took, confirmed) = timed(|| b.get_linearizable("k"));
    eprintln!("no quorum: get {plain:?}, get_linearizable {confirmed:?} after {took:?}");
    assert!(
        matches!(confirmed, Err(Error::Unavailable(_))),
        "{confirmed:?}"
    );
    assert!(took < options.op_timeout + slack, "{took:?}");
    // A wait answers at its timeout, whatever the cluster does.
    let (took, waited) = timed(|| b.wait_changed("k", 1, Some(Duration::from_secs(2))));
    eprintln!("no quorum: wait_changed(2 s) answered {waited:?} after {took:?}");
    assert!(took < Duration::from_secs(2) + slack, "{took:?}");
    assert!(
        matches!(
            waited,
            Ok(ccs_etcd::WaitResult::TimedOut(1)) | Err(Error::Unavailable(_))
        ),
        "{waited:?}"
    );
    // A write and a MISS fail within the operation timeout.
    let (took, put) = timed(|| a.put("k", b"2", Condition::View));
    eprintln!("no quorum: put failed after {took:?}: {put:?}");
    assert!(matches!(put, Err(Error::Unavailable(_))), "{put:?}");
    assert!(took < options.op_timeout + slack, "{took:?}");
    let (took, got) = timed(|| a.get("other"));
    assert!(matches!(got, Err(Error::Unavailable(_))), "{got:?}");
    assert!(took < options.op_timeout + slack, "{took:?}");
    // Detaching (last log records, session revoke) is bounded by the detach timeout.
    let (took, ()) = timed(|| drop(a));
    eprintln!("no quorum: an agent detached in {took:?}");
    assert!(took < options.detach_timeout + slack, "{took:?}");

    // The quorum returns: versions continue, b's copy of version 1 is still the current one
    // (nothing was written), and a new write invalidates it before it returns.
    for n in &killed {
        etcd.revive(n);
    }
    let back = Instant::now();
    let c = cluster.attach("c").unwrap_or_else(|_| {
        std::thread::sleep(Duration::from_secs(2));
        cluster.attach("c").unwrap()
    });
    assert_eq!(get_through_faults(&c, "k").version, 1);
    assert_eq!(put_through_faults(&c, "k", 1, b"2"), 2);
    let read = get_through_faults(&b, "k");
    assert_eq!((read.version, read.hit), (2, false));
    eprintln!(
        "quorum back: writes resumed {:?} after the revival",
        back.elapsed()
    );
}

/// A fault of one member that lasts a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// SIGSTOP, then SIGCONT: a hung server whose sockets stay open.
    Pause,
    /// A network partition between the member and the other two (clients still reach it).
    Isolate,
}

/// What writing through a fault showed.
#[derive(Debug)]
struct Through {
    /// Writes acknowledged while the fault lasted.
    during: u64,
    /// The longest single call of `put_if` made while the fault lasted.
    longest_call: Duration,
}

/// Options of the stall tests. A stall used to last a whole bound: a write sent to a hung
/// leader waited for the operation timeout, a writer whose reader watched through a hung member
/// waited for the acknowledgement timeout (10 s each here). Now a request to a hung member
/// costs a request timeout (1 s), and a watch through it about as much.
fn stall_options() -> ccs_etcd::Options {
    ccs_etcd::Options {
        op_timeout: Duration::from_secs(10),
        ack_timeout: Duration::from_secs(10),
        ..short()
    }
}

/// Write version after version while one member (`leader`: the Raft leader, else a follower)
/// suffers `fault` for `length`, with a reader checking after each write that it sees it (no
/// stale read); go on for a second after the fault.
fn write_through(etcd: &TestCluster, fault: Fault, leader: bool, length: Duration) -> Through {
    let name = format!("{fault:?}-{}", if leader { "leader" } else { "follower" });
    let p = Prefix::on(etcd.endpoints(), &name.to_lowercase());
    let writer = Cluster::connect_with(&p.url, stall_options()).unwrap();
    let reader = Cluster::connect_with(&p.url, stall_options()).unwrap();
    let w = writer.attach("writer").unwrap();
    let r = reader.attach("reader").unwrap();
    let current = etcd.leader();
    let victim = if leader {
        current
    } else {
        TestCluster::others(&current).remove(0)
    };
    let ended: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    std::thread::scope(|scope| {
        let mut on = false;
        let mut during = 0;
        let mut longest_call = Duration::ZERO;
        let mut longest_gap = Duration::ZERO;
        let mut last = Instant::now();
        let mut i = 0u64;
        loop {
            i += 1;
            if i == 10 {
                match fault {
                    Fault::Pause => etcd.pause(&victim),
                    Fault::Isolate => etcd.isolate(&victim),
                }
                on = true;
                last = Instant::now();
                let (victim, ended) = (&victim, &ended);
                scope.spawn(move || {
                    std::thread::sleep(length);
                    match fault {
                        Fault::Pause => etcd.resume(victim),
                        Fault::Isolate => etcd.heal(),
                    }
                    ended.set(Instant::now()).unwrap();
                });
            }
            let v = put_timing_attempts(&w, "k", i - 1, i.to_string().as_bytes(), |took| {
                if on {
                    longest_call = longest_call.max(took);
                }
            });
            assert_eq!(v, i);
            // Acknowledged while the fault lasted if it had not ended after the ack.
            if on && ended.get().is_none() {
                during += 1;
                longest_gap = longest_gap.max(last.elapsed());
                last = Instant::now();
            }
            let read = get_through_faults(&r, "k");
            assert_eq!(read.version, i, "stale read after an acknowledged put");
            assert_eq!(read.bytes, i.to_string().as_bytes());
            if let Some(end) = ended.get() {
                if on {
                    // The time from the last acknowledged write to the fault's end counts too.
                    longest_gap = longest_gap.max(end.saturating_duration_since(last));
                    on = false;
                }
                if end.elapsed() > Duration::from_secs(1) {
                    eprintln!(
                        "{name} (m{victim}) for {length:?}: {i} writes, {during} of them \
                         during the fault; the longest put_if call during it {longest_call:?}, \
                         the longest time without an acknowledged write {longest_gap:?}"
                    );
                    return Through {
                        during,
                        longest_call,
                    };
                }
            }
        }
    })
}

/// The claims of the stall tests: writes were acknowledged while the member was hung or cut
/// off (failover: a paused or isolated leader commits nothing, so a new leader took them), and
/// no call waited for the bound it used to wait for (which it did by construction: a request
/// bound by the operation timeout, a wait for an acknowledgement bound by its timeout; the
/// fault lasts 2 s longer than that bound).
fn assert_no_stall(through: &Through) {
    let options = stall_options();
    let bound = options.op_timeout.min(options.ack_timeout);
    assert!(
        through.during >= 1,
        "no write acknowledged during the fault"
    );
    assert!(
        through.longest_call < bound,
        "a put_if call took {:?}: it waited for the {bound:?} a stall used to last",
        through.longest_call
    );
}

/// Long enough that a stall for the whole fault exceeds the bound of [`assert_no_stall`].
const FAULT_LENGTH: Duration = Duration::from_secs(12);

/// Write through `fault` of the leader or a follower, on a cluster of its own, and check the
/// claims of [`assert_no_stall`].
fn no_stall_through(fault: Fault, leader: bool) {
    if !etcd_installed() {
        return;
    }
    let etcd = match fault {
        Fault::Pause => TestCluster::start(),
        Fault::Isolate => match TestCluster::start_partitionable() {
            Some(etcd) => etcd,
            None => return,
        },
    };
    assert_no_stall(&write_through(&etcd, fault, leader, FAULT_LENGTH));
}

#[test]
fn a_paused_leader_does_not_stall_writes_for_the_pause() {
    // With one bound per request (the operation timeout, 10 s) a request sent to the paused
    // leader hung for 10 s; now for a request timeout (1 s).
    no_stall_through(Fault::Pause, true);
}

#[test]
fn a_paused_follower_does_not_stall_writes() {
    // A reader whose watch is on the paused member cannot acknowledge: the writer waited for
    // its ack timeout (10 s; measured 10.1 s). Its watcher now notices the silent member and
    // watches elsewhere.
    no_stall_through(Fault::Pause, false);
}

#[test]
fn an_isolated_leader_does_not_stall_writes_nor_serve_stale_reads() {
    // The leader cut off from the other members (a network partition; it still answers
    // clients, and steps down once it hears from no majority): writes go on through the
    // majority's new leader, and a reader never sees an older version than the last write
    // returned.
    no_stall_through(Fault::Isolate, true);
}

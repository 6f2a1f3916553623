//! Faults, each on a private three-member cluster: the etcd leader killed in the middle of a
//! workload (writes continue after re-election, no acknowledged write is lost, no stale HIT),
//! the whole cluster killed and restarted from its data directory (versions continue, an
//! agent that lived through the outage serves no HIT from before it), the quorum lost and
//! returned (every call answers within its bound meanwhile, detaching included), and the
//! leader or a follower paused with SIGSTOP (writes go on through the others: no stall for the
//! length of the pause, no stale read).
//!
//! Ports: `CCS_ETCD_PORT_BASE` + 8 × (slot + 1) when that variable is set (a private range per
//! developer or CI job), else derived from the pid as below.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use ccs_etcd::{Cluster, Condition, Error, LogOp, LogOutcome};
use common::{Prefix, cluster_cmd, start_private};

/// Ports of this process's fault cluster `slot`: apart from the other tests' (24000-26501)
/// and below the ephemeral range (32768 on).
fn base(slot: u16) -> u16 {
    match common::port_base() {
        Some(base) => base + 8 * (slot + 1),
        None => 26600 + slot * 2600 + (std::process::id() % 300) as u16 * 8,
    }
}

fn etcd_installed() -> bool {
    let ok = std::process::Command::new("etcd")
        .arg("--version")
        .output()
        .is_ok();
    if !ok {
        eprintln!("\n*** SKIPPING fault tests: etcd is not installed ***\n");
    }
    ok
}

/// Write `value` as version `expected + 1`, retrying through an election. A retried write whose
/// first attempt was applied but not answered shows up as a conflict naming exactly the version
/// it would have written: it is in the cluster, so it counts as written.
fn put_through_faults(agent: &ccs_etcd::EtcdAgent, key: &str, expected: u64, value: &[u8]) -> u64 {
    let started = Instant::now();
    loop {
        match agent.put_if(key, expected, value) {
            Ok(v) => return v,
            Err(Error::Conflict { current, .. }) if current == expected + 1 => return current,
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
    let base = base(0);
    let (endpoints, _dir, _) = start_private(Some(base));
    let p = Prefix::on(&endpoints, "leader");
    let writer = Cluster::connect_with(&p.url, common::options()).unwrap();
    let reader = Cluster::connect_with(&p.url, common::options()).unwrap();
    let w = writer.attach("writer").unwrap();
    let r = reader.attach("reader").unwrap();
    const N: u64 = 60;
    let mut killed = None;
    for i in 1..=N {
        if i == N / 3 {
            let leader = cluster_cmd(base, &["leader"]).trim().to_owned();
            cluster_cmd(base, &["kill", &leader]);
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
    cluster_cmd(base, &["revive", &leader]);
}

#[test]
fn a_restarted_cluster_continues_versions() {
    if !etcd_installed() {
        return;
    }
    let base = base(1);
    let (endpoints, _dir, _) = start_private(Some(base));
    let p = Prefix::on(&endpoints, "restart");
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
        cluster_cmd(base, &["kill", n]);
    }
    let down = Instant::now();
    // With the cluster down, the reader's copy stops being a HIT once its lease deadline
    // passes (a get then fails: nothing can be fetched).
    std::thread::sleep(Duration::from_secs(3));
    assert!(!b.is_valid("k").unwrap());
    cluster_cmd(base, &["start"]);
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
    let base = base(2);
    let (endpoints, _dir, _) = start_private(Some(base));
    let p = Prefix::on(&endpoints, "quorum");
    let options = short();
    let cluster = Cluster::connect_with(&p.url, options).unwrap();
    let a = cluster.attach("a").unwrap();
    let b = cluster.attach("b").unwrap();
    assert_eq!(a.put("k", b"1", Condition::View).unwrap(), 1);
    assert!(!b.get("k").unwrap().hit);

    let leader = cluster_cmd(base, &["leader"]).trim().to_owned();
    let killed: Vec<String> = ["0", "1", "2"]
        .into_iter()
        .filter(|n| *n != leader)
        .map(str::to_owned)
        .collect();
    for n in &killed {
        cluster_cmd(base, &["kill", n]);
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
        cluster_cmd(base, &["revive", n]);
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

/// Write version after version through a SIGSTOP of one member (`leader`: the Raft leader,
/// else a follower) for `pause`, with a reader checking after each write that it sees it (no
/// stale read); return the longest time between two successive acknowledged writes.
fn longest_gap_through_a_pause(slot: u16, leader: bool, pause: Duration) -> Duration {
    // One pause test at a time: they measure stalls, on a machine the other tests load.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let base = base(slot);
    let (endpoints, _dir, _) = start_private(Some(base));
    let p = Prefix::on(
        &endpoints,
        if leader {
            "pause-leader"
        } else {
            "pause-follower"
        },
    );
    // The default operation timeout (10 s): only the request timeout bounds a stall.
    let options = ccs_etcd::Options {
        op_timeout: Duration::from_secs(10),
        ..short()
    };
    let writer = Cluster::connect_with(&p.url, options).unwrap();
    let reader = Cluster::connect_with(&p.url, options).unwrap();
    let w = writer.attach("writer").unwrap();
    let r = reader.attach("reader").unwrap();
    let current = cluster_cmd(base, &["leader"]).trim().to_owned();
    let victim = if leader {
        current
    } else {
        ["0", "1", "2"]
            .into_iter()
            .find(|n| *n != current)
            .unwrap()
            .to_owned()
    };
    let mut resumer: Option<std::thread::JoinHandle<()>> = None;
    let mut longest = Duration::ZERO;
    let mut last = Instant::now();
    let mut paused_at = None;
    let mut i = 0u64;
    loop {
        i += 1;
        if i == 10 {
            cluster_cmd(base, &["pause", &victim]);
            paused_at = Some(Instant::now());
            let victim = victim.clone();
            resumer = Some(std::thread::spawn(move || {
                std::thread::sleep(pause);
                cluster_cmd(base, &["resume", &victim]);
            }));
        }
        let v = put_through_faults(&w, "k", i - 1, i.to_string().as_bytes());
        assert_eq!(v, i);
        let now = Instant::now();
        longest = longest.max(now - last);
        last = now;
        let read = get_through_faults(&r, "k");
        assert_eq!(read.version, i, "stale read after an acknowledged put");
        assert_eq!(read.bytes, i.to_string().as_bytes());
        if resumer.as_ref().is_some_and(|t| t.is_finished())
            && paused_at.is_some_and(|t| t.elapsed() > pause + Duration::from_secs(1))
        {
            break;
        }
    }
    resumer.unwrap().join().unwrap();
    eprintln!(
        "{} m{victim} paused for {pause:?}: {i} writes, longest gap between writes {longest:?}",
        if leader { "leader" } else { "follower" }
    );
    longest
}

#[test]
#[ignore = "a wall-clock gap bound on a shared 2-core machine is flaky in CI (8.2 s once against 8 s): run with --ignored, see docs/reliability.md"]
fn a_paused_leader_does_not_stall_writes_for_the_pause() {
    if !etcd_installed() {
        return;
    }
    // With one bound per request (the operation timeout, 10 s) a request sent to the paused
    // leader stalled for 10-12 s. Now: about two request timeouts (~3 s here, up to ~5 s
    // under load).
    let pause = Duration::from_secs(12);
    let longest = longest_gap_through_a_pause(3, true, pause);
    assert!(
        longest < Duration::from_secs(8),
        "writes stalled for {longest:?}"
    );
}

#[test]
#[ignore = "a wall-clock gap bound on a shared 2-core machine is flaky in CI (8.2 s once against 8 s): run with --ignored, see docs/reliability.md"]
fn a_paused_follower_does_not_stall_writes() {
    if !etcd_installed() {
        return;
    }
    // A reader whose watch is on the paused member cannot acknowledge: the writer waited for
    // its ack timeout (10 s; measured 10.1 s). Its watcher now notices the silent member and watches elsewhere.
    let pause = Duration::from_secs(12);
    let longest = longest_gap_through_a_pause(4, false, pause);
    assert!(
        longest < Duration::from_secs(8),
        "writes stalled for {longest:?}"
    );
}

//! Faults, each on a private three-member cluster: the etcd leader killed in the middle of a
//! workload (writes continue after re-election, no acknowledged write is lost, no stale HIT),
//! and the whole cluster killed and restarted from its data directory (versions continue, an
//! agent that lived through the outage serves no HIT from before it).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use ccs_etcd::{Cluster, Condition, Error, LogOp, LogOutcome};
use common::{Prefix, cluster_cmd, start_private};

/// Ports of this process's fault cluster `slot`: apart from the other tests' (24000-26501)
/// and below the ephemeral range (32768 on).
fn base(slot: u16) -> u16 {
    26600 + slot * 2600 + (std::process::id() % 300) as u16 * 8
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

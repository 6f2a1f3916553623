//! The facade's semantics on a real etcd cluster, agents in one process: the MISS / HIT /
//! invalidate / conflict story, versions across delete and re-create, holds and fencing,
//! names, status, list.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use ccs_etcd::{Conflict, Held};
use std::time::Duration;

use ccs_etcd::{Cluster, Condition, Error, Mesi, WaitResult};
use common::Prefix;

#[test]
fn a_linearizable_read_confirms_the_version_with_the_cluster() {
    let Some(p) = Prefix::new("linearizable") else {
        return;
    };
    let cluster = p.cluster();
    let w = cluster.attach("w").unwrap();
    let r = cluster.attach("r").unwrap();
    assert!(matches!(
        r.get_linearizable("k"),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(w.put("k", b"v1", Condition::View).unwrap(), 1);
    let read = r.get_linearizable("k").unwrap();
    assert_eq!(
        (read.bytes.as_slice(), read.version, read.hit),
        (&b"v1"[..], 1, false)
    );
    // Confirmed current: the local copy is served (a HIT after one round trip).
    let read = r.get_linearizable("k").unwrap();
    assert_eq!((read.version, read.hit), (1, true));
    assert_eq!(w.put("k", b"v2", Condition::View).unwrap(), 2);
    let read = r.get_linearizable("k").unwrap();
    assert_eq!(
        (read.bytes.as_slice(), read.version, read.hit),
        (&b"v2"[..], 2, false)
    );
    assert!(r.get("k").unwrap().hit);
    assert_eq!(w.delete("k", Condition::View).unwrap(), 3);
    assert!(matches!(
        r.get_linearizable("k"),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn miss_hit_invalidate_conflict() {
    let Some(p) = Prefix::new("story") else {
        return;
    };
    let cluster = p.cluster();
    let planner = cluster.attach("planner").unwrap();
    let executor = cluster.attach("executor").unwrap();

    assert!(matches!(executor.get("plan"), Err(Error::NotFound { .. })));
    assert_eq!(planner.put("plan", b"v1", Condition::View).unwrap(), 1);
    let read = executor.get("plan").unwrap();
    assert_eq!(
        (read.bytes.as_slice(), read.version, read.hit),
        (&b"v1"[..], 1, false)
    );
    let read = executor.get("plan").unwrap();
    assert_eq!((read.version, read.hit), (1, true));
    assert!(executor.is_valid("plan").unwrap());
    assert!(executor.check("plan").unwrap().is_current());

    assert_eq!(planner.put("plan", b"v2", Condition::View).unwrap(), 2);
    // The put returned: the executor's copy is invalid already, locally.
    assert!(!executor.is_valid("plan").unwrap());
    let check = executor.check("plan").unwrap();
    assert_eq!(
        (check.held, check.current, check.valid),
        (Some(1), 2, false)
    );
    match executor.put("plan", b"built on v1", Condition::View) {
        Err(Error::Conflict(Conflict {
            current: 2,
            yours: 1,
            ..
        })) => {}
        other => panic!("{other:?}"),
    }
    let read = executor.get("plan").unwrap();
    assert_eq!(
        (read.bytes.as_slice(), read.version, read.hit),
        (&b"v2"[..], 2, false)
    );
    assert_eq!(executor.put("plan", b"v3", Condition::View).unwrap(), 3);
    // The writer holds its own version.
    assert!(executor.get("plan").unwrap().hit);
    assert!(!planner.get("plan").unwrap().hit);

    // put_if and blind.
    match planner.put_if("plan", 2, b"x") {
        Err(Error::Conflict(Conflict {
            current: 3,
            yours: 2,
            ..
        })) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(planner.put_if("plan", 3, b"v4").unwrap(), 4);
    assert_eq!(executor.put("plan", b"v5", Condition::Blind).unwrap(), 5);
    assert_eq!(planner.put_if("new", 0, b"first").unwrap(), 1);
}

#[test]
fn versions_survive_delete_and_recreate() {
    let Some(p) = Prefix::new("versions") else {
        return;
    };
    let cluster = p.cluster();
    let a = cluster.attach("a").unwrap();
    let b = cluster.attach("b").unwrap();
    a.put("k", b"1", Condition::View).unwrap();
    a.put("k", b"2", Condition::View).unwrap();
    b.get("k").unwrap();
    assert_eq!(a.delete("k", Condition::View).unwrap(), 3);
    assert!(!b.is_valid("k").unwrap());
    assert!(matches!(b.get("k"), Err(Error::NotFound { .. })));
    assert!(matches!(
        a.delete("k", Condition::View),
        Err(Error::NotFound { .. })
    ));
    assert!(cluster.list("").unwrap().is_empty());
    assert_eq!(a.put("k", b"again", Condition::View).unwrap(), 4);
    assert_eq!(b.get("k").unwrap().version, 4);
    assert_eq!(cluster.list("").unwrap(), ["k"]);
    // A new handle on the same prefix sees the same versions.
    let other = Cluster::connect_with(&p.url, common::options()).unwrap();
    let c = other.attach("c").unwrap();
    assert_eq!(c.get("k").unwrap().version, 4);
}

#[test]
fn holds_leases_and_fencing() {
    let Some(p) = Prefix::new("holds") else {
        return;
    };
    let cluster = p.cluster();
    let a = cluster.attach("a").unwrap();
    let b = cluster.attach("b").unwrap();
    a.put("doc", b"v1", Condition::View).unwrap();
    b.get("doc").unwrap();

    let hold = a.acquire("doc", Duration::from_secs(30)).unwrap();
    assert_eq!(hold.version(), 1);
    match b.acquire("doc", Duration::from_secs(30)) {
        Err(Error::Held(Held { by, .. })) => assert_eq!(by, "a"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        a.acquire("doc", Duration::from_secs(1)),
        Err(Error::Held { .. })
    ));
    match b.put("doc", b"sneak", Condition::Blind) {
        Err(Error::Held(Held { by, .. })) => assert_eq!(by, "a"),
        other => panic!("{other:?}"),
    }
    let status = cluster.status().unwrap();
    let doc = &status.artifacts[0];
    assert_eq!(doc.holder.as_deref(), Some("a"));
    assert_eq!(doc.states[0].state, Mesi::Exclusive);
    assert_eq!(a.commit(hold, b"v2").unwrap(), 2);
    assert!(!b.is_valid("doc").unwrap());

    // Released holds free the artifact.
    let hold = b.acquire("doc", Duration::from_secs(30)).unwrap();
    b.release(hold).unwrap();

    // A holder past its lease is fenced; its lease is etcd's (whole seconds).
    let mut hold = a.acquire("doc", Duration::from_secs(1)).unwrap();
    a.renew(&mut hold, Duration::from_secs(1)).unwrap();
    std::thread::sleep(Duration::from_millis(3000));
    let taken = b.acquire("doc", Duration::from_secs(30)).unwrap();
    assert!(matches!(a.commit(hold, b"late"), Err(Error::Fenced { .. })));
    assert_eq!(b.commit(taken, b"v3").unwrap(), 3);
    assert_eq!(a.get("doc").unwrap().bytes, b"v3");

    // A hold whose holder's session is gone is reclaimed at once.
    let hold = a.acquire("doc", Duration::from_secs(60)).unwrap();
    drop(hold); // the Hold is only a token: dropping it keeps the hold in the cluster
    drop(a);
    let reclaimed = b.acquire("doc", Duration::from_secs(30)).unwrap();
    assert_eq!(b.commit(reclaimed, b"v4").unwrap(), 4);
}

#[test]
fn names_are_exclusive_and_status_shows_states() {
    let Some(p) = Prefix::new("names") else {
        return;
    };
    let cluster = p.cluster();
    let a = cluster.attach("a").unwrap();
    match cluster.attach("a") {
        Err(Error::AgentBusy { name, .. }) => assert_eq!(name, "a"),
        other => panic!("{other:?}"),
    }
    let b = cluster.attach("b").unwrap();
    a.put("x", b"1", Condition::View).unwrap();
    a.put("y/z", b"1", Condition::View).unwrap();
    b.get("x").unwrap();
    let status = cluster.status().unwrap();
    assert_eq!(status.agents.len(), 2);
    assert!(status.agents.iter().all(|s| s.alive));
    let x = &status.artifacts[0];
    assert_eq!(
        (x.key.as_str(), x.version, x.writer.as_deref()),
        ("x", 1, Some("a"))
    );
    let letters: String = x.states.iter().map(|s| s.state.letter()).collect();
    assert_eq!(letters, "SS");
    a.put("x", b"2", Condition::View).unwrap();
    let status = cluster.status().unwrap();
    let letters: String = status.artifacts[0]
        .states
        .iter()
        .map(|s| s.state.letter())
        .collect();
    assert_eq!(letters, "SI");
    assert_eq!(status.artifacts[0].states[1].held, Some(1));
    assert_eq!(cluster.list("y/").unwrap(), ["y/z"]);
    drop(a);
    let status = cluster.status().unwrap();
    assert!(!status.agents[0].alive && status.agents[1].alive);
    // The name is free again; its view persisted.
    let a = cluster.attach("a").unwrap();
    assert_eq!(a.check("x").unwrap().held, Some(2));
    assert!(matches!(cluster.attach(""), Err(Error::BadName { .. })));
    assert!(matches!(a.get(""), Err(Error::BadKey { .. })));
    assert!(matches!(
        Cluster::connect("http://x/y"),
        Err(Error::BadUrl { .. })
    ));
}

#[test]
fn wait_changed_and_events_in_process() {
    let Some(p) = Prefix::new("wait") else { return };
    let cluster = p.cluster();
    let a = cluster.attach("a").unwrap();
    let b = cluster.attach_with("b", ccs_etcd::Strategy::Eager).unwrap();
    assert!(matches!(
        b.wait_changed("k", 0, Some(Duration::from_millis(10))),
        Err(Error::NotFound { .. })
    ));
    a.put("k", b"1", Condition::View).unwrap();
    assert_eq!(
        b.wait_changed("k", 0, None).unwrap(),
        WaitResult::Changed(1)
    );
    assert_eq!(
        b.wait_changed("k", 1, Some(Duration::from_millis(200)))
            .unwrap(),
        WaitResult::TimedOut(1)
    );
    b.subscribe("k").unwrap();
    assert!(matches!(a.subscribe("k"), Err(Error::InvalidConfig(_))));
    a.put("k", b"2", Condition::View).unwrap();
    a.put("other", b"x", Condition::View).unwrap();
    let events = b.wait_events(10, Some(Duration::from_secs(10)));
    assert_eq!(events.events.len(), 1);
    assert_eq!(
        (events.events[0].version, events.events[0].writer.as_str()),
        (2, "a")
    );
    assert!(b.try_events(10).events.is_empty());
}

#[test]
fn handles_are_send_and_sync() {
    fn both<T: Send + Sync>() {}
    both::<Cluster>();
    both::<ccs_etcd::EtcdAgent>();
    both::<ccs_etcd::Hold>();
    both::<Error>();
}

/// A registered holder that never acknowledges but keeps its lease alive (a stuck watcher,
/// simulated with a raw etcd client): after the ack timeout the writer revokes its lease and
/// waits one granted TTL, then returns.
#[test]
fn a_holder_that_never_acknowledges_is_revoked_after_the_ack_timeout() {
    let Some(p) = Prefix::new("stuck") else {
        return;
    };
    let options = ccs_etcd::Options {
        ack_timeout: Duration::from_secs(1),
        ..common::options()
    };
    let cluster = Cluster::connect_with(&p.url, options).unwrap();
    let w = cluster.attach("writer").unwrap();
    w.put("k", b"1", Condition::View).unwrap();

    let endpoints: Vec<String> = common::endpoints()
        .unwrap()
        .split(',')
        .map(str::to_owned)
        .collect();
    let layout = ccs_etcd::layout::Layout::new(p.url.rsplit('/').next().unwrap());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (mut client, lease) = runtime.block_on(async {
        let mut client = etcd_client::Client::connect(&endpoints, None)
            .await
            .unwrap();
        let lease = client.lease_grant(2, None).await.unwrap().id();
        let options = etcd_client::PutOptions::new().with_lease(lease);
        client
            .put(layout.copy("k", "ghost"), "1", Some(options))
            .await
            .unwrap();
        (client, lease)
    });
    let keeper = runtime.spawn({
        let mut client = client.clone();
        async move {
            let (mut keeper, mut stream) = client.lease_keep_alive(lease).await.unwrap();
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if keeper.keep_alive().await.is_err() {
                    return;
                }
                match stream.message().await {
                    Ok(Some(resp)) if resp.ttl() > 0 => {}
                    _ => return,
                }
            }
        }
    });

    let started = std::time::Instant::now();
    assert_eq!(w.put("k", b"2", Condition::View).unwrap(), 2);
    let took = started.elapsed();
    let stats = w.last_write();
    assert_eq!((stats.holders, stats.revoked), (1, 1));
    // 1 s of ack timeout, then one granted TTL (2 s).
    assert!(took >= Duration::from_millis(2900), "{took:?}");
    let left =
        runtime.block_on(async { client.lease_time_to_live(lease, None).await.unwrap().ttl() });
    assert!(left <= 0, "the silent holder's lease was not revoked");
    keeper.abort();
}

//! The claims about processes, with real processes (this test binary re-executed in a role)
//! on a real three-member etcd cluster: no lost update among racing conditional writers, no
//! stale HIT once a put has returned (and a stopped reader holds the writer until its session
//! lease expires), a dead holder's hold reclaimed, waits and subscriptions across processes.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use ccs_etcd::{Conflict, Held};
use std::time::{Duration, Instant};

use ccs_etcd::{Cluster, Condition, Error, Strategy, WaitResult};
use common::{Prefix, Proc, arg, hear, say};

#[test]
fn child_entry() {
    common::child_main(|role, url, args| {
        let cluster = Cluster::connect_with(url, common::options()).unwrap();
        match role {
            "incrementer" => incrementer(&cluster, &args[0], arg(args, 1)),
            "reader" => reader(&cluster, &args[0], &args[1]),
            "waiter" => waiter(&cluster, &args[0], &args[1], arg(args, 2)),
            "subscriber" => subscriber(&cluster, &args[0], &args[1], arg(args, 2)),
            "holder" => holder(&cluster, &args[0], &args[1]),
            "stopped-holder" => stopped_holder(&cluster, &args[0], &args[1]),
            other => panic!("unknown role {other}"),
        }
    });
}

fn incrementer(cluster: &Cluster, name: &str, wins: u64) {
    let agent = cluster.attach(name).unwrap();
    say("READY");
    assert_eq!(hear(), "go");
    let (mut won, mut conflicts) = (0u64, 0u64);
    while won < wins {
        let read = agent.get("counter").unwrap();
        let n: u64 = std::str::from_utf8(&read.bytes).unwrap().parse().unwrap();
        match agent.put("counter", (n + 1).to_string().as_bytes(), Condition::View) {
            Ok(version) => {
                assert_eq!(
                    version,
                    read.version + 1,
                    "a write must add exactly one version"
                );
                won += 1;
            }
            Err(Error::Conflict(Conflict { current, yours, .. })) => {
                assert!(current > yours);
                conflicts += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    say(&format!("DONE {won} {conflicts}"));
}

fn reader(cluster: &Cluster, name: &str, key: &str) {
    let agent = cluster.attach(name).unwrap();
    say("READY");
    loop {
        match hear().as_str() {
            "get" => {
                let read = agent.get(key).unwrap();
                say(&format!(
                    "GOT {} {} {}",
                    read.version,
                    read.hit,
                    String::from_utf8_lossy(&read.bytes)
                ));
            }
            "deadline" => {
                let left = agent
                    .session_deadline()
                    .and_then(|d| d.checked_duration_since(Instant::now()))
                    .map_or(0, |d| d.as_millis());
                say(&format!("DEADLINE {left}"));
            }
            "quit" | "" => return,
            other => panic!("unknown order {other}"),
        }
    }
}

fn waiter(cluster: &Cluster, name: &str, key: &str, since: u64) {
    let agent = cluster.attach(name).unwrap();
    say("READY");
    match agent
        .wait_changed(key, since, Some(Duration::from_secs(30)))
        .unwrap()
    {
        WaitResult::Changed(v) => say(&format!("CHANGED {v}")),
        WaitResult::TimedOut(v) => say(&format!("TIMEDOUT {v}")),
    }
}

fn subscriber(cluster: &Cluster, name: &str, prefix: &str, n: usize) {
    let agent = cluster.attach_with(name, Strategy::Eager).unwrap();
    agent.subscribe(prefix).unwrap();
    say("READY");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < n && Instant::now() < deadline {
        let events = agent.wait_events(n - got.len(), Some(Duration::from_secs(1)));
        assert_eq!(events.lost, 0);
        got.extend(events.events);
    }
    for e in got {
        say(&format!(
            "EVENT {} {} {} {}",
            e.key, e.version, e.writer, e.deleted
        ));
    }
    say("END");
}

fn holder(cluster: &Cluster, name: &str, key: &str) {
    let agent = cluster.attach(name).unwrap();
    let hold = agent.acquire(key, Duration::from_secs(60)).unwrap();
    say(&format!("HELD {}", hold.token()));
    hear();
}

/// Read `key`, hold it for 1 s, and when told, try to commit and read again; report both.
fn stopped_holder(cluster: &Cluster, name: &str, key: &str) {
    let agent = cluster.attach(name).unwrap();
    agent.get(key).unwrap();
    let hold = agent.acquire(key, Duration::from_secs(1)).unwrap();
    say("HELD");
    hear();
    match agent.commit(hold, b"late") {
        Ok(v) => say(&format!("COMMITTED {v}")),
        Err(Error::Fenced { .. }) => say("FENCED"),
        Err(e) => say(&format!("ERR {e:?}")),
    }
    // The session may have been lost while stopped: a fresh handle reads as a new process would.
    let read = match agent.get(key) {
        Ok(read) => read,
        Err(_) => cluster.attach(name).unwrap().get(key).unwrap(),
    };
    say(&format!("READ {} {}", read.version, read.hit));
    hear();
}

#[test]
fn racing_conditional_increments_lose_nothing() {
    let Some(p) = Prefix::new("race") else { return };
    let cluster = p.cluster();
    let setup = cluster.attach("setup").unwrap();
    setup.put("counter", b"0", Condition::View).unwrap();
    const PROCS: usize = 4;
    const WINS: u64 = 15;
    let mut procs: Vec<Proc> = (0..PROCS)
        .map(|i| {
            Proc::spawn(
                "incrementer",
                &p.url,
                &[&format!("inc{i}"), &WINS.to_string()],
            )
        })
        .collect();
    for proc in &procs {
        proc.expect("READY");
    }
    for proc in &mut procs {
        proc.tell("go");
    }
    let mut conflicts = 0u64;
    for proc in &procs {
        let rest = proc.expect("DONE");
        let mut parts = rest.split(' ');
        assert_eq!(parts.next().unwrap().parse::<u64>().unwrap(), WINS);
        conflicts += parts.next().unwrap().parse::<u64>().unwrap();
    }
    let total = PROCS as u64 * WINS;
    let read = setup.get("counter").unwrap();
    assert_eq!(
        read.bytes,
        total.to_string().as_bytes(),
        "an increment was lost"
    );
    assert_eq!(read.version, total + 1);
    eprintln!("{total} increments by {PROCS} processes, {conflicts} refused as stale");
    for proc in procs {
        proc.wait_ok();
    }
}

#[test]
fn no_stale_hit_after_put_returns_across_processes() {
    let Some(p) = Prefix::new("stale") else {
        return;
    };
    let cluster = p.cluster();
    let writer = cluster.attach("writer").unwrap();
    writer.put("spec", b"1", Condition::View).unwrap();
    let mut reader = Proc::spawn("reader", &p.url, &["reader", "spec"]);
    reader.expect("READY");
    reader.tell("get");
    assert_eq!(reader.expect("GOT"), "1 false 1");
    for round in 2..=12u64 {
        reader.tell("get");
        assert_eq!(
            reader.expect("GOT"),
            format!("{} true {}", round - 1, round - 1)
        );
        let v = writer
            .put("spec", round.to_string().as_bytes(), Condition::Blind)
            .unwrap();
        assert_eq!(v, round);
        // The put has returned: the reader's next get must be a MISS that sees it.
        reader.tell("get");
        assert_eq!(reader.expect("GOT"), format!("{round} false {round}"));
    }
    reader.tell("quit");
    reader.wait_ok();
}

/// `writer` puts version 1 of "spec", and a reader process reads it twice (a MISS, then a
/// HIT): it holds a registered copy.
fn reader_holding_version_1(p: &Prefix, writer: &ccs_etcd::EtcdAgent) -> Proc {
    writer.put("spec", b"1", Condition::View).unwrap();
    let mut reader = Proc::spawn("reader", &p.url, &["reader", "spec"]);
    reader.expect("READY");
    reader.tell("get");
    assert_eq!(reader.expect("GOT"), "1 false 1");
    reader.tell("get");
    assert_eq!(reader.expect("GOT"), "1 true 1");
    reader
}

/// A stopped holder never acknowledges: the `what` (a put, a refusal) waited for its session
/// lease to expire (TTL 2 s, renewed every 2/3 s), and not for the ack timeout (10 s, then
/// revocation).
fn assert_waited_for_the_stopped_lease(waited: Duration, what: &str) {
    assert!(
        waited >= Duration::from_millis(1000),
        "the {what} did not wait: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(9),
        "the {what} waited for the ack timeout: {waited:?}"
    );
}

/// The stopped reader, continued, reads version 2 with a MISS, then quits.
fn continued_reader_reads_version_2(mut reader: Proc) {
    reader.signal("CONT");
    reader.tell("get");
    assert_eq!(reader.expect("GOT"), "2 false 2");
    reader.tell("quit");
    reader.wait_ok();
}

#[test]
fn a_stopped_reader_holds_the_writer_until_its_lease_expires() {
    let Some(p) = Prefix::new("sigstop") else {
        return;
    };
    let cluster = p.cluster();
    let writer = cluster.attach("writer").unwrap();
    let mut reader = reader_holding_version_1(&p, &writer);
    reader.tell("deadline");
    let left: u64 = reader.expect("DEADLINE").parse().unwrap();
    let told = Instant::now();
    reader.signal("STOP");
    let local_deadline = told + Duration::from_millis(left);

    let started = Instant::now();
    assert_eq!(writer.put("spec", b"2", Condition::View).unwrap(), 2);
    let returned = Instant::now();
    let waited = returned - started;
    assert_waited_for_the_stopped_lease(waited, "put");
    let slack = returned.saturating_duration_since(local_deadline);
    assert!(
        returned > local_deadline,
        "the lease expired before the reader's local deadline"
    );
    eprintln!(
        "put waited {waited:?} for the stopped reader; it returned {slack:?} after the reader's local deadline"
    );

    continued_reader_reads_version_2(reader);
}

/// Version 2 of `key` written as `writer` writes it, straight into etcd, with none of the
/// waiting a put does: the state a put leaves when its answer, or its wait for the holders'
/// acknowledgements, was lost (it then returned `Unavailable`).
fn land_unannounced(url: &str, key: &str, writer: &str, bytes: &[u8]) {
    let target = ccs_etcd::url::parse(url).unwrap();
    let layout = ccs_etcd::layout::Layout::new(&target.prefix);
    let meta = ccs_etcd::layout::Meta {
        version: 2,
        deleted: false,
        len: bytes.len() as u64,
        writer: writer.to_owned(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut client = etcd_client::Client::connect(&target.endpoints, None)
            .await
            .unwrap();
        let txn = etcd_client::Txn::new().and_then([
            etcd_client::TxnOp::put(layout.meta(key), meta.encode(), None),
            etcd_client::TxnOp::put(layout.data(key), bytes.to_vec(), None),
        ]);
        client.txn(txn).await.unwrap();
    });
}

/// A writer whose put landed but never returned (its answer or its wait for acknowledgements
/// lost) retries it as `put_if` and is refused with a `Conflict` naming its own version, which
/// a caller reads as "my write is in": the refusal must leave the holders as a returned put
/// would. Here the one holder is stopped, so the refusal waits for its session lease to expire
/// (as `a_stopped_reader_holds_the_writer_until_its_lease_expires`'s put does), and the reader,
/// continued, reads the new version. Before, the refusal returned at once while the reader could
/// still HIT version 1 (the stale read `a_paused_follower_does_not_stall_writes` met once).
#[test]
fn a_conflict_naming_the_callers_own_write_waits_for_the_holders() {
    let Some(p) = Prefix::new("ownconflict") else {
        return;
    };
    let cluster = p.cluster();
    let writer = cluster.attach("writer").unwrap();
    let reader = reader_holding_version_1(&p, &writer);
    reader.signal("STOP");
    land_unannounced(&p.url, "spec", "writer", b"2");

    let started = Instant::now();
    match writer.put_if("spec", 1, b"2") {
        Err(Error::Conflict(Conflict { current, .. })) => assert_eq!(current, 2),
        other => panic!("expected a conflict naming version 2, got {other:?}"),
    }
    assert_waited_for_the_stopped_lease(started.elapsed(), "refusal");
    continued_reader_reads_version_2(reader);
}

#[test]
fn a_dead_holders_hold_is_reclaimed_after_its_session() {
    let Some(p) = Prefix::new("deadholder") else {
        return;
    };
    let cluster = p.cluster();
    let me = cluster.attach("me").unwrap();
    me.put("doc", b"1", Condition::View).unwrap();
    let holder = Proc::spawn("holder", &p.url, &["holder", "doc"]);
    holder.expect("HELD");
    match me.acquire("doc", Duration::from_secs(30)) {
        Err(Error::Held(Held { by, .. })) => assert_eq!(by, "holder"),
        other => panic!("{other:?}"),
    }
    holder.signal("KILL");
    let killed = Instant::now();
    let hold = loop {
        match me.acquire("doc", Duration::from_secs(30)) {
            Ok(hold) => break hold,
            Err(Error::Held { .. }) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("{e}"),
        }
        assert!(
            killed.elapsed() < Duration::from_secs(15),
            "the dead holder's hold stayed"
        );
    };
    // Its own lease was 60 s: the hold was reclaimed because its session (2 s) expired.
    assert!(killed.elapsed() < Duration::from_secs(10));
    eprintln!(
        "dead holder's hold reclaimed {:?} after SIGKILL",
        killed.elapsed()
    );
    assert_eq!(me.commit(hold, b"2").unwrap(), 2);
}

#[test]
fn waits_and_subscriptions_across_processes() {
    let Some(p) = Prefix::new("events") else {
        return;
    };
    let cluster = p.cluster();
    let writer = cluster.attach("writer").unwrap();
    writer.put("task/a", b"1", Condition::View).unwrap();
    let waiter = Proc::spawn("waiter", &p.url, &["waiter", "task/a", "1"]);
    let subscriber = Proc::spawn("subscriber", &p.url, &["sub", "task/", "3"]);
    waiter.expect("READY");
    subscriber.expect("READY");
    std::thread::sleep(Duration::from_millis(200));
    writer.put("task/a", b"2", Condition::View).unwrap();
    writer.put("other", b"x", Condition::View).unwrap();
    writer.put("task/b", b"1", Condition::View).unwrap();
    writer.delete("task/b", Condition::View).unwrap();
    assert_eq!(waiter.expect("CHANGED"), "2");
    assert_eq!(subscriber.expect("EVENT"), "task/a 2 writer false");
    assert_eq!(subscriber.expect("EVENT"), "task/b 1 writer false");
    assert_eq!(subscriber.expect("EVENT"), "task/b 2 writer true");
    subscriber.expect("END");
    waiter.wait_ok();
    subscriber.wait_ok();
}

/// An agent process SIGSTOPped while it holds a key past the hold's lease: the writer proceeds
/// once the lease is over (reclaiming the hold), and after SIGCONT the stopped holder's commit
/// is refused as `Fenced` and its next read is a MISS of the writer's version.
#[test]
fn a_stopped_holder_is_fenced_and_its_next_read_is_a_miss() {
    let Some(p) = Prefix::new("stoppedholder") else {
        return;
    };
    let cluster = p.cluster();
    let writer = cluster.attach("writer").unwrap();
    writer.put("plan", b"1", Condition::View).unwrap();
    let mut holder = Proc::spawn("stopped-holder", &p.url, &["holder", "plan"]);
    holder.expect("HELD");
    holder.signal("STOP");
    let stopped = Instant::now();
    let hold = loop {
        match writer.acquire("plan", Duration::from_secs(10)) {
            Ok(hold) => break hold,
            Err(Error::Held { .. }) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("{e}"),
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(20),
            "the stopped holder's hold was never reclaimed"
        );
    };
    assert_eq!(writer.commit(hold, b"2").unwrap(), 2);
    holder.signal("CONT");
    holder.tell("go");
    assert_eq!(holder.expect("FENCED"), "");
    assert_eq!(holder.expect("READ"), "2 false");
    holder.tell("quit");
    holder.wait_ok();
    assert_eq!(writer.get("plan").unwrap().bytes, b"2");
}

//! Latencies of the etcd engine on a real cluster, each beside its floor measured in the same
//! run: a raw `etcd-client` put and linearizable get on the same connection, and the wall time
//! of `etcdctl put` (a process start included).
//!
//! ```sh
//! eval "$(scripts/etcd-cluster start)"
//! cargo run --release -p ccs-etcd --example etcd_bench -- [ROUNDS]
//! ```

use std::process::Command;
use std::time::{Duration, Instant};

use ccs_etcd::{Cluster, Condition, Options};

type Failure = Box<dyn std::error::Error>;

fn main() -> Result<(), Failure> {
    let rounds: usize = std::env::args().nth(1).map_or(Ok(300), |a| a.parse())?;
    let endpoints = std::env::var("CCS_ETCD_ENDPOINTS")
        .map_err(|_| "set CCS_ETCD_ENDPOINTS (eval \"$(scripts/etcd-cluster start)\")")?;
    let prefix = format!("bench-{}", std::process::id());
    let url = ccs_etcd::url::url_for(&endpoints, &prefix);
    let result = run(&endpoints, &url, rounds);
    Cluster::destroy(&url)?;
    result
}

fn run(endpoints: &str, url: &str, rounds: usize) -> Result<(), Failure> {
    let options = Options::default();
    let writer_side = Cluster::connect_with(url, options)?;
    let w = writer_side.attach("writer")?;
    let payload = vec![b'x'; 4096];
    println!("rounds: {rounds}, payload 4 KiB, cluster {endpoints} (3 members, loopback)");
    println!(
        "{:<44} {:>10} {:>10} {:>10}",
        "operation", "p50 µs", "p99 µs", "mean µs"
    );

    // Floors: the same library, the same kind of connection, no coherence.
    let floor = floors(endpoints, url, rounds, &payload)?;
    for (name, samples) in floor {
        report(&name, samples);
    }

    // put, nobody holding a copy.
    w.put("k0", &payload, Condition::Blind)?;
    let samples = time(rounds, || w.put("k0", &payload, Condition::View).map(drop))?;
    report("put (no peer holds a copy)", samples);

    // get HIT.
    w.get("k0")?;
    let hits = 100_000;
    let started = Instant::now();
    for _ in 0..hits {
        let read = w.get("k0")?;
        assert!(read.hit);
    }
    println!(
        "{:<44} {:>10.3} {:>10} {:>10}",
        "get HIT (local, 4 KiB copied)",
        started.elapsed().as_secs_f64() * 1e6 / hits as f64,
        "-",
        "-"
    );

    // get MISS and put with peers: each peer on its own connection and runtime.
    for peers in [1usize, 4] {
        let sides: Vec<Cluster> = (0..peers)
            .map(|_| Cluster::connect_with(url, options))
            .collect::<Result<_, _>>()?;
        let readers: Vec<_> = sides
            .iter()
            .enumerate()
            .map(|(i, c)| c.attach(&format!("reader{peers}-{i}")))
            .collect::<Result<_, _>>()?;
        let key = format!("k{peers}");
        w.put(&key, &payload, Condition::Blind)?;
        let (mut puts, mut misses, mut acks) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            for (i, r) in readers.iter().enumerate() {
                let t = Instant::now();
                let read = r.get(&key)?;
                if i == 0 {
                    misses.push(t.elapsed());
                }
                assert!(!read.hit);
            }
            let t = Instant::now();
            w.put(&key, &payload, Condition::View)?;
            puts.push(t.elapsed());
            let stats = w.last_write();
            assert_eq!((stats.holders, stats.revoked), (peers, 0));
            acks.push(stats.ack_wait);
        }
        if peers == 1 {
            report("get MISS (fetch + register copy)", misses);
        }
        report(&format!("put, {peers} peer(s) holding a copy"), puts);
        report(
            &format!("  of which invalidation → last ack, {peers} peer(s)"),
            acks,
        );
    }
    logging(url, options, rounds, &payload)
}

/// The operation log's cost: the same operations through two handles, one logging (the
/// default) and one not (`log_records: 0`), interleaved so that both see the same cluster.
fn logging(url: &str, options: Options, rounds: usize, payload: &[u8]) -> Result<(), Failure> {
    let on = Cluster::connect_with(url, options)?;
    let off = Cluster::connect_with(
        url,
        Options {
            log_records: 0,
            ..options
        },
    )?;
    let agents = [on.attach("log-on")?, off.attach("log-off")?];
    println!("operation log: on (default: ring 1024, buffer 4096) vs off, interleaved");
    for (size, name) in [(payload.len(), "4 KiB"), (16, "16 B")] {
        for (i, agent) in agents.iter().enumerate() {
            for key in ["h0", "h1"] {
                let key = format!("{key}-{i}");
                agent.put(&key, &payload[..size], Condition::Blind)?;
                agent.get(&key)?;
            }
        }
        // Same key: one run, counted in memory. Alternating keys: every HIT a new record.
        for (label, keys) in [
            ("same key", ["h0", "h0"]),
            ("alternating keys", ["h0", "h1"]),
        ] {
            let mut best = [f64::MAX; 2];
            for _ in 0..5 {
                for (i, agent) in agents.iter().enumerate() {
                    let keys = keys.map(|k| format!("{k}-{i}"));
                    let n = 200_000;
                    let started = Instant::now();
                    for j in 0..n {
                        let read = agent.get(&keys[j % 2])?;
                        assert!(read.hit);
                    }
                    let ns = started.elapsed().as_secs_f64() * 1e9 / n as f64;
                    best[i] = best[i].min(ns);
                }
            }
            println!(
                "  get HIT, {name}, {label:<17} log on {:>7.1} ns   off {:>7.1} ns   ({:+.1} ns, best of 5 × 200,000)",
                best[0],
                best[1],
                best[0] - best[1]
            );
        }
    }
    agents[0].flush_log()?;
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for (i, agent) in agents.iter().enumerate() {
            // A read between puts gives the flusher records to write while the next put runs.
            agent.get(&format!("h0-{i}"))?;
            let t = Instant::now();
            agent.put(&format!("p-{i}"), payload, Condition::Blind)?;
            if i == 0 {
                with.push(t.elapsed());
            } else {
                without.push(t.elapsed());
            }
        }
    }
    report("put (no peer), log on", with);
    report("put (no peer), log off", without);
    Ok(())
}

fn floors(
    endpoints: &str,
    url: &str,
    rounds: usize,
    payload: &[u8],
) -> Result<Vec<(String, Vec<Duration>)>, Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let list: Vec<String> = endpoints.split(',').map(str::to_owned).collect();
    let key = format!("ccs/{}/floor", url.rsplit('/').next().unwrap_or("x"));
    let (puts, gets) = runtime.block_on(async {
        let mut client = etcd_client::Client::connect(&list, None).await?;
        let (mut puts, mut gets) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let t = Instant::now();
            client.put(key.as_str(), payload.to_vec(), None).await?;
            puts.push(t.elapsed());
            let t = Instant::now();
            client.get(key.as_str(), None).await?;
            gets.push(t.elapsed());
        }
        Ok::<_, etcd_client::Error>((puts, gets))
    })?;
    let mut ctl = Vec::new();
    let first = list.first().map_or("", String::as_str);
    for _ in 0..rounds.min(100) {
        let t = Instant::now();
        let ok = Command::new("etcdctl")
            .args(["--endpoints", first, "put", &key, "x"])
            .env("ETCDCTL_API", "3")
            .output()?
            .status
            .success();
        if !ok {
            return Err("etcdctl put failed".into());
        }
        ctl.push(t.elapsed());
    }
    Ok(vec![
        ("floor: etcd-client put (one raft write)".to_owned(), puts),
        ("floor: etcd-client get (linearizable)".to_owned(), gets),
        ("floor: `etcdctl put` (process start incl.)".to_owned(), ctl),
    ])
}

fn time(
    rounds: usize,
    mut op: impl FnMut() -> Result<(), ccs_etcd::Error>,
) -> Result<Vec<Duration>, Failure> {
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        op()?;
        samples.push(t.elapsed());
    }
    Ok(samples)
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i].as_secs_f64() * 1e6
    };
    let mean = samples.iter().map(Duration::as_secs_f64).sum::<f64>() / samples.len() as f64 * 1e6;
    if std::env::var_os("CCS_BENCH_TAIL").is_some() {
        let tail: Vec<u128> = samples
            .iter()
            .rev()
            .take(8)
            .map(|d| d.as_micros())
            .collect();
        eprintln!("  tail of {name}: {tail:?} µs");
    }
    println!(
        "{name:<44} {:>10.0} {:>10.0} {:>10.0}",
        at(0.5),
        at(0.99),
        mean
    );
}

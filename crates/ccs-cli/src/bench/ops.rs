//! `ccs bench ops`: the in-process cost of each operation, on a directory of `--artifacts`
//! keys with `--agents` agents attached in this one process.
//!
//! Two timing methods, named per operation in the output:
//!
//! - `batch`: time [`BATCH`] back-to-back calls with `monotonic_ns` around the batch; one
//!   sample is the batch's mean per call. For operations that need no untimed setup.
//! - `single`: time one call with `monotonic_ns` around it and subtract the median cost of an
//!   empty timer pair (measured first, reported as `timer_overhead_ns`). For operations whose
//!   setup (a peer's put, the peers' re-reads) must stay outside the measurement.
//!
//! Each reported value is the median (and p90) of `--samples` samples, nearest rank.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Duration;

use agent_coherence::{Agent, Backend, Cached, Config, Error, Segment};
use serde::Serialize;

use super::stats::percentile;
use super::{Machine, Names, Progress, SCHEMA, payload_arg, signal};
use crate::args::OpsArgs;
use crate::error::CliError;
use crate::table::{self, Align};

/// Calls per sample for the `batch` method.
pub const BATCH: u64 = 100;
/// Samples are kept in picoseconds so that sub-nanosecond means survive integer percentiles.
const PS: u64 = 1000;

#[derive(Debug, Serialize)]
struct OpResult {
    op: &'static str,
    median_ns: f64,
    p90_ns: f64,
    samples: usize,
    payload: u64,
    agents: u32,
    artifacts: u32,
    peers: u32,
    method: &'static str,
}

#[derive(Debug, Serialize)]
struct Params {
    payload: u64,
    agents: u32,
    artifacts: u32,
    samples: u32,
    batch: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    schema: u32,
    bench: &'static str,
    machine: Machine,
    params: Params,
    timer_overhead_ns: u64,
    results: Vec<OpResult>,
}

fn interrupted() -> Result<(), CliError> {
    if signal::interrupted() {
        Err(CliError::Bench("interrupted".to_owned()))
    } else {
        Ok(())
    }
}

/// `samples` batch samples of `op`, in picoseconds per call.
fn batch(samples: u32, mut op: impl FnMut() -> Result<(), CliError>) -> Result<Vec<u64>, CliError> {
    for _ in 0..BATCH {
        op()?; // warm-up
    }
    let mut out = Vec::with_capacity(samples as usize);
    for _ in 0..samples {
        interrupted()?;
        let t0 = ccs_os::monotonic_ns();
        for _ in 0..BATCH {
            op()?;
        }
        let t1 = ccs_os::monotonic_ns();
        out.push(t1.saturating_sub(t0) * PS / BATCH);
    }
    Ok(out)
}

/// `samples` single-call samples of `op` after an untimed `setup`, minus `overhead` ns, in
/// picoseconds.
fn single(
    samples: u32,
    overhead: u64,
    mut setup: impl FnMut() -> Result<(), CliError>,
    mut op: impl FnMut() -> Result<(), CliError>,
) -> Result<Vec<u64>, CliError> {
    let mut out = Vec::with_capacity(samples as usize);
    for i in 0..samples + samples / 10 {
        interrupted()?;
        setup()?;
        let t0 = ccs_os::monotonic_ns();
        op()?;
        let t1 = ccs_os::monotonic_ns();
        if i >= samples / 10 {
            out.push(t1.saturating_sub(t0).saturating_sub(overhead) * PS);
        }
    }
    Ok(out)
}

/// The median cost of an empty `monotonic_ns` pair, ns.
fn timer_overhead(samples: u32) -> u64 {
    let mut v: Vec<u64> = (0..samples.max(1000))
        .map(|_| {
            let t0 = ccs_os::monotonic_ns();
            let t1 = ccs_os::monotonic_ns();
            t1.saturating_sub(t0)
        })
        .collect();
    v.sort_unstable();
    percentile(&v, 50.0).unwrap_or(0)
}

fn expect(ok: bool, what: &str) -> Result<(), CliError> {
    if ok {
        Ok(())
    } else {
        Err(CliError::Bench(format!("ops: {what}")))
    }
}

/// Run the benchmark.
pub fn run(args: &OpsArgs) -> Result<(), CliError> {
    let usage = |flag: &str, lo: u32, hi: u32, v: u32| {
        if (lo..=hi).contains(&v) {
            Ok(())
        } else {
            Err(CliError::Usage(format!(
                "--{flag} must be between {lo} and {hi}, not {v}"
            )))
        }
    };
    usage("agents", 1, 1024, args.agents)?;
    usage("artifacts", 1, 1_000_000, args.artifacts)?;
    usage("samples", 10, 10_000_000, args.samples)?;
    let payload = payload_arg(&args.payload, 1)?;
    let machine = Machine::probe();
    let names = Names::new("ops");
    let location = match &args.on {
        Some(url) if Backend::of(url) == Backend::Etcd => {
            // The sub-prefix goes before any ?options, which then apply to it too.
            match url.split_once('?') {
                Some((base, query)) => {
                    format!("{}/{}?{query}", base.trim_end_matches('/'), names.seg)
                }
                None => format!("{}/{}", url.trim_end_matches('/'), names.seg),
            }
        }
        Some(other) => {
            return Err(CliError::Usage(format!(
                "--on takes an etcd:// URL, not `{other}` (shared memory is the default)"
            )));
        }
        None => names.seg.clone(),
    };
    let slot = payload.next_power_of_two();
    let config = Config {
        max_agents: args.agents + 2,
        max_artifacts: args.artifacts + 16,
        arena_bytes: (slot * 2 * (u64::from(args.artifacts) + 64)).max(4 << 20),
        max_payload: slot,
        ..Config::default()
    };
    let seg = Segment::create(&location, config)?;
    // Removes the etcd sub-prefix (`Names` removes a shared-memory segment).
    let _etcd = args.on.is_some().then(|| EtcdPrefix(location.clone()));
    let me = seg.attach("agent-0")?;
    let peers: Vec<Agent> = (1..args.agents)
        .map(|i| seg.attach(&format!("agent-{i}")))
        .collect::<Result<_, _>>()?;
    let helper = seg.attach("helper")?;
    let bytes = vec![0x5a_u8; usize::try_from(payload).unwrap_or(1)];
    let timed = args.artifacts / 2;
    for i in 0..args.artifacts {
        me.put(format!("bench/ops/{i:07}").as_str(), &bytes)?;
    }
    let key_text = format!("bench/ops/{timed:07}");
    let key = me.key(&key_text)?;
    let mut buf = Vec::with_capacity(bytes.len());
    let n = args.samples;
    let overhead = timer_overhead(n);
    let mut progress = Progress::new("ops", 9);
    let mut results: Vec<(&'static str, &'static str, u32, Vec<u64>)> = Vec::new();

    me.get_into(&key, &mut buf)?;
    expect(
        me.get_into(key_text.as_str(), &mut buf)?.1,
        "the timed copy is not a HIT",
    )?;
    let v = batch(n, || {
        black_box(me.get_into(key_text.as_str(), &mut buf)?);
        Ok(())
    })?;
    results.push(("get_hit_key", "batch", 0, v));
    progress.tick(1);

    let v = batch(n, || {
        black_box(me.get_into(&key, &mut buf)?);
        Ok(())
    })?;
    results.push(("get_hit_handle", "batch", 0, v));

    // The floor of a copying HIT: what a plain client-side cache does, a hash lookup by key
    // and a memcpy of the value out of private memory, on a map of as many artifacts.
    let private: std::collections::HashMap<String, Vec<u8>> = (0..args.artifacts)
        .map(|i| (format!("bench/ops/{i:07}"), bytes.clone()))
        .collect();
    let v = batch(n, || {
        let value = private
            .get(black_box(key_text.as_str()))
            .ok_or_else(|| CliError::Bench("ops: the private map lost its key".to_owned()))?;
        buf.clear();
        buf.extend_from_slice(value);
        black_box(&mut buf);
        Ok(())
    })?;
    drop(private);
    results.push(("private_hash_memcpy", "batch", 0, v));

    // The floor of a copying HIT through a handle: the handle is already resolved, so no hash
    // lookup is left, only the value found by its index and copied out of private memory
    // into the caller's (reused) buffer.
    let values: Vec<Vec<u8>> = (0..args.artifacts).map(|_| bytes.clone()).collect();
    let index = timed as usize;
    let v = batch(n, || {
        let value = values
            .get(black_box(index))
            .ok_or_else(|| CliError::Bench("ops: the private array lost its value".to_owned()))?;
        buf.clear();
        buf.extend_from_slice(value);
        black_box(&mut buf);
        Ok(())
    })?;
    drop(values);
    results.push(("hit_floor", "batch", 0, v));
    progress.tick(2);

    let v = batch(n, || {
        black_box(me.is_valid(&key)?);
        Ok(())
    })?;
    results.push(("is_valid", "batch", 0, v));
    progress.tick(3);

    let mut cached = Cached::new(key.clone());
    me.refresh(&mut cached)?;
    expect(me.refresh(&mut cached)?, "the private copy is not a HIT")?;
    let v = batch(n, || {
        black_box(me.refresh(&mut cached)?);
        black_box(cached.bytes().first().copied());
        Ok(())
    })?;
    results.push(("get_hit_cached", "batch", 0, v));

    let v = batch(n, || {
        let guard = me.read(&key)?;
        black_box(guard.bytes().first().copied());
        Ok(())
    })?;
    results.push(("read_zero_copy", "batch", 0, v));
    progress.tick(4);

    // MISS: the helper's write (untimed) invalidates our copy before each timed get.
    let mut misses_ok = true;
    let v = single(
        n,
        overhead,
        || {
            helper.put_blind(&key, &bytes)?;
            Ok(())
        },
        || {
            misses_ok &= !me.get_into(&key, &mut buf)?.1;
            Ok(())
        },
    )?;
    expect(misses_ok, "a get after a peer's put was a HIT")?;
    results.push(("get_miss", "single", 0, v));
    progress.tick(5);

    // put while every peer holds a copy: they re-read (untimed) before each timed put.
    let mut peer_buf = Vec::with_capacity(bytes.len());
    let v = single(
        n,
        overhead,
        || {
            for peer in &peers {
                peer.get_into(&key, &mut peer_buf)?;
            }
            Ok(())
        },
        || {
            me.put(&key, &bytes)?;
            Ok(())
        },
    )?;
    results.push(("put_with_peers", "single", args.agents - 1, v));
    progress.tick(6);

    if let Some(url) = &args.on {
        // No peer holds a copy: each put invalidated them, and they do not re-read.
        let v = single(
            n,
            overhead,
            || Ok(()),
            || Ok(me.put(&key, &bytes).map(drop)?),
        )?;
        results.push(("put_no_peers", "single", 0, v));
        let v = single(n, overhead, || Ok(()), || etcdctl_put(url, &bytes))?;
        results.push(("etcdctl_put", "single", 0, v));
    }

    let current = me.check(&key)?.current;
    expect(current >= 2, "the timed key has fewer than two versions")?;
    let stale = current - 1;
    let v = batch(n, || match me.put_if(&key, stale, &bytes) {
        Err(Error::Conflict { .. }) => Ok(()),
        Err(e) => Err(e.into()),
        Ok(_) => Err(CliError::Bench(
            "ops: a put_if on a stale version succeeded".to_owned(),
        )),
    })?;
    results.push(("put_if_refused", "batch", 0, v));
    progress.tick(7);

    let v = batch(n, || {
        let guard = me.acquire(&key, Duration::from_secs(10))?;
        black_box(guard.commit(&bytes)?);
        Ok(())
    })?;
    results.push(("acquire_commit", "batch", 0, v));
    progress.finish();

    let results = results
        .into_iter()
        .map(|(op, method, peers, mut v)| {
            v.sort_unstable();
            let ns = |p| percentile(&v, p).unwrap_or(0) as f64 / PS as f64;
            OpResult {
                op,
                median_ns: ns(50.0),
                p90_ns: ns(90.0),
                samples: v.len(),
                payload,
                agents: args.agents,
                artifacts: args.artifacts,
                peers,
                method,
            }
        })
        .collect();
    let report = Report {
        schema: SCHEMA,
        bench: "ops",
        machine,
        params: Params {
            payload,
            agents: args.agents,
            artifacts: args.artifacts,
            samples: n,
            batch: BATCH,
        },
        timer_overhead_ns: overhead,
        results,
    };
    drop((helper, peers, me, seg));
    super::emit(&report, args.json, human)
}

/// Removes an etcd sub-prefix the bench worked under, when dropped.
struct EtcdPrefix(String);

impl Drop for EtcdPrefix {
    fn drop(&mut self) {
        // Best effort: a failure leaves a prefix named after this process.
        let _ = Segment::destroy(&self.0);
    }
}

/// `etcdctl put` of `bytes` under a floor key beside the bench's prefix, timed as a user runs
/// it (process start included): the floor the issue asks the etcd rows to be read against.
fn etcdctl_put(url: &str, bytes: &[u8]) -> Result<(), CliError> {
    let endpoints = url
        .strip_prefix("etcd://")
        .and_then(|rest| rest.split_once('/'))
        .map(|(hosts, _)| {
            hosts
                .split(',')
                .map(|h| format!("http://{h}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .ok_or_else(|| CliError::Usage(format!("--on `{url}` names no hosts")))?;
    let mut child = std::process::Command::new("etcdctl")
        .args(["--endpoints", &endpoints, "put", "ccs-bench-etcdctl-floor"])
        .env("ETCDCTL_API", "3")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| CliError::Bench(format!("cannot run etcdctl (install etcd-client): {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write as _;
        stdin
            .write_all(bytes)
            .map_err(|e| CliError::Bench(format!("etcdctl stdin: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| CliError::Bench(format!("etcdctl: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(CliError::Bench(format!(
            "etcdctl put failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// The human form: the parameters and the machine, then one row per operation.
fn human(report: &Report) -> String {
    let p = &report.params;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ops: payload {} B, {} agent(s) in this process, {} artifacts, {} samples per op",
        p.payload, p.agents, p.artifacts, p.samples
    );
    let _ = writeln!(out, "{}", report.machine.line());
    let mut rows = vec![
        ["op", "median ns", "p90 ns", "method"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for r in &report.results {
        let method = match r.method {
            "batch" => format!("batch: mean of {} calls per sample", p.batch),
            _ => format!(
                "single: one call timed, minus timer overhead {} ns",
                report.timer_overhead_ns
            ),
        };
        let op = if r.op == "put_with_peers" {
            format!("put ({} peers)", r.peers)
        } else {
            r.op.to_owned()
        };
        rows.push(vec![
            op,
            format!("{:.1}", r.median_ns),
            format!("{:.1}", r.p90_ns),
            method,
        ]);
    }
    // The method is prose: it reads best as a left-aligned last column.
    out.push_str(&table::render(&rows, |column| match column {
        0 | 3 => Align::Left,
        _ => Align::Right,
    }));
    out
}

//! End-to-end tests of `ccs bench`: the real binary with tiny parameters. They check shape
//! (tables, JSON fields, ordered percentiles, positive ratios, exit codes, cleanup), never
//! speed.

use std::collections::BTreeSet;
use std::fs;
use std::process::{Command, Output};
use std::sync::Mutex;

use serde_json::Value;

const CCS: &str = env!("CARGO_BIN_EXE_ccs");

/// Bench runs are serialised: each spawns processes that spin, and the leftover check
/// compares /dev/shm before and after.
static SERIAL: Mutex<()> = Mutex::new(());

/// This process's bench segments in /dev/shm (the names embed the parent's pid, but a bench
/// parent is a child of the test: match on the prefix and compare before and after).
fn bench_shm() -> BTreeSet<String> {
    fs::read_dir("/dev/shm")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with("ccs-bench-"))
                .collect()
        })
        .unwrap_or_default()
}

fn run(args: &[&str]) -> Output {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let before = bench_shm();
    let out = Command::new(CCS)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ccs: {e}"));
    let after = bench_shm();
    let left: Vec<_> = after.difference(&before).collect();
    assert!(left.is_empty(), "left in /dev/shm by {args:?}: {left:?}");
    out
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("{e}"))
}

fn json(args: &[&str]) -> Value {
    let text = ok(args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON ({e}):\n{text}"))
}

fn u(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("`{field}` is not an integer in {v}"))
}

fn f(v: &Value, field: &str) -> f64 {
    v[field]
        .as_f64()
        .unwrap_or_else(|| panic!("`{field}` is not a number in {v}"))
}

fn check_common(v: &Value, bench: &str) {
    assert_eq!(v["schema"], 1);
    assert_eq!(v["bench"], bench);
    assert!(u(&v["machine"], "nproc") >= 1);
    assert!(v["machine"]["kernel"].is_string());
    assert!(v["machine"]["cpu_model"].is_string());
}

fn check_invalidation(wake: &str, readers: &str, read: &str) {
    let args = [
        "bench",
        "invalidation",
        "--wake",
        wake,
        "--readers",
        readers,
        "--read",
        read,
        "--iterations",
        "200",
    ];
    let table = ok(&args);
    for needle in [
        "floor",
        "invalid seen",
        "new payload held",
        "p99.9",
        "p50/floor",
    ] {
        assert!(table.contains(needle), "no `{needle}` in:\n{table}");
    }
    let v = json(&[&args[..], &["--json"]].concat());
    check_common(&v, "invalidation");
    let p = &v["params"];
    assert_eq!(p["wake"], wake);
    assert_eq!(p["read"], read);
    assert_eq!(u(p, "readers").to_string(), readers);
    assert_eq!(u(p, "iterations"), 200);
    assert!(p.get("warmup").is_some() && p.get("cpus").is_some() && p.get("pause_ns").is_some());
    assert!(v["floor_kind"].is_string());
    let phases = v["phases"]
        .as_array()
        .unwrap_or_else(|| panic!("no phases: {v}"));
    let names: Vec<_> = phases.iter().map(|p| p["phase"].clone()).collect();
    assert_eq!(names, ["floor", "observe_invalid", "hold_new"]);
    let samples = 200 * readers.parse::<u64>().unwrap_or(0);
    for phase in phases {
        assert_eq!(u(phase, "samples"), samples, "{phase}");
        let order =
            ["min_ns", "p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns"].map(|k| u(phase, k));
        assert!(order.windows(2).all(|w| w[0] <= w[1]), "unordered: {phase}");
        assert!(f(phase, "ratio_to_floor") > 0.0, "{phase}");
    }
}

#[test]
fn invalidation_spin_one_reader() {
    check_invalidation("spin", "1", "copy");
}

#[test]
fn invalidation_spin_zero_copy() {
    check_invalidation("spin", "1", "zero-copy");
}

#[test]
fn invalidation_futex_two_readers() {
    check_invalidation("futex", "2", "copy");
}

#[test]
fn invalidation_pinned() {
    let v = json(&[
        "bench",
        "invalidation",
        "--iterations",
        "50",
        "--cpus",
        "0",
        "--json",
    ]);
    assert_eq!(v["params"]["cpus"], serde_json::json!([0]));
}

#[test]
fn ops_reports_every_op() {
    let args = [
        "bench",
        "ops",
        "--agents",
        "3",
        "--artifacts",
        "20",
        "--samples",
        "50",
    ];
    let expected = [
        "get_hit_key",
        "get_hit_handle",
        "private_hash_memcpy",
        "hit_floor",
        "is_valid",
        "get_hit_cached",
        "read_zero_copy",
        "get_miss",
        "put_with_peers",
        "put_if_refused",
        "acquire_commit",
    ];
    let table = ok(&args);
    for op in expected.iter().filter(|op| **op != "put_with_peers") {
        assert!(table.contains(op), "no `{op}` in:\n{table}");
    }
    assert!(table.contains("put (2 peers)"), "{table}");
    let v = json(&[&args[..], &["--json"]].concat());
    check_common(&v, "ops");
    let results = v["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results: {v}"));
    let ops: Vec<_> = results.iter().map(|r| r["op"].clone()).collect();
    assert_eq!(ops, expected);
    for r in results {
        assert!(f(r, "median_ns") <= f(r, "p90_ns"), "{r}");
        assert_eq!(u(r, "samples"), 50);
        assert_eq!(
            (u(r, "payload"), u(r, "agents"), u(r, "artifacts")),
            (64, 3, 20)
        );
        assert!(r["method"] == "batch" || r["method"] == "single", "{r}");
    }
    let put = results
        .iter()
        .find(|r| r["op"] == "put_with_peers")
        .unwrap_or_else(|| panic!("no put_with_peers: {v}"));
    assert_eq!(u(put, "peers"), 2);
}

#[test]
fn scale_two_procs() {
    let args = [
        "bench",
        "scale",
        "--procs",
        "2",
        "--seconds",
        "1",
        "--artifacts",
        "8",
    ];
    let table = ok(&args);
    assert!(table.contains("total"), "{table}");
    let v = json(&[&args[..], &["--json"]].concat());
    check_common(&v, "scale");
    let procs = v["processes"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(procs.len(), 2);
    for p in procs {
        assert!(u(p, "ops") > 0 && f(p, "ops_per_s") > 0.0, "{p}");
        assert_eq!(
            u(p, "ops"),
            u(p, "gets") + u(p, "puts") + u(p, "conflicts"),
            "{p}"
        );
        assert_eq!(u(p, "gets"), u(p, "hits") + u(p, "misses"), "{p}");
        assert!(u(p, "cpu_ns") > 0, "{p}");
    }
    let t = &v["total"];
    assert!(u(t, "ops") > 0 && f(t, "ops_per_s") > 0.0, "{t}");
    assert!(f(t, "cpu_ns_per_op") > 0.0, "{t}");
    assert_eq!(u(t, "ops"), procs.iter().map(|p| u(p, "ops")).sum::<u64>());
}

#[test]
fn bad_arguments_exit_2() {
    for args in [
        &["bench", "invalidation", "--readers", "0"][..],
        &["bench", "invalidation", "--payload", "8"],
        &["bench", "invalidation", "--payload", "lots"],
        &["bench", "invalidation", "--wake", "doze"],
        &["bench", "invalidation", "--read", "peek"],
        &["bench", "invalidation", "--iterations", "0"],
        &["bench", "invalidation", "--cpus", "x"],
        &["bench", "ops", "--agents", "0"],
        &["bench", "ops", "--samples", "nope"],
        &["bench", "scale", "--read-ratio", "1.5"],
        &["bench", "scale", "--procs", "0"],
        &["bench", "scale", "--seconds", "0"],
        &["bench", "nonesuch"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn child_subcommand_is_hidden() {
    let help = ok(&["--help"]);
    assert!(help.contains("bench"), "{help}");
    assert!(!help.contains("bench-child"), "{help}");
    let long = ok(&["bench", "invalidation", "--help"]);
    assert!(long.contains("\"schema\": 1"), "{long}");
}

/// `ccs bench soak`: agent churn in a 6-slot table and key churn in a directory sized for the
/// live keys run with no capacity error; the full churn reports its capacity errors by resource
/// without failing unless asked to.
#[test]
fn soak_agent_churn_has_no_capacity_error() {
    let v = json(&[
        "bench",
        "soak",
        "--churn",
        "agents",
        "--ops",
        "20000",
        "--worker-ops",
        "50",
        "--fail-on-capacity",
        "--json",
    ]);
    check_common(&v, "soak");
    assert_eq!(u(&v["counts"], "ops"), 20_000);
    assert!(u(&v["counts"], "attaches") > 100);
    assert_eq!(u(&v["capacity_errors"], "agents"), 0);
    assert_eq!(u(&v["capacity_errors"], "artifacts"), 0);
    assert!(u(&v, "peak_live_bytes") > 0);
    assert!(u(&v, "arena_touched_bytes") > 0);
    assert!(f(&v, "ops_per_s") > 0.0);

    let full = json(&[
        "bench",
        "soak",
        "--ops",
        "5000",
        "--max-size",
        "4K",
        "--json",
    ]);
    assert_eq!(full["params"]["churn"].as_array().map(Vec::len), Some(3));
    assert!(full["capacity_errors"]["artifacts"].is_u64());
    // Deleted keys' lines are reused: key churn runs in a directory sized for its live keys,
    // also while agents come and go (a new name's dropped views are of earlier keys).
    let keys = json(&[
        "bench",
        "soak",
        "--churn",
        "agents,keys",
        "--ops",
        "20000",
        "--fail-on-capacity",
        "--json",
    ]);
    assert_eq!(u(&keys["counts"], "ops"), 20_000);
    assert_eq!(u(&keys["capacity_errors"], "artifacts"), 0);
}

/// `ccs bench soak --kills`: writer processes SIGKILLed mid-write leave nothing lost once the
/// dead agents are recovered at the end (`--fail-on-leak` exits 1 otherwise).
#[test]
fn soak_with_kills_leaks_nothing_once_the_dead_are_recovered() {
    let v = json(&[
        "bench",
        "soak",
        "--churn",
        "agents",
        "--kills",
        "5",
        "--ops",
        "20000",
        "--worker-ops",
        "50",
        "--fail-on-capacity",
        "--fail-on-leak",
        "--json",
    ]);
    check_common(&v, "soak");
    assert_eq!(u(&v["counts"], "kills"), 5);
    assert_eq!(u(&v["counts"], "other_errors"), 0);
    assert!(v["arena_held_by_dead_bytes"].is_u64());
    assert!(v["dead_agents_recovered"].is_u64());
    assert_eq!(u(&v, "arena_leaked_bytes"), 0);
}

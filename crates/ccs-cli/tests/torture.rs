//! End-to-end tests of `ccs torture`: the real binary, tiny runs. A clean run must pass every
//! check with consistent counts, and a run with a deliberately injected fault must fail: a
//! checker that cannot fail is not a test.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Mutex;

use serde_json::Value;

const CCS: &str = env!("CARGO_BIN_EXE_ccs");

/// Runs are serialised: each spawns worker processes that spin.
static SERIAL: Mutex<()> = Mutex::new(());

fn seg_name(tag: &str) -> String {
    format!("ccs-test-torture-{tag}-{}", std::process::id())
}

fn run(tag: &str, extra: &[&str]) -> (Output, String) {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let seg = seg_name(tag);
    let out = Command::new(CCS)
        .args(["torture", &seg])
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ccs: {e}"));
    assert!(
        !Path::new("/dev/shm").join(&seg).exists(),
        "{tag}: the segment was left in /dev/shm"
    );
    (out, seg)
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn num(v: &Value, path: &[&str]) -> u64 {
    let mut at = v;
    for p in path {
        at = &at[*p];
    }
    at.as_u64()
        .unwrap_or_else(|| panic!("{path:?} is not a number in {v}"))
}

const TINY: &[&str] = &[
    "--workers",
    "2",
    "--kills",
    "20",
    "--kill-interval-ms",
    "5-20",
    "--max-payload",
    "64K",
    "--json",
];

#[test]
fn a_tiny_run_passes_every_check_with_consistent_counts() {
    let (out, _) = run("clean", TINY);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    let v = json(&out);
    assert_eq!(v["schema"], 1);
    assert_eq!(v["command"], "torture");
    assert_eq!(v["passed"], true);
    assert_eq!(num(&v, &["failures"]), 0);
    assert!(num(&v, &["kills"]) >= 20);
    assert_eq!(num(&v, &["replacements"]), num(&v, &["kills"]));
    assert!(num(&v, &["kills_in_write"]) <= num(&v, &["kills"]));
    let ops = &v["operations"];
    let issued: u64 = [
        "get",
        "read",
        "put_blind",
        "put",
        "put_if",
        "acquire_commit",
        "delete_recreate",
        "increment",
    ]
    .iter()
    .map(|k| num(ops, &[k]))
    .sum();
    assert!(issued > 0);
    assert_eq!(num(ops, &["total"]), issued);
    assert!(num(ops, &["increment_won"]) <= num(ops, &["increment"]));
    let counters = v["counters"]
        .as_array()
        .unwrap_or_else(|| panic!("counters: {v}"));
    assert_eq!(counters.len(), 4);
    let mut acknowledged = 0;
    for c in counters {
        let (version, value, acked) = (
            num(c, &["version"]),
            num(c, &["value"]),
            num(c, &["acknowledged"]),
        );
        assert_eq!(value + 1, version, "{c}");
        assert!(
            acked <= value && value - acked <= num(&v, &["kills"]),
            "{c}"
        );
        acknowledged += acked;
    }
    assert_eq!(acknowledged, num(ops, &["increment_won"]));
    let checks = v["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("checks: {v}"));
    let names: Vec<&str> = checks.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "checksums",
            "counters",
            "versions",
            "workers",
            "fsck",
            "arena"
        ]
    );
    for c in checks {
        assert_ne!(c["status"], "failed", "{c}");
    }
}

fn fails_with(fault: &str, check: &str) {
    let mut args = TINY.to_vec();
    args.extend(["--inject-fault", fault]);
    let (out, _) = run(fault, &args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{fault}: stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["passed"], false);
    assert!(num(&v, &["failures"]) >= 1);
    let failed: Vec<&str> = v["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("checks: {v}"))
        .iter()
        .filter(|c| c["status"] == "failed")
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(failed.contains(&check), "{fault}: failed checks {failed:?}");
}

#[test]
fn a_torn_payload_fails_the_run() {
    fails_with("torn", "checksums");
}

#[test]
fn a_lost_update_fails_the_run() {
    fails_with("lost-update", "counters");
}

#[test]
fn bad_arguments_exit_2_and_an_existing_segment_is_refused() {
    for bad in [
        &["--workers", "0"][..],
        &["--kill-interval-ms", "50-5"],
        &["--max-payload", "10"],
        &["--kills", "0"],
    ] {
        let (out, _) = run("usage", bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let seg = seg_name("exists");
    let init = Command::new(CCS)
        .args(["init", &seg, "--arena", "1M", "--max-payload", "64K"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run ccs: {e}"));
    assert!(init.status.success());
    let refused = Command::new(CCS)
        .args(["torture", &seg, "--kills", "1"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run ccs: {e}"));
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("already exists"));
    let forced = Command::new(CCS)
        .args(["torture", &seg, "--force", "--workers", "1", "--kills", "2"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run ccs: {e}"));
    assert_eq!(
        forced.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    assert!(!Path::new("/dev/shm").join(&seg).exists());
}

/// The history file of a run: one JSON object per line with every field the checker reads.
fn history_lines(file: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn history_checks(v: &Value) -> Vec<(String, String)> {
    v["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("checks: {v}"))
        .iter()
        .filter_map(|c| {
            let name = c["name"].as_str()?;
            name.starts_with("history").then(|| {
                (
                    name.to_owned(),
                    c["status"].as_str().unwrap_or("").to_owned(),
                )
            })
        })
        .collect()
}

#[test]
fn a_recorded_history_has_every_operation_and_passes_the_checker() {
    let file = std::env::temp_dir().join(format!("ccs-test-history-{}.jsonl", std::process::id()));
    let mut args = TINY.to_vec();
    let path = file.display().to_string();
    args.extend(["--history", &path]);
    let (out, _) = run("history", &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    let v = json(&out);
    let checks = history_checks(&v);
    assert_eq!(checks.len(), 4, "{checks:?}");
    for (name, status) in &checks {
        assert_eq!(status, "passed", "{name}");
    }
    let lines = history_lines(&file);
    assert!(
        !Path::new(&format!("{path}.parts")).exists(),
        "parts left behind"
    );
    let issued = num(&v, &["operations", "total"]);
    // Every issued operation is at least one history line (a compound one is several).
    assert!(
        lines.len() as u64 >= issued,
        "{} lines, {issued} operations",
        lines.len()
    );
    let mut kinds = std::collections::BTreeSet::new();
    for l in &lines {
        for field in [
            "process",
            "agent",
            "life",
            "seq",
            "kind",
            "key",
            "args",
            "invoke_ns",
        ] {
            assert!(!l[field].is_null(), "{field} missing: {l}");
        }
        kinds.insert(l["kind"].as_str().unwrap_or("").to_owned());
        if let Some(done) = l["complete_ns"].as_u64() {
            assert!(done >= num(l, &["invoke_ns"]), "{l}");
            assert!(l["result"]["ok"].is_boolean(), "{l}");
        } else {
            // Cut short by a kill: a write whose outcome is unknown.
            assert!(
                l["result"].is_null() && l["args"]["checksum"].is_string(),
                "{l}"
            );
        }
    }
    for kind in [
        "get",
        "read",
        "refresh",
        "put_blind",
        "put",
        "put_if",
        "acquire",
        "commit",
        "delete",
    ] {
        assert!(kinds.contains(kind), "no {kind} in {kinds:?}");
    }
    let _ = std::fs::remove_file(&file);
}

/// A broken run: invalidation switched off on the segment, so writers leave other workers'
/// cached copies valid and `refresh` HITs stale bytes. The history checker must say so.
#[test]
fn the_history_checker_catches_stale_hits_when_invalidation_is_off() {
    let file =
        std::env::temp_dir().join(format!("ccs-test-history-off-{}.jsonl", std::process::id()));
    let path = file.display().to_string();
    let args = [
        "--workers",
        "3",
        "--seconds",
        "2",
        "--kills",
        "1000000",
        "--kill-interval-ms",
        "5000",
        "--json",
        "--no-invalidation",
        "--history",
        &path,
    ];
    let (out, _) = run("history-off", &args);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    let checks = history_checks(&v);
    assert!(
        checks
            .iter()
            .any(|(name, status)| name == "history: no stale HIT" && status == "failed"),
        "{checks:?}"
    );
    let _ = std::fs::remove_file(&file);
}

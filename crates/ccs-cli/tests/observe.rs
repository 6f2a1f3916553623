//! `ccs watch`, `log`, `diagnose`, `stats` and `switch` end to end: each `ccs` invocation is a
//! real process acting as an agent, as a shell-driven agent would use it.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

use serde_json::Value;

const CCS: &str = env!("CARGO_BIN_EXE_ccs");

static COUNTER: Mutex<u32> = Mutex::new(0);

/// A segment unique to this test, destroyed on drop; a temp dir for traces, removed too.
struct Seg {
    name: String,
    dir: PathBuf,
}

impl Seg {
    fn new(tag: &str) -> Seg {
        let n = {
            let mut counter = COUNTER.lock().unwrap_or_else(|p| p.into_inner());
            *counter += 1;
            *counter
        };
        let name = format!("ccs-observe-{}-{n}-{tag}", std::process::id());
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let seg = Seg { name, dir };
        let out = seg.ccs(&["init", &seg.name, "--agents", "8", "--artifacts", "64"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        seg
    }

    fn ccs(&self, args: &[&str]) -> Output {
        Command::new(CCS).args(args).output().unwrap()
    }

    /// `ccs put SEG KEY --agent AGENT` with `text` on stdin; the exit code.
    fn put(&self, agent: &str, key: &str, text: &str, extra: &[&str]) -> i32 {
        let mut child = Command::new(CCS)
            .args(["put", &self.name, key, "--agent", agent])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        child.wait().unwrap().code().unwrap()
    }

    fn get(&self, agent: &str, key: &str) -> String {
        let out = self.ccs(&["get", &self.name, key, "--agent", agent]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stderr).trim().to_owned()
    }
}

impl Drop for Seg {
    fn drop(&mut self) {
        let _ = Command::new(CCS).args(["destroy", &self.name]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The story's divergence: the executor reads v1, the planner writes v2, and the executor
/// writes its work without re-reading.
fn stale_story(seg: &Seg) {
    assert_eq!(seg.put("planner", "task/spec", "rename 3 callers", &[]), 0);
    assert!(seg.get("executor", "task/spec").starts_with("MISS"));
    assert_eq!(seg.put("planner", "task/spec", "rename 4 callers", &[]), 0);
    assert_eq!(
        seg.put("executor", "code/patch", "3 callers renamed", &[]),
        0
    );
}

#[test]
fn diagnose_finds_stale_use_in_a_live_segment_and_in_its_trace() {
    let seg = Seg::new("stale");
    stale_story(&seg);
    let out = seg.ccs(&["diagnose", &seg.name]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let report = text(&out.stdout);
    assert!(report.contains("stale"), "{report}");
    assert!(
        report.contains("executor") && report.contains("task/spec"),
        "{report}"
    );

    let trace = seg.dir.join("trace.jsonl");
    let out = seg.ccs(&["log", &seg.name, "--out", trace.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = seg.ccs(&["diagnose", trace.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = json["findings"].as_array().unwrap();
    let stale: Vec<&Value> = findings
        .iter()
        .filter(|f| f["kind"] == "stale_use")
        .collect();
    assert_eq!(stale.len(), 1, "{json:#}");
    // The read of v1, the planner's v2, and the executor's stale write.
    let records = stale[0]["records"].as_array().unwrap();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0]["op"], "get");
    assert_eq!(records[0]["version"], 1);
    assert_eq!(records[1]["agent"], "planner");
    assert_eq!(records[1]["version"], 2);
    assert_eq!(records[2]["key"], "code/patch");
}

#[test]
fn diagnose_is_clean_when_the_executor_rereads_and_unreadable_input_exits_2() {
    let seg = Seg::new("clean");
    assert_eq!(seg.put("planner", "task/spec", "rename 3 callers", &[]), 0);
    assert!(seg.get("executor", "task/spec").starts_with("MISS"));
    assert_eq!(seg.put("planner", "task/spec", "rename 4 callers", &[]), 0);
    assert!(seg.get("executor", "task/spec").starts_with("MISS v2"));
    assert_eq!(
        seg.put("executor", "code/patch", "4 callers renamed", &[]),
        0
    );
    let out = seg.ccs(&["diagnose", &seg.name]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));

    let bad = seg.dir.join("bad.jsonl");
    std::fs::write(&bad, "{\"seq\": 1}\n").unwrap();
    let out = seg.ccs(&["diagnose", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("bad.jsonl:1"),
        "{}",
        text(&out.stderr)
    );
    let out = seg.ccs(&["diagnose", "ccs-observe-no-such-segment"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn diagnose_reports_a_blind_overwrite_and_stats_count_hits_and_bytes() {
    let seg = Seg::new("blind");
    assert_eq!(seg.put("planner", "plan", "v1", &[]), 0);
    assert_eq!(seg.put("planner", "plan", "v2", &[]), 0);
    // The reviewer never read the plan: its blind write overwrites v2 unseen.
    assert_eq!(seg.put("reviewer", "plan", "mine", &["--blind"]), 0);
    for _ in 0..3 {
        seg.get("executor", "plan");
    }
    let out = seg.ccs(&["diagnose", &seg.name, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "blind_overwrite"),
        "{json:#}"
    );

    let out = seg.ccs(&["stats", &seg.name, "--json"]);
    assert!(out.status.success());
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    let executor = stats["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["agent"] == "executor")
        .unwrap()
        .clone();
    // Each `ccs get` is a new process, but the agent's state persists: MISS, HIT, HIT.
    assert_eq!(executor["reads"], 3, "{stats:#}");
    assert_eq!(executor["hits"], 2);
    assert_eq!(executor["bytes_from_copy"], 8);
    assert_eq!(executor["bytes_fetched"], 4);
    let human = text(&seg.ccs(&["stats", &seg.name]).stdout);
    assert!(
        human.contains("estimate") && human.contains("/ 4"),
        "{human}"
    );
}

#[test]
fn watch_follows_live_operations_and_an_eager_agents_events() {
    let seg = Seg::new("watch");
    let mut watch = Command::new(CCS)
        .args(["watch", &seg.name, "--agent", "executor", "--count", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it watches (it says so on stderr), so the operations below are new to it.
    let mut ready = String::new();
    BufReader::new(watch.stderr.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert!(ready.starts_with("watching"));
    assert_eq!(seg.put("planner", "task/spec", "v1", &[]), 0);
    seg.get("executor", "task/spec");
    let out = watch.wait_with_output().unwrap();
    let lines = text(&out.stdout);
    let lines: Vec<&str> = lines.lines().collect();
    // The executor's attach, then its MISS (the planner's put is filtered out).
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("attach") && lines[0].contains("agent=executor"));
    assert!(
        lines[1].contains("[MISS]") && lines[1].contains("key=task/spec v1"),
        "{lines:?}"
    );

    let mut events = Command::new(CCS)
        .args([
            "watch",
            &seg.name,
            "--subscribe",
            "task/",
            "--agent",
            "listener",
            "--json",
            "--count",
            "2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(events.stderr.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(seg.put("planner", "task/spec", "v2", &[]), 0);
    assert_eq!(seg.put("planner", "other/x", "not subscribed", &[]), 0);
    assert_eq!(seg.put("planner", "task/new", "v1", &[]), 0);
    let out = events.wait_with_output().unwrap();
    let events: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["key"], "task/spec");
    assert_eq!(events[0]["version"], 2);
    assert_eq!(events[0]["writer"], "planner");
    assert_eq!(events[1]["key"], "task/new");
}

#[test]
fn switches_turn_logging_and_invalidation_off_and_on() {
    let seg = Seg::new("switch");
    let out = seg.ccs(&["switch", &seg.name, "--logging", "off"]);
    assert!(text(&out.stdout).contains("logging off"));
    assert_eq!(seg.put("planner", "plan", "unlogged", &[]), 0);
    seg.ccs(&["switch", &seg.name, "--logging", "on"]);
    assert_eq!(seg.put("planner", "plan", "logged", &[]), 0);
    let log = text(&seg.ccs(&["log", &seg.name]).stdout);
    let puts: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["op"] == "put")
        .collect();
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0]["version"], 2);

    let out = seg.ccs(&["switch", &seg.name, "--invalidation", "off"]);
    assert!(text(&out.stdout).contains("invalidation off"));
    let fsck = text(&seg.ccs(&["fsck", &seg.name]).stdout);
    assert!(fsck.contains("invalidation is switched OFF"), "{fsck}");
    let out = seg.ccs(&["switch", &seg.name, "--invalidation", "on"]);
    assert!(text(&out.stdout).contains("invalidation on"));
}

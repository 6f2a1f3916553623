//! End-to-end tests of the `ccs` binary on an etcd cluster: SEG is an `etcd://` URL, every
//! command is its own process (including `log`, `watch`, `stats` and `diagnose`, on the log
//! the etcd engine keeps), and the commands that exist only for shared-memory segments (`fsck`,
//! `switch`) fail with a clear message and exit 2.
//!
//! The cluster is the etcd test kit's (`ccs-etcd-testkit`): the one `CCS_ETCD_ENDPOINTS`
//! names, or a private one of this process; without either the tests fail.

use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

const CCS: &str = env!("CARGO_BIN_EXE_ccs");

/// The test kit's shared cluster; the tests fail without one.
fn endpoints() -> &'static str {
    ccs_etcd_testkit::shared_endpoints().expect(
        "these tests need an etcd cluster: set CCS_ETCD_ENDPOINTS, or install etcd (scripts/deps)",
    )
}

/// A prefix unique to this test on the cluster; destroyed on drop.
struct Url(String);

impl Url {
    fn new(tag: &str) -> Url {
        static COUNTER: Mutex<u32> = Mutex::new(0);
        let n = {
            let mut c = COUNTER.lock().unwrap_or_else(|p| p.into_inner());
            *c += 1;
            *c
        };
        Url(format!(
            "etcd://{}/ccs-cli-test/{tag}-{}-{n}",
            ccs_etcd_testkit::hosts(endpoints()),
            std::process::id()
        ))
    }
}

impl Drop for Url {
    fn drop(&mut self) {
        let _ = Command::new(CCS)
            .args(["destroy", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// One run of `ccs`: exit code, stdout, stderr.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn expect(self, code: i32, args: &[&str]) -> Run {
        assert_eq!(
            self.code, code,
            "ccs {args:?}: stdout {:?}, stderr {:?}",
            self.stdout, self.stderr
        );
        self
    }
}

fn ccs_in(args: &[&str], stdin: &[u8]) -> Run {
    use std::io::Write as _;
    let mut child = Command::new(CCS)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ccs");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).expect("write stdin");
    drop(input);
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().expect("wait for ccs");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Run `ccs args` (empty stdin) and require exit `code`.
fn ccs(code: i32, args: &[&str]) -> Run {
    ccs_in(args, b"").expect(code, args)
}

fn put(url: &Url, key: &str, agent: &str, payload: &str, extra: &[&str], code: i32) -> Run {
    let args = [&["put", &url.0, key, "--agent", agent], extra].concat();
    ccs_in(&args, payload.as_bytes()).expect(code, &args)
}

#[test]
fn the_shell_story_on_etcd() {
    let url = Url::new("story");
    let seg = url.0.as_str();
    let init = ccs(0, &["init", seg]);
    assert!(init.stdout.contains("nothing to create"), "{}", init.stdout);
    assert_eq!(
        put(&url, "task/spec", "planner", "rename foo", &[], 0).stdout,
        "1\n"
    );

    let got = ccs(0, &["get", seg, "task/spec", "--agent", "executor"]);
    assert_eq!(got.stdout, "rename foo");
    assert_eq!(got.stderr.trim(), "MISS v1");
    // A new process: the copy lives in the process that read it, the view in the cluster.
    let check = ccs(0, &["check", seg, "task/spec", "--agent", "executor"]);
    assert_eq!(check.stdout, "current v1\n");

    put(&url, "task/spec", "planner", "rename bar", &[], 0);
    let check = ccs(4, &["check", seg, "task/spec", "--agent", "executor"]);
    assert_eq!(check.stdout, "stale: you hold v1, current is v2\n");
    let refused = put(&url, "task/spec", "executor", "built on v1", &[], 3);
    assert!(refused.stderr.contains("version 2"), "{}", refused.stderr);
    put(
        &url,
        "task/spec",
        "executor",
        "cas",
        &["--if-version", "1"],
        3,
    );
    assert_eq!(
        put(
            &url,
            "task/spec",
            "executor",
            "cas",
            &["--if-version", "2"],
            0
        )
        .stdout,
        "3\n"
    );
    assert_eq!(
        put(&url, "task/spec", "planner", "blind", &["--blind"], 0).stdout,
        "4\n"
    );
    put(&url, "task/notes", "planner", "n", &[], 0);
    assert_eq!(ccs(0, &["list", seg]).stdout, "task/notes\ntask/spec\n");
    assert_eq!(
        ccs(0, &["list", seg, "--prefix", "task/s"]).stdout,
        "task/spec\n"
    );

    let table = ccs(0, &["status", seg]).stdout;
    assert!(table.contains("etcd cluster at revision"), "{table}");
    assert!(table.contains("task/spec"), "{table}");
    let json: serde_json::Value =
        serde_json::from_str(&ccs(0, &["status", seg, "--json"]).stdout).expect("JSON status");
    assert_eq!(json["schema"], 1);
    assert_eq!(json["backend"], "etcd");
    assert!(json["revision"].as_i64().is_some_and(|r| r > 0));
    assert_eq!(json["artifacts"][1]["key"], "task/spec");
    assert_eq!(json["artifacts"][1]["version"], 4);

    ccs(
        5,
        &[
            "wait",
            seg,
            "task/spec",
            "--agent",
            "w",
            "--since",
            "4",
            "--timeout-ms",
            "300",
        ],
    );
    assert_eq!(
        ccs(
            0,
            &["wait", seg, "task/spec", "--agent", "w", "--since", "3"]
        )
        .stdout,
        "4\n"
    );
    assert_eq!(
        ccs(0, &["delete", seg, "task/notes", "--agent", "planner"]).stdout,
        "2\n"
    );
    ccs(1, &["get", seg, "task/notes", "--agent", "planner"]);
    ccs(0, &["sync", seg]);
    ccs(0, &["destroy", seg]);
    assert_eq!(ccs(0, &["list", seg]).stdout, "");
}

#[test]
fn a_wait_wakes_on_a_write_from_another_process() {
    let url = Url::new("wait");
    let seg = url.0.as_str();
    put(&url, "k", "a", "1", &[], 0);
    let waiter = Command::new(CCS)
        .args([
            "wait",
            seg,
            "k",
            "--agent",
            "w",
            "--since",
            "1",
            "--timeout-ms",
            "30000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ccs wait");
    std::thread::sleep(Duration::from_millis(300));
    put(&url, "k", "a", "2", &[], 0);
    let out = waiter.wait_with_output().expect("wait for ccs wait");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2\n");
}

#[test]
fn shared_memory_only_commands_exit_2_with_a_reason() {
    let url = Url::new("shm-only");
    let seg = url.0.as_str();
    let commands: [&[&str]; 4] = [
        &["fsck", seg],
        &["fsck", seg, "--repair"],
        &["switch", seg],
        &["switch", seg, "--invalidation", "off"],
    ];
    for args in commands {
        let run = ccs(2, args);
        assert!(
            run.stderr.contains("is not supported on an etcd cluster"),
            "{args:?}: {}",
            run.stderr
        );
    }
    let sized = ccs(2, &["init", seg, "--agents", "8"]);
    assert!(sized.stderr.contains("nothing to size"), "{}", sized.stderr);
}

#[test]
fn the_operation_log_on_etcd() {
    let url = Url::new("log");
    let seg = url.0.as_str();
    put(&url, "plan", "planner", "v1", &[], 0);
    ccs(0, &["get", seg, "plan", "--agent", "executor"]);
    put(&url, "plan", "planner", "v2", &[], 0);
    put(&url, "plan", "executor", "on v1", &[], 3);
    let text = ccs(0, &["log", seg, "--text"]).stdout;
    for expected in [
        "put     agent=planner key=plan v1 rev=",
        "[MISS]      get     agent=executor key=plan v1 rev=",
        "[CONFLICT]  put     agent=executor key=plan v2 (held v1)",
    ] {
        assert!(text.contains(expected), "{expected:?} not in\n{text}");
    }
    let jsonl = ccs(0, &["log", seg]).stdout;
    let first: serde_json::Value =
        serde_json::from_str(jsonl.lines().next().expect("a record")).expect("JSON");
    assert!(first["revision"].as_u64().is_some(), "{first}");
    let diagnosis = ccs(0, &["diagnose", seg]).stdout;
    assert!(diagnosis.starts_with("clean:"), "{diagnosis}");
    let stats = ccs(0, &["stats", seg]).stdout;
    assert!(stats.contains("executor"), "{stats}");
    // A watch sees a write made after it started.
    let watch = Command::new(CCS)
        .args(["watch", seg, "--count", "2", "--duration-ms", "20000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ccs watch");
    std::thread::sleep(Duration::from_millis(1000));
    put(&url, "plan", "planner", "v3", &["--blind"], 0);
    let out = watch.wait_with_output().expect("wait for ccs watch");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("key=plan v3"), "{shown}");
    assert!(shown.contains("mode=blind"), "{shown}");
}

#[test]
fn bad_urls_and_unreachable_clusters_are_named() {
    let run = ccs(2, &["list", "etcd://127.0.0.1:2379"]);
    assert!(
        run.stderr.contains("a /prefix is required"),
        "{}",
        run.stderr
    );
    // Port 1 refuses connections: the request is retried within the engine's timeout.
    let run = ccs(1, &["list", "etcd://127.0.0.1:1/nobody"]);
    assert!(run.stderr.contains("is unavailable"), "{}", run.stderr);
    assert!(run.stderr.contains("majority"), "{}", run.stderr);
}

#[test]
fn bench_ops_runs_on_etcd_with_the_etcdctl_floor_in_the_same_run() {
    let url = Url::new("bench");
    let args = [
        "bench",
        "ops",
        "--on",
        url.0.as_str(),
        "--samples",
        "10",
        "--artifacts",
        "4",
        "--agents",
        "2",
        "--json",
    ];
    let run = ccs_in(&args, b"").expect(0, &args);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    let ops: Vec<&str> = report["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["op"].as_str())
        .collect();
    for op in [
        "get_hit_handle",
        "get_miss",
        "put_with_peers",
        "put_no_peers",
        "etcdctl_put",
    ] {
        assert!(ops.contains(&op), "{op} missing from {ops:?}");
    }
    // Numbers, not timing claims (those live in docs/benchmarks.md): every row was measured.
    for r in report["results"].as_array().expect("results") {
        assert!(r["median_ns"].as_f64().is_some_and(|m| m > 0.0), "{r}");
        assert!(r["samples"].as_u64().is_some_and(|n| n >= 10), "{r}");
    }
}

//! The `ccs` binary on etcd when things go wrong: URLs are parsed strictly (a malformed
//! `etcd:` location is refused with exit 2, never taken for a shared-memory path; options ride
//! in the query), and with the quorum lost `ccs wait --timeout-ms` and `ccs mcp` (at the end
//! of its input) exit within their bounds: the wait's timeout, then the detach timeout (2 s
//! by default), not the 10 s operation timeout once per request.
//!
//! The clusters are private (members are killed, paused, cut off), from the etcd test kit
//! (`ccs-etcd-testkit`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ccs_etcd_testkit::{TestCluster, installed as etcd_installed};

const CCS: &str = env!("CARGO_BIN_EXE_ccs");
/// Run `ccs args` to the end: (exit code, stderr, how long it took).
fn ccs(args: &[&str]) -> (i32, String, Duration) {
    let started = Instant::now();
    let out = Command::new(CCS)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ccs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn malformed_etcd_urls_are_refused_with_exit_2_and_options_are_query_parameters() {
    for (url, says) in [
        ("etcd://127.0.0.1:0/x", "1-65535"),
        ("etcd://127.0.0.1:65536/x", "1-65535"),
        ("etcd:/127.0.0.1:1/x", "//"),
        ("Etcd:127.0.0.1:1/x", "//"),
        (
            "etcd://127.0.0.1:1/x?session_ttl=2s&bogus=1",
            "unknown option",
        ),
        ("etcd://127.0.0.1:1/x?session_ttl=soon", "duration"),
    ] {
        let (code, stderr, took) = ccs(&["get", url, "k", "--agent", "a"]);
        assert_eq!(code, 2, "{url}: {stderr}");
        assert!(stderr.contains(says), "{url}: {stderr}");
        assert!(
            !stderr.contains("does not exist"),
            "{url} taken for a shared-memory path: {stderr}"
        );
        assert!(took < Duration::from_secs(5), "{url}: {took:?}");
    }
    // The scheme is case-insensitive and the query sets the engine's options: nothing listens
    // on port 1, so the command fails as unavailable (exit 1) within the URL's timeout.
    let (code, stderr, took) = ccs(&[
        "get",
        "ETCD://127.0.0.1:1/x?timeout=1s&request_timeout=500ms",
        "k",
        "--agent",
        "a",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("unavailable"), "{stderr}");
    assert!(took < Duration::from_secs(4), "{took:?}");
}

/// A child that is killed if the test fails before it exits.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn exit_within(child: &mut Reaped, bound: Duration) -> (i32, Duration) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.0.try_wait().expect("wait for ccs") {
            return (status.code().unwrap_or(-1), started.elapsed());
        }
        assert!(
            started.elapsed() < bound + Duration::from_secs(30),
            "ccs did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn without_quorum_ccs_wait_and_ccs_mcp_exit_within_their_bounds() {
    if !etcd_installed() {
        return;
    }
    let etcd = TestCluster::start();
    let hosts = etcd.hosts();
    // Default options: 10 s per operation, 2 s to detach.
    let url = format!("etcd://{}/quorum-{}", hosts, std::process::id());
    let (code, stderr, _) = {
        let started = Instant::now();
        let mut put = Command::new(CCS)
            .args(["put", &url, "k", "--agent", "writer"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn ccs put");
        drop(put.stdin.take());
        let out = put.wait_with_output().expect("ccs put");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            started.elapsed(),
        )
    };
    assert_eq!(code, 0, "{stderr}");

    let mut mcp = Reaped(
        Command::new(CCS)
            .args(["mcp", &url, "--agent", "model"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ccs mcp"),
    );
    let mut banner = String::new();
    let mut mcp_err = BufReader::new(mcp.0.stderr.take().expect("stderr"));
    mcp_err.read_line(&mut banner).expect("read the banner");
    assert!(banner.contains("serving"), "{banner}");
    let mut wait = Reaped(
        Command::new(CCS)
            .args([
                "wait",
                &url,
                "k",
                "--since",
                "1",
                "--timeout-ms",
                "3000",
                "--agent",
                "waiter",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ccs wait"),
    );
    // The waiter is attached once its session shows in the status.
    let attached = Instant::now();
    loop {
        let out = Command::new(CCS)
            .args(["status", &url, "--json"])
            .output()
            .expect("ccs status");
        if String::from_utf8_lossy(&out.stdout).contains("\"waiter\"") {
            break;
        }
        assert!(
            attached.elapsed() < Duration::from_secs(20),
            "ccs wait never attached"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    for n in TestCluster::others(&etcd.leader()) {
        etcd.kill(&n);
    }
    // The wait's 3 s, then the detach timeout, then process exit: well under the 42-52 s
    // it took when each of the last flush and the revoke waited a full operation timeout.
    let (code, took) = exit_within(&mut wait, Duration::from_secs(8));
    eprintln!(
        "no quorum: ccs wait --timeout-ms 3000 exited {code} after {took:?} (since the kill)"
    );
    // 5: timed out (the wait read the version before the kill); 1: unavailable.
    assert!(code == 5 || code == 1, "exit {code}");
    assert!(took < Duration::from_secs(8), "{took:?}");

    drop(mcp.0.stdin.take());
    let (code, took) = exit_within(&mut mcp, Duration::from_secs(6));
    eprintln!("no quorum: ccs mcp exited {code} {took:?} after the end of its input");
    assert_eq!(code, 0);
    assert!(took < Duration::from_secs(6), "{took:?}");
}

/// Run `ccs torture --history` on `etcd` for `seconds` (3 workers, a worker SIGKILLed every
/// 3-4 s) while `faults` runs; require every check to pass, the four history checks included
/// (linearizability per key, no stale HIT, one winner, fencing). `what` names the run.
fn torture_checks_clean(etcd: &TestCluster, what: &str, seconds: u32, faults: impl FnOnce()) {
    let url = format!(
        "etcd://{}/torture-history-{}-{}?session_ttl=2s&request_timeout=1s",
        etcd.hosts(),
        what.replace(' ', "-"),
        std::process::id()
    );
    let file = std::env::temp_dir().join(format!(
        "ccs-etcd-history-{}-{}.jsonl",
        what.replace(' ', "-"),
        std::process::id()
    ));
    let path = file.display().to_string();
    let mut torture = Reaped(
        Command::new(CCS)
            .args([
                "torture",
                &url,
                "--workers",
                "3",
                "--seconds",
                &seconds.to_string(),
                "--kill-interval-ms",
                "3000-4000",
                "--history",
                &path,
                "--json",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn ccs torture"),
    );
    faults();
    let stdout = torture.0.stdout.take().expect("stdout");
    let report: serde_json::Value = serde_json::from_reader(stdout).expect("a JSON report");
    let status = torture.0.wait().expect("wait for ccs torture");
    let _ = std::fs::remove_file(&file);
    let checks = report["checks"].as_array().expect("checks").clone();
    for c in &checks {
        assert_ne!(c["status"], "failed", "{c}");
    }
    let names: Vec<&str> = checks.iter().filter_map(|c| c["name"].as_str()).collect();
    for name in [
        "history: linearizability",
        "history: no stale HIT",
        "history: one winner",
        "history: fencing",
    ] {
        assert!(names.contains(&name), "{names:?}");
    }
    assert!(status.success(), "{report}");
    eprintln!(
        "etcd torture under {what}: {} operations issued, {} unavailable, {} kills; history checked",
        report["operations"]["total"], report["operations"]["unavailable"], report["kills"]
    );
}

/// `ccs torture --history` on etcd under faults beyond kills: the leader paused for 3 s, then
/// two of three members killed for 2 s (no quorum) and revived, while workers are SIGKILLed
/// every 3-4 s. Every check passes, the history's included.
#[test]
fn a_torture_history_on_etcd_under_pause_and_quorum_loss_checks_clean() {
    if !etcd_installed() {
        return;
    }
    let etcd = TestCluster::start();
    torture_checks_clean(&etcd, "pause and quorum loss", 12, || {
        std::thread::sleep(Duration::from_secs(3));
        let leader = etcd.leader();
        etcd.pause(&leader);
        std::thread::sleep(Duration::from_secs(3));
        etcd.resume(&leader);
        std::thread::sleep(Duration::from_secs(1));
        let others = TestCluster::others(&etcd.leader());
        for n in &others {
            etcd.kill(n);
        }
        std::thread::sleep(Duration::from_secs(2));
        for n in &others {
            etcd.revive(n);
        }
    });
}

/// `ccs torture --history` on etcd under network partitions (members in network namespaces,
/// packets dropped between them): the leader cut off from the other two for 3 s, then a
/// follower for 2 s, then the two followers from each other (the leader still sees both) for
/// 2 s, while workers are SIGKILLed every 3-4 s. Every check passes, the history's included.
#[test]
fn a_torture_history_on_etcd_under_network_partitions_checks_clean() {
    if !etcd_installed() {
        return;
    }
    let Some(etcd) = TestCluster::start_partitionable() else {
        return;
    };
    torture_checks_clean(&etcd, "network partitions", 12, || {
        std::thread::sleep(Duration::from_secs(2));
        etcd.isolate(&etcd.leader());
        std::thread::sleep(Duration::from_secs(3));
        etcd.heal();
        std::thread::sleep(Duration::from_secs(1));
        let leader = etcd.leader();
        let followers = TestCluster::others(&leader);
        etcd.isolate(&followers[0]);
        std::thread::sleep(Duration::from_secs(2));
        etcd.heal();
        std::thread::sleep(Duration::from_secs(1));
        etcd.cut(&followers[0], &followers[1]);
        std::thread::sleep(Duration::from_secs(2));
        etcd.heal();
    });
}

//! A private three-member etcd cluster for one test, run by `scripts/etcd-cluster`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::ports::PortBlock;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/etcd-cluster");

/// A cluster on ports of its own, owned by this process: stopped (members killed, data and
/// namespaces removed) when dropped, or by the script's watchdog once this process has exited.
#[derive(Debug)]
pub struct TestCluster {
    // Dropped after the cluster is stopped (fields drop after `Drop::drop`).
    ports: PortBlock,
    endpoints: String,
}

impl TestCluster {
    /// Start a cluster on loopback and wait until every member is healthy.
    pub fn start() -> TestCluster {
        TestCluster::start_in(false)
    }

    /// Start a cluster whose members run in network namespaces of their own, so that
    /// [`isolate`](Self::isolate), [`cut`](Self::cut) and [`heal`](Self::heal) can partition
    /// them. `None`, with a loud message, where the machine cannot (not root, or no
    /// `ip netns`; scripts/deps checks this capability).
    pub fn start_partitionable() -> Option<TestCluster> {
        let root = rustix::process::geteuid().is_root();
        let netns = Command::new("ip")
            .args(["netns", "list"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !(root && netns) {
            eprintln!(
                "\n*** SKIPPING the partition test: network namespaces need root and iproute2 \
                 (scripts/deps checks them) ***\n"
            );
            return None;
        }
        Some(TestCluster::start_in(true))
    }

    fn start_in(netns: bool) -> TestCluster {
        let ports = PortBlock::claim();
        let out = script(
            ports.base(),
            &["start", "--owner", &std::process::id().to_string()],
            netns,
        );
        let endpoints = out
            .lines()
            .find_map(|l| l.strip_prefix("export CCS_ETCD_ENDPOINTS="))
            .unwrap_or_else(|| panic!("scripts/etcd-cluster start printed no endpoints: {out}"))
            .to_owned();
        TestCluster { ports, endpoints }
    }

    /// `http://host:port,...`
    pub fn endpoints(&self) -> &str {
        &self.endpoints
    }

    /// `host:port,...`, as `etcd://` URLs name the members.
    pub fn hosts(&self) -> String {
        crate::hosts(&self.endpoints)
    }

    /// The index ("0", "1" or "2") of the current leader, once there is one (an election may
    /// be under way after a fault). Panics after 20 s without a leader.
    pub fn leader(&self) -> String {
        let started = Instant::now();
        loop {
            let leader = self.run(&["leader"]).trim().to_owned();
            if !leader.is_empty() {
                return leader;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no etcd leader for 20 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The members other than `member`.
    pub fn others(member: &str) -> Vec<String> {
        ["0", "1", "2"]
            .into_iter()
            .filter(|n| *n != member)
            .map(str::to_owned)
            .collect()
    }

    /// SIGKILL a member.
    pub fn kill(&self, member: &str) {
        self.run(&["kill", member]);
    }

    /// Start a killed member again.
    pub fn revive(&self, member: &str) {
        self.run(&["revive", member]);
    }

    /// SIGSTOP a member.
    pub fn pause(&self, member: &str) {
        self.run(&["pause", member]);
    }

    /// SIGCONT a paused member.
    pub fn resume(&self, member: &str) {
        self.run(&["resume", member]);
    }

    /// Start every member that is not running, from the cluster's data.
    pub fn restart(&self) {
        self.run(&["start"]);
    }

    /// Cut `member` off from the other two members (clients still reach it).
    pub fn isolate(&self, member: &str) {
        self.run(&["isolate", member]);
    }

    /// Cut the link between members `a` and `b` only.
    pub fn cut(&self, a: &str, b: &str) {
        self.run(&["cut", a, b]);
    }

    /// Undo every partition.
    pub fn heal(&self) {
        self.run(&["heal"]);
    }

    /// Run `scripts/etcd-cluster args` on this cluster; its stdout.
    pub fn run(&self, args: &[&str]) -> String {
        script(self.ports.base(), args, false)
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let _ = Command::new(SCRIPT)
            .arg("stop")
            .env("CCS_ETCD_PORT_BASE", self.ports.base().to_string())
            .env_remove("CCS_ETCD_DIR")
            .env_remove("CCS_ETCD_NETNS")
            .stdout(Stdio::null())
            .status();
    }
}

/// `scripts/etcd-cluster args` on `base`; its stdout. Panics (the test fails) if it fails.
fn script(base: u16, args: &[&str], netns: bool) -> String {
    let mut command = Command::new(SCRIPT);
    command
        .args(args)
        .env("CCS_ETCD_PORT_BASE", base.to_string())
        .env_remove("CCS_ETCD_DIR")
        .env_remove("CCS_ETCD_NETNS")
        .stderr(Stdio::inherit());
    if netns {
        command.env("CCS_ETCD_NETNS", "1");
    }
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {SCRIPT}: {e}"));
    assert!(
        out.status.success(),
        "scripts/etcd-cluster {args:?} (port base {base}) failed"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

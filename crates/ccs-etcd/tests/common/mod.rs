//! Shared plumbing of the ccs-etcd tests: a real etcd cluster (from the etcd test kit,
//! `ccs-etcd-testkit`), a unique prefix per test that is destroyed
//! afterwards, and child processes: the test binary re-executes itself in a named role
//! (`CCS_ETCD_ROLE`), reports with lines starting `CCS> ` and takes orders on stdin.

#![allow(dead_code, clippy::unwrap_used)] // each test binary uses part of this module

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use ccs_etcd::{Cluster, Options};

pub const ROLE_ENV: &str = "CCS_ETCD_ROLE";
pub const URL_ENV: &str = "CCS_ETCD_TEST_URL";
pub const ARGS_ENV: &str = "CCS_ETCD_TEST_ARGS";
pub const PREFIX: &str = "CCS> ";
/// Bound on every wait for a child, only to avoid hanging forever.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Endpoints of the cluster the tests share (the test kit's: `CCS_ETCD_ENDPOINTS`, or a
/// private cluster of this process); `None` (with a loud message) only if etcd is not
/// installed and no cluster was named.
pub fn endpoints() -> Option<String> {
    ccs_etcd_testkit::shared_endpoints().map(str::to_owned)
}

/// Options for tests: a 2 s session so that dead or stopped agents are noticed quickly.
pub fn options() -> Options {
    Options {
        session_ttl: Duration::from_secs(2),
        safety_margin: Duration::from_millis(200),
        ack_timeout: Duration::from_secs(10),
        op_timeout: Duration::from_secs(10),
        ..Options::default()
    }
}

/// A prefix unique to this process and call, on the test cluster; destroyed when dropped.
pub struct Prefix {
    pub url: String,
}

impl Prefix {
    pub fn new(tag: &str) -> Option<Prefix> {
        Some(Prefix::on(&endpoints()?, tag))
    }

    pub fn on(endpoints: &str, tag: &str) -> Prefix {
        static COUNTER: Mutex<u32> = Mutex::new(0);
        let n = {
            let mut c = COUNTER.lock().unwrap_or_else(|p| p.into_inner());
            *c += 1;
            *c
        };
        let prefix = format!("test-{tag}-{}-{n}", std::process::id());
        Prefix {
            url: ccs_etcd::url::url_for(endpoints, &prefix),
        }
    }

    pub fn cluster(&self) -> Cluster {
        Cluster::connect_with(&self.url, options()).unwrap()
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let _ = Cluster::destroy(&self.url);
    }
}

/// In a child, run `role` if this process was spawned as one, then exit; in the parent, return.
pub fn child_main(role: impl FnOnce(&str, &str, &[String])) {
    let Ok(name) = std::env::var(ROLE_ENV) else {
        return;
    };
    let url = std::env::var(URL_ENV).unwrap();
    let args: Vec<String> = std::env::var(ARGS_ENV)
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    role(&name, &url, &args);
    std::process::exit(0);
}

/// Report a line to the parent.
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{PREFIX}{line}").unwrap();
    out.flush().unwrap();
}

/// Wait for the parent's next order.
pub fn hear() -> String {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    line.trim().to_owned()
}

/// A child process in a role.
pub struct Proc {
    pub child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Proc {
    pub fn spawn(role: &str, url: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
            .env(ROLE_ENV, role)
            .env(URL_ENV, url)
            .env(ARGS_ENV, args.join(" "))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The harness's "test child_entry ... " may precede the first report.
                if let Some(at) = line.find(PREFIX)
                    && tx.send(line[at + PREFIX.len()..].to_owned()).is_err()
                {
                    break;
                }
            }
        });
        Proc {
            child,
            stdin,
            lines,
        }
    }

    /// The child's next report.
    pub fn next(&self) -> String {
        self.lines
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("child {} said nothing in time", self.child.id()))
    }

    /// The next report, which must start with `word`; the rest of it.
    pub fn expect(&self, word: &str) -> String {
        let line = self.next();
        match line.strip_prefix(word) {
            Some(rest) => rest.trim().to_owned(),
            None => panic!("expected `{word}...` from the child, got `{line}`"),
        }
    }

    pub fn tell(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    pub fn wait_ok(mut self) {
        let status = self.child.wait().unwrap();
        assert!(status.success(), "child failed: {status}");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parse the `i`th argument.
pub fn arg<T: std::str::FromStr>(args: &[String], i: usize) -> T
where
    T::Err: std::fmt::Debug,
{
    args[i].parse().unwrap()
}

//! Shared plumbing of the multi-process tests: every test binary re-executes itself as a child
//! process in a named role, talks to it over pipes, and cleans up its segment and children even
//! when a test panics.
//!
//! A test file declares
//!
//! ```ignore
//! #[test]
//! fn child_entry() {
//!     common::child_main(|role, seg, args| match role { ... });
//! }
//! ```
//!
//! which does nothing in the parent. The parent spawns `current_exe() --exact child_entry
//! --nocapture` with `CCS_TEST_ROLE`, `CCS_TEST_SEG` and `CCS_TEST_ARGS` set; the child runs
//! its role and exits (status 0 on success, 101 if the role panicked). Children report with
//! [`say`] (a line prefixed with [`PREFIX`] on stdout, so the harness's own lines are ignored)
//! and wait for the parent's go-ahead with [`hear`] (a line on stdin).

#![allow(dead_code, clippy::unwrap_used)] // each test binary uses part of this module

use agent_coherence::{Conflict, Held};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent_coherence::Config;

/// Environment variable naming the child's role.
pub const ROLE_ENV: &str = "CCS_TEST_ROLE";
/// Environment variable naming the segment.
pub const SEG_ENV: &str = "CCS_TEST_SEG";
/// Environment variable carrying the role's arguments, separated by spaces.
pub const ARGS_ENV: &str = "CCS_TEST_ARGS";
/// Prefix of the lines a child reports to its parent.
pub const PREFIX: &str = "CCS> ";
/// Bound on every wait for a child, only to avoid hanging forever (never a timing assertion).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Small segments for most tests.
pub fn small_config() -> Config {
    Config {
        max_agents: 16,
        max_artifacts: 256,
        arena_bytes: 8 << 20,
        max_payload: 64 << 10,
        ..Config::default()
    }
}

/// A shared-memory name unique to this process and call.
pub fn unique_name(tag: &str) -> String {
    static COUNTER: Mutex<u32> = Mutex::new(0);
    let n = {
        let mut counter = COUNTER.lock().unwrap_or_else(|p| p.into_inner());
        *counter += 1;
        *counter
    };
    format!("ccs-test-{tag}-{}-{n}", std::process::id())
}

/// A file-path location (under the temp directory) unique to this process and call.
pub fn unique_path(tag: &str) -> String {
    let path = std::env::temp_dir().join(unique_name(tag));
    path.to_str().unwrap().to_owned()
}

/// Where the file backing `location` lives: `/dev/shm/<name>` or the path itself.
pub fn backing_file(location: &str) -> PathBuf {
    if location.contains('/') {
        PathBuf::from(location)
    } else {
        Path::new("/dev/shm").join(location)
    }
}

/// In a child, run `role` if this process was spawned as one, then exit; in the parent, return.
pub fn child_main(role: impl FnOnce(&str, &str, &[String])) {
    let Ok(name) = std::env::var(ROLE_ENV) else {
        return;
    };
    let seg = std::env::var(SEG_ENV).unwrap_or_default();
    let args: Vec<String> = std::env::var(ARGS_ENV)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    role(&name, &seg, &args);
    std::io::stdout().flush().unwrap();
    std::process::exit(0);
}

/// In a child: report one line to the parent.
pub fn say(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{PREFIX}{}", line.as_ref()).unwrap();
    out.flush().unwrap();
}

/// In a child: wait for one line from the parent (panics if the parent is gone).
pub fn hear() -> String {
    let mut line = String::new();
    let n = std::io::stdin().lock().read_line(&mut line).unwrap();
    assert!(n > 0, "parent closed stdin");
    line.trim_end().to_owned()
}

/// Parse argument `i` of a role.
pub fn arg<T: std::str::FromStr>(args: &[String], i: usize) -> T
where
    T::Err: std::fmt::Debug,
{
    args[i].parse().unwrap()
}

/// Pids of children not yet reaped, shared by a [`SegGuard`] and the [`Proc`]s it spawned.
type Registry = Arc<Mutex<Vec<u32>>>;

/// Owns a test's segment: destroys it (and SIGKILLs any child not yet reaped) on drop, even
/// when the test panics.
pub struct SegGuard {
    /// The segment's location.
    pub name: String,
    children: Registry,
}

impl SegGuard {
    /// Guard a shared-memory segment under a unique name (not created here).
    pub fn shm(tag: &str) -> SegGuard {
        SegGuard::at(unique_name(tag))
    }

    /// Guard a file-path segment under the temp directory (not created here).
    pub fn file(tag: &str) -> SegGuard {
        SegGuard::at(unique_path(tag))
    }

    /// Guard a segment at `location`, on any backend (an `etcd://` URL, say; not created here).
    pub fn at(location: String) -> SegGuard {
        SegGuard {
            name: location,
            children: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Spawn this test binary as a child in `role`, on this segment, with `args`.
    pub fn spawn(&self, role: &str, args: &[&str]) -> Proc {
        Proc::spawn(role, &self.name, args, Some(self.children.clone()))
    }

    /// Destroy the segment and check nothing is left behind.
    pub fn finish(self) {
        self.kill_children();
        agent_coherence::Segment::destroy(&self.name)
            .unwrap_or_else(|e| panic!("destroying {}: {e}", self.name));
        let file = backing_file(&self.name);
        assert!(!file.exists(), "{} is left behind", file.display());
        // Drop runs next: destroy again fails quietly.
    }

    fn kill_children(&self) {
        let pids = std::mem::take(&mut *self.children.lock().unwrap_or_else(|p| p.into_inner()));
        for pid in pids {
            // The pid is still ours: it is removed from the registry only once reaped.
            kill_and_reap(pid);
        }
    }
}

impl Drop for SegGuard {
    fn drop(&mut self) {
        self.kill_children();
        let _ = agent_coherence::Segment::destroy(&self.name);
    }
}

fn kill_and_reap(pid: u32) {
    let pid = pid as libc::pid_t;
    // SAFETY: kill and waitpid take plain integers; `pid` is an unreaped child of this process.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
}

/// A child process in a role: write lines to its stdin, read its reported lines, wait for it.
/// Killed and reaped on drop if still running.
pub struct Proc {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    role: String,
    registry: Option<Registry>,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Spawn this test binary as `role` on `seg` (`registry`: who else kills it if leaked).
    pub fn spawn(role: &str, seg: &str, args: &[&str], registry: Option<Registry>) -> Proc {
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new(exe)
            .args([
                "--exact",
                "child_entry",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env(ROLE_ENV, role)
            .env(SEG_ENV, seg)
            .env(ARGS_ENV, args.join(" "))
            .env_remove("RUST_TEST_THREADS")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {role}: {e}"));
        if let Some(registry) = &registry {
            registry.lock().unwrap().push(child.id());
        }
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix(PREFIX)
                    && tx.send(rest.to_owned()).is_err()
                {
                    break;
                }
            }
        });
        Proc {
            stdin: child.stdin.take(),
            child: Some(child),
            lines: rx,
            role: role.to_owned(),
            registry,
            status: None,
        }
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Send one line to the child's stdin.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin closed");
        writeln!(stdin, "{line}").unwrap_or_else(|e| panic!("writing to {}: {e}", self.role));
        stdin.flush().unwrap();
    }

    /// The next line the child reports (waits at most [`PATIENCE`]).
    pub fn line(&mut self) -> String {
        match self.lines.recv_timeout(PATIENCE) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                panic!("{} said nothing for {PATIENCE:?}", self.role)
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.wait();
                panic!("{} exited ({status}) before reporting", self.role)
            }
        }
    }

    /// The next reported line if one is waiting, without blocking.
    pub fn try_line(&mut self) -> Option<String> {
        self.lines.try_recv().ok()
    }

    /// The next reported line, which must start with `word`; returns the rest, trimmed.
    pub fn expect(&mut self, word: &str) -> String {
        let line = self.line();
        match line.strip_prefix(word) {
            Some(rest) => rest.trim().to_owned(),
            None => panic!("{} said {line:?}, expected {word:?}", self.role),
        }
    }

    /// All remaining reported lines, until the child closes stdout.
    pub fn rest(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            match self.lines.recv_timeout(PATIENCE) {
                Ok(line) => lines.push(line),
                Err(RecvTimeoutError::Disconnected) => return lines,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("{} still running after {PATIENCE:?}", self.role)
                }
            }
        }
    }

    /// Wait for the child to exit (at most [`PATIENCE`], then kill it and panic).
    pub fn wait(&mut self) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        self.stdin = None;
        let child = self.child.as_mut().unwrap();
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > PATIENCE {
                let _ = child.kill();
                let _ = child.wait();
                self.reaped();
                panic!("{} did not exit within {PATIENCE:?}", self.role);
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        self.reaped();
        self.status = Some(status);
        status
    }

    /// Wait for the child to exit and require success.
    pub fn wait_ok(mut self) {
        let status = self.wait();
        assert!(status.success(), "{} failed: {status}", self.role);
    }

    /// SIGKILL the child and reap it.
    pub fn kill(&mut self) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        let child = self.child.as_mut().unwrap();
        let _ = child.kill();
        let status = child.wait().unwrap();
        self.reaped();
        self.status = Some(status);
        status
    }

    fn reaped(&mut self) {
        let pid = self.pid();
        if let Some(registry) = &self.registry {
            registry
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|&p| p != pid);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.status.is_none() {
            self.kill();
        }
    }
}

/// A tiny xorshift64* generator: enough randomness for payload sizes and delays.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; 0 is remapped).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// A generator seeded from the clock and pid.
    pub fn from_entropy() -> Rng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Rng::new(nanos ^ (u64::from(std::process::id()) << 32))
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// A self-checking payload of `len` bytes (at least 16): word 0 = len, word 1 = seed, every
/// later byte derived from the seed and its position.
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    assert!(len >= 16);
    let mut bytes = vec![0u8; len];
    bytes[..8].copy_from_slice(&(len as u64).to_le_bytes());
    bytes[8..16].copy_from_slice(&seed.to_le_bytes());
    fill(&mut bytes[16..], seed);
    bytes
}

fn fill(bytes: &mut [u8], seed: u64) {
    let mut rng = Rng::new(seed);
    for chunk in bytes.chunks_mut(8) {
        let word = rng.next().to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

/// Check a payload made by [`payload`]: `Ok(seed)` or what is wrong with it.
pub fn verify(bytes: &[u8]) -> Result<u64, String> {
    if bytes.len() < 16 {
        return Err(format!("only {} bytes", bytes.len()));
    }
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    if len != bytes.len() as u64 {
        return Err(format!("header says {len} bytes, got {}", bytes.len()));
    }
    let seed = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
    let mut rng = Rng::new(seed);
    for (i, chunk) in bytes[16..].chunks(8).enumerate() {
        let word = rng.next().to_le_bytes();
        if chunk != &word[..chunk.len()] {
            return Err(format!(
                "{len}-byte payload of seed {seed:#x} differs at byte {}",
                16 + 8 * i
            ));
        }
    }
    Ok(seed)
}

/// The child role `try_attach`: attach once, without retrying; report `ATTACHED`,
/// `BUSY <pid>` (another live process holds the name), `FULL <message>` (no slot free) or
/// `ERR <debug>`.
#[allow(dead_code)] // not every test binary uses every role
pub fn try_attach(seg: &str, name: &str) {
    let segment = agent_coherence::Segment::open(seg).unwrap();
    match segment.attach(name) {
        Ok(_agent) => say("ATTACHED"),
        Err(agent_coherence::Error::AgentBusy { pid, .. }) => say(format!("BUSY {pid}")),
        Err(e @ agent_coherence::Error::CapacityExceeded { .. }) => say(format!("FULL {e}")),
        Err(e) => say(format!("ERR {e:?}")),
    }
}

/// In a child: attach to `seg` as `name`, report `READY <pid>`, then run commands read from
/// stdin until `quit` (or EOF), answering each with one line:
///
/// - `get KEY` → `HIT|MISS <version> <text>`
/// - `put KEY TEXT` / `blind KEY TEXT` → `OK <version>` or `CONFLICT <current> <yours>`
/// - `putif KEY VERSION TEXT` → same
/// - `check KEY` → `CHECK <held|-> <current> <valid>`
/// - `acquire KEY LEASE_MS` → `ACQUIRED <version>` or `HELD <by>` (the hold is kept)
/// - `commit TEXT` → `OK <version>` or `FENCED`
///
/// Any other error answers `ERR <debug>`.
pub fn scripted_agent(seg: &str, name: &str) {
    use agent_coherence::{Error, Segment};
    let segment = Segment::open(seg).unwrap();
    let agent = segment.attach(name).unwrap();
    say(format!("READY {}", std::process::id()));
    let mut hold = None;
    let written = |result: agent_coherence::Result<u64>| match result {
        Ok(v) => format!("OK {v}"),
        Err(Error::Conflict(Conflict { current, yours, .. })) => {
            format!("CONFLICT {current} {yours}")
        }
        Err(Error::Fenced { .. }) => "FENCED".to_owned(),
        Err(e) => format!("ERR {e:?}"),
    };
    loop {
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).unwrap() == 0 {
            break;
        }
        let words: Vec<&str> = line.trim_end().splitn(3, ' ').collect();
        let reply = match words.as_slice() {
            ["quit"] => break,
            ["get", key] => match agent.get(*key) {
                Ok(r) => format!(
                    "{} {} {}",
                    if r.hit { "HIT" } else { "MISS" },
                    r.version,
                    String::from_utf8_lossy(&r.bytes)
                ),
                Err(e) => format!("ERR {e:?}"),
            },
            ["put", key, text] => written(agent.put(*key, text.as_bytes())),
            ["blind", key, text] => written(agent.put_blind(*key, text.as_bytes())),
            ["putif", key, rest] => {
                let (version, text) = rest.split_once(' ').unwrap();
                written(agent.put_if(*key, version.parse().unwrap(), text.as_bytes()))
            }
            ["check", key] => match agent.check(*key) {
                Ok(c) => format!(
                    "CHECK {} {} {}",
                    c.held.map_or("-".to_owned(), |v| v.to_string()),
                    c.current,
                    c.valid
                ),
                Err(e) => format!("ERR {e:?}"),
            },
            ["acquire", key, lease_ms] => {
                let lease = Duration::from_millis(lease_ms.parse().unwrap());
                match agent.acquire(*key, lease) {
                    Ok(guard) => {
                        let reply = format!("ACQUIRED {}", guard.version());
                        hold = Some(guard);
                        reply
                    }
                    Err(Error::Held(Held { by, .. })) => format!("HELD {by}"),
                    Err(e) => format!("ERR {e:?}"),
                }
            }
            ["commit", rest @ ..] => match hold.take() {
                Some(guard) => written(guard.commit(rest.join(" ").as_bytes())),
                None => "ERR no hold".to_owned(),
            },
            other => panic!("unknown command {other:?}"),
        };
        say(reply);
    }
    drop(hold);
    drop(agent);
}

/// In the parent: send `command` to a scripted agent and return its one-line answer.
pub fn ask(proc: &mut Proc, command: &str) -> String {
    proc.send(command);
    proc.line()
}

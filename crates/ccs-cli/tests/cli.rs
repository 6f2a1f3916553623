//! End-to-end tests of the `ccs` binary: every command runs as its own child process, so an
//! agent's identity and coherence state must persist in the segment between invocations.

use std::fs;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const CCS: &str = env!("CARGO_BIN_EXE_ccs");
/// Small segments keep the tests light on /dev/shm.
const SMALL: [&str; 8] = [
    "--agents",
    "8",
    "--artifacts",
    "64",
    "--arena",
    "1M",
    "--max-payload",
    "64K",
];

static COUNTER: Mutex<u64> = Mutex::new(0);

fn next_id() -> u64 {
    let mut counter = COUNTER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    *counter += 1;
    *counter
}

/// A segment name or path unique to this test; destroyed on drop, even when the test fails.
struct Seg {
    location: String,
    file: PathBuf,
}

impl Seg {
    /// A fresh shared-memory name (not yet created).
    fn shm(tag: &str) -> Seg {
        let location = format!("ccs-cli-test-{}-{}-{tag}", std::process::id(), next_id());
        let file = PathBuf::from("/dev/shm").join(&location);
        Seg { location, file }
    }

    /// A fresh temp-file path (not yet created).
    fn path(tag: &str) -> Seg {
        let file = std::env::temp_dir().join(format!(
            "ccs-cli-test-{}-{}-{tag}.seg",
            std::process::id(),
            next_id()
        ));
        let location = file.display().to_string();
        Seg { location, file }
    }

    /// `ccs init` it with the small test sizes; panics on failure.
    fn init(tag: &str) -> Seg {
        let seg = Seg::shm(tag);
        let out = ccs(&[&["init", seg.as_str()], &SMALL[..]].concat());
        out.ok();
        seg
    }

    fn as_str(&self) -> &str {
        &self.location
    }
}

impl Drop for Seg {
    fn drop(&mut self) {
        let _ = Command::new(CCS)
            .args(["destroy", &self.location])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // In case the binary could not remove it (or never ran).
        let _ = fs::remove_file(&self.file);
    }
}

/// What a run of `ccs` did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code(),
            stdout: output.stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Assert exit 0 and return stdout.
    fn ok(&self) -> String {
        assert_eq!(self.code, Some(0), "expected success: {self:?}");
        self.stdout()
    }

    /// Assert the exit code, that stderr is one line starting `ccs: ` and nothing panicked.
    fn fails(&self, code: i32) -> &Run {
        assert_eq!(self.code, Some(code), "unexpected exit: {self:?}");
        assert!(!self.stderr.contains("panicked"), "panic: {self:?}");
        assert!(
            self.stderr.starts_with("ccs: ") && self.stderr.trim_end().lines().count() == 1,
            "error should be one line starting with `ccs: `: {self:?}"
        );
        self
    }
}

fn ccs(args: &[&str]) -> Run {
    ccs_in(args, b"")
}

fn ccs_in(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(CCS)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ccs");
    {
        let mut input = child.stdin.take().expect("child stdin");
        // A command that does not read stdin may close it early: ignore a broken pipe.
        let _ = input.write_all(stdin);
    }
    Run::from(child.wait_with_output().expect("wait for ccs"))
}

fn put(seg: &Seg, key: &str, agent: &str, payload: &[u8], extra: &[&str]) -> Run {
    let args = [&["put", seg.as_str(), key, "--agent", agent], extra].concat();
    ccs_in(&args, payload)
}

fn get(seg: &Seg, key: &str, agent: &str) -> Run {
    ccs(&["get", seg.as_str(), key, "--agent", agent])
}

fn check(seg: &Seg, key: &str, agent: &str) -> Run {
    ccs(&["check", seg.as_str(), key, "--agent", agent])
}

#[test]
fn round_trip_across_processes() {
    let seg = Seg::shm("round");
    let out = ccs(&[&["init", seg.as_str()], &SMALL[..]].concat()).ok();
    assert!(out.contains(seg.as_str()), "{out}");
    assert!(out.contains("8 agents"), "{out}");
    assert!(out.contains("64 artifacts"), "{out}");
    assert!(out.contains("arena 1 MiB"), "{out}");
    assert!(out.contains("max payload 64 KiB"), "{out}");

    let file = std::env::temp_dir().join(format!("ccs-cli-test-{}-payload", next_id()));
    fs::write(&file, b"rename foo to bar").expect("write payload file");
    let file_arg = file.display().to_string();
    let out = put(&seg, "task/spec", "planner", b"", &["--file", &file_arg]).ok();
    let _ = fs::remove_file(&file);
    assert_eq!(out, "1\n");

    let first = get(&seg, "task/spec", "executor");
    assert_eq!(first.ok(), "rename foo to bar");
    assert_eq!(first.stderr.trim(), "MISS v1");
    // Same agent, new process: its copy is still valid.
    let second = get(&seg, "task/spec", "executor");
    assert_eq!(second.ok(), "rename foo to bar");
    assert_eq!(second.stderr.trim(), "HIT v1");
    assert_eq!(check(&seg, "task/spec", "executor").ok(), "current v1\n");

    let table = ccs(&["status", seg.as_str()]).ok();
    assert!(table.contains("KEY"), "{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with("task/spec"))
        .expect("a row for task/spec");
    assert!(row.contains("S v1"), "{table}");
    assert!(table.contains("executor"), "{table}");
    assert!(table.contains("detached"), "{table}");

    ccs(&["destroy", seg.as_str()]).ok();
    let gone = ccs(&["status", seg.as_str()]);
    gone.fails(1);
    assert!(gone.stderr.contains(seg.as_str()), "{gone:?}");
}

#[test]
fn refactor_story() {
    let seg = Seg::init("refactor");
    assert_eq!(put(&seg, "plan", "planner", b"v1", &[]).ok(), "1\n");
    let read = get(&seg, "plan", "executor");
    assert_eq!(read.ok(), "v1");
    assert_eq!(read.stderr.trim(), "MISS v1");
    assert_eq!(put(&seg, "plan", "planner", b"v2", &[]).ok(), "2\n");

    let stale = check(&seg, "plan", "executor");
    assert_eq!(stale.code, Some(4), "{stale:?}");
    assert_eq!(stale.stdout(), "stale: you hold v1, current is v2\n");

    let refused = put(&seg, "plan", "executor", b"built on v1", &[]);
    refused.fails(3);
    assert!(refused.stderr.contains("version 2"), "{refused:?}");

    let fresh = get(&seg, "plan", "executor");
    assert_eq!(fresh.ok(), "v2");
    assert_eq!(fresh.stderr.trim(), "MISS v2");
    assert_eq!(check(&seg, "plan", "executor").ok(), "current v2\n");
    assert_eq!(put(&seg, "plan", "executor", b"v3", &[]).ok(), "3\n");
}

#[test]
fn check_never_read_and_never_written() {
    let seg = Seg::init("never");
    let never_written = check(&seg, "nothing", "executor");
    assert_eq!(never_written.code, Some(4), "{never_written:?}");
    assert!(
        never_written.stdout().contains("never been written"),
        "{never_written:?}"
    );
    put(&seg, "plan", "planner", b"x", &[]).ok();
    let never_read = check(&seg, "plan", "executor");
    assert_eq!(never_read.code, Some(4), "{never_read:?}");
    assert_eq!(never_read.stdout(), "stale: never read, current is v1\n");
}

#[test]
fn if_version_succeeds_and_fails() {
    let seg = Seg::init("ifv");
    assert_eq!(
        put(&seg, "k", "a", b"one", &["--if-version", "0"]).ok(),
        "1\n"
    );
    assert_eq!(
        put(&seg, "k", "b", b"two", &["--if-version", "1"]).ok(),
        "2\n"
    );
    let lost = put(&seg, "k", "c", b"three", &["--if-version", "1"]);
    lost.fails(3);
    assert!(lost.stderr.contains("version 2"), "{lost:?}");
    assert_eq!(get(&seg, "k", "c").ok(), "two");
}

#[test]
fn blind_overwrites_a_stale_view() {
    let seg = Seg::init("blind");
    put(&seg, "k", "planner", b"v1", &[]).ok();
    get(&seg, "k", "executor").ok();
    put(&seg, "k", "planner", b"v2", &[]).ok();
    put(&seg, "k", "executor", b"stale", &[]).fails(3);
    assert_eq!(
        put(&seg, "k", "executor", b"mine", &["--blind"]).ok(),
        "3\n"
    );
    assert_eq!(get(&seg, "k", "planner").ok(), "mine");

    let both = put(
        &seg,
        "k",
        "executor",
        b"x",
        &["--blind", "--if-version", "3"],
    );
    assert_eq!(both.code, Some(2), "{both:?}");
}

#[test]
fn stdin_payload_and_out_file() {
    let seg = Seg::init("stdin");
    let payload: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    assert_eq!(put(&seg, "bin", "a", &payload, &[]).ok(), "1\n");

    let out = std::env::temp_dir().join(format!("ccs-cli-test-{}-out", next_id()));
    let out_arg = out.display().to_string();
    let run = ccs(&[
        "get",
        seg.as_str(),
        "bin",
        "--agent",
        "b",
        "--out",
        &out_arg,
    ]);
    let written = fs::read(&out);
    let _ = fs::remove_file(&out);
    assert_eq!(run.ok(), "", "payload must go to the file, not stdout");
    assert_eq!(run.stderr.trim(), "MISS v1");
    assert_eq!(written.expect("read --out file"), payload);

    let raw = get(&seg, "bin", "c");
    raw.ok();
    assert_eq!(raw.stdout, payload);

    let empty = put(&seg, "empty", "a", b"", &[]);
    assert_eq!(empty.ok(), "1\n");
    assert_eq!(get(&seg, "empty", "b").ok(), "");
}

#[test]
fn status_json_has_documented_fields() {
    let seg = Seg::init("json");
    put(&seg, "plan", "planner", b"v1", &[]).ok();
    get(&seg, "plan", "executor").ok();
    put(&seg, "plan", "planner", b"v2!", &[]).ok();

    let text = ccs(&["status", seg.as_str(), "--json"]).ok();
    let json: serde_json::Value = serde_json::from_str(&text).expect("status --json parses");
    assert_eq!(json["schema"], 1);
    assert_eq!(json["segment"], seg.as_str());
    let config = &json["config"];
    assert_eq!(config["max_agents"], 8);
    assert_eq!(config["max_artifacts"], 64);
    assert_eq!(config["arena_bytes"], 1 << 20);
    assert_eq!(config["max_payload"], 64 << 10);
    assert!(config["write_lease_ms"].is_u64());

    let agents = json["agents"].as_array().expect("agents array");
    let names: Vec<&str> = agents.iter().filter_map(|a| a["name"].as_str()).collect();
    assert_eq!(names, ["planner", "executor"]);
    for agent in agents {
        assert!(agent["pid"].is_null(), "detached after exit: {agent}");
        assert_eq!(agent["alive"], false);
        assert_eq!(agent["liveness"], "detached");
        assert!(agent["generation"].as_u64().is_some_and(|g| g >= 1));
    }

    let artifacts = json["artifacts"].as_array().expect("artifacts array");
    assert_eq!(artifacts.len(), 1);
    let plan = &artifacts[0];
    assert_eq!(plan["key"], "plan");
    assert_eq!(plan["version"], 2);
    assert_eq!(plan["size"], 3);
    assert_eq!(plan["writer"], "planner");
    assert_eq!(plan["deleted"], false);
    assert!(plan["holder"].is_null());
    let states = plan["states"].as_array().expect("states array");
    assert_eq!(states.len(), 2);
    assert_eq!(states[0]["agent"], "planner");
    assert_eq!(states[0]["held"], 2);
    assert_eq!(states[1]["agent"], "executor");
    assert_eq!(states[1]["state"], "I");
    assert_eq!(states[1]["held"], 1);
    let letter = states[0]["state"].as_str().expect("state letter");
    assert!(["M", "E", "S"].contains(&letter), "{letter}");

    let help = ccs(&["status", "--help"]).ok();
    assert!(help.contains("\"schema\": 1"), "{help}");
}

#[test]
fn delete_and_list() {
    let seg = Seg::init("list");
    for key in ["a/2", "b/1", "a/1"] {
        put(&seg, key, "w", key.as_bytes(), &[]).ok();
    }
    assert_eq!(ccs(&["list", seg.as_str()]).ok(), "a/1\na/2\nb/1\n");
    assert_eq!(
        ccs(&["list", seg.as_str(), "--prefix", "a/"]).ok(),
        "a/1\na/2\n"
    );
    let deleted = ccs(&["delete", seg.as_str(), "a/1", "--agent", "w"]).ok();
    assert_eq!(deleted, "2\n");
    assert_eq!(ccs(&["list", seg.as_str(), "--prefix", "a/"]).ok(), "a/2\n");
    get(&seg, "a/1", "w").fails(1);
}

#[test]
fn missing_segment_is_named() {
    let seg = Seg::shm("missing");
    for args in [
        vec!["status", seg.as_str()],
        vec!["get", seg.as_str(), "k", "--agent", "a"],
        vec!["put", seg.as_str(), "k", "--agent", "a"],
        vec!["destroy", seg.as_str()],
    ] {
        let run = ccs(&args);
        run.fails(1);
        assert!(run.stderr.contains(seg.as_str()), "{run:?}");
    }
}

#[test]
fn bad_size_is_usage_error() {
    let seg = Seg::shm("badsize");
    let run = ccs(&["init", seg.as_str(), "--arena", "12Q"]);
    run.fails(2);
    assert!(run.stderr.contains("12Q"), "{run:?}");
    assert!(!seg.file.exists(), "nothing created");
}

#[test]
fn long_key_and_large_payload_are_usage_errors() {
    let seg = Seg::init("limits");
    let key = "k".repeat(300);
    put(&seg, &key, "a", b"x", &[]).fails(2);

    let payload = vec![7u8; (64 << 10) + 1];
    let run = put(&seg, "big", "a", &payload, &[]);
    run.fails(2);
    assert!(run.stderr.contains("65536"), "{run:?}");
    assert_eq!(put(&seg, "big", "a", &payload[1..], &[]).ok(), "1\n");

    let name = "n".repeat(100);
    put(&seg, "k", &name, b"x", &[]).fails(2);
}

#[test]
fn corrupted_segment_is_an_error_not_a_crash() {
    let seg = Seg::path("corrupt");
    ccs(&[&["init", seg.as_str()], &SMALL[..]].concat()).ok();
    put(&seg, "k", "a", b"x", &[]).ok();
    {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .open(&seg.file)
            .expect("open segment file");
        file.write_all(&[0xA5; 128]).expect("overwrite header");
    }
    for args in [
        vec!["status", seg.as_str()],
        vec!["status", seg.as_str(), "--json"],
        vec!["get", seg.as_str(), "k", "--agent", "a"],
        vec!["list", seg.as_str()],
    ] {
        let run = ccs(&args);
        run.fails(1);
        assert!(run.stderr.contains(seg.as_str()), "{run:?}");
    }
}

#[test]
fn init_twice_needs_force() {
    let seg = Seg::init("twice");
    put(&seg, "k", "a", b"x", &[]).ok();
    let again = ccs(&[&["init", seg.as_str()], &SMALL[..]].concat());
    again.fails(1);
    assert!(again.stderr.contains("already exists"), "{again:?}");
    assert_eq!(
        get(&seg, "k", "b").ok(),
        "x",
        "the old segment is untouched"
    );

    // An invalid configuration with --force leaves the old segment alone.
    let invalid = ccs(&["init", seg.as_str(), "--agents", "0", "--force"]);
    invalid.fails(2);
    assert_eq!(get(&seg, "k", "b").ok(), "x");

    ccs(&[&["init", seg.as_str(), "--force"], &SMALL[..]].concat()).ok();
    get(&seg, "k", "b").fails(1);
    assert_eq!(ccs(&["list", seg.as_str()]).ok(), "");
}

#[test]
fn wait_times_out_with_exit_5() {
    let seg = Seg::init("wait-timeout");
    put(&seg, "k", "a", b"x", &[]).ok();
    let started = Instant::now();
    let run = ccs(&[
        "wait",
        seg.as_str(),
        "k",
        "--agent",
        "w",
        "--since",
        "1",
        "--timeout-ms",
        "200",
    ]);
    assert_eq!(run.code, Some(5), "{run:?}");
    assert!(run.stderr.contains("timed out"), "{run:?}");
    assert_eq!(run.stdout(), "");
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[test]
fn wait_returns_at_once_when_already_past() {
    let seg = Seg::init("wait-past");
    put(&seg, "k", "a", b"1", &[]).ok();
    put(&seg, "k", "a", b"2", &[]).ok();
    let started = Instant::now();
    let run = ccs(&[
        "wait",
        seg.as_str(),
        "k",
        "--agent",
        "w",
        "--since",
        "1",
        "--timeout-ms",
        "10000",
    ]);
    assert_eq!(run.ok(), "2\n");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn wait_wakes_on_a_write_from_another_process() {
    let seg = Seg::init("wait-wake");
    put(&seg, "k", "a", b"1", &[]).ok();
    let waiter = Command::new(CCS)
        .args([
            "wait",
            seg.as_str(),
            "k",
            "--agent",
            "w",
            "--since",
            "1",
            "--timeout-ms",
            "20000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn waiter");
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    put(&seg, "k", "a", b"2", &[]).ok();
    let run = Run::from(waiter.wait_with_output().expect("waiter output"));
    assert_eq!(run.ok(), "2\n");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// The issue's first story: 8 agent slots, more short-lived workers than that, one `ccs put`
/// each. Dead workers' slots are reused; `ccs agents` lists them; `--forget` frees one and
/// refuses nothing here (all are dead); a returning name must re-read before its write.
#[test]
fn short_lived_workers_reuse_dead_agents_slots() {
    let seg = Seg::init("agent-churn");
    ccs_in(&["put", seg.as_str(), "shared", "--agent", "lead"], b"v1").ok();
    for n in 1..=12 {
        let worker = format!("worker-{n}");
        let key = format!("task/{n}");
        ccs_in(&["put", seg.as_str(), &key, "--agent", &worker], b"done").ok();
    }
    let table = ccs(&["agents", seg.as_str()]).ok();
    assert!(table.starts_with("8 agents of 8"), "{table}");
    assert!(
        table.contains("worker-12") && table.contains("dead"),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ccs(&["agents", seg.as_str(), "--json"]).ok()).expect("JSON");
    assert_eq!(json["agents"].as_array().map(Vec::len), Some(8));

    // worker-12's slot is freed; the name comes back with dropped views.
    let forgot = ccs(&["agents", seg.as_str(), "--forget", "worker-12"]).ok();
    assert!(forgot.contains("forgot agent `worker-12`"), "{forgot}");
    ccs(&["agents", seg.as_str(), "--forget", "worker-12"])
        .code
        .map_or_else(
            || panic!("killed"),
            |code| assert_eq!(code, 1, "a second forget finds no such agent"),
        );
    let stale = ccs_in(
        &["put", seg.as_str(), "task/12", "--agent", "worker-12"],
        b"again",
    );
    stale.fails(3);
    assert!(stale.stderr.contains("your view is version 0"), "{stale:?}");
    ccs(&["get", seg.as_str(), "task/12", "--agent", "worker-12"]).ok();
    ccs_in(
        &["put", seg.as_str(), "task/12", "--agent", "worker-12"],
        b"again",
    )
    .ok();
    assert!(ccs(&["fsck", seg.as_str()]).ok().contains("clean"));
}

/// Issue 20's arena story with real processes: three 1 MB payloads, small-payload churn, the
/// big keys overwritten with small values, more churn, then 1 MB payloads again. Freed blocks
/// must merge back (before layout version 4 the third big payload was refused with about 1 MB
/// free), and `ccs fsck` finds the segment clean.
#[test]
fn big_payloads_fit_again_after_small_churn() {
    let seg = Seg::shm("arena-story");
    ccs(&["init", seg.as_str(), "--arena", "4M", "--max-payload", "1M"]).ok();
    let big = vec![b'B'; 1 << 20];
    let churn = |prefix: &str| {
        for round in 0..2 {
            for i in 0..8 {
                let payload = vec![b'a' + i as u8; (64 << i) + round];
                put(&seg, &format!("{prefix}/{i}"), "worker", &payload, &[]).ok();
            }
        }
    };
    for i in 0..3 {
        put(&seg, &format!("big/{i}"), "worker", &big, &[]).ok();
    }
    churn("small");
    for i in 0..3 {
        put(&seg, &format!("big/{i}"), "worker", b"now small", &[]).ok();
    }
    churn("more");
    for i in 0..3 {
        let run = put(&seg, &format!("big/{i}"), "worker", &big, &[]);
        assert_eq!(run.code, Some(0), "1 MB payload {i} after churn: {run:?}");
    }
    let read = get(&seg, "big/2", "reader");
    assert_eq!(read.code, Some(0), "{read:?}");
    assert!(read.stdout == big, "big/2 read back changed");
    ccs(&["fsck", seg.as_str()]).ok();
}

/// Issue 20's story with real processes: in a segment of 16 artifacts, 80 distinct keys put
/// and deleted one after another (five times the directory's 32 lines) never fill it; a key
/// re-created after its line went to other keys starts above its old versions; the segment
/// checks clean. (10,000 keys run in-process in the protocol's `deleted_keys_lines_are_reused`
/// and in `ccs bench soak --churn keys`.)
/// A reader's view survives its key's move to another line, with each step a separate process:
/// `r` reads `spec`, `w` deletes it, other keys take its line, `w` re-creates it; `r`'s write
/// from its stale read is refused until it reads again (docs/protocol.md §3.8, "Views of a
/// moved key").
#[test]
fn a_moved_keys_stale_reader_is_refused_across_processes() {
    let seg = Seg::shm("moved-key");
    ccs(&["init", seg.as_str(), "--agents", "4", "--artifacts", "4"]).ok();
    ccs_in(&["put", seg.as_str(), "spec", "--agent", "w"], b"v1").ok();
    assert_eq!(get(&seg, "spec", "r").ok(), "v1");
    ccs(&["delete", seg.as_str(), "spec", "--agent", "w"]).ok();
    for n in 0..40 {
        let key = format!("task/{n}");
        ccs_in(&["put", seg.as_str(), &key, "--agent", "w"], b"x").ok();
        ccs(&["delete", seg.as_str(), &key, "--agent", "w"]).ok();
    }
    ccs_in(&["put", seg.as_str(), "spec", "--agent", "w"], b"v3").ok();
    let refused = ccs_in(&["put", seg.as_str(), "spec", "--agent", "r"], b"from v1");
    assert!(
        refused.fails(3).stderr.contains("stale write"),
        "{refused:?}"
    );
    assert_eq!(get(&seg, "spec", "r").ok(), "v3");
    ccs_in(&["put", seg.as_str(), "spec", "--agent", "r"], b"from v3").ok();
    assert_eq!(get(&seg, "spec", "w").ok(), "from v3");
}

#[test]
fn deleted_keys_lines_are_reused_across_processes() {
    let seg = Seg::shm("key-churn");
    ccs(&["init", seg.as_str(), "--agents", "4", "--artifacts", "16"]).ok();
    for payload in [&b"a"[..], b"b", b"c"] {
        ccs_in(&["put", seg.as_str(), "task/0", "--agent", "w"], payload).ok();
    }
    assert_eq!(
        ccs(&["delete", seg.as_str(), "task/0", "--agent", "w"])
            .ok()
            .trim(),
        "4"
    );
    for n in 1..=80 {
        let key = format!("task/{n}");
        let version = ccs_in(&["put", seg.as_str(), &key, "--agent", "w"], b"x").ok();
        assert_eq!(get(&seg, &key, "r").ok(), "x");
        let deleted = ccs(&["delete", seg.as_str(), &key, "--agent", "w"]).ok();
        assert!(
            deleted.trim().parse::<u64>().expect("a version")
                > version.trim().parse::<u64>().expect("a version"),
            "{key}: put {version}, deleted {deleted}"
        );
    }
    let again = ccs_in(&["put", seg.as_str(), "task/0", "--agent", "w"], b"d").ok();
    let again: u64 = again.trim().parse().expect("a version");
    assert!(
        again > 4,
        "task/0 re-created at version {again}, not above 4"
    );
    assert_eq!(get(&seg, "task/0", "r").ok(), "d");
    assert!(ccs(&["fsck", seg.as_str()]).ok().contains("clean"));
}

/// Issue 20: a key started just below the old 32-bit limit of the segment's versions (the
/// hidden test command `raise-version-floor`) and written across it by separate processes:
/// versions, HIT/MISS, `check`, the view-conditional put, `--if-version`, `wait` and the JSON
/// status carry versions above 2^32.
#[test]
fn versions_cross_2_pow_32_across_processes() {
    const LIMIT: u64 = 1 << 32;
    let seg = Seg::init("v64");
    let floor = (LIMIT - 2).to_string();
    ccs(&[
        "raise-version-floor",
        seg.as_str(),
        "hot",
        "--floor",
        &floor,
    ])
    .ok();
    assert_eq!(
        put(&seg, "hot", "a", b"one", &[]).ok(),
        format!("{}\n", LIMIT - 1)
    );
    let miss = get(&seg, "hot", "b");
    assert_eq!(miss.ok(), "one");
    assert!(
        miss.stderr.contains(&format!("MISS v{}", LIMIT - 1)),
        "{miss:?}"
    );
    let hit = get(&seg, "hot", "b");
    assert!(
        hit.stderr.contains(&format!("HIT v{}", LIMIT - 1)),
        "{hit:?}"
    );

    // a's view is current: its write of the first version 32 bits cannot hold is admitted.
    assert_eq!(
        put(&seg, "hot", "a", b"two", &[]).ok(),
        format!("{LIMIT}\n")
    );
    let stale = check(&seg, "hot", "b");
    assert_eq!(stale.code, Some(4), "{stale:?}");
    let miss = get(&seg, "hot", "b");
    assert_eq!(miss.ok(), "two");
    assert!(miss.stderr.contains(&format!("MISS v{LIMIT}")), "{miss:?}");
    let hit = get(&seg, "hot", "b");
    assert!(hit.stderr.contains(&format!("HIT v{LIMIT}")), "{hit:?}");
    assert_eq!(check(&seg, "hot", "b").ok(), format!("current v{LIMIT}\n"));

    let older = (LIMIT - 1).to_string();
    let lost = put(&seg, "hot", "b", b"stale", &["--if-version", &older]);
    lost.fails(3);
    assert!(
        lost.stderr.contains(&format!("version {LIMIT}")),
        "{lost:?}"
    );
    let current = LIMIT.to_string();
    assert_eq!(
        put(&seg, "hot", "b", b"three", &["--if-version", &current]).ok(),
        format!("{}\n", LIMIT + 1)
    );
    // a last read LIMIT: its view-conditional put is now stale.
    put(&seg, "hot", "a", b"stale", &[]).fails(3);
    let waited = ccs(&[
        "wait",
        seg.as_str(),
        "hot",
        "--agent",
        "a",
        "--since",
        &current,
        "--timeout-ms",
        "5000",
    ]);
    assert_eq!(waited.ok(), format!("{}\n", LIMIT + 1));
    let text = ccs(&["status", seg.as_str(), "--json"]).ok();
    let json: serde_json::Value = serde_json::from_str(&text).expect("status --json parses");
    assert_eq!(json["artifacts"][0]["version"], LIMIT + 1, "{text}");
    ccs(&["fsck", seg.as_str()]).ok();
}

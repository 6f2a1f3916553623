//! `ccs fsck` end to end: real processes, unique segment names, removed on drop.

use std::fs;
use std::io::{Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ccs_protocol::{Config, Geometry};

const CCS: &str = env!("CARGO_BIN_EXE_ccs");
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

fn small_config() -> Config {
    Config {
        max_agents: 8,
        max_artifacts: 64,
        arena_bytes: 1 << 20,
        max_payload: 64 << 10,
        ..Config::default()
    }
}

static COUNTER: Mutex<u32> = Mutex::new(0);

fn next_id() -> u32 {
    let mut counter = COUNTER.lock().unwrap_or_else(|p| p.into_inner());
    *counter += 1;
    *counter
}

/// A segment unique to this test; destroyed on drop, even when the test fails.
struct Seg {
    location: String,
    file: PathBuf,
}

impl Seg {
    fn shm(tag: &str) -> Seg {
        let n = next_id();
        let location = format!("ccs-fsck-test-{}-{n}-{tag}", std::process::id());
        let file = PathBuf::from("/dev/shm").join(&location);
        Seg { location, file }
    }

    fn path(tag: &str) -> Seg {
        let n = next_id();
        let file = std::env::temp_dir().join(format!(
            "ccs-fsck-test-{}-{n}-{tag}.seg",
            std::process::id()
        ));
        Seg {
            location: file.display().to_string(),
            file,
        }
    }

    fn init(self) -> Seg {
        let run = ccs(&[&["init", self.location.as_str()], &SMALL[..]].concat());
        assert_eq!(run.code, Some(0), "{run:?}");
        self
    }

    fn put(&self, key: &str, agent: &str, payload: &[u8]) {
        let mut child = Command::new(CCS)
            .args(["put", &self.location, key, "--agent", agent])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ccs put");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(payload)
            .expect("payload");
        assert!(child.wait().expect("wait").success());
    }
}

impl Drop for Seg {
    fn drop(&mut self) {
        let _ = Command::new(CCS)
            .args(["destroy", &self.location])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = fs::remove_file(&self.file);
    }
}

#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn ccs(args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(CCS)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ccs");
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

#[test]
fn a_clean_segment_exits_0() {
    let seg = Seg::shm("clean").init();
    seg.put("task/spec", "planner", b"v1");
    seg.put("task/spec", "planner", b"v2");
    let run = ccs(&["fsck", &seg.location]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("operation log: "), "{run:?}");
    assert!(
        run.stdout.contains("descriptors: 1 live, 1 free, 0 leaked"),
        "{run:?}"
    );
    assert!(run.stdout.trim_end().ends_with(": clean"), "{run:?}");
    let repair = ccs(&["fsck", &seg.location, "--repair"]);
    assert_eq!(repair.code, Some(0), "{repair:?}");
    assert!(
        repair.stdout.contains("clean, nothing to repair"),
        "{repair:?}"
    );
}

#[test]
fn json_is_schema_1() {
    let seg = Seg::shm("json").init();
    seg.put("k", "a", &[7; 100]);
    let run = ccs(&["fsck", &seg.location, "--json"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(json["schema"], 1);
    assert_eq!(json["segment"], seg.location.as_str());
    assert_eq!(json["clean"], true);
    assert_eq!(json["repair"], false);
    assert_eq!(json["found"], 0);
    assert_eq!(json["problems"].as_array().map(Vec::len), Some(0));
    assert_eq!(json["arena"]["live_bytes"], 128);
    assert_eq!(json["arena"]["leaked_bytes"], 0);
    assert_eq!(json["descriptors"]["live"], 1);
    assert!(
        json["notes"][0]
            .as_str()
            .is_some_and(|n| n.starts_with("operation log: "))
    );
    assert!(json["repaired"].is_array() && json["not_repaired"].is_array());
}

/// Overwrite the head word of the one keyed line of a file-path segment.
#[test]
fn a_corrupted_head_exits_1_naming_the_line() {
    let seg = Seg::path("head").init();
    seg.put("task/spec", "planner", b"v1");
    let geo = Geometry::new(small_config()).expect("geometry");
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&seg.file)
        .expect("open segment file");
    let word = |index: usize| {
        let mut bytes = [0u8; 8];
        file.read_exact_at(&mut bytes, index as u64 * 8)
            .expect("read word");
        u64::from_le_bytes(bytes)
    };
    let line = (0..geo.lines)
        .find(|&line| word(geo.lines_at + line * geo.line_words) != 0)
        .expect("a keyed line");
    let head_index = geo.lines_at + line * geo.line_words + 1;
    let head = word(head_index);
    let corrupted = (head & ((1 << 40) - 1)) | (0x00ff_fff0u64 << 40);
    file.write_all_at(&corrupted.to_le_bytes(), head_index as u64 * 8)
        .expect("write head");
    drop(file);

    let run = ccs(&["fsck", &seg.location]);
    assert_eq!(run.code, Some(1), "{run:?}");
    let expected = format!(
        "[line] line {line} (task/spec): head points at descriptor {}, beyond the",
        0x00ff_fff0 - 1
    );
    assert!(run.stdout.contains(&expected), "{run:?}");
    // Its descriptor now looks leaked, which a repair refuses on an inconsistent segment.
    let repair = ccs(&["fsck", &seg.location, "--repair"]);
    assert_eq!(repair.code, Some(1), "{repair:?}");
    assert!(repair.stdout.contains("not repaired: "), "{repair:?}");
    assert!(!repair.stderr.contains("panicked"), "{repair:?}");
}

#[test]
fn an_unreadable_segment_exits_2() {
    let seg = Seg::path("garbage").init();
    {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .open(&seg.file)
            .expect("open segment file");
        file.seek(SeekFrom::Start(0)).expect("seek");
        file.write_all(&[0xA5; 128]).expect("overwrite header");
    }
    for args in [
        vec!["fsck", seg.location.as_str()],
        vec!["fsck", seg.location.as_str(), "--json"],
        vec!["fsck", seg.location.as_str(), "--repair"],
    ] {
        let run = ccs(&args);
        assert_eq!(run.code, Some(2), "{run:?}");
        assert!(run.stdout.is_empty(), "{run:?}");
        assert!(
            run.stderr.starts_with("ccs: ") && run.stderr.trim_end().lines().count() == 1,
            "{run:?}"
        );
        assert!(run.stderr.contains(seg.location.as_str()), "{run:?}");
    }
    let missing = Seg::shm("missing");
    assert_eq!(ccs(&["fsck", &missing.location]).code, Some(2));
}

/// An agent whose process was SIGKILLed while attached: found, then repaired.
#[test]
fn a_killed_agent_is_found_and_repaired() {
    let seg = Seg::shm("killed").init();
    seg.put("k", "writer", b"v1");
    let mut waiter = Command::new(CCS)
        .args([
            "wait",
            &seg.location,
            "k",
            "--agent",
            "doomed",
            "--since",
            "100",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn waiter");
    let started = Instant::now();
    loop {
        let status = ccs(&["status", &seg.location, "--json"]);
        if status.stdout.contains("\"alive\": true") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "waiter never attached"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // While it lives, nothing is wrong, and a repair does not touch it.
    assert_eq!(ccs(&["fsck", &seg.location, "--repair"]).code, Some(0));
    waiter.kill().expect("SIGKILL");
    waiter.wait().expect("reap");

    let run = ccs(&["fsck", &seg.location]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stdout
            .contains("[lock] agent slot 1 (doomed): process ")
            && run
                .stdout
                .contains("is gone but did not detach (repairable)"),
        "{run:?}"
    );
    let repair = ccs(&["fsck", &seg.location, "--repair", "--json"]);
    assert_eq!(repair.code, Some(0), "{repair:?}");
    let json: serde_json::Value = serde_json::from_str(&repair.stdout).expect("JSON");
    assert_eq!(json["clean"], true);
    assert_eq!(json["found"], 1);
    assert!(
        json["repaired"][0]
            .as_str()
            .is_some_and(|r| r.contains("cleared the pid")),
        "{json}"
    );
    assert_eq!(ccs(&["fsck", &seg.location]).code, Some(0));
}

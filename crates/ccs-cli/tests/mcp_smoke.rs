//! Smoke test of `ccs mcp`: a JSON-RPC conversation over the child's stdin and stdout
//! (newline-delimited), then a clean exit when stdin closes.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const CCS: &str = env!("CARGO_BIN_EXE_ccs");

/// A fresh shared-memory segment, destroyed on drop (even when the test fails).
struct Seg(String);

impl Drop for Seg {
    fn drop(&mut self) {
        let _ = Command::new(CCS)
            .args(["destroy", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_file(PathBuf::from("/dev/shm").join(&self.0));
    }
}

/// Kills the server if the test fails before it exits.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn send(stdin: &mut ChildStdin, message: &Value) {
    let mut line = message.to_string();
    line.push('\n');
    stdin
        .write_all(line.as_bytes())
        .and_then(|()| stdin.flush())
        .expect("write to the server's stdin");
}

/// The response with this id (skipping notifications), within 10 s.
fn response(lines: &Receiver<String>, id: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("no response to request {id}: {e}"));
        let message: Value = serde_json::from_str(&line).expect("stdout carries only JSON-RPC");
        if message["id"] == json!(id) {
            return message;
        }
    }
}

/// The JSON object inside a tool result's one text content.
fn tool_json(message: &Value) -> Value {
    let result = &message["result"];
    let content = result["content"].as_array().expect("content array");
    assert_eq!(content.len(), 1, "one content: {message}");
    let text = content[0]["text"].as_str().expect("text content");
    serde_json::from_str(text).expect("the text is a JSON object")
}

fn call(id: u64, name: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": name, "arguments": arguments}})
}

#[test]
fn mcp_lists_tools_writes_reads_and_exits_on_eof() {
    let seg = Seg(format!("ccs-mcp-smoke-{}", std::process::id()));
    let init = Command::new(CCS)
        .args([
            "init",
            &seg.0,
            "--force",
            "--agents",
            "8",
            "--artifacts",
            "64",
        ])
        .args(["--arena", "1M", "--max-payload", "64K"])
        .output()
        .expect("run ccs init");
    assert!(init.status.success(), "{init:?}");
    // "counter" starts at the first version the segment's words held in 32 bits no more
    // (issue 20): its versions reach the model as JSON numbers above 2^32.
    let floor = Command::new(CCS)
        .args(["raise-version-floor", &seg.0, "counter", "--floor"])
        .arg(((1u64 << 32) - 1).to_string())
        .output()
        .expect("run ccs raise-version-floor");
    assert!(floor.status.success(), "{floor:?}");

    let mut server = Server(
        Command::new(CCS)
            .args(["mcp", &seg.0, "--agent", "smoke"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ccs mcp"),
    );
    let mut stdin = server.0.stdin.take().expect("stdin");
    let stdout = server.0.stdout.take().expect("stdout");
    let (tx, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    send(
        &mut stdin,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "mcp-smoke", "version": "0"}}}),
    );
    let initialized = response(&lines, 1);
    assert_eq!(
        initialized["result"]["serverInfo"]["name"], "agent-coherence",
        "{initialized}"
    );
    send(
        &mut stdin,
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );
    send(
        &mut stdin,
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    );
    let listed = response(&lines, 2);
    let mut names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|tool| tool["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "acquire",
            "check",
            "commit",
            "list",
            "read",
            "release",
            "status",
            "wait_changed",
            "write"
        ]
    );

    send(
        &mut stdin,
        &call(
            3,
            "write",
            json!({"key": "notes/plan", "content": "step 1"}),
        ),
    );
    let written = response(&lines, 3);
    assert_ne!(written["result"]["isError"], json!(true), "{written}");
    assert_eq!(
        tool_json(&written),
        json!({"key": "notes/plan", "version": 1})
    );

    send(&mut stdin, &call(4, "read", json!({"key": "notes/plan"})));
    let read = tool_json(&response(&lines, 4));
    assert_eq!(read["content"], "step 1", "{read}");
    assert_eq!(read["encoding"], "utf-8");
    assert_eq!(read["version"], 1);
    assert_eq!(read["size"], 6);

    send(&mut stdin, &call(5, "read", json!({"key": "missing"})));
    let missing = response(&lines, 5);
    assert_eq!(missing["result"]["isError"], json!(true), "{missing}");
    assert_eq!(tool_json(&missing)["error"], "not_found");

    send(
        &mut stdin,
        &call(6, "write", json!({"key": "counter", "content": "1"})),
    );
    assert_eq!(
        tool_json(&response(&lines, 6)),
        json!({"key": "counter", "version": 1u64 << 32})
    );
    send(&mut stdin, &call(7, "read", json!({"key": "counter"})));
    assert_eq!(tool_json(&response(&lines, 7))["version"], 1u64 << 32);

    // Closing stdin ends the session: the server exits 0, promptly.
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.0.try_wait().expect("wait for ccs mcp") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "ccs mcp did not exit within 10 s of EOF"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "ccs mcp exited with {status}");
    reader.join().expect("reader thread");

    let file = PathBuf::from("/dev/shm").join(&seg.0);
    drop(seg);
    assert!(!file.exists(), "the segment is destroyed");
}

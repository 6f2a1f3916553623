//! End-to-end tests of `ccs hook claude-code`: every hook call is its own `ccs` process fed a
//! hook event in the shapes Claude Code documents (PreToolUse / PostToolUse with `tool_name`,
//! `tool_input.file_path`, `tool_response`; `agent_id`/`agent_type` inside a sub-agent), on a
//! scratch repository, exactly as Claude Code runs the hook.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

use serde_json::{Value, json};

const CCS: &str = env!("CARGO_BIN_EXE_ccs");

static NEXT: Mutex<u64> = Mutex::new(0);

fn next_id() -> u64 {
    let mut next = NEXT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    *next += 1;
    *next
}

/// A scratch repository (a directory with a `.git` directory) and its own segment, both
/// removed on drop.
struct Repo {
    root: PathBuf,
    segment: String,
}

impl Repo {
    fn new(tag: &str) -> Repo {
        let id = format!("{}-{}-{tag}", std::process::id(), next_id());
        let root = std::env::temp_dir().join(format!("ccs-hook-test-{id}"));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join(".git")).expect("create the scratch repository");
        std::fs::create_dir_all(root.join("src")).expect("create src/");
        Repo {
            root,
            segment: format!("ccs-hook-test-{id}"),
        }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.root.join(file)
    }

    fn write(&self, file: &str, text: &str) {
        let path = self.path(file);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create the file's directory");
        }
        std::fs::write(path, text).expect("write a file of the scratch repository");
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.path(file)).expect("read a file of the scratch repository")
    }

    /// Run the hook on `event` with this repository's segment.
    fn hook(&self, event: &Value) -> Hook {
        self.hook_bytes(event.to_string().as_bytes(), &self.segment)
    }

    fn hook_bytes(&self, input: &[u8], segment: &str) -> Hook {
        let mut child = Command::new(CCS)
            .args(["hook", "claude-code"])
            .env("CCS_HOOK_SEGMENT", segment)
            .current_dir(&self.root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ccs hook");
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().expect("the hook's stdin");
            stdin.write_all(input).expect("write the hook event");
        }
        Hook(child.wait_with_output().expect("wait for ccs hook"))
    }

    /// A tool event of `session` (and sub-agent, if any) on `file`.
    fn event(&self, session: &str, sub: Option<&str>, name: &str, tool: &str, file: &str) -> Value {
        let mut event = json!({
            "session_id": session,
            "transcript_path": format!("/tmp/{session}.jsonl"),
            "cwd": self.root,
            "permission_mode": "default",
            "hook_event_name": name,
            "tool_name": tool,
            "tool_use_id": format!("toolu_{}", next_id()),
            "tool_input": { "file_path": self.path(file) },
        });
        match (tool, name) {
            ("Edit", _) => {
                event["tool_input"]["old_string"] = json!("a");
                event["tool_input"]["new_string"] = json!("b");
            }
            ("Write", _) => event["tool_input"]["content"] = json!("new content"),
            _ => {}
        }
        if name == "PostToolUse" {
            event["tool_response"] = json!({ "filePath": self.path(file), "success": true });
        }
        if let Some(sub) = sub {
            event["agent_id"] = json!(sub);
            event["agent_type"] = json!("general-purpose");
        }
        event
    }

    /// The two hooks of a Read (PreToolUse, then PostToolUse); panics if either says anything.
    fn read_as(&self, session: &str, sub: Option<&str>, file: &str) -> String {
        self.hook(&self.event(session, sub, "PreToolUse", "Read", file))
            .quiet();
        let text = self.read(file);
        self.hook(&self.event(session, sub, "PostToolUse", "Read", file))
            .quiet();
        text
    }

    /// Ask to edit `file`: `None` if allowed, else the denial's reason.
    fn try_edit(&self, session: &str, sub: Option<&str>, tool: &str, file: &str) -> Option<String> {
        let hook = self.hook(&self.event(session, sub, "PreToolUse", tool, file));
        // An edit allowed because the hook could not check it would be no verdict at all.
        assert!(hook.stderr().is_empty(), "{session}: {}", hook.stderr());
        hook.denial()
    }

    /// An allowed edit: PreToolUse (must allow), the write, PostToolUse.
    fn edit_as(&self, session: &str, sub: Option<&str>, file: &str, text: &str) {
        if let Some(reason) = self.try_edit(session, sub, "Edit", file) {
            panic!("{session}: edit of {file} denied: {reason}");
        }
        self.write(file, text);
        self.hook(&self.event(session, sub, "PostToolUse", "Edit", file))
            .quiet();
    }

    fn ccs(&self, args: &[&str]) -> String {
        let out = Command::new(CCS).args(args).output().expect("run ccs");
        assert!(
            out.status.success(),
            "ccs {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Repo {
    fn drop(&mut self) {
        let _ = Command::new(CCS).args(["destroy", &self.segment]).output();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// One hook process's result.
struct Hook(Output);

impl Hook {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }

    /// Exit 0 and stdout either empty or one JSON object: the hooks contract.
    fn answer(&self) -> Option<Value> {
        assert_eq!(
            self.0.status.code(),
            Some(0),
            "the hook must exit 0; stderr: {}",
            self.stderr()
        );
        let out = self.stdout();
        if out.is_empty() {
            return None;
        }
        assert!(
            out.ends_with('\n') && out.trim_end().lines().count() == 1,
            "one line: {out:?}"
        );
        Some(serde_json::from_str(&out).expect("stdout must be one JSON object"))
    }

    fn quiet(&self) {
        if let Some(answer) = self.answer() {
            panic!(
                "expected no answer, got {answer}; stderr: {}",
                self.stderr()
            );
        }
    }

    /// The deny reason, if the answer is a PreToolUse deny.
    fn denial(&self) -> Option<String> {
        let answer = self.answer()?;
        let out = &answer["hookSpecificOutput"];
        assert_eq!(out["hookEventName"], "PreToolUse");
        assert_eq!(out["permissionDecision"], "deny", "{answer}");
        Some(
            out["permissionDecisionReason"]
                .as_str()
                .expect("a reason")
                .to_owned(),
        )
    }

    /// The additionalContext, if any.
    fn context(&self) -> Option<String> {
        let answer = self.answer()?;
        let out = &answer["hookSpecificOutput"];
        assert!(out.get("permissionDecision").is_none(), "{answer}");
        Some(
            out["additionalContext"]
                .as_str()
                .expect("a context")
                .to_owned(),
        )
    }
}

const STALE: &str = "ccs: src/auth.rs was changed by another session since you last read it. \
                     Read it again, then redo your edit on the new content.";

#[test]
fn refactor_story_two_sessions() {
    let repo = Repo::new("story");
    repo.write("src/auth.rs", "fn login() {}\n");
    let executor = "5b0a1e39-9f6d-4c5e-8a43-2a1f0c7d9e01";
    let planner = "c2f6d8a4-1b3e-4f7a-9c5d-6e8f0a1b2c3d";

    repo.read_as(executor, None, "src/auth.rs");
    repo.read_as(planner, None, "src/auth.rs");
    repo.edit_as(planner, None, "src/auth.rs", "fn sign_in() {}\n");

    // The executor edits from its read of the old content: denied, with a byte-stable reason.
    let reason = repo.try_edit(executor, None, "Edit", "src/auth.rs");
    assert_eq!(reason.as_deref(), Some(STALE));
    assert_eq!(
        repo.try_edit(executor, None, "MultiEdit", "src/auth.rs")
            .as_deref(),
        Some(STALE)
    );
    assert_eq!(
        repo.read("src/auth.rs"),
        "fn sign_in() {}\n",
        "nothing was written"
    );

    // It reads again: now its edit is allowed, and the planner's copy is the stale one.
    assert_eq!(
        repo.read_as(executor, None, "src/auth.rs"),
        "fn sign_in() {}\n"
    );
    repo.edit_as(executor, None, "src/auth.rs", "fn sign_in() { check() }\n");
    assert!(
        repo.try_edit(planner, None, "Write", "src/auth.rs")
            .is_some()
    );

    // The segment was created on first use, owner-only; status shows the sessions and file.
    let shm = Path::new("/dev/shm").join(&repo.segment);
    let mode = std::fs::metadata(&shm)
        .expect("the segment exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let status = repo.ccs(&["status", &repo.segment, "--json"]);
    let status: Value = serde_json::from_str(&status).expect("status JSON");
    let text = status.to_string();
    assert!(text.contains(executor) && text.contains(planner) && text.contains("src/auth.rs"));

    // Every denial is an operation-log record; `ccs stats` counts the stale edits prevented.
    let stats = repo.ccs(&["stats", &repo.segment, "--json"]);
    let stats: Value = serde_json::from_str(&stats).expect("stats JSON");
    assert_eq!(stats["stale_edits_prevented"], 3, "{stats}");
    assert!(
        repo.ccs(&["stats", &repo.segment])
            .contains("stale edits prevented: 3")
    );
}

#[test]
fn a_new_file_needs_no_read_but_an_existing_one_does() {
    let repo = Repo::new("new");
    assert_eq!(repo.try_edit("s1", None, "Write", "src/new.rs"), None);
    repo.write("src/new.rs", "new\n");
    repo.hook(&repo.event("s1", None, "PostToolUse", "Write", "src/new.rs"))
        .quiet();
    let reason = repo
        .try_edit("s2", None, "Write", "src/new.rs")
        .expect("denied");
    assert_eq!(
        reason,
        "ccs: src/new.rs was not read in this session. Read it first, then make the edit."
    );
    // The writer itself holds what it wrote.
    assert_eq!(repo.try_edit("s1", None, "Edit", "src/new.rs"), None);
}

#[test]
fn a_sub_agent_and_its_parent_are_two_agents() {
    let repo = Repo::new("sub");
    repo.write("src/lib.rs", "v1\n");
    let session = "0e5c7b2a-3d4f-4a1b-8c9d-0e1f2a3b4c5d";
    repo.read_as(session, None, "src/lib.rs");
    repo.read_as(session, Some("a3f1c9e2"), "src/lib.rs");
    repo.edit_as(
        session,
        Some("a3f1c9e2"),
        "src/lib.rs",
        "v2 by the sub-agent\n",
    );
    let reason = repo
        .try_edit(session, None, "Edit", "src/lib.rs")
        .expect("parent is stale");
    assert!(
        reason.contains("src/lib.rs was changed by another session"),
        "{reason}"
    );
    // The sub-agent stopping keeps its state for `ccs status`.
    let stop = json!({ "session_id": session, "cwd": repo.root, "hook_event_name": "SubagentStop",
                       "agent_id": "a3f1c9e2", "agent_type": "general-purpose",
                       "stop_hook_active": false });
    repo.hook(&stop).quiet();
    let status = repo.ccs(&["status", &repo.segment]);
    assert!(status.contains(&format!("{session}/a3f1c9e2")), "{status}");
}

#[test]
fn changes_outside_the_tools_are_noticed() {
    let repo = Repo::new("outside");
    repo.write("src/a.rs", "a1\n");
    repo.write("src/b.rs", "b1\n");
    repo.read_as("s1", None, "src/a.rs");
    repo.read_as("s1", None, "src/b.rs");
    repo.read_as("s2", None, "src/b.rs");

    // An editor changes a.rs: the session's edit is denied without any hook having run.
    repo.write("src/a.rs", "a1 edited in an editor\n");
    let reason = repo
        .try_edit("s1", None, "Edit", "src/a.rs")
        .expect("denied");
    assert_eq!(
        reason,
        "ccs: src/a.rs was changed on disk (outside this session's edits) since you last read \
         it. Read it again, then redo your edit on the new content."
    );
    repo.read_as("s1", None, "src/a.rs");
    assert_eq!(repo.try_edit("s1", None, "Edit", "src/a.rs"), None);

    // A shell command changes b.rs: its PostToolUse names it, and every copy is invalid.
    repo.write("src/b.rs", "b2 from sed\n");
    let bash = json!({ "session_id": "s2", "cwd": repo.root, "hook_event_name": "PostToolUse",
                       "tool_name": "Bash", "tool_input": { "command": "sed -i s/1/2/ src/b.rs" },
                       "tool_response": { "stdout": "", "stderr": "", "interrupted": false } });
    let context = repo
        .hook(&bash)
        .context()
        .expect("the command's changes are reported");
    assert_eq!(
        context,
        "ccs: the command changed src/b.rs: read it again before editing."
    );
    for session in ["s1", "s2"] {
        assert!(
            repo.try_edit(session, None, "Edit", "src/b.rs").is_some(),
            "{session}"
        );
    }
    // A command that changes nothing says nothing.
    repo.read_as("s2", None, "src/b.rs");
    repo.hook(&bash).quiet();
    assert_eq!(repo.try_edit("s2", None, "Edit", "src/b.rs"), None);
}

#[test]
fn a_change_during_a_read_does_not_count_as_read() {
    let repo = Repo::new("during");
    repo.write("src/a.rs", "one\n");
    repo.hook(&repo.event("s1", None, "PreToolUse", "Read", "src/a.rs"))
        .quiet();
    repo.write("src/a.rs", "two\n"); // between the read's two hooks
    let note = repo.hook(&repo.event("s1", None, "PostToolUse", "Read", "src/a.rs"));
    assert_eq!(
        note.context().as_deref(),
        Some("ccs: src/a.rs changed while you were reading it. Read it again before you edit it.")
    );
    assert!(repo.try_edit("s1", None, "Edit", "src/a.rs").is_some());
}

#[test]
fn ignored_files_and_files_outside_the_repository_are_not_tracked() {
    let repo = Repo::new("ignored");
    repo.write(".gitignore", "target/\n");
    repo.write("target/out.txt", "x\n");
    assert_eq!(repo.try_edit("s1", None, "Edit", "target/out.txt"), None);
    let outside = std::env::temp_dir().join(format!("ccs-hook-outside-{}", std::process::id()));
    std::fs::write(&outside, "x").expect("write a file outside");
    let mut event = repo.event("s1", None, "PreToolUse", "Edit", "x");
    event["tool_input"]["file_path"] = json!(outside);
    repo.hook(&event).quiet();
    let _ = std::fs::remove_file(&outside);
    // The config's globs narrow what is tracked; advisory mode warns instead of denying.
    repo.write(
        ".claude/ccs-hook.json",
        r#"{"mode": "advisory", "ignore": ["*.md"]}"#,
    );
    repo.write("README.md", "x\n");
    repo.hook(&repo.event("s1", None, "PreToolUse", "Edit", "README.md"))
        .quiet();
    repo.write("src/a.rs", "x\n");
    let warning = repo
        .hook(&repo.event("s1", None, "PreToolUse", "Edit", "src/a.rs"))
        .context()
        .expect("advisory: a warning, not a denial");
    assert!(
        warning.starts_with("ccs: src/a.rs was not read in this session."),
        "{warning}"
    );
    let list = repo.ccs(&["list", &repo.segment]);
    assert_eq!(list, "src/a.rs\n", "only tracked files become artifacts");
}

/// Eight sessions read and edit one file concurrently, each appending its line to what it
/// read. Every allowed edit must be made from the file's current content (what the session
/// read is what is on disk when it writes), so no line is lost.
#[test]
fn eight_sessions_on_one_file() {
    let repo = Repo::new("eight");
    repo.write("src/shared.rs", "");
    let (allowed, denied) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|i| {
                let repo = &repo;
                scope.spawn(move || {
                    let session = format!("session-{i}");
                    let line = format!("line from {session}\n");
                    let mut denied = 0;
                    loop {
                        // A read during a peer's edit may be answered "read it again".
                        let file = "src/shared.rs";
                        repo.hook(&repo.event(&session, None, "PreToolUse", "Read", file))
                            .quiet();
                        let text = repo.read(file);
                        let post = repo.event(&session, None, "PostToolUse", "Read", file);
                        if repo.hook(&post).context().is_some() {
                            continue;
                        }
                        if repo
                            .try_edit(&session, None, "Edit", "src/shared.rs")
                            .is_some()
                        {
                            denied += 1;
                            assert!(denied < 500, "{session} starved");
                            continue;
                        }
                        // Allowed: the file must still be what this session read.
                        assert_eq!(
                            repo.read("src/shared.rs"),
                            text,
                            "{session}: stale edit allowed"
                        );
                        repo.write("src/shared.rs", &format!("{text}{line}"));
                        repo.hook(&repo.event(
                            &session,
                            None,
                            "PostToolUse",
                            "Edit",
                            "src/shared.rs",
                        ))
                        .quiet();
                        return denied;
                    }
                })
            })
            .collect();
        let denied: u32 = workers
            .into_iter()
            .map(|w| w.join().expect("a session thread"))
            .sum();
        (8, denied)
    });
    let text = repo.read("src/shared.rs");
    for i in 0..8 {
        assert!(
            text.contains(&format!("line from session-{i}\n")),
            "line {i} lost:\n{text}"
        );
    }
    assert_eq!(text.lines().count(), allowed);
    let stats: Value =
        serde_json::from_str(&repo.ccs(&["stats", &repo.segment, "--json"])).expect("stats");
    // Every denial is a record; the test's busy readers can overrun the log's rings, and
    // then only the records still held are counted.
    let prevented = stats["stale_edits_prevented"].as_u64().expect("a count");
    if stats["window"]["lost"] == 0 {
        assert_eq!(prevented, u64::from(denied), "{stats}");
    } else {
        assert!(prevented <= u64::from(denied), "{stats}");
    }
}

#[test]
fn malformed_input_and_unusable_segments_fail_open() {
    let repo = Repo::new("fail");
    repo.write("src/a.rs", "x\n");
    for bad in [&b""[..], b"not json", b"{\"session_id\": 7}", b"[1,2]"] {
        let hook = repo.hook_bytes(bad, &repo.segment);
        hook.quiet();
        assert!(
            hook.stderr().contains("allowed without a check"),
            "{}",
            hook.stderr()
        );
    }
    let edit = repo.event("s1", None, "PreToolUse", "Edit", "src/a.rs");
    // A segment that cannot be created (its directory does not exist).
    let missing = repo.hook_bytes(edit.to_string().as_bytes(), "/nonexistent-dir/ccs-hook-seg");
    missing.quiet();
    assert!(
        missing.stderr().contains("not checked"),
        "{}",
        missing.stderr()
    );
    // A corrupted segment (a file of garbage where the segment should be).
    let corrupt = repo.root.join("corrupt.seg");
    std::fs::write(&corrupt, vec![0xA5u8; 1 << 16]).expect("write garbage");
    let location = corrupt.display().to_string();
    let hook = repo.hook_bytes(edit.to_string().as_bytes(), &location);
    hook.quiet();
    assert!(hook.stderr().contains("not checked"), "{}", hook.stderr());
    // Configured to fail closed, the same edit is denied (reads are still allowed).
    repo.write(".claude/ccs-hook.json", r#"{"fail": "closed"}"#);
    let hook = repo.hook_bytes(edit.to_string().as_bytes(), &location);
    assert!(
        hook.denial()
            .expect("fail closed")
            .contains("could not be checked")
    );
    let read = repo.event("s1", None, "PostToolUse", "Read", "src/a.rs");
    repo.hook_bytes(read.to_string().as_bytes(), &location)
        .quiet();
}

#[test]
fn install_merges_with_existing_settings() {
    let repo = Repo::new("install");
    let settings = repo.path(".claude/settings.json");
    repo.write(
        ".claude/settings.json",
        r#"{"permissions": {"allow": ["Bash(cargo test:*)"]},
            "hooks": {"PostToolUse": [{"matcher": "Edit", "hooks": [{"type": "command", "command": "cargo fmt"}]}]}}"#,
    );
    let install = |args: &[&str]| {
        let out = Command::new(CCS)
            .args(["hook", "install"])
            .args(args)
            .current_dir(repo.root.join("src"))
            .output()
            .expect("run ccs hook install");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(&settings).expect("settings written");
        serde_json::from_str::<Value>(&text).expect("settings are JSON")
    };
    let once = install(&[]);
    assert_eq!(install(&[]), once, "installing twice changes nothing");
    assert_eq!(once["permissions"]["allow"][0], "Bash(cargo test:*)");
    let post = once["hooks"]["PostToolUse"]
        .as_array()
        .expect("PostToolUse groups");
    assert_eq!(post.len(), 2);
    assert_eq!(post[0]["hooks"][0]["command"], "cargo fmt");
    let command = post[1]["hooks"][0]["command"]
        .as_str()
        .expect("our command");
    assert!(command.ends_with(" hook claude-code"), "{command}");
    for event in ["PreToolUse", "SubagentStop", "SessionEnd"] {
        assert!(once["hooks"][event].is_array(), "{event} installed");
    }
    let pre = once["hooks"]["PreToolUse"][0]["matcher"]
        .as_str()
        .expect("a matcher");
    assert!(
        pre.contains("Edit") && pre.contains("Write") && pre.contains("Read"),
        "{pre}"
    );
    // Uninstall leaves exactly the user's own settings.
    let after = install(&["--uninstall"]);
    let original: Value = serde_json::from_str(
        r#"{"permissions": {"allow": ["Bash(cargo test:*)"]},
            "hooks": {"PostToolUse": [{"matcher": "Edit", "hooks": [{"type": "command", "command": "cargo fmt"}]}]}}"#,
    )
    .expect("JSON");
    assert_eq!(after, original);
}

#[test]
fn bench_hook_runs_the_story() {
    let out = Command::new(CCS)
        .args(["bench", "hook", "--rounds", "2"])
        .output()
        .expect("run ccs bench hook");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("ccs hook claude-code"))
        .unwrap_or_else(|| panic!("no result line in {text}"));
    assert!(line.contains(" 14 ") && line.ends_with("2/2"), "{line}");
}

#[test]
fn worktrees_of_one_repository_share_the_segment_not_the_files() {
    let repo = Repo::new("worktrees");
    repo.write("src/a.rs", "main\n");
    // A linked worktree as `git worktree add` lays it out.
    let linked = repo.root.join("linked");
    std::fs::create_dir_all(repo.path(".git/worktrees/feature")).expect("gitdir");
    std::fs::write(repo.path(".git/worktrees/feature/commondir"), "../..\n").expect("commondir");
    std::fs::create_dir_all(linked.join("src")).expect("worktree");
    let gitdir = format!(
        "gitdir: {}\n",
        repo.path(".git/worktrees/feature").display()
    );
    std::fs::write(linked.join(".git"), gitdir).expect(".git file");
    std::fs::write(linked.join("src/a.rs"), "feature\n").expect("file");

    repo.read_as("s-main", None, "src/a.rs");
    repo.read_as("s-feature", None, "linked/src/a.rs");
    repo.edit_as("s-feature", None, "linked/src/a.rs", "feature, edited\n");
    // The main worktree's file is another file: its reader may still edit it.
    assert_eq!(repo.try_edit("s-main", None, "Edit", "src/a.rs"), None);
    let list = repo.ccs(&["list", &repo.segment]);
    assert_eq!(list, "@feature/src/a.rs\nsrc/a.rs\n");
    let out = Command::new(CCS)
        .args(["hook", "where"])
        .current_dir(&linked)
        .output()
        .expect("ccs hook where");
    let main = Command::new(CCS)
        .args(["hook", "where"])
        .current_dir(&repo.root)
        .output()
        .expect("ccs hook where");
    assert!(out.status.success() && !out.stdout.is_empty());
    assert_eq!(out.stdout, main.stdout, "one segment per repository");
}

#[test]
fn codex_apply_patch_is_checked_like_an_edit() {
    let repo = Repo::new("codex");
    repo.write("src/a.rs", "a\n");
    repo.read_as("claude", None, "src/a.rs");
    repo.edit_as("claude", None, "src/a.rs", "a, edited\n");
    let patch = |body: &str| {
        json!({ "session_id": "codex-1", "cwd": repo.root, "hook_event_name": "PreToolUse",
                "tool_name": "apply_patch",
                "tool_input": { "command": format!("*** Begin Patch\n{body}*** End Patch\n") } })
    };
    let update = repo.hook(&patch("*** Update File: src/a.rs\n@@\n-a\n+b\n"));
    assert_eq!(
        update.denial().as_deref(),
        Some("ccs: src/a.rs was not read in this session. Read it first, then make the edit.")
    );
    repo.hook(&patch("*** Add File: src/new.rs\n+new\n"))
        .quiet();
}

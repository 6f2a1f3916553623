//! One hook event, as Claude Code writes it on the hook's stdin (and Codex CLI, whose hooks
//! use the same field names), reduced to what the hook acts on: who (the agent), what step,
//! and which files.
//!
//! The shapes follow Claude Code's hooks reference: every event carries `session_id`, `cwd`
//! and `hook_event_name`; tool events add `tool_name` and `tool_input` (`file_path` for
//! `Read`, `Edit`, `MultiEdit` and `Write`, `notebook_path` for `NotebookEdit`), and
//! `PostToolUse` adds `tool_response`; an event fired inside a sub-agent carries `agent_id`
//! and `agent_type`. Codex CLI's `apply_patch` names its files inside the patch text
//! (`*** Update File: PATH` lines).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use agent_coherence::MAX_NAME_BYTES;

/// The fields of a hook event the hook reads; the others are ignored.
#[derive(Debug, Deserialize)]
struct Raw {
    session_id: String,
    #[serde(default)]
    cwd: Option<PathBuf>,
    hook_event_name: String,
    #[serde(default)]
    tool_name: Option<String>,
    #[serde(default)]
    tool_input: Option<Value>,
    #[serde(default)]
    agent_id: Option<String>,
}

/// What the event asks the hook to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `PreToolUse` of a read: note the version the agent is about to see.
    BeforeRead,
    /// `PostToolUse` of a read: the agent has seen the file.
    AfterRead,
    /// `PreToolUse` of an edit: allow it only from the current version.
    BeforeEdit,
    /// `PostToolUse` (or `PostToolUseFailure`) of an edit: publish the new version.
    AfterEdit,
    /// `PostToolUse` of a shell command: publish the files it changed.
    AfterShell,
    /// `SessionEnd` or `SubagentStop`: the agent leaves (its state stays).
    Detach,
    /// Anything else: nothing to do.
    Nothing,
}

/// One parsed event.
#[derive(Debug, Clone)]
pub struct Event {
    /// The agent: the session, or `session/sub-agent` inside a sub-agent.
    pub agent: String,
    /// The event's name, echoed in `hookSpecificOutput.hookEventName`.
    pub event_name: String,
    /// What to do.
    pub step: Step,
    /// The files concerned, absolute (relative paths are taken from `cwd`).
    pub files: Vec<PathBuf>,
    /// The session's working directory (for shell commands: where to look for changes).
    pub cwd: PathBuf,
}

/// Why an event could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Not JSON, or a required field is missing or of the wrong type.
    #[error("the hook input is not a hook event: {0}")]
    Malformed(#[from] serde_json::Error),
    /// `session_id` is empty.
    #[error("the hook input has an empty session_id")]
    NoSession,
}

/// Tools whose `PostToolUse` means "the agent has seen this file".
const READ_TOOLS: &[&str] = &["Read"];
/// Tools that change the file they name.
const EDIT_TOOLS: &[&str] = &["Edit", "MultiEdit", "Write", "NotebookEdit", "apply_patch"];
/// Tools that run shell commands, which may change any file.
const SHELL_TOOLS: &[&str] = &["Bash", "shell", "local_shell"];

/// Parse one event from the bytes of stdin.
pub fn parse(bytes: &[u8]) -> Result<Event, InputError> {
    let raw: Raw = serde_json::from_slice(bytes)?;
    if raw.session_id.is_empty() {
        return Err(InputError::NoSession);
    }
    let cwd = raw.cwd.clone().unwrap_or_else(|| PathBuf::from("/"));
    let tool = raw.tool_name.as_deref().unwrap_or("");
    let pre = raw.hook_event_name == "PreToolUse";
    // A failed edit ends its claim as a completed one does.
    let post = matches!(
        raw.hook_event_name.as_str(),
        "PostToolUse" | "PostToolUseFailure"
    );
    let step = match raw.hook_event_name.as_str() {
        "SessionEnd" | "SubagentStop" => Step::Detach,
        _ if READ_TOOLS.contains(&tool) && pre => Step::BeforeRead,
        _ if READ_TOOLS.contains(&tool) && post => Step::AfterRead,
        _ if EDIT_TOOLS.contains(&tool) && pre => Step::BeforeEdit,
        _ if EDIT_TOOLS.contains(&tool) && post => Step::AfterEdit,
        _ if SHELL_TOOLS.contains(&tool) && post => Step::AfterShell,
        _ => Step::Nothing,
    };
    let files = match (&step, raw.tool_input.as_ref()) {
        (Step::BeforeRead | Step::AfterRead | Step::BeforeEdit | Step::AfterEdit, Some(input)) => {
            files_of(tool, input)
                .into_iter()
                .map(|file| absolute(&cwd, Path::new(&file)))
                .collect()
        }
        _ => Vec::new(),
    };
    Ok(Event {
        agent: agent_name(&raw.session_id, raw.agent_id.as_deref()),
        event_name: raw.hook_event_name,
        step,
        files,
        cwd,
    })
}

/// The paths a tool call names.
fn files_of(tool: &str, input: &Value) -> Vec<String> {
    let field = |name: &str| input.get(name).and_then(Value::as_str).map(str::to_owned);
    if tool == "apply_patch" {
        let patch = field("command")
            .or_else(|| field("input"))
            .or_else(|| field("patch"))
            .unwrap_or_default();
        return patch_files(&patch);
    }
    field("file_path")
        .or_else(|| field("notebook_path"))
        .into_iter()
        .collect()
}

/// The files an `apply_patch` patch touches: `*** Add File:`, `*** Update File:`,
/// `*** Delete File:` and `*** Move to:` lines.
fn patch_files(patch: &str) -> Vec<String> {
    const MARKERS: &[&str] = &[
        "*** Add File: ",
        "*** Update File: ",
        "*** Delete File: ",
        "*** Move to: ",
    ];
    patch
        .lines()
        .filter_map(|line| {
            MARKERS
                .iter()
                .find_map(|marker| line.strip_prefix(marker))
                .map(|path| path.trim().to_owned())
        })
        .filter(|path| !path.is_empty())
        .collect()
}

/// `path` made absolute against `cwd`, with `.` and `..` resolved lexically (the file may not
/// exist yet).
pub fn absolute(cwd: &Path, path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_owned()
    } else {
        cwd.join(path)
    };
    let mut out = PathBuf::new();
    for part in joined.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The agent's name: the session id, or `session/sub-agent`; shortened to fit the segment's
/// name limit by replacing the sub-agent id with a digest of it (ids are opaque, only their
/// distinctness matters).
pub fn agent_name(session: &str, sub_agent: Option<&str>) -> String {
    let name = match sub_agent {
        Some(id) if !id.is_empty() => format!("{session}/{id}"),
        _ => session.to_owned(),
    };
    if name.len() <= MAX_NAME_BYTES {
        return name;
    }
    let digest = super::fingerprint::hex(&super::fingerprint::sha256(name.as_bytes()));
    // 36-byte session ids (UUIDs) plus `/` plus 16 hex digits fit in 64 bytes.
    let keep = MAX_NAME_BYTES - 17;
    let mut cut = session.len().min(keep);
    while !session.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}/{}", &session[..cut], &digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: &str) -> Event {
        match parse(json.as_bytes()) {
            Ok(event) => event,
            Err(error) => panic!("{json}: {error}"),
        }
    }

    #[test]
    fn claude_code_shapes() {
        let e = event(
            r#"{"session_id":"s1","cwd":"/w","hook_event_name":"PreToolUse","tool_name":"Edit",
                "tool_input":{"file_path":"/w/src/a.rs","old_string":"a","new_string":"b"}}"#,
        );
        assert_eq!(
            (e.step, e.files),
            (Step::BeforeEdit, vec!["/w/src/a.rs".into()])
        );
        let e = event(
            r#"{"session_id":"s1","cwd":"/w","hook_event_name":"PostToolUse","tool_name":"Read",
                "tool_input":{"file_path":"src/../b.rs"},"tool_response":{},
                "agent_id":"sub7","agent_type":"Explore"}"#,
        );
        assert_eq!(e.agent, "s1/sub7");
        assert_eq!((e.step, e.files), (Step::AfterRead, vec!["/w/b.rs".into()]));
        let e = event(
            r#"{"session_id":"s1","hook_event_name":"PreToolUse","tool_name":"NotebookEdit",
                "tool_input":{"notebook_path":"/w/n.ipynb"}}"#,
        );
        assert_eq!(e.files, vec![PathBuf::from("/w/n.ipynb")]);
        let e = event(r#"{"session_id":"s1","hook_event_name":"SubagentStop","agent_id":"x"}"#);
        assert_eq!((e.step, e.agent.as_str()), (Step::Detach, "s1/x"));
        let e = event(r#"{"session_id":"s1","hook_event_name":"PostToolUse","tool_name":"Bash"}"#);
        assert_eq!(e.step, Step::AfterShell);
        let e = event(r#"{"session_id":"s1","hook_event_name":"PreToolUse","tool_name":"Grep"}"#);
        assert_eq!(e.step, Step::Nothing);
    }

    #[test]
    fn codex_apply_patch() {
        let patch = "*** Begin Patch\n*** Update File: src/a.rs\n@@\n-a\n+b\n*** Add File: new.txt\n+x\n*** End Patch\n";
        let json = serde_json::json!({
            "session_id": "c1", "cwd": "/w", "hook_event_name": "PreToolUse",
            "tool_name": "apply_patch", "tool_input": {"command": patch}
        });
        let e = event(&json.to_string());
        assert_eq!(e.step, Step::BeforeEdit);
        assert_eq!(
            e.files,
            vec![PathBuf::from("/w/src/a.rs"), PathBuf::from("/w/new.txt")]
        );
    }

    #[test]
    fn malformed() {
        for bad in [
            "",
            "{",
            "[]",
            r#"{"session_id":""}"#,
            r#"{"session_id":"s"}"#,
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn long_names_are_shortened_distinctly() {
        let session = "0b4a5bd8-8d43-4f4e-9a2b-6c0f6c3f1a11";
        let a = agent_name(session, Some(&"a".repeat(40)));
        let b = agent_name(session, Some(&"b".repeat(40)));
        assert!(a.len() <= MAX_NAME_BYTES && a.starts_with(session));
        assert_ne!(a, b);
    }
}

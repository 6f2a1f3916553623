//! `ccs hook`: keep coding-agent sessions (Claude Code, and Codex CLI where its hooks have the
//! same shapes) and their sub-agents coherent on the files they edit, from the repository's
//! shared-memory segment, with no server.
//!
//! Each hook call is one short process: read the event ([`input`]), find the file's worktree
//! and the repository's segment ([`workspace`], [`segment`]), apply the config ([`config`]),
//! decide on the segment ([`decide`]), answer in Claude Code's hooks contract on stdout (a
//! `hookSpecificOutput` object, or nothing), exit 0. The files' artifacts hold fingerprints
//! ([`fingerprint`]). `ccs hook install` writes the hooks into Claude Code's settings
//! ([`install`]). See `docs/coding-agents.md`.

pub mod config;
pub mod decide;
pub mod error;
pub mod fingerprint;
pub mod input;
pub mod install;
pub mod record;
pub mod segment;
pub mod workspace;

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use agent_coherence::{Agent, Segment};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::error::{CliError, EXIT_OK};
use config::{Config, Fail, Mode};
use decide::{Denial, Failure, Outcome};
use error::HookError;
use input::{Event, Step};
use workspace::Workspace;

/// `ccs hook`.
#[derive(Debug, Args)]
pub struct HookArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: HookCommand,
}

/// A `ccs hook` subcommand.
#[derive(Debug, Subcommand)]
pub enum HookCommand {
    /// Answer one Claude Code (or Codex CLI) hook event read as JSON on stdin.
    ///
    /// PreToolUse of Edit, MultiEdit, Write or NotebookEdit (Codex: apply_patch) is denied
    /// when the file changed since this session last read it; PostToolUse of Read, of an edit
    /// and of Bash publishes what changed. Always exits 0; stdout holds Claude Code's
    /// `hookSpecificOutput` JSON or nothing; problems go to stderr.
    #[command(alias = "codex")]
    ClaudeCode,
    /// Write the hooks into Claude Code's settings (.claude/settings.json of the repository,
    /// or ~/.claude/settings.json with --user), merging with the hooks already there.
    Install(install::InstallArgs),
    /// Print the segment that holds the files of the repository at DIR (default: the current
    /// directory), for `ccs status`, `ccs watch` and `ccs stats`.
    Where(WhereArgs),
}

/// `ccs hook where`.
#[derive(Debug, Args)]
pub struct WhereArgs {
    /// A directory in the repository.
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Run `ccs hook ...`.
pub fn run(args: &HookArgs) -> Result<u8, CliError> {
    match &args.command {
        HookCommand::ClaudeCode => {
            claude_code();
            Ok(EXIT_OK)
        }
        HookCommand::Install(args) => install::run(args),
        HookCommand::Where(args) => where_is(args),
    }
}

fn where_is(args: &WhereArgs) -> Result<u8, CliError> {
    let cwd = std::env::current_dir().map_err(|source| CliError::Stdio {
        action: "find the current directory",
        source,
    })?;
    let dir = input::absolute(&cwd, args.dir.as_deref().unwrap_or(Path::new(".")));
    let workspace = Workspace::of(&dir.join("_"))
        .map_err(|e| CliError::Usage(e.to_string()))?
        .ok_or_else(|| CliError::Usage(format!("{} is not in a git repository", dir.display())))?;
    let config = Config::load(&workspace.root).map_err(|e| CliError::Usage(e.to_string()))?;
    crate::commands::print(&format!("{}\n", location(&workspace, &config)))?;
    Ok(EXIT_OK)
}

/// The segment of a workspace: `$CCS_HOOK_SEGMENT`, else the config's, else the repository's.
pub fn location(workspace: &Workspace, config: &Config) -> String {
    std::env::var(segment::SEGMENT_ENV)
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| config.segment.clone())
        .unwrap_or_else(|| segment::name_for(&workspace.common_dir))
}

/// One hook call, start to answer. Never fails: a problem is an allowed call and a line on
/// stderr (or, with `"fail": "closed"`, a denied edit).
fn claude_code() {
    let mut bytes = Vec::new();
    let event = std::io::stdin()
        .lock()
        .read_to_end(&mut bytes)
        .map_err(HookError::Stdin)
        .and_then(|_| input::parse(&bytes).map_err(HookError::from));
    let event = match event {
        Ok(event) => event,
        Err(error) => {
            note(&format!("ccs hook: allowed without a check: {error}"));
            return;
        }
    };
    let answer = match event.step {
        Step::Nothing => Answer::default(),
        Step::Detach => detach(&event),
        Step::AfterShell => after_shell(&event),
        _ => files(&event),
    };
    answer.emit(&event);
}

/// What to tell Claude Code.
#[derive(Debug, Default)]
struct Answer {
    /// Reasons to deny the call (PreToolUse).
    deny: Vec<String>,
    /// Context for the model.
    context: Vec<String>,
}

impl Answer {
    fn emit(self, event: &Event) {
        let output = if !self.deny.is_empty() && event.event_name == "PreToolUse" {
            json!({ "hookSpecificOutput": {
                "hookEventName": event.event_name,
                "permissionDecision": "deny",
                "permissionDecisionReason": self.deny.join("\n"),
            }})
        } else if !self.context.is_empty() {
            json!({ "hookSpecificOutput": {
                "hookEventName": event.event_name,
                "additionalContext": self.context.join("\n"),
            }})
        } else {
            return;
        };
        let mut out = std::io::stdout().lock();
        // Nothing else to do if stdout is gone: Claude Code stopped listening.
        let _ = writeln!(out, "{output}").and_then(|()| out.flush());
    }
}

/// A line on stderr (Claude Code shows it in its debug output); a closed stderr is ignored.
fn note(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// The segments opened by this call, by location.
#[derive(Default)]
struct Segments(Vec<(String, Segment)>);

impl Segments {
    fn get(&mut self, location: &str) -> Result<&Segment, HookError> {
        let index = match self.0.iter().position(|(l, _)| l == location) {
            Some(index) => index,
            None => {
                let segment = segment::open(location).map_err(|source| HookError::Segment {
                    segment: location.to_owned(),
                    source,
                })?;
                self.0.push((location.to_owned(), segment));
                self.0.len() - 1
            }
        };
        Ok(&self.0[index].1)
    }
}

/// A tracked file: its worktree, config, key and the name shown to the model.
struct Tracked {
    workspace: Workspace,
    config: Config,
    key: String,
    shown: String,
}

/// The worktree, config and key of `path`, or `None` if it is not tracked.
fn tracked(path: &Path) -> Result<Option<Tracked>, HookError> {
    let Some(workspace) = Workspace::of(path)? else {
        return Ok(None);
    };
    let config = Config::load(&workspace.root)?;
    let (Some(key), Some(shown)) = (workspace.key_of(path), workspace.relative(path)) else {
        return Ok(None);
    };
    if !config.tracks(&workspace, path)? {
        return Ok(None);
    }
    Ok(Some(Tracked {
        workspace,
        config,
        key,
        shown,
    }))
}

/// Read and edit steps: each file named by the tool call, on its repository's segment.
fn files(event: &Event) -> Answer {
    let mut answer = Answer::default();
    let mut segments = Segments::default();
    for path in &event.files {
        let tracked = match tracked(path) {
            Ok(Some(tracked)) => tracked,
            Ok(None) => continue,
            Err(error) => {
                failed(&mut answer, event, path, Fail::Open, &error);
                continue;
            }
        };
        let location = location(&tracked.workspace, &tracked.config);
        let outcome = segments
            .get(&location)
            .and_then(|segment| {
                segment::attach(segment, &event.agent).map_err(|source| HookError::Segment {
                    segment: location.clone(),
                    source,
                })
            })
            .and_then(|agent| step(&agent, event, &tracked, path, &location));
        match outcome {
            Ok(Outcome::Quiet) => {}
            Ok(Outcome::Note(text)) => answer.context.push(text),
            Ok(Outcome::Denied(denial)) => denied(&mut answer, &tracked, denial),
            Err(error) => failed(&mut answer, event, path, tracked.config.fail, &error),
        }
    }
    answer
}

fn step(
    agent: &Agent,
    event: &Event,
    tracked: &Tracked,
    path: &Path,
    location: &str,
) -> Result<Outcome, HookError> {
    let key = tracked.key.as_str();
    let shown = tracked.shown.as_str();
    let outcome = match event.step {
        Step::BeforeRead => decide::before_read(agent, key, path),
        Step::AfterRead => decide::after_read(agent, key, path, shown),
        Step::BeforeEdit => decide::before_edit(agent, key, path),
        Step::AfterEdit => decide::after_edit(agent, key, path),
        Step::AfterShell | Step::Detach | Step::Nothing => Ok(Outcome::Quiet),
    };
    outcome.map_err(|failure| failure_error(failure, location))
}

fn failure_error(failure: Failure, location: &str) -> HookError {
    match failure {
        Failure::Segment(source) => HookError::Segment {
            segment: location.to_owned(),
            source,
        },
        Failure::File(error) => error,
    }
}

fn denied(answer: &mut Answer, tracked: &Tracked, denial: Denial) {
    let reason = denial.reason(&tracked.shown);
    match tracked.config.mode {
        Mode::Strict => answer.deny.push(reason),
        Mode::Advisory => answer.context.push(reason),
    }
}

/// A file the hook could not check: fail open (allow; say why on stderr) or closed (deny an
/// edit).
fn failed(answer: &mut Answer, event: &Event, path: &Path, fail: Fail, error: &HookError) {
    note(&format!(
        "ccs hook: {}: not checked: {error}",
        path.display()
    ));
    if fail == Fail::Closed && event.step == Step::BeforeEdit {
        answer.deny.push(format!(
            "ccs: {} could not be checked for changes by other sessions ({error}), and this \
             repository's hook config fails closed. Ask the user to look at the hook.",
            path.display()
        ));
    }
}

/// The workspace of the session's working directory, with its config and segment location.
fn session_workspace(event: &Event) -> Result<Option<(Workspace, Config, String)>, HookError> {
    let Some(workspace) = Workspace::of(&event.cwd.join("_"))? else {
        return Ok(None);
    };
    let config = Config::load(&workspace.root)?;
    let location = location(&workspace, &config);
    Ok(Some((workspace, config, location)))
}

/// `SessionEnd` / `SubagentStop`: nothing to do. Every hook call attaches and detaches, so
/// the agent is already detached, and its state stays in the segment for `ccs status`.
/// (Attaching here would register, for good, an agent slot for a session that touched no
/// file.)
fn detach(_event: &Event) -> Answer {
    Answer::default()
}

/// `PostToolUse` of a shell command: publish the tracked files of the session's worktree that
/// changed, and tell the model which.
fn after_shell(event: &Event) -> Answer {
    let changed = session_workspace(event).and_then(|found| {
        let Some((workspace, config, location)) = found else {
            return Ok(Vec::new());
        };
        let segment = segment::open(&location).map_err(|source| HookError::Segment {
            segment: location.clone(),
            source,
        })?;
        let keys = segment.list("").map_err(|source| HookError::Segment {
            segment: location.clone(),
            source,
        })?;
        let mut files = Vec::new();
        for key in keys {
            if let Some(path) = workspace.path_of(&key)
                && config.tracks(&workspace, &path)?
            {
                files.push((key, path));
            }
        }
        let changed =
            decide::after_shell(&segment, &files).map_err(|f| failure_error(f, &location))?;
        Ok(changed
            .into_iter()
            .filter_map(|i| workspace.relative(&files[i].1))
            .collect::<Vec<_>>())
    });
    let mut answer = Answer::default();
    match changed {
        Ok(changed) if !changed.is_empty() => answer.context.push(format!(
            "ccs: the command changed {}: read {} again before editing.",
            changed.join(", "),
            if changed.len() == 1 { "it" } else { "them" }
        )),
        Ok(_) => {}
        Err(error) => note(&format!("ccs hook: after the command: {error}")),
    }
    answer
}

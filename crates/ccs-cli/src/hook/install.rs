//! `ccs hook install`: write the hooks block into Claude Code's settings, merging with the
//! hooks already there, idempotently; `--uninstall` removes exactly what it wrote.
//!
//! Claude Code's settings hold `hooks: { EVENT: [ { matcher, hooks: [ {type, command} ] } ] }`.
//! Our entries are recognised by their command (`... hook claude-code`), so installing again
//! replaces them in place of adding copies, and other hooks are never touched.

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::{Map, Value, json};

use crate::error::{CliError, EXIT_OK};

use super::workspace::Workspace;

/// What every command we install ends with: how our entries are recognised.
const MARKER: &str = " hook claude-code";

/// The tools whose events the hook needs, per event.
const EVENTS: &[(&str, Option<&str>)] = &[
    ("PreToolUse", Some("Read|Edit|MultiEdit|Write|NotebookEdit")),
    (
        "PostToolUse",
        Some("Read|Edit|MultiEdit|Write|NotebookEdit|Bash"),
    ),
    (
        "PostToolUseFailure",
        Some("Edit|MultiEdit|Write|NotebookEdit"),
    ),
    ("SubagentStop", None),
    ("SessionEnd", None),
];

/// `ccs hook install`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Install for every project of this user (~/.claude/settings.json) instead of the
    /// repository's .claude/settings.json.
    #[arg(long)]
    pub user: bool,
    /// Remove the hooks instead (other hooks stay).
    #[arg(long)]
    pub uninstall: bool,
    /// The settings file to edit, instead of the one --user chooses.
    #[arg(long, value_name = "FILE")]
    pub settings: Option<PathBuf>,
    /// The command Claude Code runs [default: this ccs binary, `hook claude-code`].
    #[arg(long, value_name = "COMMAND", hide = true)]
    pub command: Option<String>,
}

/// Run `ccs hook install`.
pub fn run(args: &InstallArgs) -> Result<u8, CliError> {
    let path = match &args.settings {
        Some(path) => path.clone(),
        None => settings_path(args.user)?,
    };
    let command = match &args.command {
        Some(command) => command.clone(),
        None => default_command()?,
    };
    let mut settings = match std::fs::read(&path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Value::Object(Map::new()),
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            CliError::Usage(format!(
                "{} is not valid JSON ({e}); fix it, then install again",
                path.display()
            ))
        })?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Value::Object(Map::new()),
        Err(source) => {
            return Err(CliError::ReadFile { path, source });
        }
    };
    let changed = if args.uninstall {
        uninstall(&mut settings)?
    } else {
        install(&mut settings, &command)?
    };
    if changed {
        write(&path, &settings)?;
    }
    let what = match (args.uninstall, changed) {
        (false, true) => "installed the ccs hooks in",
        (false, false) => "the ccs hooks are already installed in",
        (true, true) => "removed the ccs hooks from",
        (true, false) => "no ccs hooks to remove in",
    };
    crate::commands::print(&format!("{what} {}\n", path.display()))?;
    Ok(EXIT_OK)
}

fn settings_path(user: bool) -> Result<PathBuf, CliError> {
    if user {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .ok_or_else(|| CliError::Usage("--user: HOME is not set".to_owned()))?;
        return Ok(PathBuf::from(home).join(".claude/settings.json"));
    }
    let cwd = std::env::current_dir().map_err(|source| CliError::Stdio {
        action: "find the current directory",
        source,
    })?;
    let root = Workspace::of(&cwd.join("_"))
        .map_err(|e| CliError::Usage(e.to_string()))?
        .map_or(cwd, |w| w.root);
    Ok(root.join(".claude/settings.json"))
}

/// This binary, quoted for a shell if needed, then `hook claude-code`.
fn default_command() -> Result<String, CliError> {
    let exe = std::env::current_exe().map_err(|source| CliError::Stdio {
        action: "find the ccs binary",
        source,
    })?;
    let exe = exe.to_string_lossy();
    let quoted = if exe
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
    {
        exe.into_owned()
    } else {
        format!("'{}'", exe.replace('\'', r"'\''"))
    };
    Ok(format!("{quoted}{MARKER}"))
}

fn not_an_object(what: &str) -> CliError {
    CliError::Usage(format!(
        "the settings' {what} is not what Claude Code expects (an object or array); fix it by hand"
    ))
}

/// Remove our entries; returns whether anything changed. Matcher groups left empty go, and so
/// do events left empty and a `hooks` object left empty.
fn uninstall(settings: &mut Value) -> Result<bool, CliError> {
    let root = settings
        .as_object_mut()
        .ok_or_else(|| not_an_object("top level"))?;
    let Some(hooks) = root.get_mut("hooks") else {
        return Ok(false);
    };
    let hooks = hooks
        .as_object_mut()
        .ok_or_else(|| not_an_object("`hooks`"))?;
    let mut changed = false;
    for groups in hooks.values_mut() {
        let Some(groups) = groups.as_array_mut() else {
            continue;
        };
        for group in groups.iter_mut() {
            if let Some(list) = group.get_mut("hooks").and_then(Value::as_array_mut) {
                let before = list.len();
                list.retain(|hook| !is_ours(hook));
                changed |= list.len() != before;
            }
        }
        groups.retain(|group| {
            group
                .get("hooks")
                .and_then(Value::as_array)
                .is_none_or(|list| !list.is_empty())
        });
    }
    hooks.retain(|_, groups| groups.as_array().is_none_or(|g| !g.is_empty()));
    if hooks.is_empty() {
        root.remove("hooks");
    }
    Ok(changed)
}

/// Add our entries (replacing earlier ones); returns whether anything changed.
fn install(settings: &mut Value, command: &str) -> Result<bool, CliError> {
    let before = settings.clone();
    uninstall(settings)?;
    let root = settings
        .as_object_mut()
        .ok_or_else(|| not_an_object("top level"))?;
    let hooks = root
        .entry("hooks")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| not_an_object("`hooks`"))?;
    for (event, matcher) in EVENTS {
        let groups = hooks
            .entry(*event)
            .or_insert_with(|| Value::Array(Vec::new()))
            .as_array_mut()
            .ok_or_else(|| not_an_object("`hooks` event list"))?;
        let mut group =
            json!({ "hooks": [ { "type": "command", "command": command, "timeout": 10 } ] });
        if let (Some(matcher), Some(object)) = (matcher, group.as_object_mut()) {
            object.insert("matcher".to_owned(), Value::from(*matcher));
        }
        groups.push(group);
    }
    Ok(*settings != before)
}

fn is_ours(hook: &Value) -> bool {
    hook.get("command")
        .and_then(Value::as_str)
        .is_some_and(|command| command.trim_end().ends_with(MARKER))
}

/// Write the settings atomically (a temporary file in the same directory, then a rename).
fn write(path: &Path, settings: &Value) -> Result<(), CliError> {
    let write_error = |source| CliError::WriteFile {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(write_error)?;
    }
    let mut text = serde_json::to_string_pretty(settings).map_err(CliError::Json)?;
    text.push('\n');
    let temp = path.with_extension(format!("json.ccs-{}.tmp", std::process::id()));
    std::fs::write(&temp, text)
        .and_then(|()| std::fs::rename(&temp, path))
        .map_err(|source| {
            let _ = std::fs::remove_file(&temp);
            write_error(source)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_is_idempotent_and_reversible() -> Result<(), CliError> {
        let original = json!({
            "model": "opus",
            "hooks": { "PreToolUse": [ { "matcher": "Bash", "hooks": [
                { "type": "command", "command": "./check.sh" } ] } ] }
        });
        let mut settings = original.clone();
        assert!(install(&mut settings, "/bin/ccs hook claude-code")?);
        let once = settings.clone();
        assert!(!install(&mut settings, "/bin/ccs hook claude-code")?);
        assert_eq!(settings, once);
        assert_eq!(
            settings["hooks"]["PreToolUse"].as_array().map(Vec::len),
            Some(2)
        );
        assert_eq!(
            settings["hooks"]["PreToolUse"][0]["hooks"][0]["command"],
            "./check.sh"
        );
        assert!(uninstall(&mut settings)?);
        assert_eq!(settings, original);
        Ok(())
    }
}

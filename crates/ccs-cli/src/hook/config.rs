//! The hook's configuration (`.claude/ccs-hook.json` in the worktree, optional) and which
//! files it tracks.
//!
//! ```json
//! { "mode": "strict", "fail": "open", "track": ["src/**"], "ignore": ["*.lock"] }
//! ```
//!
//! - `mode`: `strict` (the default) denies an edit from a stale read; `advisory` allows it and
//!   warns the model through `additionalContext`.
//! - `fail`: `open` (the default) allows a call the hook cannot check (no segment, a corrupted
//!   segment, unreadable git metadata) and says why on stderr; `closed` denies such edits.
//! - `track`: if given, only paths matching one of these globs are tracked.
//! - `ignore`: paths matching these globs are not tracked.
//! - `segment`: the segment to use instead of the repository's own (a name or a path).
//!
//! Beyond the globs, a path ignored by git (`.gitignore` files from the worktree's root down to
//! the file, and the repository's `info/exclude`) is not tracked: build output and caches
//! change all the time and nobody edits them from a read.

use std::path::{Path, PathBuf};

use ignore::Match;
use ignore::gitignore::Gitignore;
use ignore::overrides::{Override, OverrideBuilder};
use serde::Deserialize;

use super::workspace::Workspace;

/// The config file, relative to the worktree's root.
pub const CONFIG_FILE: &str = ".claude/ccs-hook.json";

/// What to do with an edit from a stale read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Deny it.
    #[default]
    Strict,
    /// Allow it, with a warning to the model.
    Advisory,
}

/// What to do when the hook cannot check a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fail {
    /// Allow it (and say why on stderr).
    #[default]
    Open,
    /// Deny an edit (reads and shell commands are still allowed).
    Closed,
}

/// The file's content.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Strict or advisory.
    #[serde(default)]
    pub mode: Mode,
    /// Fail open or closed.
    #[serde(default)]
    pub fail: Fail,
    /// Globs of tracked paths (all, if empty).
    #[serde(default)]
    pub track: Vec<String>,
    /// Globs of paths not tracked.
    #[serde(default)]
    pub ignore: Vec<String>,
    /// The segment, instead of the repository's own.
    #[serde(default)]
    pub segment: Option<String>,
}

/// Why the config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable or not the expected JSON.
    #[error("{}: {why}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

impl Config {
    /// The worktree's config; the defaults if it has none.
    pub fn load(root: &Path) -> Result<Config, ConfigError> {
        let path = root.join(CONFIG_FILE);
        let invalid = |why: String| ConfigError::Invalid {
            path: path.clone(),
            why,
        };
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(error) => Err(invalid(error.to_string())),
        }
    }

    /// The matcher for the config's globs, rooted at the worktree.
    fn overrides(&self, root: &Path) -> Result<Override, ConfigError> {
        let mut builder = OverrideBuilder::new(root);
        let globs = self
            .track
            .iter()
            .cloned()
            .chain(self.ignore.iter().map(|glob| format!("!{glob}")));
        for glob in globs {
            builder.add(&glob).map_err(|e| ConfigError::Invalid {
                path: root.join(CONFIG_FILE),
                why: format!("glob `{glob}`: {e}"),
            })?;
        }
        builder.build().map_err(|e| ConfigError::Invalid {
            path: root.join(CONFIG_FILE),
            why: e.to_string(),
        })
    }

    /// Whether the file at `path` (in `workspace`) is tracked.
    pub fn tracks(&self, workspace: &Workspace, path: &Path) -> Result<bool, ConfigError> {
        let Some(relative) = workspace.relative(path) else {
            return Ok(false);
        };
        match self.overrides(&workspace.root)?.matched(&relative, false) {
            Match::Ignore(_) => return Ok(false),
            Match::Whitelist(_) | Match::None => {}
        }
        Ok(!git_ignores(workspace, path))
    }
}

/// Whether git ignores `path`: the deepest `.gitignore` (or `info/exclude`) with a matching
/// pattern for the path or one of its directories decides.
fn git_ignores(workspace: &Workspace, path: &Path) -> bool {
    let mut matchers = vec![workspace.common_dir.join("info/exclude")];
    let mut dir = workspace.root.clone();
    matchers.push(dir.join(".gitignore"));
    if let Some(parent) = path
        .parent()
        .and_then(|p| p.strip_prefix(&workspace.root).ok())
    {
        for part in parent.iter() {
            dir.push(part);
            matchers.push(dir.join(".gitignore"));
        }
    }
    for file in matchers.iter().rev() {
        if !file.is_file() {
            continue;
        }
        // `info/exclude` patterns are relative to the worktree's root.
        let root = if file.ends_with("info/exclude") {
            workspace.root.clone()
        } else {
            file.parent()
                .map_or_else(|| workspace.root.clone(), Path::to_owned)
        };
        let mut builder = ignore::gitignore::GitignoreBuilder::new(&root);
        // A pattern git would reject is skipped, as git does.
        let _ = builder.add(file);
        let matcher: Gitignore = match builder.build() {
            Ok(matcher) => matcher,
            Err(_) => continue,
        };
        if !path.starts_with(&root) {
            continue;
        }
        match matcher.matched_path_or_any_parents(path, false) {
            Match::Ignore(_) => return true,
            Match::Whitelist(_) => return false,
            Match::None => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitignore_and_globs_decide() -> Result<(), Box<dyn std::error::Error>> {
        let root = std::env::temp_dir().join(format!("ccs-cfg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join(".git/info"))?;
        std::fs::create_dir_all(root.join("src/gen"))?;
        std::fs::write(root.join(".gitignore"), "target/\n*.log\n")?;
        std::fs::write(root.join("src/.gitignore"), "gen/\n!keep.log\n")?;
        std::fs::write(root.join(".git/info/exclude"), "secret.txt\n")?;
        let ws = Workspace::of(&root.join("x"))?.ok_or("no workspace")?;
        let config = Config::default();
        let tracked = |p: &str| config.tracks(&ws, &root.join(p));
        assert!(tracked("src/a.rs")?);
        assert!(!tracked("target/debug/x")?);
        assert!(!tracked("a.log")?);
        assert!(tracked("src/keep.log")?);
        assert!(!tracked("src/gen/x.rs")?);
        assert!(!tracked("secret.txt")?);
        let config: Config = serde_json::from_str(r#"{"track":["src/**"],"ignore":["*.md"]}"#)?;
        assert!(config.tracks(&ws, &root.join("src/a.rs"))?);
        assert!(!config.tracks(&ws, &root.join("src/a.md"))?);
        assert!(!config.tracks(&ws, &root.join("docs/a.rs"))?);
        assert!(serde_json::from_str::<Config>(r#"{"mode":"loose"}"#).is_err());
        std::fs::remove_dir_all(&root)?;
        Ok(())
    }
}

//! Which workspace a file belongs to, and its key there, found by reading `.git` entries
//! directly (no `git` process: the hook must answer in about a millisecond).
//!
//! Walking up from the file, the first directory holding a `.git` entry is the worktree root.
//! A `.git` directory is the repository itself (its common dir). A `.git` file (a linked
//! worktree, or a submodule) says `gitdir: PATH`; that git dir's `commondir` file, when
//! present, names the repository's common dir, shared by all its worktrees (git's
//! `gitrepository-layout(5)`). One segment serves one common dir, so every worktree of a
//! repository shares it; keys of a linked worktree are prefixed with `@NAME/` (its name under
//! `worktrees/`), since the same relative path there is another file on disk.

use std::path::{Path, PathBuf};

use agent_coherence::MAX_KEY_BYTES;

/// A worktree of a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// The worktree's top directory.
    pub root: PathBuf,
    /// The repository's common git dir (canonical), shared by all its worktrees.
    pub common_dir: PathBuf,
    /// A linked worktree's name; `None` for the main worktree.
    pub worktree: Option<String>,
}

/// Why a workspace could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    /// A `.git` file or `commondir` file could not be read or makes no sense.
    #[error("cannot read the git metadata at `{}`: {why}", path.display())]
    Git {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

impl Workspace {
    /// The workspace of the file at `path` (absolute), or `None` if it is in no repository.
    pub fn of(path: &Path) -> Result<Option<Workspace>, WorkspaceError> {
        let mut dir = path.parent();
        while let Some(candidate) = dir {
            let dot_git = candidate.join(".git");
            if let Ok(meta) = std::fs::symlink_metadata(&dot_git) {
                let (common_dir, worktree) = if meta.is_dir() {
                    (dot_git, None)
                } else {
                    linked(&dot_git)?
                };
                let common_dir = common_dir.canonicalize().map_err(|e| WorkspaceError::Git {
                    path: common_dir.clone(),
                    why: e.to_string(),
                })?;
                return Ok(Some(Workspace {
                    root: candidate.to_owned(),
                    common_dir,
                    worktree,
                }));
            }
            dir = candidate.parent();
        }
        Ok(None)
    }

    /// The key of the file at `path`: its path relative to the root with `/` separators,
    /// prefixed by `@NAME/` in a linked worktree. `None` if the file is outside the worktree,
    /// inside `.git`, not valid UTF-8, or too long for a key.
    pub fn key_of(&self, path: &Path) -> Option<String> {
        let relative = self.relative(path)?;
        let key = match &self.worktree {
            Some(name) => format!("@{name}/{relative}"),
            None => relative,
        };
        (key.len() <= MAX_KEY_BYTES).then_some(key)
    }

    /// The path relative to the root, `/`-separated; `None` outside the worktree or in `.git`.
    pub fn relative(&self, path: &Path) -> Option<String> {
        let relative = path.strip_prefix(&self.root).ok()?;
        let parts: Option<Vec<&str>> = relative.iter().map(|p| p.to_str()).collect();
        let parts = parts?;
        if parts.is_empty() || parts[0] == ".git" {
            return None;
        }
        Some(parts.join("/"))
    }

    /// The file a key of this worktree names; `None` for a key of another worktree.
    pub fn path_of(&self, key: &str) -> Option<PathBuf> {
        let relative = match (&self.worktree, key.strip_prefix('@')) {
            (Some(name), Some(rest)) => rest.strip_prefix(name.as_str())?.strip_prefix('/')?,
            (None, None) => key,
            _ => return None,
        };
        Some(self.root.join(relative))
    }
}

/// Follow a `.git` file: `gitdir: PATH` (relative to the file's directory), then the git dir's
/// `commondir` (relative to the git dir) if there is one.
fn linked(dot_git: &Path) -> Result<(PathBuf, Option<String>), WorkspaceError> {
    let bad = |why: String| WorkspaceError::Git {
        path: dot_git.to_owned(),
        why,
    };
    let text = std::fs::read_to_string(dot_git).map_err(|e| bad(e.to_string()))?;
    let target = text
        .lines()
        .find_map(|line| line.strip_prefix("gitdir:"))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("no `gitdir:` line".to_owned()))?;
    let base = dot_git.parent().unwrap_or(Path::new("/"));
    let git_dir = base.join(target);
    match std::fs::read_to_string(git_dir.join("commondir")) {
        Ok(common) => {
            let name = git_dir
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_owned);
            Ok((git_dir.join(common.trim()), name))
        }
        // A submodule's git dir is its own repository: no commondir, no worktree prefix.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok((git_dir, None)),
        Err(error) => Err(WorkspaceError::Git {
            path: git_dir.join("commondir"),
            why: error.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn main_and_linked_worktrees_share_the_common_dir() -> Result<(), Box<dyn std::error::Error>> {
        let top = std::env::temp_dir().join(format!("ccs-ws-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&top);
        let repo = top.join("repo");
        let wt = top.join("wt");
        std::fs::create_dir_all(repo.join(".git/worktrees/feature"))?;
        std::fs::create_dir_all(repo.join("src"))?;
        std::fs::create_dir_all(&wt)?;
        std::fs::write(wt.join(".git"), "gitdir: ../repo/.git/worktrees/feature\n")?;
        std::fs::write(repo.join(".git/worktrees/feature/commondir"), "../..\n")?;

        let main = Workspace::of(&repo.join("src/a.rs"))?.ok_or("no workspace")?;
        let linked = Workspace::of(&wt.join("src/a.rs"))?.ok_or("no workspace")?;
        assert_eq!(main.common_dir, linked.common_dir);
        assert_eq!(
            main.key_of(&repo.join("src/a.rs")).as_deref(),
            Some("src/a.rs")
        );
        let key = linked.key_of(&wt.join("src/a.rs")).ok_or("no key")?;
        assert_eq!(key, "@feature/src/a.rs");
        assert_eq!(linked.path_of(&key), Some(wt.join("src/a.rs")));
        assert_eq!(main.path_of(&key), None);
        assert_eq!(main.key_of(&repo.join(".git/config")), None);
        assert_eq!(main.key_of(Path::new("/elsewhere/x")), None);
        std::fs::remove_dir_all(&top)?;
        Ok(())
    }
}

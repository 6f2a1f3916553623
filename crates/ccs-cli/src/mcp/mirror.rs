//! `--mirror DIR`: a copy of each artifact this server wrote or read, as DIR/<key>, for tools
//! that work on files. The server remembers the version and SHA-256 of what it last wrote to
//! each file, so an edit made outside the server is noticed and never silently overwritten.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest as _, Sha256};

use super::reply::Refusal;

/// What the server last wrote to a mirror file.
#[derive(Debug, Clone, Copy)]
struct Written {
    version: u64,
    hash: [u8; 32],
}

/// The state of a mirror file relative to what the server last wrote to it.
#[derive(Debug, PartialEq, Eq)]
pub enum FileState {
    /// No file.
    Missing,
    /// The file holds what the server last wrote, at this version.
    Ours(u64),
    /// The file was written or edited by someone else; it holds bytes with this hash.
    EditedOutside([u8; 32]),
}

/// The mirror directory and what the server wrote into it.
#[derive(Debug)]
pub struct Mirror {
    dir: PathBuf,
    written: Mutex<HashMap<String, Written>>,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl Mirror {
    /// A mirror into `dir` (created on first write).
    pub fn new(dir: PathBuf) -> Mirror {
        Mirror {
            dir,
            written: Mutex::new(HashMap::new()),
        }
    }

    /// The file for `key`; `bad_request` for a key that could escape the directory.
    pub fn path(&self, key: &str) -> Result<PathBuf, Refusal> {
        if key.starts_with('/') {
            return Err(Refusal::bad_request(format!(
                "key `{key}` starts with `/`, so it cannot be mirrored under the mirror directory"
            )));
        }
        if key
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
        {
            return Err(Refusal::bad_request(format!(
                "key `{key}` has an empty, `.` or `..` path component, so it cannot be mirrored"
            )));
        }
        Ok(self.dir.join(key))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Written>> {
        // A panic while holding the lock leaves a consistent map (single inserts).
        self.written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Compare the file at `path` with what the server last wrote for `key`.
    pub fn state(&self, key: &str, path: &Path) -> Result<FileState, Refusal> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(FileState::Missing);
            }
            Err(error) => {
                return Err(Refusal::new(
                    "internal",
                    format!("cannot read mirror file `{}`: {error}", path.display()),
                ));
            }
        };
        let hash = sha256(&bytes);
        Ok(match self.lock().get(key) {
            Some(written) if written.hash == hash => FileState::Ours(written.version),
            _ => FileState::EditedOutside(hash),
        })
    }

    /// Refuse to overwrite a file edited outside the server, unless `content` is exactly what
    /// the file holds (the reconciliation: writing the file's content through the server).
    pub fn check_write(&self, key: &str, content: &[u8]) -> Result<PathBuf, Refusal> {
        let path = self.path(key)?;
        if let FileState::EditedOutside(hash) = self.state(key, &path)?
            && hash != sha256(content)
        {
            return Err(Refusal::new(
                "mirror_conflict",
                "the mirror file was edited outside the server; reconcile it (read it, write \
                 its content through the server) before writing",
            )
            .with("key", key)
            .with("path", path.display().to_string()));
        }
        Ok(path)
    }

    /// Record that the file for `key` holds exactly `content` at `version` (a file left by an
    /// earlier session, identical to the artifact): it is the server's own again.
    pub fn adopt(&self, key: &str, version: u64, content: &[u8]) {
        self.lock().insert(
            key.to_owned(),
            Written {
                version,
                hash: sha256(content),
            },
        );
    }

    /// Whether `hash` is the SHA-256 of `content`.
    pub fn same(hash: &[u8; 32], content: &[u8]) -> bool {
        *hash == sha256(content)
    }

    /// Write `content` (version `version` of `key`) to `path` atomically: a temporary file in
    /// the same directory, then a rename.
    pub fn store(
        &self,
        key: &str,
        path: &Path,
        version: u64,
        content: &[u8],
    ) -> Result<(), String> {
        let parent = path.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create `{}`: {e}", parent.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = parent.join(format!(".{name}.ccs-mcp-{}.tmp", std::process::id()));
        let written = std::fs::File::create(&temp)
            .and_then(|mut file| file.write_all(content).and_then(|()| file.sync_all()))
            .and_then(|()| std::fs::rename(&temp, path));
        if let Err(error) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(format!("cannot write `{}`: {error}", path.display()));
        }
        self.lock().insert(
            key.to_owned(),
            Written {
                version,
                hash: sha256(content),
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ccs-mcp-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn keys_that_escape_are_refused() {
        let mirror = Mirror::new(PathBuf::from("/nonexistent"));
        for bad in ["/etc/passwd", "a/../b", "..", "a//b", "./a", "a/"] {
            assert!(mirror.path(bad).is_err(), "{bad}");
        }
        assert!(mirror.path("notes/plan.md").is_ok());
    }

    #[test]
    fn outside_edits_are_noticed() -> Result<(), String> {
        let dir = temp_dir("edits");
        let mirror = Mirror::new(dir.clone());
        let path = mirror.path("a/b").map_err(|r| r.message)?;
        mirror.store("a/b", &path, 1, b"one")?;
        assert_eq!(
            mirror.state("a/b", &path).map_err(|r| r.message)?,
            FileState::Ours(1)
        );
        assert!(mirror.check_write("a/b", b"two").is_ok());
        std::fs::write(&path, b"edited").map_err(|e| e.to_string())?;
        assert!(mirror.check_write("a/b", b"two").is_err());
        // Writing the file's own content through the server reconciles.
        assert!(mirror.check_write("a/b", b"edited").is_ok());
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}

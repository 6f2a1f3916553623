//! `--mirror DIR`: a copy of each artifact this server wrote or read, as DIR/<key>, for tools
//! that work on files. The server remembers the version and SHA-256 of what it last wrote to
//! each file, so an edit made outside the server is noticed and never silently overwritten.
//!
//! Paths under DIR are resolved one component at a time from a descriptor of DIR
//! (`openat`/`mkdirat`/`renameat` with `O_NOFOLLOW`), so a symbolic link planted inside DIR
//! (`DIR/notes -> /etc`) is refused instead of followed: the server never reads or writes
//! outside DIR. (DIR itself may be a link: the user named it.)

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{CWD, Mode, OFlags};

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

    /// The directory holding `key`'s file and the file's name, walked from DIR without
    /// following links; `None` if a directory on the way does not exist (and `create` is off).
    fn parent_of<'k>(
        &self,
        key: &'k str,
        create: bool,
    ) -> std::io::Result<Option<(OwnedFd, &'k str)>> {
        let mut parts: Vec<&str> = key.split('/').collect();
        let name = parts.pop().unwrap_or(key);
        if create {
            std::fs::create_dir_all(&self.dir)?;
        }
        let directory = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let mut dir = match rustix::fs::openat(CWD, &self.dir, directory, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) if !create => return Ok(None),
            Err(errno) => return Err(errno.into()),
        };
        for part in parts {
            let next =
                match rustix::fs::openat(&dir, part, directory | OFlags::NOFOLLOW, Mode::empty()) {
                    Err(rustix::io::Errno::NOENT) if create => {
                        match rustix::fs::mkdirat(&dir, part, Mode::from_raw_mode(0o755)) {
                            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                            Err(errno) => return Err(errno.into()),
                        }
                        rustix::fs::openat(&dir, part, directory | OFlags::NOFOLLOW, Mode::empty())
                    }
                    other => other,
                };
            dir = match next {
                Ok(fd) => fd,
                Err(rustix::io::Errno::NOENT) => return Ok(None),
                Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => {
                    return Err(not_followed(part));
                }
                Err(errno) => return Err(errno.into()),
            };
        }
        Ok(Some((dir, name)))
    }

    /// Compare the file at `path` with what the server last wrote for `key`.
    pub fn state(&self, key: &str, path: &Path) -> Result<FileState, Refusal> {
        let cannot = |error: std::io::Error| {
            let link = error.get_ref().is_some_and(|e| e.is::<LinkRefused>());
            let kind = if link { "mirror_link" } else { "internal" };
            Refusal::new(
                kind,
                format!("cannot read mirror file `{}`: {error}", path.display()),
            )
        };
        let Some((dir, name)) = self.parent_of(key, false).map_err(cannot)? else {
            return Ok(FileState::Missing);
        };
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let file = match rustix::fs::openat(&dir, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(FileState::Missing),
            Err(rustix::io::Errno::LOOP) => return Err(cannot(not_followed(name))),
            Err(errno) => return Err(cannot(errno.into())),
        };
        let mut bytes = Vec::new();
        std::fs::File::from(file)
            .read_to_end(&mut bytes)
            .map_err(cannot)?;
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
    /// the same directory, then a rename (which replaces a link at the name, never follows it).
    pub fn store(
        &self,
        key: &str,
        path: &Path,
        version: u64,
        content: &[u8],
    ) -> Result<(), String> {
        let cannot = |error: std::io::Error| format!("cannot write `{}`: {error}", path.display());
        let (dir, name) = self
            .parent_of(key, true)
            .map_err(cannot)?
            .ok_or_else(|| cannot(std::io::ErrorKind::NotFound.into()))?;
        let temp = format!(".{name}.ccs-mcp-{}.tmp", std::process::id());
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let written = rustix::fs::openat(&dir, temp.as_str(), flags, Mode::from_raw_mode(0o644))
            .map_err(std::io::Error::from)
            .and_then(|fd| {
                let mut file = std::fs::File::from(fd);
                file.write_all(content).and_then(|()| file.sync_all())
            })
            .and_then(|()| {
                rustix::fs::renameat(&dir, temp.as_str(), &dir, name).map_err(Into::into)
            });
        if let Err(error) = written {
            let _ = rustix::fs::unlinkat(&dir, temp.as_str(), rustix::fs::AtFlags::empty());
            return Err(cannot(error));
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

/// A link met inside the mirror directory, and not followed.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{0}` is a symbolic link (or not a directory) inside the mirror directory; the mirror never \
     follows links out of its directory"
)]
struct LinkRefused(String);

/// The I/O error for a link met inside the mirror directory.
fn not_followed(part: &str) -> std::io::Error {
    std::io::Error::other(LinkRefused(part.to_owned()))
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
    fn links_inside_the_directory_are_not_followed() -> Result<(), String> {
        let dir = temp_dir("links");
        let outside = temp_dir("links-outside");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&outside).map_err(|e| e.to_string())?;
        std::os::unix::fs::symlink(&outside, dir.join("notes")).map_err(|e| e.to_string())?;
        std::os::unix::fs::symlink(outside.join("f"), dir.join("f")).map_err(|e| e.to_string())?;
        let mirror = Mirror::new(dir.clone());
        let path = mirror.path("notes/plan").map_err(|r| r.message)?;
        assert!(mirror.store("notes/plan", &path, 1, b"x").is_err());
        assert!(mirror.state("notes/plan", &path).is_err());
        // A link at the file's own name is replaced by the rename, not written through.
        let path = mirror.path("f").map_err(|r| r.message)?;
        mirror.store("f", &path, 1, b"y")?;
        assert!(!outside.join("f").exists() && !outside.join("plan").exists());
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&outside);
        Ok(())
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

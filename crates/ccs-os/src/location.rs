//! Where a segment lives: a POSIX shared-memory name or a file path.
//!
//! A string containing `/` is a file path (anywhere, e.g. on disk); anything else is a
//! shared-memory name, which Linux keeps under `/dev/shm`.
//!
//! Opening an existing segment ([`Location::open_rdwr`]) is where the file-system side of the
//! security model is enforced (see `docs/security.md`): the last path component is never
//! followed if it is a symbolic link (`O_NOFOLLOW`), the file must be a regular file, and it
//! must belong to this process's effective user unless [`Access::allow_other_owner`] says
//! otherwise. A shared-memory name is re-validated on every use (the enum's field is public,
//! so a `Location::Shm` need not come from [`Location::parse`]).
//!
//! ```
//! use ccs_os::Location;
//! use std::path::PathBuf;
//!
//! assert_eq!(Location::parse("team-42")?, Location::Shm("team-42".into()));
//! assert_eq!(Location::parse("./seg")?, Location::Path(PathBuf::from("./seg")));
//! assert!(Location::parse("..").is_err());
//! # Ok::<(), ccs_os::OsError>(())
//! ```

use std::fmt;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use crate::OsError;

/// Longest accepted shared-memory name, in bytes (Linux allows 255; we keep a margin).
pub const MAX_SHM_NAME_LEN: usize = 200;

/// Where Linux keeps POSIX shared-memory objects.
pub const SHM_DIR: &str = "/dev/shm";

/// What an opener of an existing segment accepts beyond the default policy.
///
/// The default refuses a segment file owned by another user (`Access::default()`); the
/// symbolic-link and regular-file checks always apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Access {
    /// Open a segment whose file belongs to another user. Its owner can rewrite, truncate or
    /// replace it at any time, so allow this only for a user you trust.
    pub allow_other_owner: bool,
}

/// Where a segment lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// A POSIX shared-memory object, by name without the leading `/` (lives in `/dev/shm`).
    Shm(String),
    /// A file anywhere in the file system.
    Path(PathBuf),
}

impl Location {
    /// Parse what a user typed: a string containing `/` is a path, anything else a
    /// shared-memory name (1..=200 bytes, no NUL, not `.` or `..`).
    ///
    /// # Errors
    ///
    /// [`OsError::Invalid`] if the name or path cannot name a segment.
    pub fn parse(s: &str) -> Result<Location, OsError> {
        if s.contains('\0') {
            return Err(OsError::invalid(
                s.escape_debug().to_string(),
                "the name contains a NUL byte; remove it",
            ));
        }
        if s.contains('/') {
            return Ok(Location::Path(PathBuf::from(s)));
        }
        check_shm_name(s)?;
        Ok(Location::Shm(s.to_owned()))
    }

    /// The location as the user typed it, for messages.
    pub fn display_name(&self) -> String {
        match self {
            Location::Shm(name) => name.clone(),
            Location::Path(path) => path.display().to_string(),
        }
    }

    /// The name handed to `shm_open`/`shm_unlink`: the POSIX form with one leading slash,
    /// after re-checking the name (a `Location::Shm` may have been built without `parse`).
    pub(crate) fn shm_name(name: &str) -> Result<String, OsError> {
        check_shm_name(name)?;
        Ok(format!("/{name}"))
    }

    /// Where the segment appears in the file system: `/dev/shm/NAME` for a shared-memory
    /// name (checked: no `/`, not `.` or `..`, not empty), else the path itself.
    ///
    /// # Errors
    ///
    /// [`OsError::Invalid`] for a shared-memory name that [`Location::parse`] would refuse.
    pub fn fs_path(&self) -> Result<PathBuf, OsError> {
        match self {
            Location::Shm(name) => {
                check_shm_name(name)?;
                Ok(Path::new(SHM_DIR).join(name))
            }
            Location::Path(path) => Ok(path.clone()),
        }
    }

    /// Open the existing segment read-write as a fresh open file description, refusing a
    /// symbolic link, anything but a regular file, and (unless `access` allows it) a file
    /// owned by another user.
    ///
    /// `O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK` (non-blocking only so that a
    /// FIFO planted under the name cannot hang the open; it has no effect on a regular file),
    /// then `fstat` on the descriptor, so the checks apply to the file actually opened.
    /// This is what glibc's `shm_open` does for a shared-memory name, plus the owner check.
    ///
    /// See [shm_open(3)](https://man7.org/linux/man-pages/man3/shm_open.3.html),
    /// [open(2)](https://man7.org/linux/man-pages/man2/open.2.html) and
    /// [fstat(2)](https://man7.org/linux/man-pages/man2/fstat.2.html).
    pub(crate) fn open_rdwr(&self, access: Access) -> Result<File, OsError> {
        let name = self.display_name();
        let path = self.fs_path()?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::ELOOP) && is_symlink(&path) {
                    OsError::Symlink {
                        location: name.clone(),
                    }
                } else {
                    OsError::from_io("open", name.clone(), e)
                }
            })?;
        let meta = file
            .metadata()
            .map_err(|e| OsError::from_io("fstat", name.clone(), e))?;
        if !meta.file_type().is_file() {
            return Err(OsError::invalid(
                name,
                "it is not a regular file; name a segment created by `ccs`",
            ));
        }
        let your_uid = rustix::process::geteuid().as_raw();
        let owner_uid = meta.uid();
        if owner_uid != your_uid && !access.allow_other_owner {
            return Err(OsError::ForeignOwner {
                location: name,
                owner: describe_user(owner_uid),
                owner_uid,
                your_uid,
            });
        }
        Ok(file)
    }
}

/// The rules of a shared-memory name (see [`Location::parse`]).
fn check_shm_name(name: &str) -> Result<(), OsError> {
    let reason = if name.is_empty() {
        "the name is empty; give a shared-memory name such as `team-42`, or a path containing '/'"
            .to_owned()
    } else if name.contains('\0') {
        "the name contains a NUL byte; remove it".to_owned()
    } else if name.contains('/') {
        "a shared-memory name cannot contain '/'; use a plain name, or a file path".to_owned()
    } else if name == "." || name == ".." {
        "`.` and `..` are not shared-memory names; pick another name".to_owned()
    } else if name.len() > MAX_SHM_NAME_LEN {
        format!(
            "the shared-memory name is {} bytes long, the limit is {MAX_SHM_NAME_LEN}; use a shorter name, or a file path",
            name.len()
        )
    } else {
        return Ok(());
    };
    Err(OsError::invalid(name.escape_debug().to_string(), reason))
}

/// Whether `path` itself (not what it points to) is a symbolic link.
fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// `uid 65534 (nobody)`, or `uid 1234` when the user database has no name for it. Reads
/// `/etc/passwd` (best effort, error path only; users known only to NSS show as a number).
fn describe_user(uid: u32) -> String {
    let name = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| user_name_in(&text, uid));
    match name {
        Some(name) => format!("uid {uid} ({name})"),
        None => format!("uid {uid}"),
    }
}

/// The name of `uid` in `passwd(5)`-formatted `text`.
fn user_name_in(text: &str, uid: u32) -> Option<String> {
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let entry_uid: u32 = fields.nth(1)?.parse().ok()?;
        (entry_uid == uid && !name.is_empty()).then(|| name.to_owned())
    })
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shm_names() {
        assert_eq!(Location::parse("a").ok(), Some(Location::Shm("a".into())));
        assert_eq!(
            Location::parse("team-42").ok(),
            Some(Location::Shm("team-42".into()))
        );
        let long = "x".repeat(MAX_SHM_NAME_LEN);
        assert_eq!(Location::parse(&long).ok(), Some(Location::Shm(long)));
    }

    #[test]
    fn paths() {
        assert_eq!(
            Location::parse("/tmp/seg").ok(),
            Some(Location::Path("/tmp/seg".into()))
        );
        assert_eq!(
            Location::parse("dir/seg").ok(),
            Some(Location::Path("dir/seg".into()))
        );
        assert_eq!(Location::parse("/").ok(), Some(Location::Path("/".into())));
    }

    #[test]
    fn rejects_bad_names() {
        for bad in ["", ".", "..", "a\0b", "/tmp/a\0b"] {
            assert!(
                matches!(Location::parse(bad), Err(OsError::Invalid { .. })),
                "{bad:?} should be rejected"
            );
        }
        let too_long = "x".repeat(MAX_SHM_NAME_LEN + 1);
        assert!(matches!(
            Location::parse(&too_long),
            Err(OsError::Invalid { .. })
        ));
    }

    #[test]
    fn a_hand_built_shm_name_is_checked_at_use() {
        for bad in ["../etc/passwd", "a/b", "..", ".", ""] {
            let loc = Location::Shm(bad.into());
            assert!(
                matches!(loc.fs_path(), Err(OsError::Invalid { .. })),
                "{bad:?} should be refused"
            );
            assert!(
                matches!(
                    loc.open_rdwr(Access::default()),
                    Err(OsError::Invalid { .. })
                ),
                "{bad:?} should not be opened"
            );
        }
    }

    #[test]
    fn user_names_come_from_passwd() {
        let text = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\nbad line\n";
        assert_eq!(user_name_in(text, 65534).as_deref(), Some("nobody"));
        assert_eq!(user_name_in(text, 0).as_deref(), Some("root"));
        assert_eq!(user_name_in(text, 7), None);
    }

    #[test]
    fn display_is_what_was_typed() {
        for s in ["team-42", "/tmp/seg", "./seg"] {
            let loc = Location::parse(s).ok();
            assert_eq!(loc.as_ref().map(Location::display_name).as_deref(), Some(s));
            assert_eq!(loc.map(|l| l.to_string()).as_deref(), Some(s));
        }
    }

    #[test]
    fn error_messages_say_what_to_do() {
        let e = OsError::AlreadyExists {
            location: "team-42".into(),
        };
        assert_eq!(
            e.to_string(),
            "segment `team-42` already exists; open it, or destroy it first with `ccs destroy team-42`"
        );
    }
}

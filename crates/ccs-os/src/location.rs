//! Where a segment lives: a POSIX shared-memory name or a file path.
//!
//! A string containing `/` is a file path (anywhere, e.g. on disk); anything else is a
//! shared-memory name, which Linux keeps under `/dev/shm`.
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
use std::path::PathBuf;

use rustix::shm;

use crate::OsError;

/// Longest accepted shared-memory name, in bytes (Linux allows 255; we keep a margin).
pub const MAX_SHM_NAME_LEN: usize = 200;

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
        if s.is_empty() {
            return Err(OsError::invalid(
                String::new(),
                "the name is empty; give a shared-memory name such as `team-42`, or a path containing '/'",
            ));
        }
        if s.len() > MAX_SHM_NAME_LEN {
            return Err(OsError::invalid(
                s.to_owned(),
                format!(
                    "the shared-memory name is {} bytes long, the limit is {MAX_SHM_NAME_LEN}; use a shorter name, or a file path",
                    s.len()
                ),
            ));
        }
        if s == "." || s == ".." {
            return Err(OsError::invalid(
                s.to_owned(),
                "`.` and `..` are not shared-memory names; pick another name",
            ));
        }
        Ok(Location::Shm(s.to_owned()))
    }

    /// The location as the user typed it, for messages.
    pub fn display_name(&self) -> String {
        match self {
            Location::Shm(name) => name.clone(),
            Location::Path(path) => path.display().to_string(),
        }
    }

    /// The name handed to `shm_open`/`shm_unlink`: the POSIX form with one leading slash.
    pub(crate) fn shm_name(name: &str) -> String {
        format!("/{name}")
    }

    /// Open the existing segment read-write (`O_RDWR | O_CLOEXEC`), as a fresh open file
    /// description.
    ///
    /// See [shm_open(3)](https://man7.org/linux/man-pages/man3/shm_open.3.html) and
    /// [open(2)](https://man7.org/linux/man-pages/man2/open.2.html).
    pub(crate) fn open_rdwr(&self) -> Result<File, OsError> {
        let result = match self {
            Location::Shm(name) => shm::open(
                Self::shm_name(name).as_str(),
                shm::OFlags::RDWR,
                shm::Mode::empty(),
            )
            .map(File::from)
            .map_err(std::io::Error::from),
            Location::Path(path) => OpenOptions::new().read(true).write(true).open(path),
        };
        result.map_err(|e| OsError::from_io("open", self.display_name(), e))
    }
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

//! The one error type of this crate.
//!
//! Every variant names the segment (as the user typed it) and says what to do next.
//!
//! ```
//! let err = ccs_os::Location::parse("").unwrap_err();
//! assert!(matches!(err, ccs_os::OsError::Invalid { .. }));
//! assert!(err.to_string().contains("empty"));
//! ```

use std::io;

/// What went wrong in an operating-system call, phrased for the person who has to fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OsError {
    /// The segment (shared-memory object or file) already exists.
    #[error(
        "segment `{location}` already exists; open it, or destroy it first with `ccs destroy {location}`"
    )]
    AlreadyExists {
        /// The segment as the user named it.
        location: String,
    },
    /// The segment does not exist.
    #[error(
        "segment `{location}` does not exist; check the name (shared-memory names live in /dev/shm) or create it first"
    )]
    NotFound {
        /// The segment as the user named it.
        location: String,
    },
    /// The kernel refused access to the segment.
    #[error(
        "permission denied on segment `{location}`; it belongs to another user or its mode forbids access: run as its owner, or have the owner change its mode"
    )]
    PermissionDenied {
        /// The segment as the user named it.
        location: String,
    },
    /// The input (a name, a size, a mode, a byte offset) or the segment itself is not usable.
    #[error("segment `{location}` cannot be used: {reason}")]
    Invalid {
        /// The segment (or the raw input) as the user gave it.
        location: String,
        /// What is wrong and what to do about it.
        reason: String,
    },
    /// The segment exists but has no bytes yet: its creator has not sized it (or never will).
    #[error(
        "segment `{location}` is empty (0 bytes): it is being created, or its creator died before sizing it; destroy it and create it again"
    )]
    Empty {
        /// The segment as the user gave it.
        location: String,
    },
    /// The segment's path (its last component) is a symbolic link, which is never followed.
    #[error(
        "segment `{location}` is a symbolic link; segments are opened without following links (another user could point one at your files): name the real file instead"
    )]
    Symlink {
        /// The segment as the user named it.
        location: String,
    },
    /// The segment file belongs to another user, and opening it was not explicitly allowed.
    #[error(
        "segment `{location}` belongs to {owner}, not to you (uid {your_uid}); refusing to open it, since its owner can change or truncate it at any time: if you trust that user, allow it explicitly (`--allow-other-owner` on `ccs`, `OpenOptions::allow_other_owner(true)` in the library)"
    )]
    ForeignOwner {
        /// The segment as the user named it.
        location: String,
        /// The owner, for messages: `uid 65534 (nobody)`.
        owner: String,
        /// The owner's user id.
        owner_uid: u32,
        /// This process's effective user id.
        your_uid: u32,
    },
    /// Any other failure of a system call.
    #[error("{op} failed on `{location}`: {source}")]
    Io {
        /// The operation that failed, e.g. `"mmap"`.
        op: &'static str,
        /// The segment as the user named it (or the object operated on).
        location: String,
        /// The underlying error from the kernel.
        source: io::Error,
    },
}

impl OsError {
    /// Classify an I/O error from operation `op` on `location`: "exists", "missing" and
    /// "permission" become their own variants, everything else is [`OsError::Io`].
    pub(crate) fn from_io(op: &'static str, location: String, source: io::Error) -> OsError {
        match source.kind() {
            io::ErrorKind::AlreadyExists => OsError::AlreadyExists { location },
            io::ErrorKind::NotFound => OsError::NotFound { location },
            io::ErrorKind::PermissionDenied => OsError::PermissionDenied { location },
            _ => OsError::Io {
                op,
                location,
                source,
            },
        }
    }

    /// Shorthand for [`OsError::Invalid`].
    pub(crate) fn invalid(location: String, reason: impl Into<String>) -> OsError {
        OsError::Invalid {
            location,
            reason: reason.into(),
        }
    }
}

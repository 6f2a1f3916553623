//! The command line's errors and the one place that maps errors to exit codes.

use std::path::PathBuf;

use agent_coherence::Error;

use crate::size::SizeError;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: any error not classified below.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: usage or invalid input (clap uses it for its own usage errors too).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: a stale or failed conditional write, or an artifact held by another agent.
pub const EXIT_CONFLICT: u8 = 3;
/// Exit code: `check` found the agent's copy not current.
pub const EXIT_STALE: u8 = 4;
/// Exit code: `wait` timed out.
pub const EXIT_TIMEOUT: u8 = 5;

/// Everything a `ccs` command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The facade refused or failed.
    #[error(transparent)]
    Facade(#[from] Error),
    /// A SIZE argument could not be parsed.
    #[error("--{flag}: {source}")]
    Size {
        /// The option, without dashes.
        flag: &'static str,
        /// Why.
        #[source]
        source: SizeError,
    },
    /// Reading a payload file failed.
    #[error("cannot read payload from `{}`: {source}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing the payload to a file failed.
    #[error("cannot write payload to `{}`: {source}", path.display())]
    WriteFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Rendering JSON failed (plain strings and integers: not expected to happen).
    #[error("cannot render the status as JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// A bench argument is out of range or malformed.
    #[error("{0}")]
    Usage(String),
    /// A benchmark run failed (a child died, a timeout, a protocol surprise).
    #[error("bench: {0}")]
    Bench(String),
    /// The operating-system layer failed (side mapping, futex, affinity).
    #[error(transparent)]
    Os(#[from] ccs_os::OsError),
    /// A trace file could not be read or parsed.
    #[error("{0}")]
    Trace(String),
    /// `ccs demo` could not be carried out (a build that fails is a verdict, not this).
    #[error("demo: {0}")]
    Demo(#[from] ccs_demo::DemoError),
    /// Reading stdin or writing stdout failed.
    #[error("cannot {action}: {source}")]
    Stdio {
        /// What was being done, e.g. "read the payload from stdin".
        action: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Facade(error) => exit_code(error),
            CliError::Size { .. } | CliError::Usage(_) | CliError::Trace(_) => EXIT_USAGE,
            CliError::ReadFile { .. }
            | CliError::WriteFile { .. }
            | CliError::Json(_)
            | CliError::Bench(_)
            | CliError::Os(_)
            | CliError::Demo(_)
            | CliError::Stdio { .. } => EXIT_FAILURE,
        }
    }
}

/// The exit code for a facade error: invalid input, or an operation the segment's backend does
/// not offer, is 2; contention (a conflict, or an artifact held by another agent) is 3;
/// anything else 1.
pub fn exit_code(error: &Error) -> u8 {
    match error {
        Error::BadKey { .. }
        | Error::BadName { .. }
        | Error::PayloadTooLarge { .. }
        | Error::BadLocation { .. }
        | Error::Unsupported { .. }
        | Error::InvalidConfig(_) => EXIT_USAGE,
        e if e.is_contention() => EXIT_CONFLICT,
        _ => EXIT_FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_coherence::{Conflict, Held, NotFound};

    #[test]
    fn facade_errors_map_to_documented_codes() {
        let conflict = Error::Conflict(Conflict {
            key: "k".into(),
            current: 2,
            yours: 1,
        });
        assert_eq!(exit_code(&conflict), EXIT_CONFLICT);
        let held = Error::Held(Held {
            key: "k".into(),
            by: "a".into(),
        });
        assert_eq!(exit_code(&held), EXIT_CONFLICT);
        assert_eq!(exit_code(&Error::BadKey { len: 300, max: 256 }), EXIT_USAGE);
        assert_eq!(exit_code(&Error::BadName { len: 0, max: 64 }), EXIT_USAGE);
        assert_eq!(
            exit_code(&Error::PayloadTooLarge { len: 2, max: 1 }),
            EXIT_USAGE
        );
        assert_eq!(exit_code(&Error::InvalidConfig("x".into())), EXIT_USAGE);
        let unsupported = Error::Unsupported {
            what: "fsck",
            backend: agent_coherence::Backend::Etcd,
            why: "no segment structures",
        };
        assert_eq!(exit_code(&unsupported), EXIT_USAGE);
        let missing = Error::SegmentNotFound {
            location: "s".into(),
        };
        assert_eq!(exit_code(&missing), EXIT_FAILURE);
        assert_eq!(
            exit_code(&Error::NotFound(NotFound { key: "k".into() })),
            EXIT_FAILURE
        );
    }

    #[test]
    fn bad_size_is_usage() {
        let error = CliError::Size {
            flag: "arena",
            source: SizeError::Empty,
        };
        assert_eq!(error.exit_code(), EXIT_USAGE);
    }
}

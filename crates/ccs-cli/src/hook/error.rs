//! Everything the hook can fail with. None of it reaches Claude Code as a failure: the hook
//! fails open (allow, reason on stderr) or, configured to, closed (deny the edit).

use std::path::PathBuf;

use super::config::ConfigError;
use super::input::InputError;
use super::workspace::WorkspaceError;

/// Why the hook could not check a call.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The event could not be understood.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The git metadata could not be read.
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    /// The config file is invalid.
    #[error("invalid hook config {0}")]
    Config(#[from] ConfigError),
    /// The segment could not be opened, or an operation on it failed.
    #[error("segment `{segment}`: {source}")]
    Segment {
        /// The segment.
        segment: String,
        /// Why.
        #[source]
        source: agent_coherence::Error,
    },
    /// A tracked file could not be read.
    #[error("cannot read `{}`: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Stdin could not be read.
    #[error("cannot read the hook input: {0}")]
    Stdin(#[source] std::io::Error),
}

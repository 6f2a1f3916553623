//! The demo's errors. A build that fails is not an error: it is a [`crate::Verdict`]. These are
//! the ways the demo itself cannot be carried out.

use std::path::PathBuf;
use std::process::ExitStatus;

/// Everything that can stop the demo from reaching a verdict.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// An agent-coherence operation failed.
    #[error("{doing}: {source}")]
    Coherence {
        /// What the demo was doing, e.g. "planner: put task/spec".
        doing: String,
        /// The facade's error.
        #[source]
        source: agent_coherence::Error,
    },
    /// A file or directory operation failed.
    #[error("cannot {action} `{}`: {source}", path.display())]
    Io {
        /// What was being done, e.g. "create the work directory".
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing the narration failed.
    #[error("cannot write the demo's output: {0}")]
    Output(#[source] std::io::Error),
    /// A role process could not be started.
    #[error("cannot start the {role} process (`{}`): {source}", exe.display())]
    Spawn {
        /// `planner` or `executor`.
        role: &'static str,
        /// The executable re-executed in role mode.
        exe: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A role process exited unsuccessfully (or was killed).
    #[error("the {role} process failed ({status}){}", stderr_suffix(stderr))]
    RoleFailed {
        /// `planner` or `executor`.
        role: &'static str,
        /// How it ended.
        status: ExitStatus,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// A role waited longer than the demo's patience for a peer's step.
    #[error(
        "{role} gave up after {seconds} s waiting for {waiting_for}; is the other role process alive?"
    )]
    Timeout {
        /// Who waited (`planner`, `executor` or `demo`).
        role: &'static str,
        /// What it waited for.
        waiting_for: String,
        /// How long it waited.
        seconds: u64,
    },
    /// `cargo` could not be run.
    #[error(
        "cannot run `{} check`: {source}; set CARGO to the cargo binary or put cargo on PATH",
        cargo.display()
    )]
    Cargo {
        /// The cargo binary tried.
        cargo: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A task spec that cannot be parsed or applied.
    #[error("bad task spec: {0}")]
    BadSpec(String),
    /// The executor's committed result could not be parsed.
    #[error("bad task result: {0}")]
    BadResult(String),
    /// A role process was started with arguments it does not understand.
    #[error("bad role arguments: {0}")]
    Usage(String),
}

fn stderr_suffix(stderr: &str) -> String {
    let trimmed = stderr.trim();
    if trimmed.is_empty() {
        String::new()
    } else {
        format!(": {trimmed}")
    }
}

impl DemoError {
    /// Wrap a facade error with what the demo was doing.
    pub(crate) fn coherence(
        doing: impl Into<String>,
    ) -> impl FnOnce(agent_coherence::Error) -> Self {
        let doing = doing.into();
        move |source| DemoError::Coherence { doing, source }
    }

    /// Wrap an I/O error with the action and path.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| DemoError::Io {
            action,
            path,
            source,
        }
    }
}

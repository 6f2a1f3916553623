//! A real `cargo check` of the executor's copy of the fixture.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::DemoError;

/// What `cargo check` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckOutcome {
    /// The compiler's first error line (`--message-format short`), `None` if it passed.
    pub first_error: Option<String>,
    /// How long the check took.
    pub elapsed: Duration,
}

/// The cargo to run: `$CARGO` (set by cargo for the programs it runs) or `cargo` on PATH.
pub(crate) fn cargo() -> PathBuf {
    std::env::var_os("CARGO")
        .filter(|cargo| !cargo.is_empty())
        .map_or_else(|| PathBuf::from("cargo"), PathBuf::from)
}

/// Run `cargo check --offline --quiet --message-format short` in `crate_dir`, building into
/// `target_dir` (shared between runs, so that later checks reuse what earlier ones built).
pub(crate) fn cargo_check(crate_dir: &Path, target_dir: &Path) -> Result<CheckOutcome, DemoError> {
    let cargo = cargo();
    let started = Instant::now();
    let output = Command::new(&cargo)
        .args(["check", "--offline", "--quiet", "--message-format", "short"])
        .current_dir(crate_dir)
        .env("CARGO_TARGET_DIR", target_dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| DemoError::Cargo {
            cargo: cargo.clone(),
            source,
        })?;
    let elapsed = started.elapsed();
    if output.status.success() {
        return Ok(CheckOutcome {
            first_error: None,
            elapsed,
        });
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let first_error = first_error_line(&stderr)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            format!(
                "cargo check failed ({}) without an error line",
                output.status
            )
        });
    Ok(CheckOutcome {
        first_error: Some(first_error),
        elapsed,
    })
}

/// The first compiler error in `--message-format short` output: `error...` or
/// `path:line:col: error...`.
pub(crate) fn first_error_line(stderr: &str) -> Option<&str> {
    stderr
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("error") || line.contains(": error"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_error_line() {
        let stderr = "warning: unused\nsrc/billing.rs:5:22: error[E0425]: cannot find function `validate_user` in module `crate::auth`\nerror: could not compile `refactor-fixture`\n";
        assert_eq!(
            first_error_line(stderr),
            Some(
                "src/billing.rs:5:22: error[E0425]: cannot find function `validate_user` in module `crate::auth`"
            )
        );
        assert_eq!(
            first_error_line("error: no manifest\n"),
            Some("error: no manifest")
        );
        assert_eq!(first_error_line("warning: x\n"), None);
    }
}

//! The command line, as clap derive structs. Parsing only: `commands` does the work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Exit codes, shown at the end of `ccs --help`.
const EXIT_CODES: &str = "\
SEG is a segment: a name (a POSIX shared-memory object under /dev/shm) or a path (it contains '/').
An agent's identity (what it read, which copies are valid) persists in the segment between
invocations: run each command with the same --agent NAME to act as the same agent.

Exit codes:
  0  success
  1  any other error (missing or corrupted segment, I/O, segment full, ...)
  2  usage or invalid input (bad SIZE, key or name too long, payload too large, bad config)
  3  conflict: a stale or failed conditional write, or the artifact is held by another agent
  4  `check`: the agent's copy is not current
  5  `wait`: timed out before the version passed --since

Errors go to stderr as one sentence prefixed `ccs: `.";

/// `ccs`: MESI cache coherence for AI agents that share artifacts through a shared-memory
/// segment, from the shell.
#[derive(Debug, Parser)]
#[command(name = "ccs", version, about, after_long_help = EXIT_CODES)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// One `ccs` subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a segment and print a one-line summary of its sizes.
    ///
    /// SIZE is plain bytes or a number with a suffix K, M, G (or KiB, MiB, GiB): powers of
    /// 1024, case-insensitive.
    Init(InitArgs),
    /// Write an artifact from a file or stdin; print the new version on stdout.
    ///
    /// By default the write is conditional on the agent's own view: refused (exit 3) if the
    /// agent last read an older version than the current one. --if-version N writes only if
    /// the artifact is at version N (0: never written); --blind overwrites whatever is there.
    Put(PutArgs),
    /// Read an artifact: its bytes to stdout (or --out F), `HIT vN` or `MISS vN` on stderr.
    Get(GetArgs),
    /// Tell whether the agent's copy is current: exit 0 with `current vN`, else exit 4 with
    /// `stale: ...` (both on stdout).
    Check(KeyArgs),
    /// Show every agent's MESI state on every artifact, and the agents' liveness.
    ///
    /// With --json, print one JSON object (stable; see the schema below).
    #[command(after_long_help = crate::status_view::JSON_SCHEMA_HELP)]
    Status(StatusArgs),
    /// Remove a segment's name (processes that have it open keep using it).
    Destroy(SegArgs),
    /// Delete an artifact (conditional on the agent's view, like `put`); print the deletion's
    /// version.
    Delete(KeyArgs),
    /// List the keys of existing artifacts, one per line, sorted.
    List(ListArgs),
    /// Block until an artifact's version exceeds --since; print the new version.
    ///
    /// Returns at once if it already does. Exits 5 if --timeout-ms passes first (default:
    /// wait forever).
    Wait(WaitArgs),
}

/// The segment argument alone.
#[derive(Debug, Args)]
pub struct SegArgs {
    /// Segment: a name under /dev/shm, or a path containing '/'.
    #[arg(value_name = "SEG")]
    pub seg: String,
}

/// `ccs init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Segment: a name under /dev/shm, or a path containing '/'.
    #[arg(value_name = "SEG")]
    pub seg: String,
    /// Most agents that can ever register [default: 256].
    #[arg(long, value_name = "N")]
    pub agents: Option<u32>,
    /// Most distinct keys [default: 4096].
    #[arg(long, value_name = "N")]
    pub artifacts: Option<u32>,
    /// Bytes of payload storage [default: 256M].
    #[arg(long, value_name = "SIZE")]
    pub arena: Option<String>,
    /// Largest single payload [default: 64M].
    #[arg(long, value_name = "SIZE")]
    pub max_payload: Option<String>,
    /// Destroy an existing segment of that name first.
    #[arg(long)]
    pub force: bool,
}

/// A segment, a key and the agent acting on it.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// Segment: a name under /dev/shm, or a path containing '/'.
    #[arg(value_name = "SEG")]
    pub seg: String,
    /// Artifact key (1 to 256 bytes of UTF-8).
    #[arg(value_name = "KEY")]
    pub key: String,
    /// The agent acting (registered on first use; its state persists between invocations).
    #[arg(long, value_name = "NAME")]
    pub agent: String,
}

/// `ccs put`.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// Segment, key and agent.
    #[command(flatten)]
    pub target: KeyArgs,
    /// Read the payload from this file instead of stdin.
    #[arg(long, value_name = "F")]
    pub file: Option<PathBuf>,
    /// Write only if the artifact is at version N (0: never written): compare-and-set.
    #[arg(long, value_name = "N", conflicts_with = "blind")]
    pub if_version: Option<u64>,
    /// Overwrite whatever version is there (the write that can lose updates).
    #[arg(long)]
    pub blind: bool,
}

/// `ccs get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// Segment, key and agent.
    #[command(flatten)]
    pub target: KeyArgs,
    /// Write the payload to this file instead of stdout.
    #[arg(long, value_name = "F")]
    pub out: Option<PathBuf>,
}

/// `ccs status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Segment: a name under /dev/shm, or a path containing '/'.
    #[arg(value_name = "SEG")]
    pub seg: String,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// `ccs list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Segment: a name under /dev/shm, or a path containing '/'.
    #[arg(value_name = "SEG")]
    pub seg: String,
    /// Only keys starting with P.
    #[arg(long, value_name = "P", default_value = "")]
    pub prefix: String,
}

/// `ccs wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Segment, key and agent.
    #[command(flatten)]
    pub target: KeyArgs,
    /// Wait for a version greater than N.
    #[arg(long, value_name = "N")]
    pub since: u64,
    /// Give up after T milliseconds (exit 5) [default: wait forever].
    #[arg(long, value_name = "T")]
    pub timeout_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}

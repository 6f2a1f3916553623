//! `ccs`: the command line of agent-coherence, for shell-driven agents and scripts.
//!
//! Parse (clap), dispatch to [`commands`], and turn the outcome into an exit code: see
//! [`error`] for the codes and `ccs --help` for the user-facing summary.
//!
//! `unsafe` is denied here and re-allowed only in `bench::side` (atomics over a shared mapping)
//! and `bench::signal` (installing a SIGINT handler).

#![deny(unsafe_code)]

mod agents;
mod args;
mod bench;
mod commands;
mod demo;
mod error;
mod fsck;
mod hook;
mod mcp;
mod observe;
mod report;
mod size;
mod status_view;
mod table;
mod torture;
mod trace_file;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    // clap prints its own usage errors and exits 2 (0 for --help and --version).
    let cli = args::Cli::parse();
    match commands::run(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            // Nothing more to do if stderr is gone; the exit code still tells.
            let _ = writeln!(std::io::stderr(), "ccs: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

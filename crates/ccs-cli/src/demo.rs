//! `ccs demo refactor`: the refactor story across real processes and a real `cargo check`
//! (the `ccs-demo` crate; see `docs/demo.md`). The role processes are this binary re-executed
//! as the hidden `ccs demo-role`.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::error::{CliError, EXIT_FAILURE, EXIT_OK};

/// The hidden subcommand that runs one role process.
const ROLE_SUBCOMMAND: &str = "demo-role";

/// `ccs demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Which demo.
    #[command(subcommand)]
    pub demo: DemoCommand,
}

/// The demos.
#[derive(Debug, Subcommand)]
pub enum DemoCommand {
    /// A planner and an executor (two processes) share a task spec: rename `validate_user`
    /// in a fixture crate and its callers. The planner revises the spec (a fourth caller)
    /// after the executor started; the executor's commit is checked with a real `cargo check`.
    ///
    /// Variants: `context-cache` (the executor never re-reads the spec: the build fails),
    /// `no-invalidation` (invalidation switched off: its commit-time read is a HIT on the stale
    /// copy, the build fails), `with` (agent-coherence: the read is a MISS that fetches the
    /// new spec, the build passes). Exit 0 when every verdict is the one the story expects,
    /// 1 otherwise. Needs `cargo` (or $CARGO) to build the fixture, offline.
    Refactor(RefactorArgs),
}

/// `ccs demo refactor`.
#[derive(Debug, Args)]
pub struct RefactorArgs {
    /// The variant to run, or all three.
    #[arg(
        long,
        value_name = "VARIANT",
        default_value = "all",
        value_parser = ["with", "no-invalidation", "context-cache", "all"]
    )]
    pub variant: String,
}

/// The internal `ccs demo-role`: one role process of `ccs demo refactor`.
#[derive(Debug, Args)]
pub struct RoleArgs {
    /// The role and its arguments, as `ccs demo refactor` passes them.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<OsString>,
}

/// Run `ccs demo ...`.
pub fn run(args: &DemoArgs) -> Result<u8, CliError> {
    match &args.demo {
        DemoCommand::Refactor(refactor) => {
            let variants = ccs_demo::Variant::parse_list(&refactor.variant)?;
            let exe = std::env::current_exe().map_err(|source| CliError::Stdio {
                action: "find the ccs executable to start the role processes",
                source,
            })?;
            let verdicts = ccs_demo::run(
                &variants,
                &exe,
                &[ROLE_SUBCOMMAND.into()],
                &mut std::io::stdout().lock(),
            )?;
            match verdicts.iter().all(ccs_demo::Verdict::as_expected) {
                true => Ok(EXIT_OK),
                false => Ok(EXIT_FAILURE),
            }
        }
    }
}

/// Run `ccs demo-role ROLE ARGS...` (the role prints its own errors).
pub fn run_role(args: RoleArgs) -> Result<u8, CliError> {
    match ccs_demo::role_main(args.args) {
        code if code == ExitCode::SUCCESS => Ok(EXIT_OK),
        _ => Ok(EXIT_FAILURE),
    }
}

//! The refactor story of agent-coherence, replayed across real processes and a real build.
//!
//! A planner and an executor share a task spec for a Rust refactor: rename `validate_user` to
//! `authenticate_user` in its module and its callers, in a small fixture crate where four
//! modules call it. The executor reads v1 (three callers); the planner finds the fourth caller
//! and writes v2; just before committing, the executor reads the spec again, applies the
//! renames of the spec it holds to a fresh copy of the fixture, and runs `cargo check` on it.
//! Three variants: `context-cache` (it never re-reads: the build fails), `no-invalidation`
//! (invalidation switched off: its re-read is a HIT on v1, the build fails) and `with`
//! (agent-coherence: the re-read is a MISS that fetches v2, the build passes). This binary
//! re-executes itself as the `planner` and `executor` processes on a fresh shared-memory
//! segment per variant; see `docs/demo.md`. The same demo is `ccs demo refactor`.
//!
//! ```text
//! cargo run --release --example refactor_demo [-- --variant with|no-invalidation|context-cache|all]
//! ```

use std::ffi::OsString;
use std::process::ExitCode;

use ccs_demo::{Variant, Verdict};

/// The hidden first argument of a re-executed role process.
const ROLE_ARG: &str = "--demo-role";

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|first| first == ROLE_ARG) {
        return ccs_demo::role_main(args.into_iter().skip(1));
    }
    let variants = match parse(&args) {
        Ok(variants) => variants,
        Err(message) => {
            eprintln!(
                "refactor_demo: {message}\nusage: refactor_demo [--variant with|no-invalidation|context-cache|all]"
            );
            return ExitCode::from(2);
        }
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(error) => {
            eprintln!("refactor_demo: cannot find this program's own executable: {error}");
            return ExitCode::FAILURE;
        }
    };
    match ccs_demo::run(&variants, &exe, &[ROLE_ARG.into()], &mut std::io::stdout()) {
        Ok(verdicts) if verdicts.iter().all(Verdict::as_expected) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("refactor_demo: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `[--variant V]` (also `--variant=V`); the default is every variant.
fn parse(args: &[OsString]) -> Result<Vec<Variant>, String> {
    let args: Vec<&str> = args
        .iter()
        .map(|arg| arg.to_str().ok_or(format!("argument {arg:?} is not UTF-8")))
        .collect::<Result<_, _>>()?;
    match args.as_slice() {
        [] => Ok(Variant::ALL.to_vec()),
        ["--variant", variant] => Variant::parse_list(variant).map_err(|e| e.to_string()),
        [one] if one.starts_with("--variant=") => {
            Variant::parse_list(&one["--variant=".len()..]).map_err(|e| e.to_string())
        }
        other => Err(format!("unexpected arguments {other:?}")),
    }
}

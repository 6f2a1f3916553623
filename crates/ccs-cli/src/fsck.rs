//! `ccs fsck SEG [--repair] [--json]`: check a segment, optionally repair it, and report.
//!
//! Exit codes (documented in `ccs fsck --help`): 0 clean (after a repair: everything found was
//! repaired), 1 problems remain, 2 the segment cannot be opened or its header is invalid.
//!
//! The JSON schema, also shown by `ccs fsck --help`:
//!
//! ```text
#![doc = include_str!("fsck_schema.txt")]
//! ```

use std::io::Write as _;

use agent_coherence::{FsckReport, Segment};
use serde_json::json;

use crate::args::FsckArgs;
use crate::commands::print;
use crate::error::{CliError, EXIT_FAILURE, EXIT_OK};

/// The JSON schema of `ccs fsck --json`, as shown in its `--help`.
pub const JSON_SCHEMA_HELP: &str = include_str!("fsck_schema.txt");

/// Exit code: the segment cannot be opened or its header is invalid.
pub const EXIT_UNREADABLE: u8 = 2;

/// Run `ccs fsck`.
pub fn run(args: &FsckArgs) -> Result<u8, CliError> {
    let segment = match Segment::open(&args.seg) {
        Ok(segment) => segment,
        Err(error) => {
            // Nothing more to do if stderr is gone; the exit code still tells.
            let _ = writeln!(
                std::io::stderr(),
                "ccs: fsck: cannot read the segment: {error}"
            );
            return Ok(EXIT_UNREADABLE);
        }
    };
    let report = segment.fsck(args.repair)?;
    let text = if args.json {
        let mut text =
            serde_json::to_string_pretty(&to_json(segment.location(), args.repair, &report))
                .map_err(CliError::Json)?;
        text.push('\n');
        text
    } else {
        to_text(segment.location(), args.repair, &report)
    };
    print(&text)?;
    Ok(if report.is_clean() {
        EXIT_OK
    } else {
        EXIT_FAILURE
    })
}

/// The report as lines: one per problem, the accounting, then what a repair did and did not.
pub fn to_text(segment: &str, repair: bool, report: &FsckReport) -> String {
    let mut out = String::new();
    for problem in &report.problems {
        out.push_str(&format!(
            "[{}] {}: {}{}\n",
            problem.kind.name(),
            problem.subject,
            problem.message,
            if problem.repairable {
                " (repairable)"
            } else {
                ""
            }
        ));
    }
    let (arena, descs) = (report.arena, report.descriptors);
    out.push_str(&format!(
        "arena bytes: {} live, {} free, {} leaked, {} untouched; descriptors: {} live, {} free, {} leaked, {} untouched\n",
        arena.live_bytes,
        arena.free_bytes,
        arena.leaked_bytes,
        arena.untouched_bytes,
        descs.live,
        descs.free,
        descs.leaked,
        descs.untouched,
    ));
    for note in &report.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    for done in &report.repaired {
        out.push_str(&format!("repaired: {done}\n"));
    }
    for refused in &report.not_repaired {
        out.push_str(&format!("not repaired: {refused}\n"));
    }
    let verdict = match (report.is_clean(), repair) {
        (true, false) => "clean".to_owned(),
        (true, true) if report.found == 0 => "clean, nothing to repair".to_owned(),
        (true, true) => format!("clean: all {} problem(s) repaired", report.found),
        (false, false) => format!("{} problem(s)", report.problems.len()),
        (false, true) => format!(
            "{} problem(s) found, {} remain",
            report.found,
            report.problems.len()
        ),
    };
    out.push_str(&format!("{segment}: {verdict}\n"));
    out
}

/// The report as the schema-1 JSON object (see the module docs).
pub fn to_json(segment: &str, repair: bool, report: &FsckReport) -> serde_json::Value {
    let problems: Vec<_> = report
        .problems
        .iter()
        .map(|p| {
            json!({
                "kind": p.kind.name(),
                "subject": p.subject,
                "message": p.message,
                "repairable": p.repairable,
            })
        })
        .collect();
    let (arena, descs) = (report.arena, report.descriptors);
    json!({
        "schema": 1,
        "segment": segment,
        "repair": repair,
        "clean": report.is_clean(),
        "found": report.found,
        "problems": problems,
        "arena": {
            "live_bytes": arena.live_bytes,
            "free_bytes": arena.free_bytes,
            "leaked_bytes": arena.leaked_bytes,
            "untouched_bytes": arena.untouched_bytes,
        },
        "descriptors": {
            "live": descs.live,
            "free": descs.free,
            "leaked": descs.leaked,
            "untouched": descs.untouched,
        },
        "notes": report.notes,
        "repaired": report.repaired,
        "not_repaired": report.not_repaired,
    })
}

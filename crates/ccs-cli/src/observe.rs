//! `ccs watch`, `ccs log`, `ccs diagnose`, `ccs stats` and `ccs switch`: the operation log
//! and the segment's switches from the shell. Formats are in `trace_file`, `report` and
//! `docs/observability.md`.

use std::io::{BufWriter, Read as _, Write as _};
use std::path::Path;
use std::time::{Duration, Instant};

use agent_coherence::trace::{self, LogOp, LogOutcome, LogRecord, WriteMode};
use agent_coherence::{Segment, Strategy};
use serde_json::json;

use crate::args::{DiagnoseArgs, LogArgs, StatsArgs, SwitchArgs, WatchArgs};
use crate::bench::signal;
use crate::commands::{open, print};
use crate::error::{CliError, EXIT_OK};
use crate::report::{
    EXIT_UNREADABLE, diagnose_exit_code, diagnosis_json, render_diagnosis, render_stats, stats_json,
};
use crate::trace_file::{self, format_offset, format_record, to_json_value, write_jsonl};

/// How often `watch` polls the rings when nothing is new.
const POLL: Duration = Duration::from_millis(5);

/// `ccs watch`: follow the log (or, with --subscribe, an eager agent's events) until Ctrl-C,
/// --count records or --duration-ms.
pub fn watch(args: &WatchArgs) -> Result<u8, CliError> {
    let seg = args.segment.open()?;
    signal::install();
    let deadline = args
        .duration_ms
        .map(|ms| Instant::now() + Duration::from_millis(ms));
    let mut out = std::io::stdout().lock();
    let mut shown = 0u64;
    let done = |shown: u64| {
        signal::interrupted()
            || deadline.is_some_and(|d| Instant::now() >= d)
            || args.count.is_some_and(|n| shown >= n)
    };
    if let Some(prefix) = &args.subscribe {
        let name = args.agent.as_deref().ok_or_else(|| {
            CliError::Usage(
                "--subscribe needs --agent NAME: the eager agent whose events to show".into(),
            )
        })?;
        let agent = seg.attach_with(name, Strategy::Eager)?;
        agent.subscribe(prefix)?;
        let t0 = ccs_os::monotonic_ns();
        ready(args.json);
        while !done(shown) {
            let events = agent.wait_events(256, Some(Duration::from_millis(50)))?;
            let now = ccs_os::monotonic_ns();
            if events.lost > 0 {
                let line = if args.json {
                    json!({"t_ns": now, "lost": events.lost}).to_string()
                } else {
                    format!(
                        "[{}] [LOST]  {} events",
                        format_offset(now, t0),
                        events.lost
                    )
                };
                emit(&mut out, &line)?;
            }
            for event in events.events {
                if done(shown) {
                    break;
                }
                let line = if args.json {
                    json!({"t_ns": now, "key": event.key, "version": event.version,
                           "writer": event.writer, "deleted": event.deleted})
                    .to_string()
                } else {
                    format!(
                        "[{}] [EVENT] key={} v{} by {}{}",
                        format_offset(now, t0),
                        event.key,
                        event.version,
                        event.writer,
                        if event.deleted { " (deleted)" } else { "" }
                    )
                };
                emit(&mut out, &line)?;
                shown += 1;
            }
        }
        return Ok(EXIT_OK);
    }
    let mut reader = seg.log_reader()?;
    if !args.from_start {
        reader.skip_to_end()?;
    }
    let mut t0 = None;
    ready(args.json);
    while !done(shown) {
        let batch = reader.poll()?;
        if batch.records.is_empty() {
            std::thread::sleep(POLL);
            continue;
        }
        for record in batch.records.iter().filter(|r| selected(r, args)) {
            if done(shown) {
                break;
            }
            let t0 = *t0.get_or_insert(record.t_ns);
            let line = if args.json {
                to_json_value(record).to_string()
            } else {
                format_record(record, t0)
            };
            emit(&mut out, &line)?;
            shown += 1;
        }
    }
    Ok(EXIT_OK)
}

/// Tell a script on stderr that the watch is in place (writes from now on are shown).
fn ready(json: bool) {
    if !json {
        let _ = writeln!(std::io::stderr(), "watching; Ctrl-C to stop");
    } else {
        let _ = writeln!(std::io::stderr(), "watching");
    }
}

fn selected(record: &LogRecord, args: &WatchArgs) -> bool {
    args.agent.as_ref().is_none_or(|a| &record.agent == a)
        && args.key.as_ref().is_none_or(|prefix| {
            record.op == LogOp::Lost || record.key.as_ref().is_some_and(|k| k.starts_with(prefix))
        })
}

fn emit(out: &mut impl std::io::Write, line: &str) -> Result<(), CliError> {
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|source| CliError::Stdio {
            action: "write to stdout",
            source,
        })
}

/// `ccs log`: every record the log holds, as JSON lines (or --text), to stdout or --out.
pub fn log(args: &LogArgs) -> Result<u8, CliError> {
    let seg = args.segment.open()?;
    let records = seg.log_records()?;
    let write = |out: &mut dyn std::io::Write| -> std::io::Result<()> {
        if args.text {
            let t0 = records.first().map_or(0, |r| r.t_ns);
            for record in &records {
                writeln!(out, "{}", format_record(record, t0))?;
            }
        } else {
            write_jsonl(&mut &mut *out, &records)?;
        }
        out.flush()
    };
    match &args.out {
        Some(path) => {
            let failed = |source| CliError::WriteFile {
                path: path.clone(),
                source,
            };
            let file = std::fs::File::create(path).map_err(failed)?;
            write(&mut BufWriter::new(file)).map_err(failed)?;
            let _ = writeln!(
                std::io::stderr(),
                "{} records to {}",
                records.len(),
                path.display()
            );
        }
        None => write(&mut std::io::stdout().lock()).map_err(|source| CliError::Stdio {
            action: "write to stdout",
            source,
        })?,
    }
    Ok(EXIT_OK)
}

/// Records from a trace file, or from a live segment's log.
fn records_of(input: &str, allow_other_owner: bool) -> Result<Vec<LogRecord>, CliError> {
    if is_trace_file(Path::new(input)) {
        return trace_file::read_jsonl(input).map_err(|error| CliError::Trace(error.to_string()));
    }
    Ok(open(input, allow_other_owner)?.log_records()?)
}

/// A trace is a regular file that starts (after blanks) with `{`, or is empty; anything else
/// is taken for a segment.
fn is_trace_file(path: &Path) -> bool {
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let mut head = [0u8; 64];
    let n = file.read(&mut head).unwrap_or(0);
    head[..n]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_none_or(|&b| b == b'{')
}

/// `ccs diagnose`: exit 0 clean, 1 a breach or risk found, 2 unreadable input.
pub fn diagnose(args: &DiagnoseArgs) -> Result<u8, CliError> {
    let records = match records_of(&args.input, args.allow_other_owner) {
        Ok(records) => records,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "ccs: {error}");
            return Ok(EXIT_UNREADABLE);
        }
    };
    let diagnosis = trace::diagnose(&records);
    if args.json {
        print(&format!("{:#}\n", diagnosis_json(&diagnosis)))?;
    } else {
        print(&render_diagnosis(&diagnosis))?;
    }
    Ok(diagnose_exit_code(&diagnosis))
}

/// `ccs stats`.
pub fn stats(args: &StatsArgs) -> Result<u8, CliError> {
    let records = records_of(&args.input, args.allow_other_owner)?;
    let stats = trace::stats(&records);
    let prevented = stale_edits_prevented(&records);
    if args.json {
        let mut json = stats_json(&stats);
        json["stale_edits_prevented"] = prevented.into();
        print(&format!("{json:#}\n"))?;
    } else {
        print(&format!(
            "{}stale edits prevented: {prevented} (writes refused because they were made at a \
             version no longer current: put_if conflicts, among them every edit `ccs hook` denied)\n",
            render_stats(&stats)
        ))?;
    }
    Ok(EXIT_OK)
}

/// Writes refused because they named a version that was no longer current (`put_if`
/// conflicts): each is an edit made from a stale read that did not happen. `ccs hook` records
/// every denial so.
fn stale_edits_prevented(records: &[LogRecord]) -> u64 {
    records
        .iter()
        .filter(|r| {
            r.op == LogOp::Put && r.outcome == LogOutcome::Conflict && r.mode == Some(WriteMode::If)
        })
        .map(|r| r.count)
        .sum()
}

/// `ccs switch`: set and show the segment's switches.
pub fn switch(args: &SwitchArgs) -> Result<u8, CliError> {
    let seg: Segment = args.segment.open()?;
    if let Some(on) = args.logging {
        seg.set_logging(on.into())?;
    }
    if let Some(on) = args.invalidation {
        seg.set_invalidation(on.into())?;
    }
    let switches = seg.switches()?;
    let word = |on: bool| if on { "on" } else { "off" };
    print(&format!(
        "logging {}\ninvalidation {}{}\n",
        word(switches.logging),
        word(switches.invalidation),
        if switches.invalidation {
            ""
        } else {
            " (peers' private copies go stale unnoticed: demonstrations only)"
        }
    ))?;
    Ok(EXIT_OK)
}

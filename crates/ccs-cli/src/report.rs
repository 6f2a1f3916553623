//! The reports of `ccs diagnose` and `ccs stats`: their stable JSON (`"schema": 1`, see
//! `docs/observability.md`), their human text, and the exit code of `ccs diagnose`.

use std::fmt::Write as _;

use agent_coherence::trace::{BYTES_PER_TOKEN, Diagnosis, FindingKind, Stats, Usage, UsageRow};
use serde_json::{Map, Value, json};

use crate::table::{self, Align};
use crate::trace_file::{format_record, to_json_value};

/// The value of the `"schema"` field of the diagnose and stats JSON.
pub const SCHEMA_VERSION: u32 = 1;

/// `ccs diagnose` exit code: no finding.
pub const EXIT_CLEAN: u8 = 0;
/// `ccs diagnose` exit code: a breach or a risk found.
pub const EXIT_FOUND: u8 = 1;
/// `ccs diagnose` exit code: the trace could not be read.
pub const EXIT_UNREADABLE: u8 = 2;

/// The exit code of `ccs diagnose` for a diagnosis: [`EXIT_CLEAN`] or [`EXIT_FOUND`].
pub fn diagnose_exit_code(diagnosis: &Diagnosis) -> u8 {
    if diagnosis.is_clean() {
        EXIT_CLEAN
    } else {
        EXIT_FOUND
    }
}

/// The JSON of `ccs diagnose --json`.
pub fn diagnosis_json(d: &Diagnosis) -> Value {
    let by_kind: Map<String, Value> = FindingKind::ALL
        .iter()
        .map(|&k| (k.name().to_owned(), json!(d.count(k))))
        .collect();
    json!({
        "schema": SCHEMA_VERSION,
        "clean": d.is_clean(),
        "counts": {
            "records": d.records,
            "agents": d.agents,
            "keys": d.keys,
            "writes": d.writes,
            "conflicts": d.conflicts,
            "held": d.held,
            "errors": d.errors,
            "lost": d.lost,
            "findings": d.findings.len(),
        },
        "findings_by_kind": by_kind,
        "first_t_ns": d.first_t_ns,
        "last_t_ns": d.last_t_ns,
        "findings": d.findings.iter().map(|f| json!({
            "kind": f.kind.name(),
            "message": f.message,
            "records": f.records.iter().map(to_json_value).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "notes": d.notes,
    })
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The human form of `ccs diagnose`: a headline, the counts, each finding with its records,
/// then the notes.
pub fn render_diagnosis(d: &Diagnosis) -> String {
    let scope = format!(
        "{}, {}, {}",
        plural(d.records, "record", "records"),
        plural(d.agents, "agent", "agents"),
        plural(d.keys, "key", "keys")
    );
    let mut out = if d.is_clean() {
        format!("clean: {scope}\n")
    } else {
        let kinds: Vec<String> = FindingKind::ALL
            .iter()
            .filter(|&&k| d.count(k) > 0)
            .map(|&k| format!("{} {k}", d.count(k)))
            .collect();
        format!(
            "FOUND {} in {scope}: {}\n",
            plural(d.findings.len(), "problem", "problems"),
            kinds.join(", ")
        )
    };
    let _ = writeln!(
        out,
        "{}; refused: {} for a stale view (conflict), {} held by another agent; {}; {} lost",
        plural(d.writes, "successful write", "successful writes"),
        d.conflicts,
        d.held,
        plural(d.errors, "error", "errors"),
        plural(
            usize::try_from(d.lost).unwrap_or(usize::MAX),
            "record",
            "records"
        ),
    );
    for (i, finding) in d.findings.iter().enumerate() {
        let _ = writeln!(out, "\n{}. {}: {}", i + 1, finding.kind, finding.message);
        for record in &finding.records {
            let _ = writeln!(out, "   {}", format_record(record, d.first_t_ns));
        }
    }
    if !d.notes.is_empty() {
        out.push_str("\nnotes:\n");
        for note in &d.notes {
            let _ = writeln!(out, "- {note}");
        }
    }
    out
}

fn usage_json(u: &Usage) -> Map<String, Value> {
    let value = json!({
        "reads": u.reads,
        "hits": u.hits,
        "misses": u.misses,
        "hit_rate": u.hit_rate(),
        "bytes_from_copy": u.bytes_from_copy,
        "bytes_fetched": u.bytes_fetched,
        "writes": u.writes,
        "conflicts": u.conflicts,
        "tokens_saved_estimate": u.tokens_saved_estimate(),
    });
    match value {
        Value::Object(map) => map,
        _ => Map::new(), // json!({...}) is always an object
    }
}

fn row_json(label: &str, row: &UsageRow) -> Value {
    let mut map = Map::new();
    map.insert(label.to_owned(), json!(row.name));
    map.extend(usage_json(&row.usage));
    Value::Object(map)
}

/// The JSON of `ccs stats --json`.
pub fn stats_json(s: &Stats) -> Value {
    json!({
        "schema": SCHEMA_VERSION,
        "window": {
            "first_t_ns": s.window.first_t_ns,
            "last_t_ns": s.window.last_t_ns,
            "span_ns": s.window.span_ns(),
            "records": s.window.records,
            "lost": s.window.lost,
        },
        "bytes_per_token": BYTES_PER_TOKEN,
        "total": Value::Object(usage_json(&s.total)),
        "agents": s.agents.iter().map(|r| row_json("agent", r)).collect::<Vec<_>>(),
        "artifacts": s.artifacts.iter().map(|r| row_json("key", r)).collect::<Vec<_>>(),
    })
}

fn usage_cells(name: &str, u: &Usage) -> Vec<String> {
    let rate = u
        .hit_rate()
        .map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0));
    vec![
        name.to_owned(),
        u.reads.to_string(),
        u.hits.to_string(),
        u.misses.to_string(),
        rate,
        u.bytes_from_copy.to_string(),
        u.bytes_fetched.to_string(),
        u.writes.to_string(),
        u.conflicts.to_string(),
        u.tokens_saved_estimate().to_string(),
    ]
}

fn usage_table(first: &str, rows: &[UsageRow], total: Option<&Usage>) -> String {
    let header = [
        first,
        "READS",
        "HITS",
        "MISSES",
        "HIT RATE",
        "FROM COPY (B)",
        "FETCHED (B)",
        "WRITES",
        "CONFLICTS",
        "TOKENS SAVED*",
    ];
    let mut cells = vec![header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>()];
    cells.extend(rows.iter().map(|r| usage_cells(&r.name, &r.usage)));
    if let Some(total) = total {
        cells.push(usage_cells("(total)", total));
    }
    table::render(&cells, Align::label_then_numbers)
}

/// The human form of `ccs stats`: the window, then a table per agent and per artifact.
pub fn render_stats(s: &Stats) -> String {
    let w = &s.window;
    let mut out = match (w.first_t_ns, w.last_t_ns) {
        (Some(first), Some(_)) => format!(
            "{} over {}.{:06} s (t_ns {first} ..= {})",
            plural(w.records, "record", "records"),
            w.span_ns() / 1_000_000_000,
            w.span_ns() % 1_000_000_000 / 1_000,
            first + w.span_ns()
        ),
        _ => "no records".to_owned(),
    };
    if w.lost > 0 {
        let _ = write!(out, "; {} lost before they were read (not counted)", w.lost);
    }
    out.push_str("\n\n");
    out.push_str(&usage_table("AGENT", &s.agents, Some(&s.total)));
    out.push('\n');
    out.push_str(&usage_table("ARTIFACT", &s.artifacts, None));
    let _ = writeln!(
        out,
        "\n* tokens saved is an estimate: bytes served from the agents' current copies / \
         {BYTES_PER_TOKEN} (about {BYTES_PER_TOKEN} bytes per token); HIT RATE = hits / reads"
    );
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use std::path::Path;

    use agent_coherence::trace::{LogOutcome, LogRecord, diagnose, stats};

    use super::*;
    use crate::trace_file::parse_jsonl;

    fn stale_trace() -> Vec<LogRecord> {
        let text = r#"
{"seq":0,"t_ns":1000000,"agent":"planner","op":"put","outcome":"ok","key":"task/spec","version":1,"held":0,"count":1,"bytes":16,"other":null,"mode":"view"}
{"seq":0,"t_ns":1000412,"agent":"executor","op":"get","outcome":"miss","key":"task/spec","version":1,"held":0,"count":1,"bytes":16,"other":null,"mode":null}
{"seq":1,"t_ns":1002000,"agent":"planner","op":"put","outcome":"ok","key":"task/spec","version":2,"held":1,"count":1,"bytes":16,"other":null,"mode":"view"}
{"seq":1,"t_ns":1003000,"agent":"executor","op":"put","outcome":"ok","key":"src/lib.rs","version":1,"held":0,"count":1,"bytes":900,"other":null,"mode":"view"}
"#;
        parse_jsonl(text.as_bytes(), Path::new("-")).unwrap()
    }

    #[test]
    fn diagnosis_renders_and_serializes() {
        let d = diagnose(&stale_trace());
        let text = render_diagnosis(&d);
        assert!(
            text.starts_with("FOUND 1 problem in 4 records, 2 agents, 2 keys: 1 stale_use\n"),
            "{text}"
        );
        assert!(
            text.contains("\n1. stale_use: executor wrote src/lib.rs v1"),
            "{text}"
        );
        assert!(
            text.contains(
                "\n3 successful writes; refused: 0 for a stale view (conflict), 0 held by \
                 another agent; 0 errors; 0 records lost\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "\n   [t+0.000000] [MISS]      get     agent=executor key=task/spec v1\n"
            ),
            "{text}"
        );
        let v = diagnosis_json(&d);
        assert_eq!(v["schema"], 1);
        assert_eq!(v["clean"], false);
        assert_eq!(v["counts"]["records"], 4);
        assert_eq!(v["counts"]["findings"], 1);
        assert_eq!(v["findings_by_kind"]["stale_use"], 1);
        assert_eq!(v["findings_by_kind"]["single_writer_breach"], 0);
        assert_eq!(v["findings"][0]["kind"], "stale_use");
        assert_eq!(v["findings"][0]["records"][2]["key"], "src/lib.rs");
        assert_eq!(diagnose_exit_code(&d), EXIT_FOUND);

        let clean = diagnose(&stale_trace()[..3]);
        assert!(render_diagnosis(&clean).starts_with("clean: 3 records, 2 agents, 1 key\n"));
        assert_eq!(diagnosis_json(&clean)["clean"], true);
        assert_eq!(diagnose_exit_code(&clean), EXIT_CLEAN);
    }

    #[test]
    fn stats_render_and_serialize() {
        let mut records = stale_trace();
        let mut hits = records[1].clone();
        (hits.seq, hits.t_ns, hits.outcome, hits.held, hits.count) =
            (2, 1_004_000, LogOutcome::Hit, 1, 10);
        records.push(hits);
        let s = stats(&records);
        let v = stats_json(&s);
        assert_eq!(v["schema"], 1);
        assert_eq!(v["bytes_per_token"], 4);
        assert_eq!(v["window"]["span_ns"], 4_000);
        assert_eq!(v["total"]["reads"], 11);
        assert_eq!(v["total"]["bytes_from_copy"], 160);
        assert_eq!(v["total"]["tokens_saved_estimate"], 40);
        assert_eq!(v["agents"][0]["agent"], "executor");
        assert_eq!(v["agents"][0]["hit_rate"].as_f64(), Some(10.0 / 11.0));
        assert_eq!(v["agents"][1]["hit_rate"], Value::Null);
        assert_eq!(v["artifacts"][1]["key"], "task/spec");
        let text = render_stats(&s);
        assert!(text.starts_with("5 records over 0.000004 s"), "{text}");
        assert!(text.contains("tokens saved is an estimate"), "{text}");
        assert!(
            text.contains("bytes served from the agents' current copies / 4"),
            "{text}"
        );
        let executor = text.lines().find(|l| l.starts_with("executor")).unwrap();
        let cells: Vec<&str> = executor.split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "executor", "11", "10", "1", "90.9%", "160", "16", "1", "0", "40"
            ]
        );
        assert!(render_stats(&stats(&[])).starts_with("no records"));
    }
}

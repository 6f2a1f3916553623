//! The operation log on disk and on screen: records as JSON lines (`trace.jsonl`), written by
//! `ccs log` and read by `ccs diagnose` and `ccs stats`, and the one-line form of a record that
//! `ccs log --text` and `ccs watch` print. The reports made from the records are in `report`.
//!
//! One record per line (see `docs/observability.md` for the schema):
//!
//! ```text
//! {"seq":12,"t_ns":73014400011,"agent":"executor","op":"get","outcome":"miss","key":"task/spec",
//!  "version":2,"held":1,"count":1,"bytes":412,"other":null,"mode":null}
//! ```
//!
//! `op`, `outcome` and `mode` are the names of [`LogOp`], [`LogOutcome`] and [`WriteMode`].
//! Reading, `key`, `other` and `mode` may be absent (read as null), unknown fields are ignored,
//! blank lines are skipped; anything else wrong names its line.

use std::borrow::Cow;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use agent_coherence::trace::{LogOp, LogOutcome, LogRecord, WriteMode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::error::Category;

/// One record as a JSON line, fields in schema order; read with serde, borrowing the line's
/// strings where they need no unescaping. `key`, `other` and `mode` may be absent (read as
/// null); unknown fields are ignored.
#[derive(Serialize, Deserialize)]
struct JsonRecord<'a> {
    seq: u64,
    t_ns: u64,
    #[serde(borrow)]
    agent: Cow<'a, str>,
    #[serde(borrow)]
    op: Cow<'a, str>,
    #[serde(borrow)]
    outcome: Cow<'a, str>,
    #[serde(default, borrow)]
    key: Option<Cow<'a, str>>,
    version: u64,
    held: u64,
    count: u64,
    bytes: u64,
    #[serde(default, borrow)]
    other: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    mode: Option<Cow<'a, str>>,
    /// Only records of the etcd engine have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revision: Option<u64>,
}

impl<'a> JsonRecord<'a> {
    fn of(r: &'a LogRecord) -> Self {
        JsonRecord {
            seq: r.seq,
            t_ns: r.t_ns,
            agent: Cow::Borrowed(&r.agent),
            op: Cow::Borrowed(r.op.name()),
            outcome: Cow::Borrowed(r.outcome.name()),
            key: r.key.as_deref().map(Cow::Borrowed),
            version: r.version,
            held: r.held,
            count: r.count,
            bytes: r.bytes,
            other: r.other.as_deref().map(Cow::Borrowed),
            mode: r.mode.map(|m| Cow::Borrowed(m.name())),
            revision: r.revision,
        }
    }

    /// The record, once its names are known ones.
    fn into_record(self) -> Result<LogRecord, BadRecord> {
        let op = LogOp::from_name(&self.op).ok_or_else(|| BadRecord::UnknownOp(self.op.into()))?;
        let outcome = LogOutcome::from_name(&self.outcome)
            .ok_or_else(|| BadRecord::UnknownOutcome(self.outcome.into()))?;
        let mode = match self.mode {
            None => None,
            Some(m) => {
                Some(WriteMode::from_name(&m).ok_or_else(|| BadRecord::UnknownMode(m.into()))?)
            }
        };
        Ok(LogRecord {
            seq: self.seq,
            t_ns: self.t_ns,
            agent: self.agent.into_owned(),
            op,
            outcome,
            key: self.key.map(Cow::into_owned),
            version: self.version,
            held: self.held,
            count: self.count,
            bytes: self.bytes,
            other: self.other.map(Cow::into_owned),
            mode,
            revision: self.revision,
        })
    }
}

/// The JSON object of one record.
pub fn to_json_value(record: &LogRecord) -> Value {
    // Plain strings and integers: serialising cannot fail.
    serde_json::to_value(JsonRecord::of(record)).unwrap_or(Value::Null)
}

/// Write records as JSON lines, one object per line, fields in schema order.
pub fn write_jsonl(out: &mut impl Write, records: &[LogRecord]) -> io::Result<()> {
    for record in records {
        serde_json::to_writer(&mut *out, &JsonRecord::of(record))?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// What is wrong with one line of a trace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadRecord {
    /// The line does not parse as JSON (or is not UTF-8).
    #[error("not JSON: {0}")]
    NotJson(String),
    /// The line is JSON but not an object.
    #[error("not a JSON object")]
    NotObject,
    /// A required field is absent.
    #[error("missing field `{0}`")]
    MissingField(String),
    /// A field has the wrong type or is out of range.
    #[error("field `{field}`: {reason}")]
    BadField {
        /// The field.
        field: String,
        /// What is wrong with its value (serde's words: what it is, what was expected).
        reason: String,
    },
    /// `op` is not a known operation.
    #[error("unknown op `{0}`")]
    UnknownOp(String),
    /// `outcome` is not a known outcome.
    #[error("unknown outcome `{0}`")]
    UnknownOutcome(String),
    /// `mode` is not a known write mode.
    #[error("unknown mode `{0}`")]
    UnknownMode(String),
}

/// Why a trace file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TraceFileError {
    /// The file cannot be opened or read.
    #[error("cannot read trace `{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A line is not a record.
    #[error("{}:{line}: {reason}", path.display())]
    BadLine {
        /// The file.
        path: PathBuf,
        /// The line, counting from 1.
        line: usize,
        /// What is wrong with it.
        #[source]
        reason: BadRecord,
    },
}

/// Read a trace file of JSON lines (see the module documentation).
pub fn read_jsonl(path: impl AsRef<Path>) -> Result<Vec<LogRecord>, TraceFileError> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|source| TraceFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_jsonl(BufReader::new(file), path)
}

/// Read JSON lines from any reader (stdin, say); `path` is what errors name.
pub fn parse_jsonl(mut input: impl BufRead, path: &Path) -> Result<Vec<LogRecord>, TraceFileError> {
    let mut records = Vec::new();
    let mut buf = Vec::new();
    let mut line = 0;
    loop {
        buf.clear();
        let n = input
            .read_until(b'\n', &mut buf)
            .map_err(|source| TraceFileError::Read {
                path: path.to_owned(),
                source,
            })?;
        if n == 0 {
            return Ok(records);
        }
        line += 1;
        let bad = |reason| TraceFileError::BadLine {
            path: path.to_owned(),
            line,
            reason,
        };
        let text = std::str::from_utf8(&buf)
            .map_err(|e| bad(BadRecord::NotJson(format!("not UTF-8: {e}"))))?;
        if text.trim().is_empty() {
            continue;
        }
        records.push(parse_record(text).map_err(bad)?);
    }
}

/// A record from one line of JSON.
pub fn parse_record(line: &str) -> Result<LogRecord, BadRecord> {
    let mut json = serde_json::Deserializer::from_str(line);
    let record: JsonRecord = serde_path_to_error::deserialize(&mut json).map_err(bad_record)?;
    json.end().map_err(|e| BadRecord::NotJson(e.to_string()))?;
    record.into_record()
}

/// What serde found wrong, as a [`BadRecord`]: a syntax error is not JSON; a data error names
/// the field it is in, or (at the top) is a missing field or a value that is not an object.
fn bad_record(error: serde_path_to_error::Error<serde_json::Error>) -> BadRecord {
    let field = error.path().to_string();
    let error = error.into_inner();
    if error.classify() != Category::Data {
        return BadRecord::NotJson(error.to_string());
    }
    if field != "." {
        return BadRecord::BadField {
            field,
            reason: error.to_string(),
        };
    }
    // serde's words for a missing field (`de::Error::missing_field`).
    let message = error.to_string();
    match message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
    {
        Some((name, _)) => BadRecord::MissingField(name.to_owned()),
        None => BadRecord::NotObject,
    }
}

/// `t+0.000412`: seconds since `t0_ns` (see [`agent_coherence::trace::format_offset`]).
pub fn format_offset(t_ns: u64, t0_ns: u64) -> String {
    agent_coherence::trace::format_offset(t_ns, t0_ns)
}

/// One record on one line (see [`LogRecord::line`]).
pub fn format_record(record: &LogRecord, t0_ns: u64) -> String {
    record.line(t0_ns)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use serde_json::json;

    use super::*;

    fn record(op: LogOp, outcome: LogOutcome) -> LogRecord {
        LogRecord {
            seq: 12,
            t_ns: 1_000_412_000,
            agent: "executor".into(),
            op,
            outcome,
            key: Some("task/spec".into()),
            version: 2,
            held: 1,
            count: 1,
            bytes: 412,
            other: None,
            mode: None,
            revision: None,
        }
    }

    /// One record of every op, outcome and mode, with and without the optional fields.
    fn every_kind() -> Vec<LogRecord> {
        let mut records = Vec::new();
        for (i, &op) in LogOp::ALL.iter().enumerate() {
            for (j, &outcome) in LogOutcome::ALL.iter().enumerate() {
                let mut r = record(op, outcome);
                r.seq = (i * 100 + j) as u64;
                r.mode = [
                    None,
                    Some(WriteMode::View),
                    Some(WriteMode::If),
                    Some(WriteMode::Blind),
                ][j % 4];
                if j % 2 == 0 {
                    r.key = None;
                    r.other = Some("planner".into());
                }
                records.push(r);
            }
        }
        let mut big = record(LogOp::Lost, LogOutcome::Ok);
        (big.seq, big.t_ns, big.count, big.bytes) = (u64::MAX, u64::MAX, u64::MAX, u64::MAX);
        (big.version, big.held) = (u64::MAX, u64::MAX);
        records.push(big);
        records
    }

    fn temp(name: &str, contents: &[u8]) -> PathBuf {
        let path = std::env::temp_dir().join(format!("ccs-trace-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn json_lines_round_trip() {
        let records = every_kind();
        let mut out = Vec::new();
        write_jsonl(&mut out, &records).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(text.lines().count(), records.len());
        for (line, r) in text.lines().zip(&records) {
            let value: Value = serde_json::from_str(line).unwrap();
            assert_eq!(value, to_json_value(r));
            assert_eq!(parse_record(line).unwrap(), *r);
        }
        let path = temp("round-trip.jsonl", &out);
        assert_eq!(read_jsonl(&path).unwrap(), records);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_line_in_schema_order() {
        let mut r = record(LogOp::Put, LogOutcome::Ok);
        r.mode = Some(WriteMode::Blind);
        let mut out = Vec::new();
        write_jsonl(&mut out, &[r]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"seq\":12,\"t_ns\":1000412000,\"agent\":\"executor\",\"op\":\"put\",\
             \"outcome\":\"ok\",\"key\":\"task/spec\",\"version\":2,\"held\":1,\"count\":1,\
             \"bytes\":412,\"other\":null,\"mode\":\"blind\"}\n"
        );
    }

    #[test]
    fn optional_fields_may_be_absent_and_blank_lines_skipped() {
        let line = r#"{"seq":1,"t_ns":5,"agent":"a","op":"attach","outcome":"ok","version":0,"held":0,"count":1,"bytes":0,"extra":true}"#;
        let records = parse_jsonl(format!("\n{line}\r\n  \n").as_bytes(), Path::new("-")).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!((records[0].key.as_deref(), records[0].mode), (None, None));
    }

    fn bad(text: &str) -> (usize, BadRecord) {
        match parse_jsonl(text.as_bytes(), Path::new("trace.jsonl")) {
            Err(TraceFileError::BadLine { line, reason, .. }) => (line, reason),
            other => panic!("expected a bad line, got {other:?}"),
        }
    }

    #[test]
    fn bad_lines_say_where_and_why() {
        let good =
            serde_json::to_string(&to_json_value(&record(LogOp::Get, LogOutcome::Hit))).unwrap();
        let with = |field: &str, value: Value| {
            let mut v = to_json_value(&record(LogOp::Get, LogOutcome::Hit));
            v[field] = value;
            format!("{good}\n{v}\n")
        };
        let without = |field: &str| {
            let mut v = to_json_value(&record(LogOp::Get, LogOutcome::Hit));
            v.as_object_mut().unwrap().remove(field);
            format!("{good}\n\n{v}\n")
        };
        assert_eq!(
            bad(&with("op", json!("fetch"))),
            (2, BadRecord::UnknownOp("fetch".into()))
        );
        assert_eq!(
            bad(&with("outcome", json!("meh"))),
            (2, BadRecord::UnknownOutcome("meh".into()))
        );
        assert_eq!(
            bad(&with("mode", json!("lazy"))),
            (2, BadRecord::UnknownMode("lazy".into()))
        );
        assert_eq!(
            bad(&without("agent")),
            (3, BadRecord::MissingField("agent".into()))
        );
        assert_eq!(
            bad(&without("seq")),
            (3, BadRecord::MissingField("seq".into()))
        );
        for (field, value) in [
            ("version", json!(-1)),
            ("count", json!(-1)),
            ("key", json!(7)),
        ] {
            assert!(
                matches!(
                    bad(&with(field, value)),
                    (2, BadRecord::BadField { field: ref f, .. }) if f == field
                ),
                "{field}"
            );
        }
        assert!(matches!(bad("{\"seq\":"), (1, BadRecord::NotJson(_))));
        assert!(matches!(bad("[1,2]"), (1, BadRecord::NotObject)));
        assert!(matches!(
            bad(&format!("{good}\n\u{0}\u{ff}")),
            (2, BadRecord::NotJson(_))
        ));
        let (_, reason) = bad(&with("op", json!("fetch")));
        let error = TraceFileError::BadLine {
            path: "t.jsonl".into(),
            line: 2,
            reason,
        };
        assert_eq!(error.to_string(), "t.jsonl:2: unknown op `fetch`");
        assert_eq!(
            BadRecord::MissingField("agent".into()).to_string(),
            "missing field `agent`"
        );
    }

    #[test]
    fn invalid_utf8_is_a_bad_line() {
        let path = temp("bad-utf8.jsonl", b"\xff\xfe\n");
        let error = read_jsonl(&path).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            error,
            TraceFileError::BadLine { line: 1, reason: BadRecord::NotJson(ref m), .. }
                if m.starts_with("not UTF-8")
        ));
    }

    #[test]
    fn an_unreadable_file_is_a_read_error() {
        let missing = std::env::temp_dir().join("ccs-trace-does-not-exist.jsonl");
        let error = read_jsonl(&missing).unwrap_err();
        assert!(matches!(error, TraceFileError::Read { .. }));
        assert!(error.to_string().starts_with("cannot read trace `"));
    }

    #[test]
    fn format_record_lines() {
        let t0 = 1_000_000_000;
        let mut r = record(LogOp::Get, LogOutcome::Miss);
        assert_eq!(
            format_record(&r, t0),
            "[t+0.000412] [MISS]      get     agent=executor key=task/spec v2 (held v1)"
        );
        r.outcome = LogOutcome::Hit;
        (r.held, r.count) = (2, 40);
        assert_eq!(
            format_record(&r, t0),
            "[t+0.000412] [HIT]       get     agent=executor key=task/spec v2 (held v2) ×40"
        );
        let mut w = record(LogOp::Put, LogOutcome::Ok);
        w.mode = Some(WriteMode::Blind);
        assert_eq!(
            format_record(&w, t0),
            "[t+0.000412] [OK]        put     agent=executor key=task/spec v2 (held v1) mode=blind"
        );
        w.mode = Some(WriteMode::View);
        w.outcome = LogOutcome::NotFound;
        assert!(format_record(&w, t0).starts_with("[t+0.000412] [NOT_FOUND] put     agent="));
        assert!(!format_record(&w, t0).contains("mode="));
        let mut h = record(LogOp::Acquire, LogOutcome::Held);
        (h.held, h.other, h.t_ns) = (0, Some("planner".into()), 3_500_000_000);
        assert_eq!(
            format_record(&h, t0),
            "[t+2.500000] [HELD]      acquire agent=executor key=task/spec v2 other=planner"
        );
        let mut a = record(LogOp::Attach, LogOutcome::Ok);
        (a.key, a.held, a.t_ns) = (None, 0, 999_000_000);
        assert_eq!(
            format_record(&a, t0),
            "[t-0.001000] [OK]        attach  agent=executor"
        );
        for &outcome in LogOutcome::ALL {
            let upper = outcome.name().to_uppercase();
            assert!(format_record(&record(LogOp::Get, outcome), 0).contains(&format!("[{upper}]")));
        }
    }
}

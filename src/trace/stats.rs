//! What the coherence layer did for each agent and artifact in an operation log: the counts
//! behind `ccs stats`.
//!
//! A read served from the agent's current copy (a HIT) is bytes the agent did not have to
//! fetch, and for an LLM agent tokens it did not have to re-read: `tokens_saved_estimate` is
//! those bytes divided by 4, a rough average of bytes per token for English text and code.

use std::collections::BTreeMap;

use super::{LogOp, LogOutcome, LogRecord};

/// Bytes per token assumed by [`Usage::tokens_saved_estimate`].
pub const BYTES_PER_TOKEN: u64 = 4;

/// Counters over a set of records: one agent's, one artifact's, or all of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Reads: the sum of `count` over `get` records, whatever their outcome.
    pub reads: u64,
    /// Reads served from the agent's current copy (outcome `Hit`, summed `count`).
    pub hits: u64,
    /// Reads that fetched the current version (outcome `Miss`, summed `count`).
    pub misses: u64,
    /// Bytes served from the agent's current copy: `bytes × count` over hits.
    pub bytes_from_copy: u64,
    /// Bytes fetched: `bytes × count` over misses.
    pub bytes_fetched: u64,
    /// Successful writes (`put`, `delete`, `commit`).
    pub writes: u64,
    /// Operations refused with `Conflict` (a write from a stale view).
    pub conflicts: u64,
}

impl Usage {
    /// `hits / reads`, or `None` without reads.
    pub fn hit_rate(&self) -> Option<f64> {
        // Counts of records stay far below 2^52: the conversion is exact.
        (self.reads > 0).then(|| self.hits as f64 / self.reads as f64)
    }

    /// Tokens the agents did not have to re-read, estimated as
    /// `bytes_from_copy / BYTES_PER_TOKEN` ([`BYTES_PER_TOKEN`] = 4).
    pub fn tokens_saved_estimate(&self) -> u64 {
        self.bytes_from_copy / BYTES_PER_TOKEN
    }

    fn add(&mut self, r: &LogRecord) {
        let bytes = r.bytes.saturating_mul(r.count);
        if r.op == LogOp::Get {
            self.reads = self.reads.saturating_add(r.count);
            match r.outcome {
                LogOutcome::Hit => {
                    self.hits = self.hits.saturating_add(r.count);
                    self.bytes_from_copy = self.bytes_from_copy.saturating_add(bytes);
                }
                LogOutcome::Miss => {
                    self.misses = self.misses.saturating_add(r.count);
                    self.bytes_fetched = self.bytes_fetched.saturating_add(bytes);
                }
                _ => {}
            }
        }
        if r.is_successful_write() {
            self.writes += 1;
        }
        if r.outcome == LogOutcome::Conflict {
            self.conflicts += 1;
        }
    }
}

/// One row of [`Stats`]: an agent's or an artifact's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    /// The agent's name or the artifact's key.
    pub name: String,
    /// Its counters.
    pub usage: Usage,
}

/// The stretch of log the statistics cover.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsWindow {
    /// Time of the earliest operation record (`None`: there is none).
    pub first_t_ns: Option<u64>,
    /// Time of the latest operation record.
    pub last_t_ns: Option<u64>,
    /// Operation records (not counting `Lost` markers).
    pub records: usize,
    /// Records lost before they were read (the sum of the `Lost` records' counts): the
    /// counters miss whatever they held.
    pub lost: u64,
}

impl StatsWindow {
    /// `last_t_ns - first_t_ns` (0 without records).
    pub fn span_ns(&self) -> u64 {
        match (self.first_t_ns, self.last_t_ns) {
            (Some(first), Some(last)) => last.saturating_sub(first),
            _ => 0,
        }
    }
}

/// Per-agent and per-artifact counters over an operation log: see [`stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// What the log covers.
    pub window: StatsWindow,
    /// Every record's counters together.
    pub total: Usage,
    /// One row per agent, sorted by name (agents with only `Lost` records included).
    pub agents: Vec<UsageRow>,
    /// One row per key, sorted.
    pub artifacts: Vec<UsageRow>,
}

/// Count reads, hits, bytes, writes and conflicts per agent and per artifact, in any order.
pub fn stats(records: &[LogRecord]) -> Stats {
    let mut window = StatsWindow::default();
    let mut total = Usage::default();
    let mut agents: BTreeMap<&str, Usage> = BTreeMap::new();
    let mut artifacts: BTreeMap<&str, Usage> = BTreeMap::new();
    for r in records {
        let agent = agents.entry(&r.agent).or_default();
        if r.op == LogOp::Lost {
            window.lost = window.lost.saturating_add(r.count);
            continue;
        }
        window.records += 1;
        window.first_t_ns = Some(window.first_t_ns.map_or(r.t_ns, |t| t.min(r.t_ns)));
        window.last_t_ns = Some(window.last_t_ns.map_or(r.t_ns, |t| t.max(r.t_ns)));
        agent.add(r);
        total.add(r);
        if let Some(key) = r.key.as_deref() {
            artifacts.entry(key).or_default().add(r);
        }
    }
    let rows = |map: BTreeMap<&str, Usage>| {
        map.into_iter()
            .map(|(name, usage)| UsageRow {
                name: name.to_owned(),
                usage,
            })
            .collect()
    };
    Stats {
        window,
        total,
        agents: rows(agents),
        artifacts: rows(artifacts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::WriteMode;

    #[allow(clippy::too_many_arguments)]
    fn rec(
        seq: u64,
        t_ns: u64,
        agent: &str,
        op: LogOp,
        outcome: LogOutcome,
        key: Option<&str>,
        count: u64,
        bytes: u64,
    ) -> LogRecord {
        LogRecord {
            seq,
            t_ns,
            agent: agent.to_owned(),
            op,
            outcome,
            key: key.map(str::to_owned),
            version: 1,
            held: 0,
            count,
            bytes,
            other: None,
            mode: matches!(op, LogOp::Put | LogOp::Delete | LogOp::Commit)
                .then_some(WriteMode::View),
            revision: None,
        }
    }

    fn sample() -> Vec<LogRecord> {
        use LogOp::*;
        use LogOutcome::*;
        let spec = Some("task/spec");
        let plan = Some("plan");
        vec![
            rec(0, 1_000, "planner", Attach, Ok, None, 1, 0),
            rec(1, 2_000, "planner", Put, Ok, spec, 1, 400),
            rec(0, 3_000, "executor", Get, Miss, spec, 1, 400),
            rec(1, 4_000, "executor", Get, Hit, spec, 9, 400),
            rec(2, 5_000, "executor", Get, NotFound, plan, 1, 0),
            rec(2, 6_000, "planner", Put, Ok, plan, 1, 1_000),
            rec(3, 7_000, "executor", Put, Conflict, spec, 1, 50),
            rec(4, 8_000, "executor", Get, Hit, plan, 2, 1_000),
            rec(3, 9_000, "planner", Commit, Ok, plan, 1, 1_001),
            rec(0, 9_500, "reviewer", Lost, Ok, None, 7, 0),
            rec(5, 10_000, "executor", Delete, Conflict, plan, 1, 0),
        ]
    }

    #[test]
    fn counts_per_agent_artifact_and_total() {
        let s = stats(&sample());
        assert_eq!(
            s.window,
            StatsWindow {
                first_t_ns: Some(1_000),
                last_t_ns: Some(10_000),
                records: 10,
                lost: 7,
            }
        );
        assert_eq!(s.window.span_ns(), 9_000);
        let executor = Usage {
            reads: 13, // 1 miss + 9 hits + 1 not found + 2 hits
            hits: 11,
            misses: 1,
            bytes_from_copy: 9 * 400 + 2 * 1_000,
            bytes_fetched: 400,
            writes: 0,
            conflicts: 2,
        };
        let planner = Usage {
            writes: 3,
            ..Usage::default()
        };
        let names: Vec<&str> = s.agents.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["executor", "planner", "reviewer"]);
        assert_eq!(s.agents[0].usage, executor);
        assert_eq!(s.agents[1].usage, planner);
        assert_eq!(s.agents[2].usage, Usage::default());
        assert_eq!(
            s.artifacts,
            [
                UsageRow {
                    name: "plan".into(),
                    usage: Usage {
                        reads: 3,
                        hits: 2,
                        misses: 0,
                        bytes_from_copy: 2_000,
                        bytes_fetched: 0,
                        writes: 2,
                        conflicts: 1,
                    },
                },
                UsageRow {
                    name: "task/spec".into(),
                    usage: Usage {
                        reads: 10,
                        hits: 9,
                        misses: 1,
                        bytes_from_copy: 3_600,
                        bytes_fetched: 400,
                        writes: 1,
                        conflicts: 1,
                    },
                },
            ]
        );
        assert_eq!(
            s.total,
            Usage {
                writes: 3,
                ..executor
            }
        );
        assert_eq!(s.total.tokens_saved_estimate(), 5_600 / 4);
        assert_eq!(s.total.hit_rate(), Some(11.0 / 13.0));
        assert_eq!(s.agents[1].usage.hit_rate(), None);
        assert_eq!(s.artifacts[1].usage.hit_rate(), Some(0.9));
    }

    #[test]
    fn order_does_not_matter() {
        let mut records = sample();
        records.reverse();
        assert_eq!(stats(&records), stats(&sample()));
    }

    #[test]
    fn tokens_round_down() {
        let r = rec(0, 5, "a", LogOp::Get, LogOutcome::Hit, Some("k"), 3, 5);
        let s = stats(&[r]);
        assert_eq!(s.total.bytes_from_copy, 15);
        assert_eq!(s.total.tokens_saved_estimate(), 3);
        assert_eq!(s.window.span_ns(), 0);
        assert_eq!(stats(&[]), Stats::default());
    }
}

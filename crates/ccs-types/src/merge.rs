//! The order log readers and `diagnose` put records in: by time, except where time cannot be
//! trusted. Shared by the shared-memory and etcd engines' readers and by the facade's analyses.
//!
//! Two orders are exact: one agent's records in `seq` order, and the successful writes of one
//! key in revision order where records carry one (etcd applies transactions in one total order;
//! the shared-memory log has no revisions, and there a write's time is taken while it holds the
//! line, so time is already exact for one key's writes). Time is not:
//! agents on different hosts read different clocks, and even on one host a write's time is
//! taken after its transaction was answered. So the records are merged by time (then agent,
//! then seq) among those both exact orders allow: a topological order of the two chains, with
//! time choosing among the records that may come next. A cycle between the chains (two
//! threads of one agent whose writes of one key completed in the other order than they were
//! applied) is broken by time.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};

use crate::opcodes::LogOp;
use crate::record::LogRecord;

/// For a successful write with a revision: its key and revision (a link of its key's chain).
fn write_revision(record: &LogRecord) -> Option<(&str, u64)> {
    match (record.is_successful_write(), &record.key, record.revision) {
        (true, Some(key), Some(revision)) => Some((key, revision)),
        _ => None,
    }
}

fn is_lost(record: &LogRecord) -> bool {
    record.op == LogOp::Lost
}

/// Sort key: time, agent (by name rank), seq, a `lost` marker before the record it precedes,
/// then arrival order.
type Prio = (u64, usize, u64, bool, usize);

/// `records` (of any agents, in any order) in the readers' order: each agent's in seq order,
/// each key's successful writes in revision order, otherwise by time.
pub fn merge_order(records: Vec<LogRecord>) -> Vec<LogRecord> {
    let n = records.len();
    let mut names: Vec<&str> = records.iter().map(|r| r.agent.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let rank: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let prio = |i: usize| -> Prio {
        let r = &records[i];
        (r.t_ns, rank[r.agent.as_str()], r.seq, !is_lost(r), i)
    };

    // Agent chains, in seq order.
    let mut queues: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
    for (i, r) in records.iter().enumerate() {
        queues[rank[r.agent.as_str()]].push(i);
    }
    for q in &mut queues {
        q.sort_by_key(|&i| (records[i].seq, !is_lost(&records[i]), i));
        q.reverse(); // pop from the back
    }

    // Key chains: successful writes with a revision, in revision order.
    let mut chain_ids: HashMap<&str, usize> = HashMap::new();
    let mut chains: Vec<Vec<usize>> = Vec::new();
    let mut chain_of: Vec<Option<usize>> = vec![None; n];
    for (i, r) in records.iter().enumerate() {
        if let Some((key, _)) = write_revision(r) {
            let id = *chain_ids.entry(key).or_insert_with(|| {
                chains.push(Vec::new());
                chains.len() - 1
            });
            chains[id].push(i);
            chain_of[i] = Some(id);
        }
    }
    for chain in &mut chains {
        chain.sort_by_key(|&i| (write_revision(&records[i]).map(|(_, rev)| rev), i));
    }
    let mut chain_at = vec![0usize; chains.len()];

    let mut done = vec![false; n];
    let mut is_head = vec![false; n];
    let mut ready: BinaryHeap<Reverse<Prio>> = BinaryHeap::new();
    let mut blocked: BTreeSet<Prio> = BTreeSet::new();
    let chain_head = |chain: usize, chain_at: &[usize]| chains[chain].get(chain_at[chain]).copied();

    let admit = |i: usize,
                 is_head: &mut Vec<bool>,
                 ready: &mut BinaryHeap<Reverse<Prio>>,
                 blocked: &mut BTreeSet<Prio>,
                 chain_at: &[usize]| {
        is_head[i] = true;
        let free = chain_of[i].is_none_or(|c| chain_head(c, chain_at) == Some(i));
        if free {
            ready.push(Reverse(prio(i)));
        } else {
            blocked.insert(prio(i));
        }
    };
    for q in &queues {
        if let Some(&i) = q.last() {
            admit(i, &mut is_head, &mut ready, &mut blocked, &chain_at);
        }
    }

    let mut order = Vec::with_capacity(n);
    loop {
        let i = if let Some(Reverse(p)) = ready.pop() {
            p.4
        } else if let Some(p) = blocked.pop_first() {
            p.4 // a cycle: the earliest waiting record goes first
        } else {
            break;
        };
        order.push(i);
        done[i] = true;
        is_head[i] = false;
        if let Some(c) = chain_of[i] {
            while chains[c].get(chain_at[c]).is_some_and(|&j| done[j]) {
                chain_at[c] += 1;
            }
            if let Some(j) = chain_head(c, &chain_at)
                && is_head[j]
                && blocked.remove(&prio(j))
            {
                ready.push(Reverse(prio(j)));
            }
        }
        let q = &mut queues[rank[records[i].agent.as_str()]];
        q.pop();
        if let Some(&h) = q.last() {
            admit(h, &mut is_head, &mut ready, &mut blocked, &chain_at);
        }
    }

    let mut slots: Vec<Option<LogRecord>> = records.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opcodes::LogOutcome;

    fn rec(agent: &str, seq: u64, t_ns: u64, op: LogOp, key: &str, rev: Option<u64>) -> LogRecord {
        LogRecord {
            seq,
            t_ns,
            agent: agent.to_owned(),
            op,
            outcome: LogOutcome::Ok,
            key: Some(key.to_owned()),
            version: 0,
            held: 0,
            count: 1,
            bytes: 0,
            other: None,
            mode: None,
            revision: rev,
        }
    }

    fn names(records: &[LogRecord]) -> Vec<String> {
        records
            .iter()
            .map(|r| format!("{}{}", r.agent, r.seq))
            .collect()
    }

    #[test]
    fn time_order_unless_a_keys_revisions_or_an_agents_seqs_say_otherwise() {
        // b's clock is 10 behind: its write at revision 11 is stamped before a's at 10.
        let records = vec![
            rec("a", 0, 100, LogOp::Put, "k", Some(10)),
            rec("a", 1, 101, LogOp::Get, "k", None),
            rec("b", 0, 95, LogOp::Get, "x", None),
            rec("b", 1, 96, LogOp::Put, "k", Some(11)),
            rec("b", 2, 97, LogOp::Get, "y", None),
            rec("c", 0, 98, LogOp::Get, "z", None),
        ];
        let merged = merge_order(records.clone());
        assert_eq!(names(&merged), ["b0", "c0", "a0", "b1", "b2", "a1"]);
        // Without revisions: time alone.
        let plain: Vec<_> = records
            .into_iter()
            .map(|r| LogRecord {
                revision: None,
                ..r
            })
            .collect();
        assert_eq!(
            names(&merge_order(plain)),
            ["b0", "b1", "b2", "c0", "a0", "a1"]
        );
    }

    #[test]
    fn seq_order_within_an_agent_and_cycles_are_broken() {
        // An agent's clock stepped back: seq order still holds.
        let records = vec![
            rec("a", 1, 5, LogOp::Get, "k", None),
            rec("a", 0, 9, LogOp::Get, "k", None),
        ];
        assert_eq!(names(&merge_order(records)), ["a0", "a1"]);
        // Two threads of one agent: seq order and revision order disagree.
        let records = vec![
            rec("a", 0, 1, LogOp::Put, "k", Some(8)),
            rec("a", 1, 2, LogOp::Put, "k", Some(7)),
            rec("b", 0, 3, LogOp::Put, "k", Some(9)),
        ];
        let merged = merge_order(records);
        assert_eq!(merged.len(), 3);
        assert_eq!(names(&merged), ["a0", "a1", "b0"]);
        // A lost marker precedes the record after its gap.
        let mut lost = rec("a", 4, 7, LogOp::Lost, "k", None);
        lost.key = None;
        let records = vec![rec("a", 4, 7, LogOp::Get, "k", None), lost];
        let merged = merge_order(records);
        assert_eq!(merged[0].op, LogOp::Lost);
    }
}

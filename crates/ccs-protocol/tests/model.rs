//! Model-based test: random sequences of operations by several agents, run on the real
//! [`Directory`] (heap layout, [`MemEnv`]) and on a small sequential reference model of the
//! protocol (docs/protocol.md §2 and §4), comparing every result: `Ok` values, error kinds and
//! their fields, versions, HIT/MISS and valid flags, bytes, MESI cells.
//!
//! Sequential only: interleavings are loom's job (`tests/loom.rs`). The clock never moves, so
//! leases do not expire here; every agent stays alive.

#![cfg(not(loom))]

use std::collections::BTreeSet;

use ccs_protocol::testing::MemEnv;
use ccs_protocol::{
    AgentId, Cell, Condition, Config, Directory, Geometry, HeapWords, Hold, Mesi, ProtocolError,
    ReadInfo, ViewCheck,
};
use proptest::prelude::*;

const MAX_PAYLOAD: usize = 64;
/// Acquire leases long enough never to expire (the clock stays at 1 ms).
const LEASE_MS: u64 = 1 << 20;

fn config() -> Config {
    Config {
        max_agents: 4,
        max_artifacts: 4,
        arena_bytes: 64 << 10,
        max_payload: MAX_PAYLOAD as u64,
        write_lease_ms: 1000,
        log_records: 64,
        inbox_events: 16,
    }
}

#[derive(Debug, Clone, Copy)]
enum Cond {
    View,
    /// `Condition::Version(current + delta - 1)`: the current version when `delta` is 1.
    Version(u8),
    Blind,
}

#[derive(Debug, Clone)]
enum Op {
    Get {
        agent: usize,
        key: usize,
    },
    GetPinned {
        agent: usize,
        key: usize,
    },
    Put {
        agent: usize,
        key: usize,
        cond: Cond,
        len: usize,
        fill: u8,
    },
    Delete {
        agent: usize,
        key: usize,
        cond: Cond,
    },
    Acquire {
        agent: usize,
        key: usize,
    },
    /// Commit one of the agent's holds (live or stale); some payloads exceed the maximum.
    Commit {
        agent: usize,
        hold: usize,
        len: usize,
        fill: u8,
    },
    Release {
        agent: usize,
        hold: usize,
    },
    Check {
        agent: usize,
        key: usize,
    },
    Cell {
        agent: usize,
        key: usize,
    },
    /// Attach the agent again: fences its earlier handle and frees the lines it held.
    Reattach {
        agent: usize,
    },
    /// A put through the agent's first handle, fenced if it has re-attached since.
    StalePut {
        agent: usize,
        key: usize,
    },
    List,
}

fn cond() -> impl Strategy<Value = Cond> {
    prop_oneof![
        3 => Just(Cond::View),
        2 => (0u8..4).prop_map(Cond::Version),
        1 => Just(Cond::Blind),
    ]
}

fn op(agents: usize, keys: usize) -> impl Strategy<Value = Op> {
    let a = 0..agents;
    let k = 0..keys;
    prop_oneof![
        5 => (a.clone(), k.clone()).prop_map(|(agent, key)| Op::Get { agent, key }),
        1 => (a.clone(), k.clone()).prop_map(|(agent, key)| Op::GetPinned { agent, key }),
        5 => (a.clone(), k.clone(), cond(), 0..=MAX_PAYLOAD + 8, any::<u8>())
            .prop_map(|(agent, key, cond, len, fill)| Op::Put { agent, key, cond, len, fill }),
        2 => (a.clone(), k.clone(), cond())
            .prop_map(|(agent, key, cond)| Op::Delete { agent, key, cond }),
        2 => (a.clone(), k.clone()).prop_map(|(agent, key)| Op::Acquire { agent, key }),
        2 => (a.clone(), 0..8usize, 0..=MAX_PAYLOAD + 8, any::<u8>())
            .prop_map(|(agent, hold, len, fill)| Op::Commit { agent, hold, len, fill }),
        1 => (a.clone(), 0..8usize).prop_map(|(agent, hold)| Op::Release { agent, hold }),
        2 => (a.clone(), k.clone()).prop_map(|(agent, key)| Op::Check { agent, key }),
        1 => (a.clone(), k.clone()).prop_map(|(agent, key)| Op::Cell { agent, key }),
        1 => a.clone().prop_map(|agent| Op::Reattach { agent }),
        1 => (a, k).prop_map(|(agent, key)| Op::StalePut { agent, key }),
        1 => Just(Op::List),
    ]
}

fn scenario() -> impl Strategy<Value = (usize, usize, Vec<Op>)> {
    (2usize..=4, 2usize..=4).prop_flat_map(|(agents, keys)| {
        (
            Just(agents),
            Just(keys),
            proptest::collection::vec(op(agents, keys), 1..80),
        )
    })
}

fn payload(len: usize, fill: u8) -> Vec<u8> {
    (0..len).map(|i| fill.wrapping_add(i as u8)).collect()
}

// ---------------------------------------------------------------------------------------------
// The reference model.

#[derive(Debug, Clone, Default)]
struct Artifact {
    /// Current version (0: never written).
    version: u64,
    bytes: Vec<u8>,
    /// The current version is a tombstone.
    deleted: bool,
    /// The live exclusive hold: (agent, hold id).
    holder: Option<(usize, usize)>,
}

#[derive(Debug, Clone, Copy)]
struct ModelHold {
    agent: usize,
    key: usize,
    /// The agent's attach count when the hold was taken.
    generation: u32,
}

struct Model {
    artifacts: Vec<Artifact>,
    /// view[agent][key]: version last read or written (0: never).
    view: Vec<Vec<u64>>,
    /// valid[agent][key]: the agent's valid bit.
    valid: Vec<Vec<bool>>,
    generation: Vec<u32>,
    holds: Vec<ModelHold>,
    keys: Vec<String>,
}

impl Model {
    fn new(agents: usize, keys: &[String]) -> Model {
        Model {
            artifacts: vec![Artifact::default(); keys.len()],
            view: vec![vec![0; keys.len()]; agents],
            valid: vec![vec![false; keys.len()]; agents],
            generation: vec![0; agents],
            holds: Vec::new(),
            keys: keys.to_vec(),
        }
    }

    /// A get: Ok((info, bytes)) or the error.
    fn get(&mut self, a: usize, k: usize) -> Result<(ReadInfo, Vec<u8>), ProtocolError> {
        let art = &self.artifacts[k];
        if art.version == 0 {
            return Err(ProtocolError::NotFound);
        }
        if art.deleted {
            // Seen deleted: the tombstone becomes the reader's view (docs/protocol.md §4).
            self.view[a][k] = self.view[a][k].max(art.version);
            return Err(ProtocolError::NotFound);
        }
        let version = art.version;
        if self.view[a][k] != 0 && self.valid[a][k] && self.view[a][k] == version {
            let info = ReadInfo {
                version,
                hit: true,
                valid: true,
            };
            return Ok((info, art.bytes.clone()));
        }
        self.view[a][k] = version;
        // A MISS on a line held by a writer returns the bytes without claiming S.
        let valid = art.holder.is_none();
        self.valid[a][k] = valid;
        Ok((
            ReadInfo {
                version,
                hit: false,
                valid,
            },
            art.bytes.clone(),
        ))
    }

    /// Publish a new version by `a` (put, delete or commit): peers S → I, `a` → S.
    fn publish(&mut self, a: usize, k: usize, bytes: Option<Vec<u8>>) -> u64 {
        for valid in &mut self.valid {
            valid[k] = false;
        }
        let art = &mut self.artifacts[k];
        art.version += 1;
        art.deleted = bytes.is_none();
        art.bytes = bytes.unwrap_or_default();
        art.holder = None;
        self.view[a][k] = art.version;
        self.valid[a][k] = true;
        art.version
    }

    fn write(
        &mut self,
        a: usize,
        k: usize,
        bytes: Option<Vec<u8>>,
        cond: Condition,
    ) -> Result<u64, ProtocolError> {
        if let Some(bytes) = &bytes
            && bytes.len() > MAX_PAYLOAD
        {
            return Err(ProtocolError::PayloadTooLarge {
                len: bytes.len() as u64,
                max: MAX_PAYLOAD as u64,
            });
        }
        let art = &self.artifacts[k];
        if let Some((holder, _)) = art.holder {
            return Err(ProtocolError::Held { by: holder as u32 });
        }
        if bytes.is_none() && (art.version == 0 || art.deleted) {
            return Err(ProtocolError::NotFound);
        }
        let current = art.version;
        match cond {
            Condition::Blind => {}
            Condition::Version(expected) if expected == current => {}
            Condition::Version(expected) => {
                return Err(ProtocolError::Conflict {
                    current,
                    yours: expected,
                });
            }
            Condition::View => {
                let held = self.view[a][k];
                if held != 0 && held != current {
                    return Err(ProtocolError::Conflict {
                        current,
                        yours: held,
                    });
                }
            }
        }
        Ok(self.publish(a, k, bytes))
    }

    fn acquire(&mut self, a: usize, k: usize) -> Result<usize, ProtocolError> {
        if let Some((holder, _)) = self.artifacts[k].holder {
            return Err(ProtocolError::Held { by: holder as u32 });
        }
        let id = self.holds.len();
        self.holds.push(ModelHold {
            agent: a,
            key: k,
            generation: self.generation[a],
        });
        self.artifacts[k].holder = Some((a, id));
        Ok(id)
    }

    fn commit(&mut self, id: usize, bytes: Vec<u8>) -> Result<u64, ProtocolError> {
        let hold = self.holds[id];
        if hold.generation != self.generation[hold.agent] {
            return Err(ProtocolError::Fenced); // the generation check comes first
        }
        if bytes.len() > MAX_PAYLOAD {
            // Refused like a put, and the right is given up (if it was still held).
            if self.artifacts[hold.key].holder == Some((hold.agent, id)) {
                self.artifacts[hold.key].holder = None;
            }
            return Err(ProtocolError::PayloadTooLarge {
                len: bytes.len() as u64,
                max: MAX_PAYLOAD as u64,
            });
        }
        if self.artifacts[hold.key].holder != Some((hold.agent, id)) {
            // The right was given up or reclaimed. The write invalidates before it tries to
            // publish (protocol.md §3.5 step 4), so peers lose their valid bits all the same.
            for valid in &mut self.valid {
                valid[hold.key] = false;
            }
            return Err(ProtocolError::Fenced);
        }
        Ok(self.publish(hold.agent, hold.key, Some(bytes)))
    }

    fn release(&mut self, id: usize) -> Result<(), ProtocolError> {
        let hold = self.holds[id];
        if self.artifacts[hold.key].holder != Some((hold.agent, id)) {
            return Err(ProtocolError::Fenced);
        }
        self.artifacts[hold.key].holder = None;
        Ok(())
    }

    fn reattach(&mut self, a: usize) {
        self.generation[a] += 1;
        for art in &mut self.artifacts {
            if matches!(art.holder, Some((holder, _)) if holder == a) {
                art.holder = None;
            }
        }
    }

    fn check(&self, a: usize, k: usize) -> ViewCheck {
        let held = self.view[a][k];
        ViewCheck {
            held,
            current: self.artifacts[k].version,
            valid: held != 0 && self.valid[a][k],
        }
    }

    fn cell(&self, a: usize, k: usize) -> Cell {
        let held = self.view[a][k];
        let state = match self.artifacts[k].holder {
            Some((holder, _)) if holder == a => Mesi::Exclusive,
            _ if held != 0 && self.valid[a][k] => Mesi::Shared,
            _ => Mesi::Invalid,
        };
        Cell { state, held }
    }

    fn list(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .artifacts
            .iter()
            .zip(&self.keys)
            .filter(|(art, _)| art.version != 0 && !art.deleted)
            .map(|(_, key)| key.clone())
            .collect();
        keys.sort();
        keys
    }
}

// ---------------------------------------------------------------------------------------------
// The system under test, driven in lockstep.

struct System {
    /// Owns its heap storage.
    dir: Directory<MemEnv>,
    /// Every handle of each agent, first attach first.
    ids: Vec<Vec<AgentId>>,
    lines: Vec<u32>,
    /// Real holds, indexed like the model's.
    holds: Vec<Hold>,
    /// Hold ids per agent, in order taken.
    holds_of: Vec<Vec<usize>>,
}

fn condition(model: &Model, k: usize, cond: Cond) -> Condition {
    match cond {
        Cond::View => Condition::View,
        Cond::Version(delta) => {
            Condition::Version((model.artifacts[k].version + u64::from(delta)).saturating_sub(1))
        }
        Cond::Blind => Condition::Blind,
    }
}

fn run(agents: usize, keys: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let config = config();
    let geometry = Geometry::new(config).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let heap = HeapWords::new(geometry.total_bytes as usize);
    let dir = Directory::create_on_heap(heap, config, MemEnv::new(config.max_agents))
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let key_names: Vec<String> = (0..keys).map(|k| format!("key/{k}")).collect();
    let mut ids = Vec::new();
    for a in 0..agents {
        let slot = dir.register_agent(&format!("agent{a}")).expect("register");
        prop_assert_eq!(slot, a as u32);
        ids.push(vec![
            dir.begin_attach(slot, 100 + a as u32).expect("attach"),
        ]);
    }
    let lines = key_names
        .iter()
        .map(|key| dir.find_or_insert_key(key).expect("key"))
        .collect();
    let mut sys = System {
        dir,
        ids,
        lines,
        holds: Vec::new(),
        holds_of: vec![Vec::new(); agents],
    };
    let mut model = Model::new(agents, &key_names);

    for (step, op) in ops.iter().enumerate() {
        let me = |sys: &System, a: usize| *sys.ids[a].last().expect("attached");
        match *op {
            Op::Get { agent, key } => {
                let mut buf = Vec::new();
                let got = sys.dir.read(me(&sys, agent), sys.lines[key], &mut buf);
                let want = model.get(agent, key);
                let got = got.map(|info| (info, buf));
                prop_assert_eq!(got, want, "step {}: {:?}", step, op);
            }
            Op::GetPinned { agent, key } => {
                let got =
                    sys.dir
                        .read_pinned(me(&sys, agent), sys.lines[key])
                        .map(|(info, pin)| {
                            let mut bytes = Vec::new();
                            if let Some(first) = pin.first_word {
                                sys.dir
                                    .words()
                                    .copy_out(first, pin.len, &mut bytes)
                                    .expect("pinned bytes");
                            }
                            assert_eq!(pin.version, info.version);
                            sys.dir.release_pin(pin).expect("unpin");
                            (info, bytes)
                        });
                let want = model.get(agent, key);
                prop_assert_eq!(got, want, "step {}: {:?}", step, op);
            }
            Op::Put {
                agent,
                key,
                cond,
                len,
                fill,
            } => {
                let bytes = payload(len, fill);
                let c = condition(&model, key, cond);
                let got = sys.dir.put(me(&sys, agent), sys.lines[key], &bytes, c);
                let want = model.write(agent, key, Some(bytes), c);
                prop_assert_eq!(got, want, "step {}: {:?} ({:?})", step, op, c);
            }
            Op::Delete { agent, key, cond } => {
                let c = condition(&model, key, cond);
                let got = sys.dir.delete(me(&sys, agent), sys.lines[key], c);
                let want = model.write(agent, key, None, c);
                prop_assert_eq!(got, want, "step {}: {:?} ({:?})", step, op, c);
            }
            Op::Acquire { agent, key } => {
                let got = sys.dir.acquire(me(&sys, agent), sys.lines[key], LEASE_MS);
                let want = model.acquire(agent, key);
                match (got, want) {
                    (Ok(hold), Ok(id)) => {
                        prop_assert_eq!(hold.version, model.artifacts[key].version);
                        prop_assert_eq!(hold.deleted, model.artifacts[key].deleted);
                        prop_assert_eq!(sys.holds.len(), id);
                        sys.holds.push(hold);
                        sys.holds_of[agent].push(id);
                    }
                    (got, want) => prop_assert_eq!(
                        got.map(|_| ()),
                        want.map(|_| ()),
                        "step {}: {:?}",
                        step,
                        op
                    ),
                }
            }
            Op::Commit {
                agent,
                hold,
                len,
                fill,
            } => {
                let Some(&id) = sys.holds_of[agent].get(hold % sys.holds_of[agent].len().max(1))
                else {
                    continue;
                };
                let bytes = payload(len, fill);
                let got = sys.dir.commit(sys.holds[id], &bytes);
                let want = model.commit(id, bytes);
                prop_assert_eq!(got, want, "step {}: {:?} (hold {})", step, op, id);
            }
            Op::Release { agent, hold } => {
                let Some(&id) = sys.holds_of[agent].get(hold % sys.holds_of[agent].len().max(1))
                else {
                    continue;
                };
                let got = sys.dir.release(sys.holds[id]);
                let want = model.release(id);
                prop_assert_eq!(got, want, "step {}: {:?} (hold {})", step, op, id);
            }
            Op::Check { agent, key } => {
                let got = sys.dir.check(me(&sys, agent), sys.lines[key]);
                prop_assert_eq!(got, Ok(model.check(agent, key)), "step {}: {:?}", step, op);
            }
            Op::Cell { agent, key } => {
                let got = sys.dir.cell(agent as u32, sys.lines[key]);
                prop_assert_eq!(got, Ok(model.cell(agent, key)), "step {}: {:?}", step, op);
            }
            Op::Reattach { agent } => {
                let id = sys.dir.begin_attach(agent as u32, 200 + step as u32);
                let id = id.map_err(|e| TestCaseError::fail(format!("step {step}: {e}")))?;
                let previous = me(&sys, agent);
                prop_assert_eq!(id.generation, previous.generation + 1);
                sys.ids[agent].push(id);
                model.reattach(agent);
            }
            Op::StalePut { agent, key } => {
                let first = sys.ids[agent][0];
                let got = sys
                    .dir
                    .put(first, sys.lines[key], b"stale", Condition::Blind);
                let want = if sys.ids[agent].len() > 1 {
                    Err(ProtocolError::Fenced)
                } else {
                    model.write(agent, key, Some(b"stale".to_vec()), Condition::Blind)
                };
                prop_assert_eq!(got, want, "step {}: {:?}", step, op);
            }
            Op::List => {
                let got = sys.dir.keys_with_prefix("key/");
                prop_assert_eq!(got, Ok(model.list()), "step {}", step);
            }
        }
        // After every step: every agent's cell on every key agrees with the model.
        for a in 0..agents {
            for k in 0..keys {
                let got = sys.dir.cell(a as u32, sys.lines[k]);
                prop_assert_eq!(
                    got,
                    Ok(model.cell(a, k)),
                    "after step {}: agent {} key {}",
                    step,
                    a,
                    k
                );
            }
        }
    }
    // Nothing leaked: with no pins left, every live descriptor is a current version.
    let live: BTreeSet<u32> = (0..keys)
        .filter(|&k| model.artifacts[k].version != 0)
        .map(|k| k as u32)
        .collect();
    let rows = sys
        .dir
        .artifact_rows()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(rows.len(), keys);
    for row in rows {
        let k: usize = row.key["key/".len()..].parse().expect("key index");
        prop_assert_eq!(row.version, model.artifacts[k].version);
        prop_assert_eq!(row.deleted, model.artifacts[k].deleted);
        prop_assert_eq!(row.holder, model.artifacts[k].holder.map(|(a, _)| a as u32));
        prop_assert_eq!(live.contains(&(k as u32)), row.version != 0);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        // 2000 cases take a few seconds in a debug build; PROPTEST_CASES overrides (Miri: 4).
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|cases| cases.parse().ok())
            .unwrap_or(2000),
        // Failures print the shrunk case; no regression files are written into the tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Several agents, several keys, random operations: the directory behaves as the model.
    #[test]
    fn directory_matches_the_sequential_model((agents, keys, ops) in scenario()) {
        run(agents, keys, &ops)?;
    }
}

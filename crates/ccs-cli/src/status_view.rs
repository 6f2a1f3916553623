//! Rendering a [`Status`] snapshot: the human table and the stable JSON (schema 1).
//!
//! The JSON schema, also shown by `ccs status --help`:
//!
//! ```text
#![doc = include_str!("status_schema.txt")]
//! ```

use agent_coherence::{AgentStatus, ArtifactStatus, Backend, Config, Status};
use serde::Serialize;

use crate::size::format_size;
use crate::table::{self, Align};

/// The JSON schema of `ccs status --json`, as shown in its `--help`.
pub const JSON_SCHEMA_HELP: &str = include_str!("status_schema.txt");

/// The value of the `"schema"` field.
pub const SCHEMA_VERSION: u32 = 1;

/// `ccs status --json` output; see the module docs for the schema.
#[derive(Debug, Serialize)]
pub struct JsonStatus<'a> {
    /// Always [`SCHEMA_VERSION`].
    pub schema: u32,
    /// The segment as named.
    pub segment: &'a str,
    /// `shm` or `etcd`.
    pub backend: &'static str,
    /// The etcd revision the snapshot was read at (`null` on shared memory).
    pub revision: Option<i64>,
    /// Its sizes (on etcd, the engine's limits; 0: no fixed limit).
    pub config: JsonConfig,
    /// Registered agents.
    pub agents: Vec<JsonAgent<'a>>,
    /// Artifacts, sorted by key.
    pub artifacts: Vec<JsonArtifact<'a>>,
}

/// The segment's sizes in the JSON output.
#[derive(Debug, Serialize)]
pub struct JsonConfig {
    /// Most agents that can ever register.
    pub max_agents: u32,
    /// Most distinct keys.
    pub max_artifacts: u32,
    /// Bytes of payload storage.
    pub arena_bytes: u64,
    /// Largest single payload.
    pub max_payload: u64,
    /// Lease of a put's transient hold.
    pub write_lease_ms: u64,
}

/// One agent in the JSON output.
#[derive(Debug, Serialize)]
pub struct JsonAgent<'a> {
    /// Its name.
    pub name: &'a str,
    /// Pid of the attached process (`null`: detached).
    pub pid: Option<u32>,
    /// Machine of the live session on etcd (`null` on shared memory).
    pub host: Option<&'a str>,
    /// A live process holds its kernel lock.
    pub alive: bool,
    /// `alive`, `dead` or `detached`.
    pub liveness: &'static str,
    /// Attach generation.
    pub generation: u64,
    /// Freshness strategy: `lazy`, `eager`, `lease:MSms` or `access_count:N`.
    pub strategy: String,
    /// Key prefixes an eager agent is subscribed to.
    pub subscriptions: &'a [String],
}

/// One artifact in the JSON output.
#[derive(Debug, Serialize)]
pub struct JsonArtifact<'a> {
    /// Its key.
    pub key: &'a str,
    /// Current version.
    pub version: u64,
    /// Bytes of the current version.
    pub size: u64,
    /// Who wrote the current version.
    pub writer: Option<&'a str>,
    /// The current version is a deletion.
    pub deleted: bool,
    /// Who holds its single-writer right now.
    pub holder: Option<&'a str>,
    /// Every agent's state on it, in agent order.
    pub states: Vec<JsonState<'a>>,
}

/// One agent's state on one artifact in the JSON output.
#[derive(Debug, Serialize)]
pub struct JsonState<'a> {
    /// The agent's name.
    pub agent: &'a str,
    /// `M`, `E`, `S` or `I`.
    pub state: String,
    /// The version it last read or wrote (`null`: never).
    pub held: Option<u64>,
}

/// An agent's liveness in one word: `alive`, `dead` (a pid is recorded but its process no
/// longer holds the lock) or `detached`.
pub fn liveness(agent: &AgentStatus) -> &'static str {
    match (agent.alive, agent.pid) {
        (true, _) => "alive",
        (false, Some(_)) => "dead",
        (false, None) => "detached",
    }
}

fn json_config(config: &Config) -> JsonConfig {
    JsonConfig {
        max_agents: config.max_agents,
        max_artifacts: config.max_artifacts,
        arena_bytes: config.arena_bytes,
        max_payload: config.max_payload,
        write_lease_ms: config.write_lease_ms,
    }
}

fn json_artifact(artifact: &ArtifactStatus) -> JsonArtifact<'_> {
    JsonArtifact {
        key: &artifact.key,
        version: artifact.version,
        size: artifact.size,
        writer: artifact.writer.as_deref(),
        deleted: artifact.deleted,
        holder: artifact.holder.as_deref(),
        states: artifact
            .states
            .iter()
            .map(|s| JsonState {
                agent: &s.agent,
                state: s.state.letter().to_string(),
                held: s.held,
            })
            .collect(),
    }
}

/// The JSON view of `status` for the segment named `segment`.
pub fn to_json<'a>(segment: &'a str, status: &'a Status) -> JsonStatus<'a> {
    JsonStatus {
        schema: SCHEMA_VERSION,
        segment,
        backend: backend_word(status.backend),
        revision: status.revision,
        config: json_config(&status.config),
        agents: status
            .agents
            .iter()
            .map(|a| JsonAgent {
                name: &a.name,
                pid: a.pid,
                host: a.host.as_deref(),
                alive: a.alive,
                liveness: liveness(a),
                generation: a.generation,
                strategy: a.strategy.to_string(),
                subscriptions: &a.subscriptions,
            })
            .collect(),
        artifacts: status.artifacts.iter().map(json_artifact).collect(),
    }
}

fn or_dash(value: Option<&str>) -> String {
    value.unwrap_or("-").to_owned()
}

/// The backend in one word, as in the JSON: `shm` or `etcd`.
pub fn backend_word(backend: Backend) -> &'static str {
    match backend {
        Backend::Etcd => "etcd",
        _ => "shm",
    }
}

/// The summary line: the sizes of a shared-memory segment, or the revision of an etcd one.
fn summary(segment: &str, status: &Status) -> String {
    let config = &status.config;
    match status.backend {
        Backend::Etcd => format!(
            "segment {segment}: etcd cluster at revision {}, {} agents, {} artifacts, max payload {}\n\n",
            status.revision.unwrap_or(0),
            status.agents.len(),
            status.artifacts.len(),
            format_size(config.max_payload),
        ),
        _ => format!(
            "segment {segment}: {}/{} agents, {}/{} artifacts, arena {}, max payload {}\n\n",
            status.agents.len(),
            config.max_agents,
            status.artifacts.len(),
            config.max_artifacts,
            format_size(config.arena_bytes),
            format_size(config.max_payload),
        ),
    }
}

/// The human table: a summary line, one row per artifact (KEY, VER, SIZE, WRITER, HOLDER, then
/// one column per agent such as `S v3`, `I v2`, `I -`), then the agents.
///
/// On etcd the agents' rows show the HOST of each live session instead of the GENERATION and
/// STRATEGY, which the cluster does not record.
pub fn to_table(segment: &str, status: &Status) -> String {
    let mut out = summary(segment, status);
    if status.artifacts.is_empty() {
        out.push_str("no artifacts\n");
    } else {
        let mut header: Vec<String> = ["KEY", "VER", "SIZE", "WRITER", "HOLDER"]
            .iter()
            .map(|h| (*h).to_owned())
            .collect();
        header.extend(status.agents.iter().map(|a| a.name.clone()));
        let mut rows = vec![header];
        for artifact in &status.artifacts {
            let size = if artifact.deleted {
                "deleted".to_owned()
            } else {
                artifact.size.to_string()
            };
            let mut row = vec![
                artifact.key.clone(),
                artifact.version.to_string(),
                size,
                or_dash(artifact.writer.as_deref()),
                or_dash(artifact.holder.as_deref()),
            ];
            row.extend(artifact.states.iter().map(|s| match s.held {
                Some(v) => format!("{} v{v}", s.state.letter()),
                None => format!("{} -", s.state.letter()),
            }));
            rows.push(row);
        }
        out.push_str(&table::render(&rows, |_| Align::Left));
    }
    out.push('\n');
    if status.agents.is_empty() {
        out.push_str("no agents\n");
    } else {
        let etcd = status.backend == Backend::Etcd;
        let header: &[&str] = if etcd {
            &["AGENT", "HOST", "PID", "LIVENESS"]
        } else {
            &["AGENT", "PID", "LIVENESS", "GENERATION", "STRATEGY"]
        };
        let mut rows = vec![header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>()];
        for agent in &status.agents {
            let pid = agent.pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
            rows.push(if etcd {
                vec![
                    agent.name.clone(),
                    or_dash(agent.host.as_deref()),
                    pid,
                    liveness(agent).to_owned(),
                ]
            } else {
                vec![
                    agent.name.clone(),
                    pid,
                    liveness(agent).to_owned(),
                    agent.generation.to_string(),
                    agent.strategy.to_string(),
                ]
            });
        }
        out.push_str(&table::render(&rows, |_| Align::Left));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_coherence::{AgentState, Mesi};

    fn sample() -> Status {
        Status {
            backend: Backend::SharedMemory,
            revision: None,
            config: Config {
                max_agents: 8,
                max_artifacts: 64,
                arena_bytes: 1 << 20,
                max_payload: 64 << 10,
                ..Config::default()
            },
            agents: vec![
                AgentStatus {
                    name: "planner".into(),
                    pid: None,
                    host: None,
                    alive: false,
                    generation: 2,
                    strategy: Default::default(),
                    subscriptions: Vec::new(),
                },
                AgentStatus {
                    name: "executor".into(),
                    pid: Some(42),
                    host: None,
                    alive: false,
                    generation: 1,
                    strategy: Default::default(),
                    subscriptions: Vec::new(),
                },
            ],
            artifacts: vec![ArtifactStatus {
                key: "plan".into(),
                version: 2,
                size: 5,
                writer: Some("planner".into()),
                deleted: false,
                holder: None,
                states: vec![
                    AgentState {
                        agent: "planner".into(),
                        state: Mesi::Shared,
                        held: Some(2),
                    },
                    AgentState {
                        agent: "executor".into(),
                        state: Mesi::Invalid,
                        held: Some(1),
                    },
                ],
            }],
        }
    }

    #[test]
    fn table_has_one_row_per_artifact_and_agent_columns() {
        let table = to_table("seg", &sample());
        assert!(table.starts_with(
            "segment seg: 2/8 agents, 1/64 artifacts, arena 1 MiB, max payload 64 KiB\n"
        ));
        assert!(table.contains("KEY   VER  SIZE  WRITER   HOLDER  planner  executor\n"));
        assert!(table.contains("plan  2    5     planner  -       S v2     I v1\n"));
        assert!(table.contains("planner   -    detached  2           lazy\n"));
        assert!(table.contains("executor  42   dead      1           lazy\n"));
    }

    #[test]
    fn json_has_schema_and_letters() -> Result<(), serde_json::Error> {
        let status = sample();
        let value = serde_json::to_value(to_json("seg", &status))?;
        assert_eq!(value["schema"], 1);
        assert_eq!(value["backend"], "shm");
        assert!(value["revision"].is_null());
        assert_eq!(value["config"]["max_payload"], 65536);
        assert_eq!(value["agents"][1]["liveness"], "dead");
        assert_eq!(value["agents"][1]["strategy"], "lazy");
        assert_eq!(value["artifacts"][0]["states"][1]["state"], "I");
        assert_eq!(value["artifacts"][0]["states"][1]["held"], 1);
        assert!(value["artifacts"][0]["holder"].is_null());
        Ok(())
    }
}

//! The heap-layout fixture shared by the protocol's in-process tests.

#![allow(dead_code)] // each test file uses its own subset

use ccs_protocol::testing::MemEnv;
use ccs_protocol::{AgentId, Config, Directory, Geometry, HeapWords};

/// A directory on a heap layout with an in-memory environment.
pub struct Fixture {
    /// Owns its heap storage.
    pub dir: Directory<MemEnv>,
}

/// 8 agents, 16 artifacts, a 64 KiB arena of payloads up to 8 KiB.
pub fn config() -> Config {
    Config {
        max_agents: 8,
        max_artifacts: 16,
        arena_bytes: 64 << 10,
        max_payload: 8 << 10,
        write_lease_ms: 1000,
        log_records: 64,
        inbox_events: 16,
    }
}

/// A fresh directory for `config`.
pub fn fixture(config: Config) -> Fixture {
    let heap = HeapWords::new(Geometry::new(config).expect("config").total_bytes as usize);
    let dir =
        Directory::create_on_heap(heap, config, MemEnv::new(config.max_agents)).expect("create");
    Fixture { dir }
}

/// Register (if new) and attach `name`.
pub fn agent(dir: &Directory<MemEnv>, name: &str) -> AgentId {
    dir.begin_attach(dir.register_agent(name).expect("register"), 1)
        .expect("attach")
}

//! The repository's segment: its name, created on first use (mode 0600, owner only), and
//! attaching an agent to it while other hook processes of the same agent may hold the name.

use std::path::Path;
use std::time::{Duration, Instant};

use agent_coherence::{Agent, Config, Error, OpenOptions, Segment};

use super::fingerprint::{hex, sha256};

/// Environment variable that names the segment instead (tests, or sharing across repos).
pub const SEGMENT_ENV: &str = "CCS_HOOK_SEGMENT";

/// The agent that publishes changes made outside any session's tools (an editor, a formatter
/// run by a shell command): its writes invalidate every session's copy.
pub const OUTSIDE: &str = "ccs-hook:outside";

/// How long a hook waits for another hook process of the same agent to detach (Claude Code
/// runs a session's parallel tool calls' hooks concurrently).
const BUSY_WAIT: Duration = Duration::from_secs(5);

/// The sizes of a segment the hook creates: every session and sub-agent is an agent, and a dead
/// one's slot is reused only once the table is full (longest-dead first), so there are many;
/// payloads are one-line fingerprints, so the arena is small.
pub fn sizes() -> Config {
    Config {
        max_agents: 512,
        max_artifacts: 2048,
        arena_bytes: 8 << 20,
        max_payload: 4096,
        log_records: 256,
        inbox_events: 0,
        ..Config::default()
    }
}

/// The segment of the repository whose common git dir is `common_dir`:
/// `ccs-hook-UID-HASH`, HASH the first 16 hex digits of the SHA-256 of its path.
pub fn name_for(common_dir: &Path) -> String {
    let digest = hex(&sha256(common_dir.as_os_str().as_encoded_bytes()));
    format!(
        "ccs-hook-{}-{}",
        rustix::process::getuid().as_raw(),
        &digest[..16]
    )
}

/// Open the segment at `location`, creating it on first use.
pub fn open(location: &str) -> Result<Segment, Error> {
    OpenOptions::new().open_or_create(location, sizes())
}

/// Attach as `name`, waiting while another live process is attached under it.
pub fn attach(segment: &Segment, name: &str) -> Result<Agent, Error> {
    let started = Instant::now();
    let mut pause = Duration::from_micros(100);
    loop {
        match segment.attach(name) {
            Err(Error::AgentBusy { .. }) if started.elapsed() < BUSY_WAIT => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

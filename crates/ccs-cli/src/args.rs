//! The command line, as clap derive structs. Parsing only: `commands` does the work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Exit codes, shown at the end of `ccs --help`.
const EXIT_CODES: &str = "\
SEG is a segment: a name (a POSIX shared-memory object under /dev/shm) or a path (it contains '/'),
or an etcd cluster's prefix, etcd://host:port[,host:port...]/prefix, shared across machines.
An agent's identity (what it read, which copies are valid) persists in the segment between
invocations: run each command with the same --agent NAME to act as the same agent. (On etcd a
copy lives in the process that read it: `get` from a new process is a MISS, and `check`
compares the version the agent last read with the current one.) fsck and switch are for
shared-memory segments and exit 2 on etcd; torture and bench ops (--on) run on either, demo
makes its own shared-memory segments (docs/backends.md). An etcd URL's query sets the engine's
options: etcd://h:2379/team?session_ttl=2s&timeout=3s.

Exit codes:
  0  success
  1  any other error (missing or corrupted segment, I/O, segment full, ...)
  2  usage or invalid input (bad SIZE, key or name too long, payload too large, bad config),
     or a command the segment's backend does not support
  3  conflict: a stale or failed conditional write, or the artifact is held by another agent
  4  `check`: the agent's copy is not current
  5  `wait`: timed out before the version passed --since

Errors go to stderr as one sentence prefixed `ccs: `.";

/// `ccs`: MESI cache coherence for AI agents that share artifacts through a shared-memory
/// segment, from the shell.
#[derive(Debug, Parser)]
#[command(name = "ccs", version, about, after_long_help = EXIT_CODES)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// One `ccs` subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a segment and print a one-line summary of its sizes.
    ///
    /// On an etcd:// URL there is nothing to create or size (a prefix exists once written):
    /// check that the cluster answers; --force empties the prefix first.
    ///
    /// SIZE is plain bytes or a number with a suffix K, M, G (or KiB, MiB, GiB): powers of
    /// 1024, case-insensitive.
    Init(InitArgs),
    /// Write an artifact from a file or stdin; print the new version on stdout.
    ///
    /// By default the write is conditional on the agent's own view: refused (exit 3) if the
    /// agent last read an older version than the current one. --if-version N writes only if
    /// the artifact is at version N (0: never written); --blind overwrites whatever is there.
    Put(PutArgs),
    /// Read an artifact: its bytes to stdout (or --out F), `HIT vN` or `MISS vN` on stderr.
    Get(GetArgs),
    /// Tell whether the agent's copy is current: exit 0 with `current vN`, else exit 4 with
    /// `stale: ...` (both on stdout).
    Check(KeyArgs),
    /// Show every agent's MESI state on every artifact, and the agents' liveness.
    ///
    /// With --json, print one JSON object (stable; see the schema below).
    #[command(after_long_help = crate::status_view::JSON_SCHEMA_HELP)]
    Status(StatusArgs),
    /// Remove a segment's name (processes that have it open keep using it); on etcd, delete
    /// everything under the prefix.
    Destroy(SegArgs),
    /// Flush a file-path segment to disk (msync MS_SYNC): everything written before it then
    /// survives a power loss. Succeeds and does nothing durable for a /dev/shm segment, and
    /// nothing at all on etcd, whose writes are durable before they return.
    Sync(SyncArgs),
    /// Delete an artifact (conditional on the agent's view, like `put`); print the deletion's
    /// version.
    Delete(KeyArgs),
    /// List the keys of existing artifacts, one per line, sorted.
    List(ListArgs),
    /// Block until an artifact's version exceeds --since; print the new version.
    ///
    /// Returns at once if it already does. Exits 5 if --timeout-ms passes first (default:
    /// wait forever).
    Wait(WaitArgs),
    /// Measure the protocol: invalidation latency across processes, per-operation costs, and
    /// multi-process throughput. Each run uses its own fresh segment, destroyed at the end.
    Bench(BenchArgs),
    /// Check every structure of a segment; with --repair, fix what is safe to fix.
    ///
    /// Prints one line per problem, `[KIND] SUBJECT: MESSAGE`, then the arena and descriptor
    /// accounting. --repair releases what agents whose processes are gone still hold (lines,
    /// pins, pid) and, only while no agent is attached, returns leaked slots to the free
    /// lists; it says what it repaired and what it could not. Exit 0: clean (after a repair:
    /// everything found was repaired); 1: problems remain; 2: the segment cannot be opened or
    /// its header is invalid.
    #[command(after_long_help = crate::fsck::JSON_SCHEMA_HELP)]
    Fsck(FsckArgs),
    /// List a segment's agents: live or dead, last seen, views held; --forget NAME frees a
    /// dead or detached agent's slot. (A dead agent's slot is also reused automatically when
    /// the table is full.)
    Agents(crate::agents::AgentsArgs),
    /// Internal: one child process of `ccs bench` (re-executed by it; not for direct use).
    #[command(hide = true)]
    BenchChild(BenchChildArgs),
    /// Crash-torture a fresh segment: K workers do random checked operations while random
    /// workers are SIGKILLed and replaced; then check checksums, counters, version order,
    /// fsck and arena leaks. Exit 0 all checks passed, 1 a check failed, 2 bad arguments.
    Torture(crate::torture::TortureArgs),
    /// Internal: one worker of `ccs torture` (re-executed by it; not for direct use).
    #[command(hide = true)]
    TortureWorker(crate::torture::WorkerArgs),
    /// Serve the segment to a model over MCP (stdio) as one agent, until stdin closes.
    ///
    /// Stdout carries the protocol; messages go to stderr. Tools: read, write, check, list,
    /// status, wait_changed, acquire, commit, release.
    Mcp(McpArgs),
    /// Follow the operation log live, one line per operation (or JSON lines with --json).
    ///
    /// Lines look like `[t+0.000412] [MISS] get agent=executor key=task/spec v2 (held v1)`;
    /// times are from the first record shown. A run of HITs shows once, then again as its
    /// count grows (`×N`: the additional HITs). With --subscribe PREFIX --agent NAME, attach
    /// NAME as an eager agent subscribed to PREFIX and show its change events instead. Stops
    /// on Ctrl-C, after --count lines or after --duration-ms.
    Watch(WatchArgs),
    /// Dump every record the operation log holds, merged by time: JSON lines (the schema is
    /// in docs/observability.md) to stdout or --out FILE, or --text for the `watch` format.
    Log(LogArgs),
    /// Check a trace (a segment's live log, or a trace.jsonl from `ccs log`) for single-writer
    /// breaches, non-monotonic versions, stale use, blind overwrites, reclaims and fencing.
    ///
    /// Prints a summary with the offending records (--json: one JSON object). Exit 0: clean;
    /// 1: a breach or risk found; 2: the input could not be read.
    Diagnose(DiagnoseArgs),
    /// Per agent and per artifact: reads, hit rate, bytes served from the agent's current copy
    /// versus fetched, writes, conflicts, and LLM tokens saved (estimated as bytes / 4), over
    /// what the log holds (a segment, or a trace.jsonl).
    Stats(StatsArgs),
    /// Show, or set, a segment's run-time switches: logging, and invalidation (turning
    /// invalidation off is for demonstrations of what goes wrong without it).
    Switch(SwitchArgs),
    /// Run a demo across real processes: `ccs demo refactor` (see `ccs demo refactor --help`).
    Demo(crate::demo::DemoArgs),
    /// Internal: one role process of `ccs demo` (re-executed by it; not for direct use).
    #[command(hide = true)]
    DemoRole(crate::demo::RoleArgs),
    /// Internal, for tests: make a key that does not exist yet start above version --floor
    /// (to take it across a version boundary without writing it that many times).
    #[command(hide = true)]
    RaiseVersionFloor(FloorArgs),
    /// Keep coding-agent sessions (Claude Code, Codex CLI) coherent on the files they edit:
    /// `ccs hook install`, then every session's edit from a stale read is denied.
    ///
    /// See docs/coding-agents.md.
    Hook(crate::hook::HookArgs),
}

/// `ccs watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The segment, and whether another user's is trusted.
    #[command(flatten)]
    pub segment: SegmentArgs,
    /// Only this agent's operations (with --subscribe: the eager agent to attach as).
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
    /// Only operations on keys starting with PREFIX.
    #[arg(long, value_name = "PREFIX")]
    pub key: Option<String>,
    /// Show the change events of eager agent --agent subscribed to PREFIX.
    #[arg(long, value_name = "PREFIX")]
    pub subscribe: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Start from the oldest record the log holds, not from now.
    #[arg(long)]
    pub from_start: bool,
    /// Stop after N lines.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Stop after MS milliseconds.
    #[arg(long, value_name = "MS")]
    pub duration_ms: Option<u64>,
}

/// `ccs log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// The segment, and whether another user's is trusted.
    #[command(flatten)]
    pub segment: SegmentArgs,
    /// Write to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The human one-line format of `watch` instead of JSON lines.
    #[arg(long)]
    pub text: bool,
}

/// `ccs diagnose`.
#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    /// A segment, or a trace file (JSON lines, as written by `ccs log --out`).
    #[arg(value_name = "SEG|TRACE")]
    pub input: String,
    /// One JSON object instead of the summary.
    #[arg(long)]
    pub json: bool,
    /// Open the segment even if another user owns it (refused by default).
    #[arg(long)]
    pub allow_other_owner: bool,
}

/// `ccs stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// A segment, or a trace file (JSON lines, as written by `ccs log --out`).
    #[arg(value_name = "SEG|TRACE")]
    pub input: String,
    /// One JSON object instead of the tables.
    #[arg(long)]
    pub json: bool,
    /// Open the segment even if another user owns it (refused by default).
    #[arg(long)]
    pub allow_other_owner: bool,
}

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

impl From<OnOff> for bool {
    fn from(value: OnOff) -> bool {
        value == OnOff::On
    }
}

/// `ccs switch`.
#[derive(Debug, Args)]
pub struct SwitchArgs {
    /// The segment, and whether another user's is trusted.
    #[command(flatten)]
    pub segment: SegmentArgs,
    /// Record operations in the log, or pause it.
    #[arg(long, value_name = "on|off")]
    pub logging: Option<OnOff>,
    /// Writers invalidate peers' copies (on), or not (off: demonstrations only).
    #[arg(long, value_name = "on|off")]
    pub invalidation: Option<OnOff>,
}

/// The segment a command works on, and the owner policy it is opened with: flattened into
/// every command that opens an existing segment.
#[derive(Debug, Args)]
pub struct SegmentArgs {
    /// Segment: a name under /dev/shm, a path containing '/', or
    /// etcd://host:port[,host:port...]/prefix.
    #[arg(value_name = "SEG")]
    pub seg: String,
    /// Open the segment even if another user owns it (refused by default).
    #[arg(long)]
    pub allow_other_owner: bool,
}

/// `ccs raise-version-floor` (hidden, for tests).
#[derive(Debug, Args)]
pub struct FloorArgs {
    /// The segment, and whether another user's is trusted.
    #[command(flatten)]
    pub segment: SegmentArgs,
    /// A key that has no line yet.
    #[arg(value_name = "KEY")]
    pub key: String,
    /// Its first write publishes a version above this one.
    #[arg(long)]
    pub floor: u64,
}

/// The segment argument alone (commands that create or remove one).
#[derive(Debug, Args)]
pub struct SegArgs {
    /// Segment: a name under /dev/shm, a path containing '/', or
    /// etcd://host:port[,host:port...]/prefix.
    #[arg(value_name = "SEG")]
    pub seg: String,
}

/// `ccs mcp`.
#[derive(Debug, Args)]
pub struct McpArgs {
    /// The segment, and whether another user's is trusted.
    #[command(flatten)]
    pub segment: SegmentArgs,
    /// The agent this server acts as, attached for the server's lifetime.
    #[arg(long, value_name = "NAME")]
    pub agent: String,
    /// Also keep a copy of each artifact written or read as DIR/<key>.
    #[arg(long, value_name = "DIR")]
    pub mirror: Option<PathBuf>,
    /// Refuse content larger than BYTES [default: the segment's max payload].
    #[arg(long, value_name = "BYTES")]
    pub max_content: Option<u64>,
}

/// `ccs sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The segment, and whether another user's is trusted.
    #[command(flatten)]
    pub segment: SegmentArgs,
}

/// `ccs init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Segment: a name under /dev/shm, a path containing '/', or
    /// etcd://host:port[,host:port...]/prefix.
    #[arg(value_name = "SEG")]
    pub seg: String,
    /// Most agents that can ever register [default: 256].
    #[arg(long, value_name = "N")]
    pub agents: Option<u32>,
    /// Most distinct keys [default: 4096].
    #[arg(long, value_name = "N")]
    pub artifacts: Option<u32>,
    /// Bytes of payload storage [default: 256M].
    #[arg(long, value_name = "SIZE")]
    pub arena: Option<String>,
    /// Largest single payload [default: 64M].
    #[arg(long, value_name = "SIZE")]
    pub max_payload: Option<String>,
    /// Records in each agent's operation log ring: a power of two, or 0 for no log
    /// [default: 1024].
    #[arg(long, value_name = "N")]
    pub log_records: Option<u32>,
    /// Change events each eager agent's inbox holds: a power of two, or 0 for no eager agents
    /// [default: 256].
    #[arg(long, value_name = "N")]
    pub inbox_events: Option<u32>,
    /// Destroy an existing segment of that name first.
    #[arg(long)]
    pub force: bool,
    /// Permission bits in octal, e.g. 0660 to share with the group [default: 0600]. Set
    /// exactly: the umask does not narrow them.
    #[arg(long, value_name = "MODE")]
    pub mode: Option<String>,
}

/// A segment, a key and the agent acting on it.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// The segment, and whether another user's is trusted.
    #[command(flatten)]
    pub segment: SegmentArgs,
    /// Artifact key (1 to 256 bytes of UTF-8).
    #[arg(value_name = "KEY")]
    pub key: String,
    /// The agent acting (registered on first use; its state persists between invocations).
    #[arg(long, value_name = "NAME")]
    pub agent: String,
}

/// `ccs put`.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// Segment, key and agent.
    #[command(flatten)]
    pub target: KeyArgs,
    /// Read the payload from this file instead of stdin.
    #[arg(long, value_name = "F")]
    pub file: Option<PathBuf>,
    /// Write only if the artifact is at version N (0: never written): compare-and-set.
    #[arg(long, value_name = "N", conflicts_with = "blind")]
    pub if_version: Option<u64>,
    /// Overwrite whatever version is there (the write that can lose updates).
    #[arg(long)]
    pub blind: bool,
    /// Flush the segment to disk before printing the version (file-path segments).
    #[arg(long)]
    pub durable: bool,
}

/// `ccs get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// Segment, key and agent.
    #[command(flatten)]
    pub target: KeyArgs,
    /// Write the payload to this file instead of stdout.
    #[arg(long, value_name = "F")]
    pub out: Option<PathBuf>,
}

/// `ccs fsck`.
#[derive(Debug, Args)]
pub struct FsckArgs {
    /// Segment: a name under /dev/shm, a path containing '/', or
    /// etcd://host:port[,host:port...]/prefix.
    #[arg(value_name = "SEG")]
    pub seg: String,
    /// Repair what is safe: dead agents' holds, pins and pids; leaked slots if no agent is
    /// attached.
    #[arg(long)]
    pub repair: bool,
    /// Print one JSON object (stable; see the schema below) instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// `ccs status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The segment, and whether another user's is trusted.
    #[command(flatten)]
    pub segment: SegmentArgs,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// `ccs list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The segment, and whether another user's is trusted.
    #[command(flatten)]
    pub segment: SegmentArgs,
    /// Only keys starting with P.
    #[arg(long, value_name = "P", default_value = "")]
    pub prefix: String,
}

/// `ccs wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Segment, key and agent.
    #[command(flatten)]
    pub target: KeyArgs,
    /// Wait for a version greater than N.
    #[arg(long, value_name = "N")]
    pub since: u64,
    /// Give up after T milliseconds (exit 5) [default: wait forever].
    #[arg(long, value_name = "T")]
    pub timeout_ms: Option<u64>,
}

/// `ccs bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which benchmark.
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// One `ccs bench` benchmark.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Cross-process invalidation latency: a writer's put() to readers (separate processes)
    /// noticing it and holding the new payload, against the machine's floor.
    ///
    /// Each iteration the writer (this process) puts a new version; each reader process
    /// notices its copy went invalid (spin: busy-polls is_valid; futex: blocks in
    /// wait_changed) and reads the new payload with get_into. Iterations are paced: the next
    /// put starts only after every reader holds the previous version. The floor is measured
    /// between the same processes first: a raw cache-line handoff (spin) or a raw futex wake
    /// (futex). Times are CLOCK_MONOTONIC, comparable across processes.
    ///
    /// Defaults: 1 reader, 64-byte payload, spin, 10000 iterations for spin and 2000 for
    /// futex (futex iterations include a 200 µs pause so readers are asleep when the put
    /// starts), plus 1/10 of the iterations (at most 200) of unrecorded warm-up per phase.
    #[command(after_long_help = crate::bench::INVALIDATION_SCHEMA_HELP)]
    Invalidation(InvalidationArgs),
    /// In-process cost of each operation (median and p90 ns/op) on a realistic directory.
    #[command(after_long_help = crate::bench::OPS_SCHEMA_HELP)]
    Ops(OpsArgs),
    /// Aggregate throughput of P processes doing a random mix of gets and conditional puts.
    ///
    /// Conflicting puts are counted, not retried.
    #[command(after_long_help = crate::bench::SCALE_SCHEMA_HELP)]
    Scale(ScaleArgs),
    /// A `ccs hook claude-code` call end to end (process start to answer), over a story of
    /// two sessions reading and editing one file; with --python-bin, the same story through
    /// the Python package agent-coherence's hook client and coordinator, in the same run.
    Hook(crate::bench::hook::HookBenchArgs),
    /// An orchestrator's life in one fixed-size segment: workers with unique names come and
    /// go, tasks create and delete keys, payloads of 64 B to 1 MiB, optional kills. Reports
    /// operations, peak live bytes, arena bytes ever touched, capacity errors by resource, and
    /// throughput.
    #[command(after_long_help = crate::bench::soak::SOAK_SCHEMA_HELP)]
    Soak(crate::bench::soak::SoakArgs),
}

/// How readers notice an invalidation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Wake {
    /// Busy-poll `is_valid` (one load per poll); floor: a cache-line handoff.
    Spin,
    /// Block in `wait_changed` (a futex); floor: a raw futex wake.
    Futex,
}

/// How an invalidation bench reader takes the new version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReadMode {
    /// `get_into`: copy the payload into the reader's buffer.
    Copy,
    /// `read`: pin the new version and borrow its bytes in place.
    ZeroCopy,
}

/// `ccs bench invalidation`.
#[derive(Debug, Args)]
pub struct InvalidationArgs {
    /// Reader processes [default: 1].
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub readers: u32,
    /// Payload SIZE, at least 16 bytes (a timestamp and the iteration) [default: 64].
    #[arg(long, value_name = "BYTES", default_value = "64")]
    pub payload: String,
    /// How readers wait for the change.
    #[arg(long, value_enum, default_value_t = Wake::Spin)]
    pub wake: Wake,
    /// How readers take the new version: a copy, or a pinned borrow of it in place.
    #[arg(long, value_enum, default_value_t = ReadMode::Copy)]
    pub read: ReadMode,
    /// Recorded iterations per phase [default: 10000 for spin, 2000 for futex].
    #[arg(long, value_name = "N")]
    pub iterations: Option<u32>,
    /// Pin the writer to the first CPU and readers round-robin over the rest, e.g. `0,1` or
    /// `0-3` [default: no pinning].
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<String>,
    /// Print one JSON object (stable; see the schema below) instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// `ccs bench ops`.
#[derive(Debug, Args)]
pub struct OpsArgs {
    /// Payload SIZE [default: 64].
    #[arg(long, value_name = "BYTES", default_value = "64")]
    pub payload: String,
    /// Agents attached in this process: the timed one plus N-1 peers [default: 4].
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub agents: u32,
    /// Artifacts in the directory; the timed key is one of them [default: 1000].
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub artifacts: u32,
    /// Measurements per operation [default: 2000; on etcd use a few dozen: a write is a Raft
    /// round].
    #[arg(long, value_name = "N", default_value_t = 2000)]
    pub samples: u32,
    /// Run on an etcd cluster instead of a fresh shared-memory segment: `etcd://HOSTS/PREFIX`
    /// (the bench works under a fresh sub-prefix and removes it). Adds two etcd rows: `put`
    /// with no peer holding a copy, and `etcdctl put` timed as a process, the floor.
    #[arg(long, value_name = "URL")]
    pub on: Option<String>,
    /// Print one JSON object (stable; see the schema below) instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// `ccs bench scale`.
#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// Worker processes [default: 2].
    #[arg(long, value_name = "P", default_value_t = 2)]
    pub procs: u32,
    /// Fraction of operations that are gets, 0 to 1; the rest are conditional puts
    /// [default: 0.9].
    #[arg(long, value_name = "R", default_value_t = 0.9)]
    pub read_ratio: f64,
    /// Seconds to run [default: 5].
    #[arg(long, value_name = "S", default_value_t = 5)]
    pub seconds: u32,
    /// Shared artifacts [default: 64].
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub artifacts: u32,
    /// Payload SIZE [default: 64].
    #[arg(long, value_name = "BYTES", default_value = "64")]
    pub payload: String,
    /// Print one JSON object (stable; see the schema below) instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// The internal `ccs bench-child`: everything a child needs, from its parent.
#[derive(Debug, Args)]
pub struct BenchChildArgs {
    /// `reader` (invalidation) or `worker` (scale).
    #[arg(long)]
    pub role: String,
    /// The bench segment's name.
    #[arg(long)]
    pub seg: String,
    /// The side mapping's name.
    #[arg(long)]
    pub side: String,
    /// This child's index.
    #[arg(long)]
    pub index: u32,
    /// Payload bytes.
    #[arg(long, default_value_t = 64)]
    pub payload: u64,
    /// Wake mode (reader).
    #[arg(long, value_enum, default_value_t = Wake::Spin)]
    pub wake: Wake,
    /// Read mode (reader).
    #[arg(long, value_enum, default_value_t = ReadMode::Copy)]
    pub read: ReadMode,
    /// Floor steps, warm-up included (reader).
    #[arg(long, default_value_t = 0)]
    pub floor_steps: u64,
    /// Invalidation steps, warm-up included (reader).
    #[arg(long, default_value_t = 0)]
    pub steps: u64,
    /// Unrecorded steps at the start of each phase (reader).
    #[arg(long, default_value_t = 0)]
    pub warmup: u64,
    /// CPU to pin to.
    #[arg(long)]
    pub cpu: Option<usize>,
    /// Artifacts (worker).
    #[arg(long, default_value_t = 0)]
    pub artifacts: u32,
    /// Fraction of gets (worker).
    #[arg(long, default_value_t = 1.0)]
    pub read_ratio: f64,
    /// Seconds (worker).
    #[arg(long, default_value_t = 0)]
    pub seconds: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}

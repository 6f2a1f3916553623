//! What each subcommand does, on top of the facade. Each returns the exit code of a run that
//! completed (0, or 4 for a stale `check`, 5 for a `wait` that timed out), or a [`CliError`].

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::time::Duration;

use agent_coherence::{Agent, Backend, Check, Config, Error, OpenOptions, Segment};

use crate::args::{
    Command, FloorArgs, GetArgs, InitArgs, KeyArgs, ListArgs, PutArgs, SegArgs, SegmentArgs,
    StatusArgs, SyncArgs, WaitArgs,
};
use crate::error::{CliError, EXIT_OK, EXIT_STALE, EXIT_TIMEOUT};
use crate::size::{format_size, parse_size};
use crate::status_view;

/// Run one subcommand.
pub fn run(command: Command) -> Result<u8, CliError> {
    match command {
        Command::Init(args) => init(&args),
        Command::Put(args) => put(&args),
        Command::Get(args) => get(&args),
        Command::Check(args) => check(&args),
        Command::Status(args) => status(&args),
        Command::Destroy(args) => destroy(&args),
        Command::Sync(args) => sync(&args),
        Command::Delete(args) => delete(&args),
        Command::List(args) => list(&args),
        Command::Wait(args) => wait(&args),
        Command::Fsck(args) => crate::fsck::run(&args),
        Command::Agents(args) => crate::agents::run(&args),
        Command::Bench(args) => crate::bench::run(args.command),
        Command::BenchChild(args) => crate::bench::run_child(&args),
        Command::Torture(args) => crate::torture::run(&args),
        Command::TortureWorker(args) => crate::torture::run_worker(&args),
        Command::Mcp(args) => crate::mcp::run(&args),
        Command::Watch(args) => crate::observe::watch(&args),
        Command::Log(args) => crate::observe::log(&args),
        Command::Diagnose(args) => crate::observe::diagnose(&args),
        Command::Stats(args) => crate::observe::stats(&args),
        Command::Switch(args) => crate::observe::switch(&args),
        Command::Demo(args) => crate::demo::run(&args),
        Command::DemoRole(args) => crate::demo::run_role(args),
        Command::RaiseVersionFloor(args) => raise_version_floor(&args),
        Command::Hook(args) => crate::hook::run(&args),
    }
}

/// Write `text` to stdout, reporting a closed pipe as an error rather than panicking.
pub(crate) fn print(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|source| CliError::Stdio {
            action: "write to stdout",
            source,
        })
}

/// Write a line to stderr (informational; a closed stderr is ignored).
fn note(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

pub(crate) fn size_arg(
    flag: &'static str,
    value: Option<&str>,
    default: u64,
) -> Result<u64, CliError> {
    match value {
        Some(text) => parse_size(text).map_err(|source| CliError::Size { flag, source }),
        None => Ok(default),
    }
}

/// Where a segment lives, for messages: `NAME (/dev/shm/NAME)` for a name, else the path or
/// URL.
fn where_is(seg: &str) -> String {
    if seg.contains('/') {
        seg.to_owned()
    } else {
        format!("{seg} (/dev/shm/{seg})")
    }
}

/// Open an existing segment, accepting another user's only if asked to.
pub(crate) fn open(seg: &str, allow_other_owner: bool) -> Result<Segment, CliError> {
    Ok(OpenOptions::new()
        .allow_other_owner(allow_other_owner)
        .open(seg)?)
}

impl SegmentArgs {
    /// Open the segment named, with the owner policy asked for.
    pub(crate) fn open(&self) -> Result<Segment, CliError> {
        open(&self.seg, self.allow_other_owner)
    }
}

/// Parse `--mode`: octal permission bits (`0660`, `660` or `0o660`) within 0o777.
fn parse_mode(text: &str) -> Result<u32, CliError> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 && !digits.is_empty() => Ok(mode),
        _ => Err(CliError::Usage(format!(
            "--mode {text}: give permission bits in octal, at most 0777, e.g. 0600 or 0660"
        ))),
    }
}

fn sync(args: &SyncArgs) -> Result<u8, CliError> {
    args.segment.open()?.flush()?;
    Ok(EXIT_OK)
}

fn raise_version_floor(args: &FloorArgs) -> Result<u8, CliError> {
    args.segment
        .open()?
        .raise_version_floor(&args.key, args.floor)?;
    Ok(EXIT_OK)
}

fn attach(target: &KeyArgs) -> Result<(Segment, Agent), CliError> {
    let segment = target.segment.open()?;
    let agent = segment.attach(&target.agent)?;
    Ok((segment, agent))
}

fn init(args: &InitArgs) -> Result<u8, CliError> {
    if Backend::of(&args.seg) == Backend::Etcd {
        return init_etcd(args);
    }
    let defaults = Config::default();
    let config = Config {
        max_agents: args.agents.unwrap_or(defaults.max_agents),
        max_artifacts: args.artifacts.unwrap_or(defaults.max_artifacts),
        arena_bytes: size_arg("arena", args.arena.as_deref(), defaults.arena_bytes)?,
        max_payload: size_arg(
            "max-payload",
            args.max_payload.as_deref(),
            defaults.max_payload,
        )?,
        log_records: args.log_records.unwrap_or(defaults.log_records),
        inbox_events: args.inbox_events.unwrap_or(defaults.inbox_events),
        ..defaults
    };
    let mode = match args.mode.as_deref() {
        Some(text) => parse_mode(text)?,
        None => agent_coherence::DEFAULT_MODE,
    };
    let options = OpenOptions::new().mode(mode);
    // Try first, so that an invalid configuration never destroys the existing segment.
    let segment = match options.create(&args.seg, config) {
        Err(Error::SegmentExists { .. }) if args.force => {
            Segment::destroy(&args.seg)?;
            options.create(&args.seg, config)?
        }
        other => other?,
    };
    let config = segment.config();
    print(&format!(
        "created segment {}: {} agents, {} artifacts, arena {}, max payload {}\n",
        where_is(segment.location()),
        config.max_agents,
        config.max_artifacts,
        format_size(config.arena_bytes),
        format_size(config.max_payload),
    ))?;
    Ok(EXIT_OK)
}

/// `ccs init etcd://...`: an etcd prefix has nothing to create or size; check that the cluster
/// answers (and with --force, empty the prefix first).
fn init_etcd(args: &InitArgs) -> Result<u8, CliError> {
    let sizing = [
        ("--agents", args.agents.is_some()),
        ("--artifacts", args.artifacts.is_some()),
        ("--arena", args.arena.is_some()),
        ("--max-payload", args.max_payload.is_some()),
        ("--log-records", args.log_records.is_some()),
        ("--inbox-events", args.inbox_events.is_some()),
        ("--mode", args.mode.is_some()),
    ];
    let given: Vec<&str> = sizing.iter().filter(|(_, g)| *g).map(|(f, _)| *f).collect();
    if !given.is_empty() {
        return Err(CliError::Usage(format!(
            "{}: an etcd prefix has nothing to size or protect with a mode; drop {}",
            args.seg,
            given.join(", ")
        )));
    }
    if args.force {
        Segment::destroy(&args.seg)?;
    }
    let segment = Segment::create(&args.seg, Config::default())?;
    let artifacts = segment.list("")?.len();
    print(&format!(
        "{}: the etcd cluster answers; nothing to create (a prefix exists once written), {artifacts} artifacts there now, max payload {}\n",
        segment.location(),
        format_size(segment.config().max_payload),
    ))?;
    Ok(EXIT_OK)
}

fn read_payload(file: Option<&Path>) -> Result<Vec<u8>, CliError> {
    match file {
        Some(path) => std::fs::read(path).map_err(|source| CliError::ReadFile {
            path: path.to_owned(),
            source,
        }),
        None => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut bytes)
                .map_err(|source| CliError::Stdio {
                    action: "read the payload from stdin",
                    source,
                })?;
            Ok(bytes)
        }
    }
}

fn put(args: &PutArgs) -> Result<u8, CliError> {
    let target = &args.target;
    // Read the payload before attaching: a slow stdin must not keep the agent attached.
    let payload = read_payload(args.file.as_deref())?;
    let (segment, agent) = attach(target)?;
    let key = target.key.as_str();
    let version = match (args.if_version, args.blind) {
        (Some(expected), _) => agent.put_if(key, expected, &payload)?,
        (None, true) => agent.put_blind(key, &payload)?,
        (None, false) => agent.put(key, &payload)?,
    };
    if args.durable {
        segment.flush()?;
    }
    print(&format!("{version}\n"))?;
    Ok(EXIT_OK)
}

fn get(args: &GetArgs) -> Result<u8, CliError> {
    let (_segment, agent) = attach(&args.target)?;
    let read = agent.get(args.target.key.as_str())?;
    drop(agent);
    match &args.out {
        Some(path) => std::fs::write(path, &read.bytes).map_err(|source| CliError::WriteFile {
            path: path.clone(),
            source,
        })?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&read.bytes)
                .and_then(|()| out.flush())
                .map_err(|source| CliError::Stdio {
                    action: "write the payload to stdout",
                    source,
                })?;
        }
    }
    let kind = if read.hit { "HIT" } else { "MISS" };
    note(&format!("{kind} v{}", read.version));
    Ok(EXIT_OK)
}

/// The `check` verdict in words: `current v3`, or why the copy is stale.
pub fn check_message(key: &str, check: &Check) -> String {
    if check.is_current() {
        return format!("current v{}", check.current);
    }
    match (check.current, check.held) {
        (0, _) => format!("stale: `{key}` has never been written"),
        (current, None) => format!("stale: never read, current is v{current}"),
        (current, Some(held)) if held == current => {
            format!("stale: you hold v{held}, but your copy was invalidated; read it again")
        }
        (current, Some(held)) => format!("stale: you hold v{held}, current is v{current}"),
    }
}

fn check(args: &KeyArgs) -> Result<u8, CliError> {
    let (segment, agent) = attach(args)?;
    let mut check = agent.check(args.key.as_str())?;
    if segment.backend() == Backend::Etcd {
        // On etcd a copy lives in the process that read it, and this one has just attached:
        // the verdict is the agent's view, kept in the cluster, against the current version.
        check.valid = check.current != 0 && check.held == Some(check.current);
    }
    print(&format!("{}\n", check_message(&args.key, &check)))?;
    Ok(if check.is_current() {
        EXIT_OK
    } else {
        EXIT_STALE
    })
}

fn status(args: &StatusArgs) -> Result<u8, CliError> {
    let segment = args.segment.open()?;
    let status = segment.status()?;
    let text = if args.json {
        let json = status_view::to_json(segment.location(), &status);
        let mut text = serde_json::to_string_pretty(&json).map_err(CliError::Json)?;
        text.push('\n');
        text
    } else {
        status_view::to_table(segment.location(), &status)
    };
    print(&text)?;
    Ok(EXIT_OK)
}

fn destroy(args: &SegArgs) -> Result<u8, CliError> {
    Segment::destroy(&args.seg)?;
    Ok(EXIT_OK)
}

fn delete(args: &KeyArgs) -> Result<u8, CliError> {
    let (_segment, agent) = attach(args)?;
    let version = agent.delete(args.key.as_str())?;
    print(&format!("{version}\n"))?;
    Ok(EXIT_OK)
}

fn list(args: &ListArgs) -> Result<u8, CliError> {
    let segment = args.segment.open()?;
    let mut text = String::new();
    for key in segment.list(&args.prefix)? {
        text.push_str(&key);
        text.push('\n');
    }
    print(&text)?;
    Ok(EXIT_OK)
}

fn wait(args: &WaitArgs) -> Result<u8, CliError> {
    let target = &args.target;
    let (_segment, agent) = attach(target)?;
    let timeout = args.timeout_ms.map(Duration::from_millis);
    match agent.wait_changed(target.key.as_str(), args.since, timeout)? {
        Some(version) => {
            print(&format!("{version}\n"))?;
            Ok(EXIT_OK)
        }
        None => {
            note(&format!(
                "ccs: timed out after {} ms: `{}` is still at version {} or lower",
                args.timeout_ms.unwrap_or(0),
                target.key,
                args.since
            ));
            Ok(EXIT_TIMEOUT)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(held: Option<u64>, current: u64, valid: bool) -> String {
        check_message(
            "plan",
            &Check {
                held,
                current,
                valid,
            },
        )
    }

    #[test]
    fn modes_are_octal() {
        for (text, mode) in [("0600", 0o600), ("660", 0o660), ("0o640", 0o640)] {
            assert_eq!(parse_mode(text).ok(), Some(mode), "{text}");
        }
        for bad in ["", "0o", "0800", "01777", "rw", "-1"] {
            assert!(parse_mode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn check_messages() {
        assert_eq!(check(Some(3), 3, true), "current v3");
        assert_eq!(
            check(Some(2), 3, false),
            "stale: you hold v2, current is v3"
        );
        assert_eq!(check(None, 3, false), "stale: never read, current is v3");
        assert_eq!(
            check(None, 0, false),
            "stale: `plan` has never been written"
        );
    }
}

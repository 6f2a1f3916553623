//! `ccs agents`: the agent table of a shared-memory segment (live or dead, last seen, views
//! held), and `--forget NAME` to free a dead or detached agent's slot.
//!
//! A dead agent's slot is taken over automatically by the next new name when the table is
//! full (docs/protocol.md, "Agent slots"); forgetting frees one at once and drops its views.

use clap::Args;
use serde_json::json;

use crate::args::SegmentArgs;
use crate::error::{CliError, EXIT_FAILURE, EXIT_OK};
use crate::table::{self, Align};

/// `ccs agents`.
#[derive(Debug, Args)]
pub struct AgentsArgs {
    /// The segment, and whether another user's is trusted.
    #[command(flatten)]
    pub segment: SegmentArgs,
    /// Free this agent's slot (refused while a live process is attached as it). If the name
    /// attaches again, its conditional writes are refused until it re-reads each artifact.
    #[arg(long, value_name = "NAME")]
    pub forget: Option<String>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Run `ccs agents`.
pub fn run(args: &AgentsArgs) -> Result<u8, CliError> {
    let segment = args.segment.open()?;
    if let Some(name) = &args.forget {
        if segment.forget_agent(name)? {
            crate::commands::print(&format!("forgot agent `{name}`\n"))?;
            return Ok(EXIT_OK);
        }
        eprintln!("ccs: no agent `{name}` in {}", segment.location());
        return Ok(EXIT_FAILURE);
    }
    let slots = segment.agent_slots()?;
    let text = if args.json {
        let agents: Vec<_> = slots
            .iter()
            .map(|s| {
                json!({
                    "slot": s.slot,
                    "name": s.name,
                    "alive": s.alive,
                    "pid": s.pid,
                    "generation": s.generation,
                    "last_seen_ms_ago": s.last_seen_ms_ago,
                    "views_held": s.views_held,
                    "views_dropped": s.views_dropped,
                })
            })
            .collect();
        let value = json!({
            "segment": segment.location(),
            "max_agents": segment.config().max_agents,
            "agents": agents,
        });
        let mut text = serde_json::to_string_pretty(&value).map_err(CliError::Json)?;
        text.push('\n');
        text
    } else {
        let mut rows = vec![
            [
                "SLOT",
                "NAME",
                "STATE",
                "PID",
                "LAST SEEN",
                "VIEWS",
                "DROPPED",
            ]
            .map(str::to_owned)
            .to_vec(),
        ];
        for s in &slots {
            rows.push(vec![
                s.slot.to_string(),
                s.name.clone(),
                if s.alive { "live" } else { "dead" }.to_owned(),
                s.pid.map_or("-".to_owned(), |p| p.to_string()),
                s.last_seen_ms_ago
                    .map_or("-".to_owned(), |ms| format!("{:.1}s ago", ms as f64 / 1e3)),
                s.views_held.to_string(),
                s.views_dropped.to_string(),
            ]);
        }
        let mut text = format!(
            "{} agents of {} in {}\n",
            slots.len(),
            segment.config().max_agents,
            segment.location(),
        );
        text.push_str(&table::render(&rows, |column| match column {
            1 | 2 => Align::Left,
            _ => Align::Right,
        }));
        text
    };
    crate::commands::print(&text)?;
    Ok(EXIT_OK)
}

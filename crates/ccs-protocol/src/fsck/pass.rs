//! One pass over the segment: the problems it collects (bounded), what it leaves for a repair
//! (leaked descriptors and granule runs), the order the checks run in, and the second pass that
//! confirms what the first found on a busy segment.

use std::collections::HashSet;

use crate::directory::Directory;
use crate::env::Env;
use crate::error::{ProtocolError, Result};
use crate::layout::Geometry;
use crate::packing::desc_state;
use crate::sync::Ordering;

use super::report::{ArenaUsage, DescriptorUsage, FsckKind, FsckProblem, FsckReport};

/// One pass over the segment.
#[derive(Default)]
pub(super) struct Pass {
    pub(super) problems: Vec<FsckProblem>,
    /// What was checked that is not a problem (the log's state).
    pub(super) notes: Vec<String>,
    pub(super) arena: ArenaUsage,
    pub(super) descriptors: DescriptorUsage,
    /// Leaked descriptors.
    pub(super) leaked_descs: Vec<u32>,
    /// Leaked granule runs `(first, count)` below the bump pointer.
    pub(super) leaked_runs: Vec<(u64, u64)>,
    /// Blocks (of leaked descriptors) that overlap something else: not to be freed.
    pub(super) shared_blocks: HashSet<u32>,
    /// The header was unusable: nothing else was checked.
    pub(super) header_failed: bool,
}

impl Pass {
    pub(super) fn add(
        &mut self,
        kind: FsckKind,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.push(kind, subject.into(), message.into(), false);
    }

    pub(super) fn add_repairable(
        &mut self,
        kind: FsckKind,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.push(kind, subject.into(), message.into(), true);
    }

    fn push(&mut self, kind: FsckKind, subject: String, message: String, repairable: bool) {
        // Bounded: a hostile segment could otherwise produce one problem per word.
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(FsckProblem {
                kind,
                subject,
                message,
                repairable,
            });
        }
    }
}

/// Most problems kept per pass.
const MAX_PROBLEMS: usize = 10_000;

pub(super) fn state_name(state: u64) -> &'static str {
    match state {
        desc_state::FREE => "FREE",
        desc_state::FILLING => "FILLING",
        desc_state::LIVE => "LIVE",
        _ => "RETIRED",
    }
}

/// Per-line facts the later sections need.
#[derive(Clone, Default)]
pub(super) struct LineFacts {
    pub(super) label: String,
    pub(super) keyed: bool,
    pub(super) version: u64,
    pub(super) head_desc: Option<u32>,
    pub(super) held: bool,
}

pub(super) fn agent_subject(slot: u32, names: &[String]) -> String {
    match names.get(slot as usize) {
        Some(name) => format!("agent slot {slot} ({name})"),
        None => format!("agent slot {slot}"),
    }
}

/// A protocol error as a problem's message, without the "run ccs destroy" advice.
pub(super) fn problem_text(error: &ProtocolError) -> String {
    match error {
        ProtocolError::Corrupt { what } => what.clone(),
        other => other.to_string(),
    }
}

pub(super) fn report(
    pass: Pass,
    repaired: Vec<String>,
    not_repaired: Vec<String>,
    found: Option<usize>,
) -> FsckReport {
    FsckReport {
        found: found.unwrap_or(pass.problems.len()),
        problems: pass.problems,
        arena: pass.arena,
        descriptors: pass.descriptors,
        notes: pass.notes,
        repaired,
        not_repaired,
    }
}

impl<E: Env> Directory<E> {
    /// A pass; if it found problems, `pause` and a second pass, keeping what both saw.
    pub(super) fn settled_pass(
        &self,
        alive: &dyn Fn(u32) -> Result<bool>,
        pause: &mut dyn FnMut(),
    ) -> Result<Pass> {
        let first = self.pass(alive)?;
        if first.problems.is_empty() || first.header_failed {
            return Ok(first);
        }
        pause();
        let mut second = self.pass(alive)?;
        let seen: HashSet<&FsckProblem> = first.problems.iter().collect();
        second.problems.retain(|p| seen.contains(p));
        let leaked: HashSet<u32> = first.leaked_descs.iter().copied().collect();
        second.leaked_descs.retain(|d| leaked.contains(d));
        let runs: HashSet<(u64, u64)> = first.leaked_runs.iter().copied().collect();
        second.leaked_runs.retain(|r| runs.contains(r));
        Ok(second)
    }

    pub(super) fn load(&self, index: usize) -> Result<u64> {
        Ok(self.words.at(index)?.load(Ordering::Acquire))
    }

    /// One read-only pass over everything.
    fn pass(&self, alive: &dyn Fn(u32) -> Result<bool>) -> Result<Pass> {
        let mut pass = Pass::default();
        let geo = self.geo;
        match Geometry::read(&self.words, self.words.len() as u64 * 8) {
            Ok(read) if read == geo => {}
            Ok(_) => {
                pass.add(
                    FsckKind::Header,
                    "header",
                    "sizes changed since the segment was opened",
                );
                pass.header_failed = true;
                return Ok(pass);
            }
            Err(error) => {
                pass.add(FsckKind::Header, "header", error.to_string());
                pass.header_failed = true;
                return Ok(pass);
            }
        }
        let (desc_bump, granule_bump) = self.check_header(&mut pass)?;
        let (registered, names) = self.check_agents(&mut pass)?;
        let lines = self.check_lines(&mut pass, registered, &names, alive)?;
        self.check_views(&mut pass, registered, &lines)?;
        self.check_stamps(&mut pass, registered, &names)?;
        let pin_refs = self.check_pins(&mut pass, registered, &names, alive)?;
        self.check_slots(&mut pass, desc_bump, granule_bump, &lines, &pin_refs, alive)?;
        self.check_log_and_inboxes(&mut pass, registered, &names)?;
        Ok(pass)
    }
}

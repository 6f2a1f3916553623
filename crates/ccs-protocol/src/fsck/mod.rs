//! `fsck`: check every structure of a segment, and repair what is safe to repair.
//!
//! The check walks the segment in layout order (`docs/layout.md`) and validates every word
//! against the geometry and against the other structures that refer to it:
//!
//! * **header**: re-validated with [`Geometry::read`]; the key count, both bump pointers, the
//!   unused words and the free-list heads of classes the segment does not use;
//! * **agent table**: state word format, UTF-8 name, slots filled in order, pid, and the 16 pin
//!   records (each names a published descriptor with at least as many pins as records);
//! * **directory lines**: key meta and key hash, reachability by probing, duplicate keys; the
//!   head (descriptor in range, owned by this line, LIVE or RETIRED; holder registered); the
//!   lease and pending-record formats; the valid masks;
//! * **views**: no agent has seen a version its line does not have yet;
//! * **descriptors**: state, pins, owner, block, length and flags consistent with each other;
//! * **free lists** (the descriptor list and one per size class): every entry in range, no
//!   cycle (a walk is bounded by the table size), no duplicate; a free block's block-table word
//!   says FREE with its list's class, and the block is aligned to its size;
//! * **arena accounting**: every granule below the bump pointer is in exactly one block of a
//!   descriptor (whose block-table word says USED with its class), on exactly one free list, or
//!   held by a buddy merger (STASHED, counted as free). Overlaps and *leaked* granules (in neither) are
//!   reported, with byte totals in [`ArenaUsage`]; likewise leaked descriptors
//!   ([`DescriptorUsage`]). A descriptor is in use if a line's head or in-flight pending record
//!   names it, an agent's pin record names it, or it is pinned (RETIRED or discarded with pins);
//! * **locks**: lines held by, pins recorded by, and pids recorded for agents whose process is
//!   gone. (The kernel locks themselves cannot be stale: the kernel drops them with the
//!   process.) This layout version has no log rings.
//!
//! The check only loads words, and every index read from the segment is validated before it
//! is used, so a hostile segment yields problems (or an error), never a panic, an unbounded
//! loop or an access outside the mapping.
//!
//! **Online checking.** Writers may run while the check reads. A descriptor or block that a
//! writer has popped but not yet recorded (a window of a few instructions), a free list that
//! changes under the walk, or a key count not yet incremented look wrong for an instant. So a
//! check that finds problems waits (the caller's `pause`, 50 ms in the facade) and checks
//! again, and reports only the problems seen by both passes. Results on a busy segment are
//! still a best effort; leaks are repaired only on a quiescent segment.
//!
//! **Repair** ([`Directory::fsck_repair`]): for each agent the caller proves dead (it holds
//! the agent's kernel lock, so no process can attach meanwhile), do what that agent's next
//! attach would: free the lines it holds (discarding the slot it was filling), release its
//! recorded pins, clear its pid. Leaked descriptors and granules go back to the free lists only
//! when the caller proves the segment quiescent (it holds the structure lock and every agent's
//! lock) and no unrepairable problem was found.
//!
//! ```
//! use ccs_protocol::{Condition, Config, Directory, Geometry, HeapWords, testing::MemEnv};
//!
//! let config = Config { max_agents: 4, max_artifacts: 8, arena_bytes: 1 << 16, max_payload: 1024,
//!                        write_lease_ms: 1000, log_records: 64, inbox_events: 16 };
//! let heap = HeapWords::new(Geometry::new(config)?.total_bytes as usize);
//! let dir = Directory::create_on_heap(heap, config, MemEnv::new(4))?;
//! let planner = dir.begin_attach(dir.register_agent("planner")?, 1)?;
//! dir.put(planner, dir.find_or_insert_key("task/spec")?, b"v1", Condition::View)?;
//! let report = dir.fsck()?;
//! assert!(report.is_clean(), "{:?}", report.problems);
//! assert_eq!(report.arena.live_bytes, 64);
//! assert_eq!(report.descriptors.live, 1);
//! # Ok::<(), ccs_protocol::ProtocolError>(())
//! ```

use std::collections::{HashMap, HashSet};

use crate::alloc::{FLAG_DELETED, FLAGS_MASK, NO_BLOCK};
use crate::arena::block_meta;
use crate::directory::{AgentId, Directory};
use crate::env::Env;
use crate::error::{ProtocolError, Result};
use crate::freshness::Strategy;
use crate::layout::{
    A_PID, A_PINS, A_STATE, A_STRATEGY, AGENT_WORDS, D_BLOCK, D_CTL, D_FLAGS, D_LEN, D_NEXT,
    D_OWNER, D_VERSION, GRANULE, Geometry, H_AGENT_DROPS, H_ARENA_BUMP, H_ARENA_FREE,
    H_ARENA_MERGING, H_DESC_BUMP, H_DESC_FREE, H_KEY_COUNT, H_SWITCHES, HEADER_WORDS, I_HEAD,
    I_TAIL, L_BASE, L_HEAD, L_KEYMETA, L_LEASE, L_MASK, L_PENDING, PIN_RECORDS, SWITCH_LOG_OFF,
    SWITCH_NO_INVALIDATION, class_bytes,
};
use crate::oplog::RecordRead;
use crate::packing::{Head, desc_state, unpack_owner};
use crate::sync::Ordering;

/// Which structure a problem is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FsckKind {
    /// The header (words 0–63).
    Header,
    /// An agent slot.
    Agent,
    /// A directory line.
    Line,
    /// A view word or valid bit.
    View,
    /// A slot descriptor.
    Descriptor,
    /// A free list (descriptors or a size class).
    FreeList,
    /// Arena accounting: overlapping or leaked granules.
    Arena,
    /// A hold, pin or pid left by a process that is gone.
    Lock,
}

impl FsckKind {
    /// Lower-case name, as printed: `header`, `agent`, `line`, `view`, `descriptor`,
    /// `free-list`, `arena`, `lock`.
    pub fn name(self) -> &'static str {
        match self {
            FsckKind::Header => "header",
            FsckKind::Agent => "agent",
            FsckKind::Line => "line",
            FsckKind::View => "view",
            FsckKind::Descriptor => "descriptor",
            FsckKind::FreeList => "free-list",
            FsckKind::Arena => "arena",
            FsckKind::Lock => "lock",
        }
    }
}

/// One problem found by [`Directory::fsck`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FsckProblem {
    /// Which structure.
    pub kind: FsckKind,
    /// What exactly, e.g. `line 12 (task/spec)` or `descriptor 7`.
    pub subject: String,
    /// What is wrong.
    pub message: String,
    /// Whether `fsck --repair` can fix it (leaks: only while no agent is attached).
    pub repairable: bool,
}

/// Where the arena's bytes are. With no overlaps the four add up to the arena's usable bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArenaUsage {
    /// In blocks of descriptors in use.
    pub live_bytes: u64,
    /// On the size-class free lists.
    pub free_bytes: u64,
    /// Below the bump pointer but neither in use nor free (including blocks of leaked
    /// descriptors).
    pub leaked_bytes: u64,
    /// Above the bump pointer: never handed out.
    pub untouched_bytes: u64,
}

/// Where the descriptors are. The four add up to the table size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DescriptorUsage {
    /// In use (published, being filled, pinned or pin-recorded).
    pub live: u64,
    /// On the free list.
    pub free: u64,
    /// Handed out but neither in use nor free.
    pub leaked: u64,
    /// Above the bump pointer: never handed out.
    pub untouched: u64,
}

/// What [`Directory::fsck`] found (and [`Directory::fsck_repair`] did).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsckReport {
    /// Problems present (after a repair: those that remain), in layout order.
    pub problems: Vec<FsckProblem>,
    /// Problems found before repairing (equal to `problems.len()` for a plain check).
    pub found: usize,
    /// Arena accounting.
    pub arena: ArenaUsage,
    /// Descriptor accounting.
    pub descriptors: DescriptorUsage,
    /// Remarks that are not problems, e.g. "no log rings in this layout version".
    pub notes: Vec<String>,
    /// What a repair did, one sentence each.
    pub repaired: Vec<String>,
    /// What a repair refused or failed to do, and why.
    pub not_repaired: Vec<String>,
}

impl FsckReport {
    /// No problem remains.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One pass over the segment.
#[derive(Default)]
struct Pass {
    problems: Vec<FsckProblem>,
    /// What was checked that is not a problem (the log's state).
    notes: Vec<String>,
    arena: ArenaUsage,
    descriptors: DescriptorUsage,
    /// Leaked descriptors.
    leaked_descs: Vec<u32>,
    /// Leaked granule runs `(first, count)` below the bump pointer.
    leaked_runs: Vec<(u64, u64)>,
    /// Blocks (of leaked descriptors) that overlap something else: not to be freed.
    shared_blocks: HashSet<u32>,
    /// The header was unusable: nothing else was checked.
    header_failed: bool,
}

impl Pass {
    fn add(&mut self, kind: FsckKind, subject: impl Into<String>, message: impl Into<String>) {
        self.push(kind, subject.into(), message.into(), false);
    }

    fn add_repairable(
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

/// Who claims a run of granules.
#[derive(Clone, Copy)]
enum Claim {
    Desc(u32, bool),
    Free(usize),
}

impl Claim {
    fn describe(self) -> String {
        match self {
            Claim::Desc(desc, _) => format!("the block of descriptor {desc}"),
            Claim::Free(class) => format!("the free list of class {class}"),
        }
    }
}

fn state_name(state: u64) -> &'static str {
    match state {
        desc_state::FREE => "FREE",
        desc_state::FILLING => "FILLING",
        desc_state::LIVE => "LIVE",
        _ => "RETIRED",
    }
}

/// Per-line facts the later sections need.
#[derive(Clone, Default)]
struct LineFacts {
    label: String,
    keyed: bool,
    version: u32,
    head_desc: Option<u32>,
    held: bool,
}

impl<E: Env> Directory<E> {
    /// Check every structure of the segment (read-only). See the module docs; a problem seen
    /// in one pass is checked again at once (with no pause) before it is reported.
    pub fn fsck(&self) -> Result<FsckReport> {
        self.fsck_settled(|| {})
    }

    /// [`Directory::fsck`], calling `pause` between a pass that found problems and the pass
    /// that confirms them (the facade sleeps 50 ms, so that writers finish what they were
    /// doing).
    pub fn fsck_settled(&self, mut pause: impl FnMut()) -> Result<FsckReport> {
        let alive = |slot: u32| self.env.agent_alive(slot);
        let pass = self.settled_pass(&alive, &mut pause)?;
        Ok(report(pass, Vec::new(), Vec::new(), None))
    }

    /// Check, repair what is safe, and check again.
    ///
    /// `dead`: agent slots whose kernel lock the caller holds (so their processes are gone
    /// and no process can attach as them until the caller lets go); they are treated as dead
    /// whatever the environment says. For each, the lines it holds are freed (the slot it was
    /// filling is discarded), its recorded pins are released and its pid cleared.
    ///
    /// `quiescent`: the caller also holds the structure lock and the lock of every registered
    /// agent, so no other process is using the segment. Only then are leaked descriptors and
    /// granules returned to the free lists, and only if the check found no problem it cannot
    /// repair.
    ///
    /// The returned report's `problems` are those that remain; `found` counts those there
    /// were; `repaired` and `not_repaired` say what was done and what was not.
    pub fn fsck_repair(
        &self,
        dead: &[u32],
        quiescent: bool,
        mut pause: impl FnMut(),
    ) -> Result<FsckReport> {
        let alive = |slot: u32| {
            if dead.contains(&slot) {
                Ok(false)
            } else {
                self.env.agent_alive(slot)
            }
        };
        let before = self.settled_pass(&alive, &mut pause)?;
        if before.header_failed {
            let found = before.problems.len();
            let refused = vec!["nothing repaired: the header is unusable".to_owned()];
            return Ok(report(before, Vec::new(), refused, Some(found)));
        }
        let found = before.problems.len();
        let mut repaired = Vec::new();
        let mut refused = Vec::new();

        let mut slots: Vec<u32> = dead.to_vec();
        slots.sort_unstable();
        slots.dedup();
        let registered = self.agent_count()?;
        for slot in slots.into_iter().filter(|&slot| slot < registered) {
            let label = self.agent_label(slot);
            match self.repair_dead_agent(slot) {
                Ok((holds, pins, pid)) => {
                    if holds > 0 {
                        repaired.push(format!(
                            "{label}: freed {holds} line(s) held by its dead process"
                        ));
                    }
                    if pins > 0 {
                        repaired.push(format!(
                            "{label}: released {pins} pin(s) recorded by its dead process"
                        ));
                    }
                    if pid != 0 {
                        repaired.push(format!(
                            "{label}: cleared the pid {pid} of its dead process"
                        ));
                    }
                }
                Err(error) => refused.push(format!("{label}: could not release it: {error}")),
            }
        }

        let now = self.settled_pass(&alive, &mut pause)?;
        let leaks = now.leaked_descs.len() + now.leaked_runs.len();
        if leaks > 0 {
            let blocking = now
                .problems
                .iter()
                .filter(|p| !p.repairable && p.kind != FsckKind::Lock)
                .count();
            if !quiescent {
                refused.push(format!(
                    "{leaks} leaked slots cannot be repaired while agents are attached: stop them and run fsck --repair again"
                ));
            } else if blocking > 0 {
                refused.push(format!(
                    "{leaks} leaked slots not repaired: the segment has {blocking} problem(s) fsck cannot repair, so what looks leaked may be in use; re-create the segment"
                ));
            } else {
                match self.repair_leaks(&now) {
                    Ok((descs, bytes)) => {
                        if descs > 0 {
                            repaired.push(format!(
                                "returned {descs} leaked descriptor(s) to the free list"
                            ));
                        }
                        if bytes > 0 {
                            repaired.push(format!(
                                "returned {bytes} leaked arena bytes to the free lists"
                            ));
                        }
                    }
                    Err(error) => refused.push(format!("could not repair leaks: {error}")),
                }
            }
        }

        let after = self.settled_pass(&alive, &mut pause)?;
        for problem in after.problems.iter().filter(|p| !p.repairable) {
            refused.push(format!(
                "{}: {} (fsck cannot repair this)",
                problem.subject, problem.message
            ));
        }
        Ok(report(after, repaired, refused, Some(found)))
    }

    /// Free what a dead agent's process left: (lines freed, pins released, pid cleared).
    fn repair_dead_agent(&self, slot: u32) -> Result<(u32, u32, u32)> {
        let mut holds = 0;
        for line in 0..self.geo.lines as u32 {
            if Head::unpack(self.head(line)?.load(Ordering::Acquire)).holder_slot() == Some(slot) {
                holds += 1;
            }
        }
        // The generation is not compared by the release: any handle of the slot is dead.
        self.release_stale_holds(AgentId {
            strategy: crate::freshness::Strategy::Lazy,
            slot,
            generation: 0,
        })?;
        let pins = self.release_recorded_pins(slot)?;
        let pid_word = self.words.at(self.geo.agent_word(slot, A_PID))?;
        let pid = pid_word.swap(0, Ordering::Relaxed);
        Ok((holds, pins, u32::try_from(pid).unwrap_or(u32::MAX)))
    }

    /// Return leaked descriptors and granule runs to the free lists. The caller proved the
    /// segment quiescent and consistent: (descriptors freed, bytes freed).
    fn repair_leaks(&self, pass: &Pass) -> Result<(u64, u64)> {
        let mut bytes = 0;
        for &desc in &pass.leaked_descs {
            let d = self.desc_words(desc)?;
            let state = d[D_CTL].load(Ordering::Acquire) >> desc_state::SHIFT;
            let block = d[D_BLOCK].load(Ordering::Relaxed);
            // A FREE descriptor's block word is stale (0 if never used); a block shared with
            // something else is not this descriptor's to free.
            if state == desc_state::FREE || pass.shared_blocks.contains(&desc) {
                d[D_BLOCK].store(NO_BLOCK, Ordering::Relaxed);
            } else if block != NO_BLOCK {
                bytes += class_bytes((block & 0xff) as usize);
            }
            d[D_CTL].store(0, Ordering::Relaxed);
            self.release_desc(desc)?;
        }
        for &(first, count) in &pass.leaked_runs {
            // The run's old block words go: it is freed as the aligned blocks that tile it.
            for granule in first..first + count {
                self.block_meta(granule)?.store(0, Ordering::Relaxed);
            }
            self.free_run(first, first + count)?;
            bytes += count * GRANULE;
        }
        Ok((pass.leaked_descs.len() as u64, bytes))
    }

    fn agent_label(&self, slot: u32) -> String {
        match self.agent_name(slot) {
            Ok(Some(name)) => format!("agent slot {slot} ({name})"),
            _ => format!("agent slot {slot}"),
        }
    }

    /// A pass; if it found problems, `pause` and a second pass, keeping what both saw.
    fn settled_pass(
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

    fn load(&self, index: usize) -> Result<u64> {
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
        let pin_refs = self.check_pins(&mut pass, registered, &names, alive)?;
        self.check_slots(&mut pass, desc_bump, granule_bump, &lines, &pin_refs)?;
        self.check_log_and_inboxes(&mut pass, registered, &names)?;
        Ok(pass)
    }

    /// Switches, strategies, log rings, inboxes and subscriptions. A record or event that fails
    /// its checksum is not a problem (two writers a ring apart can leave one; readers skip it),
    /// only counted.
    fn check_log_and_inboxes(
        &self,
        pass: &mut Pass,
        registered: u32,
        names: &[String],
    ) -> Result<()> {
        let switches = self.load(H_SWITCHES)?;
        if switches & !(SWITCH_LOG_OFF | SWITCH_NO_INVALIDATION) != 0 {
            pass.add(
                FsckKind::Header,
                format!("header word {H_SWITCHES}"),
                format!("switch word {switches:#x} has unknown bits"),
            );
        }
        if switches & SWITCH_NO_INVALIDATION != 0 {
            pass.notes.push(
                "invalidation is switched OFF on this segment: private copies can go stale \
                 unnoticed (ccs switch SEG --invalidation on)"
                    .to_owned(),
            );
        }
        let (mut readable, mut unreadable) = (0u64, 0u64);
        for slot in 0..registered {
            let subject = agent_subject(slot, names);
            let strategy = self.load(self.geo.agent_word(slot, A_STRATEGY))?;
            if Strategy::unpack(strategy).is_none() {
                pass.add(
                    FsckKind::Agent,
                    subject.clone(),
                    format!("strategy word {strategy:#x} is not a strategy"),
                );
            }
            if self.geo.ring_words != 0 {
                let next = self.log_next(slot)?;
                let held = next.min(self.log_capacity());
                for seq in next - held..next {
                    match self.read_record(slot, seq)? {
                        RecordRead::Ready(_) => readable += 1,
                        RecordRead::Lost | RecordRead::NotYet => unreadable += 1,
                    }
                }
            }
            if self.geo.inbox_words != 0 {
                let head = self.load(self.geo.inbox_word(slot, I_HEAD))?;
                let tail = self.load(self.geo.inbox_word(slot, I_TAIL))?;
                if head > tail {
                    pass.add(
                        FsckKind::Agent,
                        subject.clone(),
                        format!("inbox head {head} is past its tail {tail}"),
                    );
                }
            }
            if let Err(error) = self.subscriptions(slot) {
                pass.add(FsckKind::Agent, subject, problem_text(&error));
            }
        }
        pass.notes.push(if self.geo.ring_words == 0 {
            "no operation log on this segment (log_records = 0)".to_owned()
        } else {
            format!(
                "operation log: {readable} records readable, {unreadable} unreadable \
                 (being written, or torn and skipped by readers)"
            )
        });
        Ok(())
    }

    /// Header words beyond the validated constants: (descriptor bump, granule bump), clamped.
    fn check_header(&self, pass: &mut Pass) -> Result<(u64, u64)> {
        let descs = self.geo.descs as u64;
        let granules = self.geo.arena_granules();
        let mut desc_bump = self.load(H_DESC_BUMP)?;
        if desc_bump > descs {
            pass.add(
                FsckKind::Header,
                format!("header word {H_DESC_BUMP}"),
                format!("descriptor bump pointer {desc_bump} is beyond the {descs} descriptors"),
            );
            desc_bump = descs;
        }
        let mut granule_bump = self.load(H_ARENA_BUMP)?;
        if granule_bump > granules {
            pass.add(
                FsckKind::Header,
                format!("header word {H_ARENA_BUMP}"),
                format!("arena bump pointer {granule_bump} is beyond the {granules} granules"),
            );
            granule_bump = granules;
        }
        let unused = (H_SWITCHES + 1..H_AGENT_DROPS)
            .chain(H_ARENA_MERGING + 1..H_ARENA_FREE)
            .chain(H_ARENA_FREE + self.geo.classes..HEADER_WORDS);
        for index in unused {
            let value = self.load(index)?;
            if value != 0 {
                pass.add(
                    FsckKind::Header,
                    format!("header word {index}"),
                    format!("unused word holds {value:#x}, not 0"),
                );
            }
        }
        Ok((desc_bump, granule_bump))
    }

    /// The agent table: (registered slots, names).
    fn check_agents(&self, pass: &mut Pass) -> Result<(u32, Vec<String>)> {
        let mut names = Vec::new();
        let mut registered = None;
        for slot in 0..self.geo.config.max_agents {
            let state = self.load(self.geo.agent_word(slot, A_STATE))?;
            let subject = format!("agent slot {slot}");
            if state == 0 {
                registered.get_or_insert(slot);
                let words = self
                    .words
                    .slice(self.geo.agent_word(slot, 0), AGENT_WORDS)?;
                if words.iter().any(|w| w.load(Ordering::Relaxed) != 0) {
                    pass.add(FsckKind::Agent, subject, "free slot has non-zero words");
                }
                continue;
            }
            if let Some(first_free) = registered {
                pass.add(
                    FsckKind::Agent,
                    subject.clone(),
                    format!("registered after free slot {first_free} (slots fill in order)"),
                );
            }
            match self.agent_name(slot) {
                Ok(Some(name)) if registered.is_none() => names.push(name),
                Ok(None) if registered.is_none() => names.push(format!("#{slot} (forgotten)")),
                Ok(_) => {}
                Err(error) => {
                    pass.add(FsckKind::Agent, subject, problem_text(&error));
                    if registered.is_none() {
                        names.push(format!("#{slot}"));
                    }
                }
            }
        }
        let registered = registered.unwrap_or(self.geo.config.max_agents);
        for slot in 0..registered {
            let pid = self.load(self.geo.agent_word(slot, A_PID))?;
            if pid > u64::from(u32::MAX) {
                pass.add(
                    FsckKind::Agent,
                    agent_subject(slot, &names),
                    format!("pid word {pid:#x} is not a pid"),
                );
            }
        }
        Ok((registered, names))
    }

    /// Directory lines: their facts, for the views and descriptors.
    fn check_lines(
        &self,
        pass: &mut Pass,
        registered: u32,
        names: &[String],
        alive: &dyn Fn(u32) -> Result<bool>,
    ) -> Result<Vec<LineFacts>> {
        let geo = self.geo;
        let mut facts = vec![LineFacts::default(); geo.lines];
        let mut keys: HashMap<String, u32> = HashMap::new();
        let mut keyed = 0u64;
        for line in 0..geo.lines as u32 {
            let fact = &mut facts[line as usize];
            fact.label = format!("line {line}");
            let meta = self.load(geo.line_word(line, L_KEYMETA))?;
            if meta == 0 {
                let head = self.load(geo.line_word(line, L_HEAD))?;
                let pending = self.load(geo.line_word(line, L_PENDING))?;
                let masks = self
                    .words
                    .slice(geo.line_word(line, L_MASK), geo.mask_words)?;
                // A line emptied after its key's deletion keeps its head's epoch (and its
                // generation and base words), nothing else; its base is the last version it
                // had, which agents' views may still name.
                let head = crate::packing::Head::unpack(head);
                fact.version =
                    u32::try_from(self.load(geo.line_word(line, L_BASE))?).unwrap_or(u32::MAX);
                if head.desc != 0
                    || head.holder != 0
                    || pending != 0
                    || masks.iter().any(|w| w.load(Ordering::Relaxed) != 0)
                {
                    pass.add(
                        FsckKind::Line,
                        fact.label.clone(),
                        "line has no key but a published version, holder, pending record or valid mask",
                    );
                }
                continue;
            }
            keyed += 1;
            fact.keyed = true;
            match self.key_of(line) {
                Ok(Some(key)) => {
                    fact.label = format!("line {line} ({key})");
                    let hash = crate::keys::hash_key(key.as_bytes());
                    let home = (hash as usize) & (geo.lines - 1);
                    let distance = (line as usize).wrapping_sub(home) & (geo.lines - 1);
                    for step in 0..distance {
                        let between = ((home + step) & (geo.lines - 1)) as u32;
                        if self.load(geo.line_word(between, L_KEYMETA))? == 0 {
                            pass.add(
                                FsckKind::Line,
                                fact.label.clone(),
                                format!("key cannot be found: empty line {between} lies on its probe path"),
                            );
                            break;
                        }
                    }
                    if let Some(other) = keys.insert(key, line) {
                        pass.add(
                            FsckKind::Line,
                            fact.label.clone(),
                            format!("same key as line {other}"),
                        );
                    }
                }
                Ok(None) => {}
                Err(error) => pass.add(FsckKind::Line, fact.label.clone(), problem_text(&error)),
            }
            let label = fact.label.clone();
            self.check_head(pass, line, &label, fact, registered, names, alive)?;
            // Views may name versions of the line's earlier keys, up to its base.
            let base = self.load(geo.line_word(line, L_BASE))?;
            fact.version = fact.version.max(u32::try_from(base).unwrap_or(u32::MAX));
        }
        let count = self.load(H_KEY_COUNT)?;
        if count != keyed {
            pass.add(
                FsckKind::Header,
                format!("header word {H_KEY_COUNT}"),
                format!("key count is {count}, but {keyed} lines have keys"),
            );
        }
        Ok(facts)
    }

    /// A keyed line's head, lease, pending record and valid mask.
    #[allow(clippy::too_many_arguments)]
    fn check_head(
        &self,
        pass: &mut Pass,
        line: u32,
        label: &str,
        fact: &mut LineFacts,
        registered: u32,
        names: &[String],
        alive: &dyn Fn(u32) -> Result<bool>,
    ) -> Result<()> {
        let geo = self.geo;
        let head = Head::unpack(self.load(geo.line_word(line, L_HEAD))?);
        if let Some(desc) = head.desc_index() {
            if desc as usize >= geo.descs {
                pass.add(
                    FsckKind::Line,
                    label,
                    format!(
                        "head points at descriptor {desc}, beyond the {} descriptors",
                        geo.descs
                    ),
                );
            } else {
                let d = self.desc_words(desc)?;
                let state = d[D_CTL].load(Ordering::Acquire) >> desc_state::SHIFT;
                let version = u32::try_from(d[D_VERSION].load(Ordering::Acquire)).unwrap_or(0);
                match unpack_owner(d[D_OWNER].load(Ordering::Acquire)) {
                    Some((owner, _)) if owner == line && version > 0 => {
                        fact.version = version;
                        fact.head_desc = Some(desc);
                    }
                    Some((owner, _)) => pass.add(
                        FsckKind::Line,
                        label,
                        format!("head points at descriptor {desc} owned by line {owner} (version {version})"),
                    ),
                    None => pass.add(
                        FsckKind::Line,
                        label,
                        format!("head points at descriptor {desc}, which has no owner"),
                    ),
                }
                if state != desc_state::LIVE && state != desc_state::RETIRED {
                    pass.add(
                        FsckKind::Line,
                        label,
                        format!(
                            "head points at descriptor {desc} in state {}",
                            state_name(state)
                        ),
                    );
                }
            }
        }
        let lease = self.load(geo.line_word(line, L_LEASE))?;
        if lease & (1 << 24) != 0 {
            pass.add(
                FsckKind::Line,
                label,
                format!("lease word {lease:#x} has its spare bit set"),
            );
        }
        if let Some(holder) = head.holder_slot() {
            fact.held = true;
            if holder >= registered {
                pass.add(
                    FsckKind::Line,
                    label,
                    format!("held by agent slot {holder}, which is not registered"),
                );
            } else if !alive(holder)? {
                pass.add_repairable(
                    FsckKind::Lock,
                    label,
                    format!(
                        "held by {}, whose process is gone",
                        agent_subject(holder, names)
                    ),
                );
            }
        }
        let pending = self.load(geo.line_word(line, L_PENDING))?;
        if pending != 0 {
            let (desc_plus_one, epoch) = (pending >> 32, pending & 0xffff_ffff);
            if epoch > 0xff_ffff || desc_plus_one == 0 || desc_plus_one > geo.descs as u64 {
                pass.add(
                    FsckKind::Line,
                    label,
                    format!("pending record {pending:#x} is malformed"),
                );
            } else if fact.held && epoch == u64::from(head.epoch) {
                let desc = desc_plus_one as u32 - 1;
                let state =
                    self.desc_words(desc)?[D_CTL].load(Ordering::Acquire) >> desc_state::SHIFT;
                if state != desc_state::FILLING && state != desc_state::LIVE {
                    pass.add(
                        FsckKind::Line,
                        label,
                        format!(
                            "pending record names descriptor {desc} in state {}",
                            state_name(state)
                        ),
                    );
                }
            }
        }
        for index in 0..geo.mask_words {
            let mask = self.load(geo.line_word(line, L_MASK + index))?;
            for bit in 0..64 {
                if mask & (1 << bit) == 0 {
                    continue;
                }
                let slot = (index * 64 + bit) as u32;
                if slot >= registered {
                    pass.add(
                        FsckKind::View,
                        label,
                        format!("valid bit set for agent slot {slot}, which is not registered"),
                    );
                } else if !fact.held {
                    let view = self.load(geo.view_word(slot, line))? as u32;
                    if view != fact.version {
                        pass.add(
                            FsckKind::View,
                            label,
                            format!(
                                "{} has its valid bit set on version {view}, but the current version is {}",
                                agent_subject(slot, names),
                                fact.version
                            ),
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// Views: no agent saw a version its line does not have.
    fn check_views(&self, pass: &mut Pass, registered: u32, lines: &[LineFacts]) -> Result<()> {
        let geo = self.geo;
        for slot in 0..geo.config.max_agents {
            let row = self.words.slice(geo.view_word(slot, 0), geo.lines)?;
            for (line, word) in row.iter().enumerate() {
                let view = word.load(Ordering::Relaxed);
                if view == 0 {
                    continue;
                }
                let fact = &lines[line];
                let subject = format!("view of agent slot {slot} on {}", fact.label);
                if slot >= registered {
                    pass.add(FsckKind::View, subject, "unregistered agent has a view");
                } else if view > u64::from(u32::MAX) {
                    pass.add(
                        FsckKind::View,
                        subject,
                        format!("view word {view:#x} is not a version"),
                    );
                } else if view as u32 > fact.version
                    && view as u32 != crate::agents::DROPPED_VIEW
                    && !fact.held
                {
                    pass.add(
                        FsckKind::View,
                        subject,
                        format!(
                            "agent saw version {view}, but the line is at version {}",
                            fact.version
                        ),
                    );
                }
            }
        }
        Ok(())
    }

    /// Agents' pin records: descriptor → records naming it, and dead agents' pins.
    fn check_pins(
        &self,
        pass: &mut Pass,
        registered: u32,
        names: &[String],
        alive: &dyn Fn(u32) -> Result<bool>,
    ) -> Result<HashMap<u32, u64>> {
        let mut refs: HashMap<u32, u64> = HashMap::new();
        for slot in 0..registered {
            let subject = agent_subject(slot, names);
            let records = self
                .words
                .slice(self.geo.agent_word(slot, A_PINS), PIN_RECORDS)?;
            let mut count = 0;
            for (index, record) in records.iter().enumerate() {
                let value = record.load(Ordering::Acquire);
                if value == 0 {
                    continue;
                }
                if value > self.geo.descs as u64 {
                    pass.add(
                        FsckKind::Agent,
                        subject.clone(),
                        format!(
                            "pin record {index} names descriptor {}, out of range",
                            value - 1
                        ),
                    );
                    continue;
                }
                count += 1;
                *refs.entry(value as u32 - 1).or_default() += 1;
            }
            let pid = self.load(self.geo.agent_word(slot, A_PID))?;
            let dead = !alive(slot)?;
            if dead && count > 0 {
                pass.add_repairable(
                    FsckKind::Lock,
                    subject.clone(),
                    format!("{count} pin(s) recorded by a process that is gone"),
                );
            }
            if dead && pid != 0 {
                pass.add_repairable(
                    FsckKind::Lock,
                    subject,
                    format!("process {pid} is gone but did not detach"),
                );
            }
        }
        Ok(refs)
    }

    /// Descriptors, free lists and the arena accounting.
    fn check_slots(
        &self,
        pass: &mut Pass,
        desc_bump: u64,
        granule_bump: u64,
        lines: &[LineFacts],
        pin_refs: &HashMap<u32, u64>,
    ) -> Result<()> {
        let geo = self.geo;
        let descs = geo.descs;
        // Descriptor free list.
        let mut on_free = vec![false; descs];
        let free_descs =
            self.walk_free(pass, H_DESC_FREE, "descriptor free list", desc_bump, |d| {
                self.load(geo.desc_word(d as u32, D_NEXT))
            })?;
        for &desc in &free_descs {
            on_free[desc as usize] = true;
        }
        // References from lines.
        let mut referenced = vec![false; descs];
        for (line, fact) in lines.iter().enumerate() {
            if let Some(desc) = fact.head_desc {
                referenced[desc as usize] = true;
            }
            if fact.held {
                let pending = self.load(geo.line_word(line as u32, L_PENDING))?;
                let head = Head::unpack(self.load(geo.line_word(line as u32, L_HEAD))?);
                let desc_plus_one = (pending >> 32) as usize;
                if pending & 0xffff_ffff == u64::from(head.epoch)
                    && (1..=descs).contains(&desc_plus_one)
                {
                    referenced[desc_plus_one - 1] = true;
                }
            }
        }
        let mut claims: Vec<(u64, u64, Claim)> = Vec::new();
        let mut usage = DescriptorUsage {
            untouched: descs as u64 - desc_bump,
            ..DescriptorUsage::default()
        };
        for desc in 0..descs as u32 {
            let d = self.desc_words(desc)?;
            let ctl = d[D_CTL].load(Ordering::Acquire);
            let owner_word = d[D_OWNER].load(Ordering::Acquire);
            let subject = format!("descriptor {desc}");
            let (state, pins) = (ctl >> desc_state::SHIFT, ctl & desc_state::PINS);
            if u64::from(desc) >= desc_bump {
                if ctl != 0 || owner_word != 0 {
                    pass.add(
                        FsckKind::Descriptor,
                        subject,
                        "beyond the bump pointer but in use",
                    );
                }
                continue;
            }
            let records = pin_refs.get(&desc).copied().unwrap_or(0);
            if records > 0 {
                if state != desc_state::LIVE && state != desc_state::RETIRED {
                    pass.add(
                        FsckKind::Descriptor,
                        subject.clone(),
                        format!(
                            "named by {records} pin record(s) but in state {}",
                            state_name(state)
                        ),
                    );
                } else if pins < records {
                    pass.add(
                        FsckKind::Descriptor,
                        subject.clone(),
                        format!("named by {records} pin record(s) but has {pins} pin(s)"),
                    );
                }
            }
            let pinned = pins > 0 && (state == desc_state::RETIRED || state == desc_state::FILLING);
            let in_use = referenced[desc as usize] || records > 0 || pinned;
            if on_free[desc as usize] {
                usage.free += 1;
                if ctl != 0 || in_use {
                    pass.add(
                        FsckKind::FreeList,
                        subject.clone(),
                        format!(
                            "on the free list but in state {} with {pins} pin(s){}",
                            state_name(state),
                            if in_use { ", in use" } else { "" }
                        ),
                    );
                }
                let block = d[D_BLOCK].load(Ordering::Relaxed);
                if block != NO_BLOCK {
                    pass.add(
                        FsckKind::FreeList,
                        subject,
                        "on the free list but still has a block",
                    );
                }
                continue;
            }
            if state == desc_state::FREE && pins != 0 {
                pass.add(
                    FsckKind::Descriptor,
                    subject.clone(),
                    format!("FREE with {pins} pin(s)"),
                );
            }
            if state != desc_state::FREE {
                self.check_desc_fields(
                    pass,
                    desc,
                    state,
                    owner_word,
                    lines,
                    granule_bump,
                    in_use,
                    &mut claims,
                )?;
            }
            if in_use {
                usage.live += 1;
            } else {
                usage.leaked += 1;
                pass.leaked_descs.push(desc);
                pass.add_repairable(
                    FsckKind::Descriptor,
                    subject,
                    format!(
                        "in state {} with {pins} pin(s), neither in use nor free: leaked",
                        state_name(state)
                    ),
                );
            }
        }
        pass.descriptors = usage;

        // Size-class free lists.
        for class in 0..geo.classes {
            let name = format!("free list of class {class}");
            let entries = self.walk_free(pass, H_ARENA_FREE + class, &name, granule_bump, |g| {
                Ok(self.load(geo.block_word(g))? & block_meta::LINK)
            })?;
            for granule in entries {
                let end = granule + (1 << class);
                let meta = self.load(geo.block_word(granule))?;
                if block_meta::state(meta) != block_meta::FREE
                    || block_meta::class(meta) != class
                    || granule % (1 << class) != 0
                {
                    pass.add(
                        FsckKind::FreeList,
                        name.clone(),
                        format!(
                            "block at granule {granule} is not an aligned free block of this \
                             class (block word {meta:#x})"
                        ),
                    );
                }
                if end > granule_bump {
                    pass.add(
                        FsckKind::FreeList,
                        name.clone(),
                        format!(
                            "block at granule {granule} runs past the bump pointer {granule_bump}"
                        ),
                    );
                } else {
                    claims.push((granule, end, Claim::Free(class)));
                }
            }
        }
        // Blocks a merger holds (taken off the lists; a dead merger's are given back by the next
        // merge): free, not leaked.
        for granule in 0..granule_bump {
            let meta = self.load(geo.block_word(granule))?;
            if block_meta::state(meta) == block_meta::STASHED {
                let class = block_meta::class(meta);
                claims.push((granule, granule + (1 << class), Claim::Free(class)));
            }
        }
        self.account(pass, claims, granule_bump);
        Ok(())
    }

    /// A non-free descriptor's owner, block, length, flags and writer; its block is claimed.
    #[allow(clippy::too_many_arguments)]
    fn check_desc_fields(
        &self,
        pass: &mut Pass,
        desc: u32,
        state: u64,
        owner_word: u64,
        lines: &[LineFacts],
        granule_bump: u64,
        in_use: bool,
        claims: &mut Vec<(u64, u64, Claim)>,
    ) -> Result<()> {
        let geo = self.geo;
        let subject = format!("descriptor {desc}");
        let d = self.desc_words(desc)?;
        let published = state == desc_state::LIVE || state == desc_state::RETIRED;
        let version = u32::try_from(d[D_VERSION].load(Ordering::Relaxed)).unwrap_or(0);
        match unpack_owner(owner_word) {
            Some((line, _)) => match lines.get(line as usize) {
                None => pass.add(
                    FsckKind::Descriptor,
                    subject.clone(),
                    format!("owned by line {line}, out of range"),
                ),
                Some(fact) if !fact.keyed => pass.add(
                    FsckKind::Descriptor,
                    subject.clone(),
                    format!("owned by {}, which has no key", fact.label),
                ),
                // A leaked unpublished slot legitimately holds the version after the current.
                Some(fact)
                    if in_use
                        && published
                        && (version == 0 || version > fact.version)
                        && !fact.held =>
                {
                    pass.add(
                        FsckKind::Descriptor,
                        subject.clone(),
                        format!(
                            "holds version {version} of {}, which is at version {}",
                            fact.label, fact.version
                        ),
                    )
                }
                Some(_) => {}
            },
            None if published => pass.add(
                FsckKind::Descriptor,
                subject.clone(),
                format!("{} without an owner", state_name(state)),
            ),
            None => {}
        }
        let len = d[D_LEN].load(Ordering::Relaxed);
        let flags_word = d[D_FLAGS].load(Ordering::Relaxed);
        let (flags, writer) = (flags_word & FLAGS_MASK, flags_word >> 32);
        if published {
            if flags > FLAG_DELETED {
                pass.add(
                    FsckKind::Descriptor,
                    subject.clone(),
                    format!("unknown flags {flags:#x}"),
                );
            }
            if writer >= u64::from(geo.config.max_agents) {
                pass.add(
                    FsckKind::Descriptor,
                    subject.clone(),
                    format!("writer slot {writer} out of range"),
                );
            }
        }
        let block = d[D_BLOCK].load(Ordering::Relaxed);
        if block == NO_BLOCK {
            if published && (flags & FLAG_DELETED == 0 || len != 0) {
                pass.add(
                    FsckKind::Descriptor,
                    subject,
                    "published without a block but not an empty tombstone",
                );
            }
            return Ok(());
        }
        let (granule, class) = (block >> 8, (block & 0xff) as usize);
        if class >= geo.classes
            || granule
                .checked_add(1 << class)
                .is_none_or(|end| end > granule_bump)
        {
            pass.add(
                FsckKind::Descriptor,
                subject,
                format!("block (granule {granule}, class {class}) is outside the arena in use"),
            );
            return Ok(());
        }
        if published && (len > class_bytes(class) || len > geo.config.max_payload) {
            pass.add(
                FsckKind::Descriptor,
                subject.clone(),
                format!("length {len} does not fit its class-{class} block"),
            );
        }
        if published && flags & FLAG_DELETED != 0 {
            pass.add(
                FsckKind::Descriptor,
                subject.clone(),
                "tombstone with a block",
            );
        }
        let meta = self.load(geo.block_word(granule))?;
        if block_meta::state(meta) != block_meta::USED || block_meta::class(meta) != class {
            pass.add(
                FsckKind::Arena,
                subject,
                format!(
                    "block (granule {granule}, class {class}) is not marked in use in the block \
                     table (block word {meta:#x})"
                ),
            );
        }
        claims.push((granule, granule + (1 << class), Claim::Desc(desc, in_use)));
        Ok(())
    }

    /// Walk a Treiber stack whose entries must be below `limit`; bounded, so a cycle ends it.
    fn walk_free(
        &self,
        pass: &mut Pass,
        head_index: usize,
        name: &str,
        limit: u64,
        link_of: impl Fn(u64) -> Result<u64>,
    ) -> Result<Vec<u64>> {
        let mut entries = Vec::new();
        let mut seen = HashSet::new();
        let mut link = self.load(head_index)? & 0xffff_ffff;
        let mut from = "head".to_owned();
        while link != 0 {
            if link > limit {
                pass.add(
                    FsckKind::FreeList,
                    name,
                    format!(
                        "{from} links to entry {}, beyond the bump pointer {limit}",
                        link - 1
                    ),
                );
                break;
            }
            let entry = link - 1;
            if !seen.insert(entry) {
                pass.add(
                    FsckKind::FreeList,
                    name,
                    format!("cycle: entry {entry} is reached twice"),
                );
                break;
            }
            entries.push(entry);
            link = link_of(entry)?;
            from = format!("entry {entry}");
        }
        Ok(entries)
    }

    /// Sweep the claimed granule runs: overlaps, leaks, and the byte totals.
    fn account(&self, pass: &mut Pass, mut claims: Vec<(u64, u64, Claim)>, granule_bump: u64) {
        claims.sort_by_key(|&(start, end, _)| (start, end));
        let mut usage = ArenaUsage {
            untouched_bytes: (self.geo.arena_granules() - granule_bump) * GRANULE,
            ..ArenaUsage::default()
        };
        let mut covered = 0u64; // granules below this are claimed
        let mut last: Option<Claim> = None;
        for &(start, end, claim) in &claims {
            if start > covered {
                pass.leaked_runs.push((covered, start - covered));
            }
            if start < covered
                && let Some(previous) = last
            {
                pass.add(
                    FsckKind::Arena,
                    format!("arena granules {start}..{}", end.min(covered)),
                    format!(
                        "claimed by both {} and {}",
                        previous.describe(),
                        claim.describe()
                    ),
                );
                for c in [previous, claim] {
                    if let Claim::Desc(desc, _) = c {
                        pass.shared_blocks.insert(desc);
                    }
                }
            }
            let fresh = end.saturating_sub(covered.max(start));
            let bytes = fresh * GRANULE;
            match claim {
                Claim::Desc(_, true) => usage.live_bytes += bytes,
                Claim::Desc(_, false) => usage.leaked_bytes += bytes,
                Claim::Free(_) => usage.free_bytes += bytes,
            }
            if end > covered {
                covered = end;
                last = Some(claim);
            }
        }
        if granule_bump > covered {
            pass.leaked_runs.push((covered, granule_bump - covered));
        }
        for &(first, count) in &pass.leaked_runs.clone() {
            usage.leaked_bytes += count * GRANULE;
            pass.add_repairable(
                FsckKind::Arena,
                format!("arena granules {first}..{}", first + count),
                format!(
                    "{} bytes neither in a block nor free: leaked",
                    count * GRANULE
                ),
            );
        }
        pass.arena = usage;
    }
}

fn agent_subject(slot: u32, names: &[String]) -> String {
    match names.get(slot as usize) {
        Some(name) => format!("agent slot {slot} ({name})"),
        None => format!("agent slot {slot}"),
    }
}

/// A protocol error as a problem's message, without the "run ccs destroy" advice.
fn problem_text(error: &ProtocolError) -> String {
    match error {
        ProtocolError::Corrupt { what } => what.clone(),
        other => other.to_string(),
    }
}

fn report(
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

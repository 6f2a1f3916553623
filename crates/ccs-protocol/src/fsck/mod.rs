//! `fsck`: check every structure of a segment, and repair what is safe to repair.
//!
//! The check walks the segment in layout order (`docs/layout.md`) and validates every word
//! against the geometry and against the other structures that refer to it:
//!
//! * **header**: re-validated with [`Geometry::read`](crate::Geometry::read); the key count,
//!   both bump pointers, the unused words and the free-list heads of classes the segment does
//!   not use;
//! * **agent table**: state word format, UTF-8 name, slots filled in order, pid, and the 16 pin
//!   records (each names a published descriptor with at least as many pins as records);
//! * **directory lines**: key meta and key hash, reachability by probing, duplicate keys; the
//!   head (descriptor in range, owned by this line, LIVE or RETIRED; holder registered); the
//!   lease and pending-record formats; the valid masks;
//! * **views**: no agent has seen a version its line does not have yet; **stamps**: no lease
//!   agent fetched a line later than the segment's clock (only lease agents' stamps are read);
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

mod agents;
mod header;
mod lines;
mod log;
mod pass;
mod pins;
mod repair;
mod report;
mod slots;

use pass::report;

use crate::directory::Directory;
use crate::env::Env;
use crate::error::Result;

pub use report::{ArenaUsage, DescriptorUsage, FsckKind, FsckProblem, FsckReport};

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
}

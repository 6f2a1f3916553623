//! Repair: what a dead agent's next attach would do (free its held lines, release its recorded
//! pins, clear its pid), and leaked descriptors and granules given back to the free lists.

use crate::alloc::NO_BLOCK;
use crate::directory::{AgentId, Directory};
use crate::env::Env;
use crate::error::Result;
use crate::layout::{A_PID, D_BLOCK, D_CTL, GRANULE, class_bytes};
use crate::packing::{Head, desc_state, unpack_block_field};
use crate::sync::Ordering;

use super::pass::Pass;

impl<E: Env> Directory<E> {
    /// Free what a dead agent's process left: (lines freed, pins released, pid cleared).
    pub(super) fn repair_dead_agent(&self, slot: u32) -> Result<(u32, u32, u32)> {
        let mut holds = 0;
        for line in 0..self.geo.lines as u32 {
            if Head::unpack(self.head(line)?.load(Ordering::Acquire)).holder_slot() == Some(slot) {
                holds += 1;
            }
        }
        // What its process was allocating, freeing or retiring (`records.rs`) first.
        self.recover_records(slot)?;
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
    pub(super) fn repair_leaks(&self, pass: &Pass) -> Result<(u64, u64)> {
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
                bytes += class_bytes(unpack_block_field(block).1);
            }
            d[D_CTL].store(0, Ordering::Relaxed);
            self.release_desc(desc)?;
        }
        for &(first, count) in &pass.leaked_runs {
            // The run's old block words go: it is freed as the aligned blocks that tile it.
            // Not to 0, which only a granule never handed out reads (a bumper claims it).
            for granule in first..first + count {
                self.block_meta(granule)?
                    .store(crate::arena::block_meta::INSIDE, Ordering::Relaxed);
            }
            self.free_run(first, first + count)?;
            bytes += count * GRANULE;
        }
        Ok((pass.leaked_descs.len() as u64, bytes))
    }

    pub(super) fn agent_label(&self, slot: u32) -> String {
        match self.agent_name(slot) {
            Ok(Some(name)) => format!("agent slot {slot} ({name})"),
            _ => format!("agent slot {slot}"),
        }
    }
}

//! Agents' pin records: each names a descriptor in range (counted, for the descriptor check),
//! and a dead agent's recorded pins and pid are reported as locks left behind.

use std::collections::HashMap;

use crate::directory::Directory;
use crate::env::Env;
use crate::error::Result;
use crate::layout::{A_PID, A_PINS, PIN_RECORDS};
use crate::sync::Ordering;

use super::pass::{Pass, agent_subject};
use super::report::FsckKind;

impl<E: Env> Directory<E> {
    /// Agents' pin records: descriptor → records naming it, and dead agents' pins.
    pub(super) fn check_pins(
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
}

//! The agent table: state word format, UTF-8 names, slots filled in order, free slots all zero,
//! and pid words that hold a pid.

use crate::directory::Directory;
use crate::env::Env;
use crate::error::Result;
use crate::layout::{A_PID, A_STATE, AGENT_WORDS};
use crate::sync::Ordering;

use super::pass::{Pass, agent_subject, problem_text};
use super::report::FsckKind;

impl<E: Env> Directory<E> {
    /// The agent table: (registered slots, names).
    pub(super) fn check_agents(&self, pass: &mut Pass) -> Result<(u32, Vec<String>)> {
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
}

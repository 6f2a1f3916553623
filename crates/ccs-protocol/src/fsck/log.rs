//! The switch word, agents' strategies, the operation log's rings (records counted, torn ones
//! not a problem), inbox heads and tails, and subscriptions.

use crate::directory::Directory;
use crate::env::Env;
use crate::error::Result;
use crate::freshness::Strategy;
use crate::layout::{
    A_STRATEGY, H_SWITCHES, I_HEAD, I_TAIL, SWITCH_LOG_OFF, SWITCH_NO_INVALIDATION,
};
use crate::oplog::RecordRead;

use super::pass::{Pass, agent_subject, problem_text};
use super::report::FsckKind;

impl<E: Env> Directory<E> {
    /// Switches, strategies, log rings, inboxes and subscriptions. A record or event that fails
    /// its checksum is not a problem (two writers a ring apart can leave one; readers skip it),
    /// only counted.
    pub(super) fn check_log_and_inboxes(
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
}

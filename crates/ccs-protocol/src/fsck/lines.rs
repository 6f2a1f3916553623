//! Directory lines and views. A line: key meta and key hash, reachability by probing, duplicate
//! keys, the key count; its head (descriptor in range, owned by this line, LIVE or RETIRED;
//! holder registered and alive), lease and pending-record formats, and valid masks. Views: no
//! agent has seen a version its line does not have yet. Stamps: no lease agent fetched a line
//! later than now (only lease agents' stamps are read: the others' pages stay untouched).

use std::collections::HashMap;

use crate::directory::Directory;
use crate::env::Env;
use crate::error::Result;
use crate::freshness::Strategy;
use crate::layout::{
    D_CTL, D_OWNER, D_VERSION, H_KEY_COUNT, L_BASE, L_HEAD, L_KEYMETA, L_LEASE, L_MASK, L_PENDING,
};
use crate::packing::{Head, desc_state, unpack_owner};
use crate::sync::Ordering;

use super::pass::{LineFacts, Pass, agent_subject, problem_text, state_name};
use super::report::FsckKind;

impl<E: Env> Directory<E> {
    /// Directory lines: their facts, for the views and descriptors.
    pub(super) fn check_lines(
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
                fact.version = self.load(geo.line_word(line, L_BASE))?;
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
            fact.version = fact.version.max(base);
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
                let version = d[D_VERSION].load(Ordering::Acquire);
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
                    let view = self.load(geo.view_word(slot, line))?;
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
    pub(super) fn check_views(
        &self,
        pass: &mut Pass,
        registered: u32,
        lines: &[LineFacts],
    ) -> Result<()> {
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
                } else if view > fact.version && view != crate::agents::DROPPED_VIEW && !fact.held {
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

    /// Stamps: a lease agent's fetch stamps are not later than the segment's clock (an access
    /// count may be anything: the agent may have re-attached with a smaller count). A stamp
    /// ahead of the clock is harmless (the copy counts as expired) but no correct fetch
    /// stores one. Skipped when the clock is behind the segment's creation time (a file
    /// segment kept across a reboot), where every stamp is meaningless.
    pub(super) fn check_stamps(
        &self,
        pass: &mut Pass,
        registered: u32,
        names: &[String],
    ) -> Result<()> {
        let geo = self.geo;
        for slot in 0..registered.min(geo.config.max_agents) {
            if !matches!(self.agent_strategy(slot)?, Strategy::Lease { .. }) {
                continue;
            }
            let row = self.words.slice(geo.stamp_word(slot, 0), geo.lines)?;
            let stamps: Vec<u64> = row.iter().map(|w| w.load(Ordering::Relaxed)).collect();
            // Loaded after the stamps, so a fetch racing this check is not reported.
            let Some(clock) = self.lease_clock_since_creation()? else {
                return Ok(());
            };
            for (line, &stamp) in stamps.iter().enumerate() {
                if stamp > clock {
                    pass.add(
                        FsckKind::View,
                        format!(
                            "lease stamp of {} on line {line}",
                            agent_subject(slot, names)
                        ),
                        format!(
                            "fetched at {stamp} ms, but the segment's clock is at {clock} ms \
                             (the copy is served as expired)"
                        ),
                    );
                }
            }
        }
        Ok(())
    }
}

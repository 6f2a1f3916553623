//! Descriptors, free lists and arena accounting. A descriptor's state, pins, owner, block,
//! length and flags agree; the free lists (descriptors and one per size class) are in range,
//! acyclic, without duplicates, and hold aligned blocks marked FREE with their class; every
//! granule below the bump pointer is in exactly one descriptor's block, on one free list, or
//! held by a buddy merger. Overlaps are problems; what is in none of them is leaked.

use std::collections::{HashMap, HashSet};

use crate::alloc::{FLAG_DELETED, FLAGS_MASK, NO_BLOCK};
use crate::arena::block_meta;
use crate::directory::Directory;
use crate::env::Env;
use crate::error::Result;
use crate::free_list::FreeList;
use crate::layout::{
    D_BLOCK, D_CTL, D_FLAGS, D_LEN, D_NEXT, D_OWNER, D_VERSION, GRANULE, L_HEAD, L_PENDING,
    class_bytes,
};
use crate::packing::{Head, desc_state, unpack_block_field, unpack_owner};
use crate::sync::Ordering;

use super::pass::{LineFacts, Pass, state_name};
use super::report::{ArenaUsage, DescriptorUsage, FsckKind};

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

impl<E: Env> Directory<E> {
    /// Descriptors, free lists and the arena accounting.
    pub(super) fn check_slots(
        &self,
        pass: &mut Pass,
        desc_bump: u64,
        granule_bump: u64,
        lines: &[LineFacts],
        pin_refs: &HashMap<u32, u64>,
        alive: &dyn Fn(u32) -> Result<bool>,
    ) -> Result<()> {
        let geo = self.geo;
        let descs = geo.descs;
        // Descriptor free list.
        let mut on_free = vec![false; descs];
        let free_descs = self.walk_free(
            pass,
            FreeList::Descs,
            "descriptor free list",
            desc_bump,
            |d| Ok(self.load(geo.desc_word(d as u32, D_NEXT))? & crate::packing::DESC_LINK),
        )?;
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
            // A live agent's spare (`spare.rs`): the descriptor and its block are the agent's.
            let spare = crate::spare::is_spare_claim(ctl) && {
                let claimer = (ctl & desc_state::PINS).checked_sub(1);
                match claimer.and_then(|slot| u32::try_from(slot).ok()) {
                    Some(slot) if slot < geo.config.max_agents => alive(slot)?,
                    _ => false,
                }
            };
            if spare {
                self.claim_spare_block(pass, desc, granule_bump, &mut claims)?;
            }
            let in_use = referenced[desc as usize] || records > 0 || pinned || spare;
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
            // A claim (`try_free` won, the free not finished, or a spare) is a leak if its
            // claimer died, repaired below like any other; only other bits of a FREE word are
            // corrupt.
            let claimed = state == desc_state::FREE && ctl & desc_state::CLAIM != 0;
            if state == desc_state::FREE && pins != 0 && !claimed {
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
            let list = FreeList::Blocks(class);
            let entries = self.walk_free(pass, list, &name, granule_bump, |g| {
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
                if class >= geo.classes {
                    // Checked before the shift: the word is segment data.
                    pass.add(
                        FsckKind::FreeList,
                        format!("block at granule {granule}"),
                        format!("held by a merger with a bad class (block word {meta:#x})"),
                    );
                    continue;
                }
                claims.push((granule, granule + (1 << class), Claim::Free(class)));
            }
        }
        // The block a dead merger's drain took off its list and did not stash yet: the next
        // merger stashes it (`arena.rs`), so it is free, not leaked.
        if let Some((granule, class)) = self.drained_block()? {
            claims.push((granule, granule + (1 << class), Claim::Free(class)));
        }
        self.account(pass, claims, granule_bump);
        Ok(())
    }

    /// The block of a live agent's spare descriptor `desc`, claimed for it (live bytes: the
    /// agent holds them).
    fn claim_spare_block(
        &self,
        pass: &mut Pass,
        desc: u32,
        granule_bump: u64,
        claims: &mut Vec<(u64, u64, Claim)>,
    ) -> Result<()> {
        let block = self.load(self.geo.desc_word(desc, D_BLOCK))?;
        let (granule, class) = unpack_block_field(block);
        if block == NO_BLOCK {
            return Ok(());
        }
        if class >= self.geo.classes || granule + (1 << class) > granule_bump {
            pass.add(
                FsckKind::Descriptor,
                format!("descriptor {desc}"),
                format!("a spare whose block {block:#x} is outside the arena's used part"),
            );
            return Ok(());
        }
        claims.push((granule, granule + (1 << class), Claim::Desc(desc, true)));
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
        let version = d[D_VERSION].load(Ordering::Relaxed);
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
        let (granule, class) = unpack_block_field(block);
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
        list: FreeList,
        name: &str,
        limit: u64,
        link_of: impl Fn(u64) -> Result<u64>,
    ) -> Result<Vec<u64>> {
        let mut entries = Vec::new();
        let mut seen = HashSet::new();
        let mut link = self.list_tag_and_top(list)?.1;
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

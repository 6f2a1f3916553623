//! The header's words beyond the constants [`Geometry::read`](crate::Geometry::read) validates:
//! both bump pointers (within the tables) and the unused words (zero). The key count is checked
//! with the lines, the switch word with the log.

use crate::directory::Directory;
use crate::env::Env;
use crate::error::Result;
use crate::layout::{
    H_AGENT_DROPS, H_ARENA_BUMP, H_ARENA_DRAINING, H_DESC_BUMP, H_FREE_LISTS, H_SWITCHES,
    HEADER_WORDS, arena_free,
};

use super::pass::Pass;
use super::report::FsckKind;

impl<E: Env> Directory<E> {
    /// Header words beyond the validated constants: (descriptor bump, granule bump), clamped.
    pub(super) fn check_header(&self, pass: &mut Pass) -> Result<(u64, u64)> {
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
            .chain(H_ARENA_DRAINING + 1..H_FREE_LISTS)
            .chain(arena_free(self.geo.classes)..HEADER_WORDS);
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
}

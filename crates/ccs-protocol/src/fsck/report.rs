//! What `fsck` reports: the problems it found, by structure, and where the arena's bytes and
//! the descriptors are.

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

/// One problem found by [`Directory::fsck`](crate::Directory::fsck).
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
    /// In blocks of descriptors in use (a live writer's spare included).
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
    /// In use (published, being filled, pinned or pin-recorded, or a live writer's spare).
    pub live: u64,
    /// On the free list.
    pub free: u64,
    /// Handed out but neither in use nor free.
    pub leaked: u64,
    /// Above the bump pointer: never handed out.
    pub untouched: u64,
}

/// What [`Directory::fsck`](crate::Directory::fsck) found (and
/// [`Directory::fsck_repair`](crate::Directory::fsck_repair) did).
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

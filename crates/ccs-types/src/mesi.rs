//! The four coherence states of an agent's copy (Papamarcos & Patel, 1984).

/// An agent's coherence state on one artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mesi {
    /// Modified: the agent is writing a new version right now (a `put` in progress; never
    /// seen on etcd, where a write is one transaction).
    Modified,
    /// Exclusive: the agent holds the artifact's single-writer right (`acquire`).
    Exclusive,
    /// Shared: the agent's copy is the current version.
    Shared,
    /// Invalid: the agent never read it, or a newer version exists.
    Invalid,
}

impl Mesi {
    /// One letter: M, E, S or I.
    pub fn letter(self) -> char {
        match self {
            Mesi::Modified => 'M',
            Mesi::Exclusive => 'E',
            Mesi::Shared => 'S',
            Mesi::Invalid => 'I',
        }
    }
}

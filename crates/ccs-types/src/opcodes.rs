//! The names of logged operations and their outcomes, shared by the logs' writers (the
//! shared-memory directory, the etcd engine) and their readers (the facade's `trace` module,
//! the `ccs` tools). The codes are how the shared-memory log stores them.

use std::fmt;

/// What an agent did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum LogOp {
    /// The agent attached (key: none).
    Attach,
    /// The agent detached (key: none).
    Detach,
    /// A read: outcome `Hit`, `Miss` or `NotFound`.
    Get,
    /// A write of a payload (plain, conditional or blind: see [`WriteMode`]).
    Put,
    /// A delete (a tombstone version).
    Delete,
    /// Taking a line for a read-modify-write (acquire).
    Acquire,
    /// Publishing under a hold taken by `Acquire`.
    Commit,
    /// Giving a hold up without writing.
    Release,
    /// Extending a hold's lease.
    Renew,
    /// Taking a dead or expired holder's line: `agent` is the reclaimer, `other` the holder.
    Reclaim,
    /// Not an operation: records of `agent` were overwritten before they were read; `count`
    /// says how many, and `seq` is the first sequence number it stands for.
    Lost,
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum LogOutcome {
    /// Done.
    Ok,
    /// A read served from the agent's current copy.
    Hit,
    /// A read that had to fetch the current version.
    Miss,
    /// A read of an artifact that does not exist (never written, or deleted).
    NotFound,
    /// A conditional write refused: the writer's view (`held`) is not the current version
    /// (`version`).
    Conflict,
    /// Refused: another agent (`other`) holds the line.
    Held,
    /// Refused: the agent's hold was reclaimed (fenced) before this operation.
    Fenced,
    /// Failed for another reason (capacity, corruption, ...).
    Error,
}

/// The condition a write was made under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum WriteMode {
    /// Conditional on the writer's own view (`put`, `delete`, `commit`).
    View,
    /// Conditional on a version the caller named (`put_if`); `held` is that version.
    If,
    /// Unconditional (`put_blind`): may overwrite versions the writer never saw.
    Blind,
}

macro_rules! names {
    ($ty:ty { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$(<$ty>::$variant),*];

            /// The lowercase name used in traces and on screen.
            pub fn name(self) -> &'static str {
                match self { $(<$ty>::$variant => $name),* }
            }

            /// Parse a name written by [`Self::name`].
            pub fn from_name(name: &str) -> Option<$ty> {
                match name { $($name => Some(<$ty>::$variant),)* _ => None }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

names!(LogOp {
    Attach => "attach", Detach => "detach", Get => "get", Put => "put", Delete => "delete",
    Acquire => "acquire", Commit => "commit", Release => "release", Renew => "renew",
    Reclaim => "reclaim", Lost => "lost",
});

names!(LogOutcome {
    Ok => "ok", Hit => "hit", Miss => "miss", NotFound => "not_found", Conflict => "conflict",
    Held => "held", Fenced => "fenced", Error => "error",
});

names!(WriteMode { View => "view", If => "if", Blind => "blind" });

impl LogOp {
    /// The code stored in a record.
    #[doc(hidden)]
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Decode a stored code.
    #[doc(hidden)]
    pub fn from_code(code: u8) -> Option<LogOp> {
        LogOp::ALL.get(usize::from(code)).copied()
    }
}

impl LogOutcome {
    /// The code stored in a record.
    #[doc(hidden)]
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Decode a stored code.
    #[doc(hidden)]
    pub fn from_code(code: u8) -> Option<LogOutcome> {
        LogOutcome::ALL.get(usize::from(code)).copied()
    }
}

impl WriteMode {
    /// The code stored in a record (0 is "no mode").
    #[doc(hidden)]
    pub fn code(mode: Option<WriteMode>) -> u8 {
        mode.map_or(0, |m| m as u8 + 1)
    }

    /// Decode a stored code: `Some(None)` for "no mode", `None` if it is not a code.
    #[doc(hidden)]
    pub fn from_code(code: u8) -> Option<Option<WriteMode>> {
        match code {
            0 => Some(None),
            n => WriteMode::ALL.get(usize::from(n - 1)).copied().map(Some),
        }
    }
}

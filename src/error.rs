//! The facade's errors: what happened, to which artifact or agent, and what to do about it.
//!
//! The refusals both backends share (`NotFound`, `Conflict`, `Held`, `Fenced`, `LeaseLost`)
//! are `ccs-types`' values, carried as they are: match their fields with
//! `Error::Conflict(Conflict { current, yours, .. })`.

use ccs_os::OsError;
use ccs_protocol::ProtocolError;
use ccs_types::{Conflict, Fenced, Held, LeaseLost, NotFound};

use crate::segment::Backend;

/// Result alias for agent-coherence operations.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Everything an agent-coherence operation can refuse or fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The artifact has never been written, or was deleted.
    #[error(transparent)]
    NotFound(#[from] NotFound),
    /// A conditional write found a newer version than the writer's view: nothing was written.
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// Another live agent holds the artifact exclusively.
    #[error(transparent)]
    Held(#[from] Held),
    /// This agent's hold was reclaimed (its lease expired, or it was re-attached).
    #[error(transparent)]
    Fenced(#[from] Fenced),
    /// A live process is already attached as this agent.
    #[error(
        "agent `{name}` is already attached by live process {pid}; use another name or stop that process"
    )]
    AgentBusy {
        /// The agent's name.
        name: String,
        /// The pid recorded for it.
        pid: u32,
    },
    /// An agent to forget is attached by a live process.
    #[error(
        "agent `{name}` is attached by live process {pid}; only a dead or detached agent can be forgotten: stop that process first"
    )]
    AgentAlive {
        /// The agent's name.
        name: String,
        /// The pid recorded for it.
        pid: u32,
    },
    /// A segment name or path that cannot name a segment.
    #[error("`{location}` cannot name a segment: {reason}")]
    BadLocation {
        /// What was given.
        location: String,
        /// Why it is refused.
        reason: String,
    },
    /// The segment does not exist.
    #[error("segment `{location}` does not exist; create it first (`ccs init {location}`)")]
    SegmentNotFound {
        /// Where it was looked for.
        location: String,
    },
    /// The segment exists already.
    #[error(
        "segment `{location}` already exists; open it, or destroy it first with `ccs destroy {location}`"
    )]
    SegmentExists {
        /// Where it is.
        location: String,
    },
    /// The segment's file belongs to another user and opening it was not allowed.
    #[error(
        "segment `{location}` belongs to {owner}, not to you (uid {your_uid}); refused, since its owner can rewrite or truncate it at any time: if you trust that user, open it with `OpenOptions::allow_other_owner(true)` (`ccs ... --allow-other-owner`)"
    )]
    ForeignOwner {
        /// Where it is.
        location: String,
        /// The owner, for messages: `uid 65534 (nobody)`.
        owner: String,
        /// The owner's user id.
        owner_uid: u32,
        /// This process's effective user id.
        your_uid: u32,
    },
    /// The segment's path is a symbolic link: segments are opened without following links.
    #[error(
        "segment `{location}` is a symbolic link, which is never followed (it could point at another user's file); name the file itself"
    )]
    Symlink {
        /// The name given.
        location: String,
    },
    /// A write was published (peers see it) but flushing it to disk failed.
    #[error(
        "version {version} of `{key}` was written and is visible to other agents, but flushing it to disk failed ({source}); it may not survive a power loss: fix the disk error, then call `Segment::flush` (`ccs sync`)"
    )]
    NotDurable {
        /// The key written.
        key: String,
        /// The version that was published.
        version: u64,
        /// Why the flush failed.
        #[source]
        source: OsError,
    },
    /// A segment's contents failed validation.
    #[error("segment `{location}`: {source}")]
    Segment {
        /// Which segment.
        location: String,
        /// What was wrong.
        #[source]
        source: ProtocolError,
    },
    /// A fixed-size resource of the segment is exhausted.
    #[error(
        "segment is full: {what} (limit {limit}); {}",
        ccs_protocol::capacity_remedy(what)
    )]
    CapacityExceeded {
        /// Which resource.
        what: &'static str,
        /// Its limit.
        limit: u64,
    },
    /// A payload larger than the segment allows.
    #[error(
        "payload is {len} bytes, the segment's maximum is {max}; create the segment with a larger max payload"
    )]
    PayloadTooLarge {
        /// The payload's length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A key that is empty or too long.
    #[error("key is {len} bytes; keys must be 1..={max} bytes of UTF-8")]
    BadKey {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An agent name that is empty or too long.
    #[error("agent name is {len} bytes; names must be 1..={max} bytes of UTF-8")]
    BadName {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A configuration that cannot describe a segment.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The operating system refused or failed.
    #[error(transparent)]
    Os(#[from] OsError),
    /// The operation exists only on another backend (`docs/backends.md` lists which).
    #[error("{what} is not supported on {backend}: {why}")]
    Unsupported {
        /// The operation, e.g. `fsck`.
        what: &'static str,
        /// The backend the segment is on.
        backend: Backend,
        /// Why, and what to use instead.
        why: &'static str,
    },
    /// The backend's servers did not answer in time, or refused the request (etcd: no
    /// quorum, no leader, unreachable members). Nothing is known to have been written unless
    /// a retry finds it.
    #[error(
        "`{location}` is unavailable: {reason}; check that a majority of the cluster's members is up and reachable, then retry"
    )]
    Unavailable {
        /// Which segment (the cluster URL).
        location: String,
        /// What failed.
        reason: String,
    },
    /// This agent's session lapsed (its copies were invalidated meanwhile) and its name was
    /// attached by another process: this handle can do nothing more.
    #[error(transparent)]
    LeaseLost(#[from] LeaseLost),
    /// What a backend's server holds under the segment is not what agent-coherence writes.
    #[error(
        "`{location}` holds data agent-coherence did not write ({reason}); use another prefix, or `ccs destroy {location}` if nothing there matters"
    )]
    Corrupt {
        /// Which segment (the cluster URL).
        location: String,
        /// What was wrong.
        reason: String,
    },
}

impl Error {
    /// Attach a key (and agent names, through `name_of`) to a protocol error.
    pub(crate) fn from_protocol(
        error: ProtocolError,
        location: &str,
        key: &str,
        name_of: impl Fn(u32) -> String,
    ) -> Error {
        let key = key.to_owned();
        match error {
            ProtocolError::NotFound => NotFound { key }.into(),
            ProtocolError::Conflict { current, yours } => Conflict {
                key,
                current,
                // A dropped view (see `ccs_protocol::DROPPED_VIEW`) holds no known version.
                yours: if yours == ccs_protocol::DROPPED_VIEW {
                    0
                } else {
                    yours
                },
            }
            .into(),
            ProtocolError::Held { by } => Held {
                key,
                by: name_of(by),
            }
            .into(),
            ProtocolError::Fenced => Fenced { key }.into(),
            other => Error::general(other, location),
        }
    }

    /// A protocol error that names no artifact.
    pub(crate) fn general(error: ProtocolError, location: &str) -> Error {
        match error {
            ProtocolError::CapacityExceeded { what, limit } => {
                Error::CapacityExceeded { what, limit }
            }
            ProtocolError::PayloadTooLarge { len, max } => Error::PayloadTooLarge { len, max },
            ProtocolError::BadKey { len, max } => Error::BadKey { len, max },
            ProtocolError::BadName { len, max } => Error::BadName { len, max },
            ProtocolError::InvalidConfig(why) => Error::InvalidConfig(why),
            other => Error::Segment {
                location: location.to_owned(),
                source: other,
            },
        }
    }

    /// Whether retrying after re-reading can succeed (a conflict or a held artifact).
    pub fn is_contention(&self) -> bool {
        matches!(self, Error::Conflict { .. } | Error::Held { .. })
    }
}

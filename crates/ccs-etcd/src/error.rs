//! Errors of the etcd engine: what happened, to which artifact or agent, and what to do.
//!
//! The refusals every backend shares are `ccs-types`' values, carried as they are (the facade
//! hands them to its caller unchanged).

use ccs_types::{Conflict, Fenced, Held, LeaseLost, NotFound};

/// Result alias for the etcd engine.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Everything an operation on the etcd engine can refuse or fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The artifact has never been written, or its current version is a deletion.
    #[error(transparent)]
    NotFound(#[from] NotFound),
    /// A conditional write found a newer version than the writer's view: nothing was written.
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// Another live agent holds the artifact exclusively (or this agent itself does).
    #[error(transparent)]
    Held(#[from] Held),
    /// The hold was lost (its lease expired, or it was reclaimed): nothing was written.
    #[error(transparent)]
    Fenced(#[from] Fenced),
    /// A live session already holds this agent name.
    #[error(
        "agent `{name}` is already attached by a live session ({holder}); use another name or stop that process"
    )]
    AgentBusy {
        /// The agent's name.
        name: String,
        /// Who holds it, as that session recorded itself (`host:pid`).
        holder: String,
    },
    /// This agent's session lease expired and its name was taken by another session meanwhile.
    #[error(transparent)]
    LeaseLost(#[from] LeaseLost),
    /// The etcd cluster did not answer in time, or refused the request.
    #[error(
        "etcd cluster unavailable: {0}; check that a majority of its members is up, then retry"
    )]
    Unavailable(String),
    /// Something in etcd under this prefix is not what this engine writes.
    #[error("corrupt data under the prefix: {0}")]
    Corrupt(String),
    /// A key that cannot name an artifact.
    #[error("bad key `{key}`: {reason}")]
    BadKey {
        /// The key (lossy).
        key: String,
        /// Why.
        reason: &'static str,
    },
    /// A name that cannot name an agent.
    #[error("bad agent name `{name}`: {reason}")]
    BadName {
        /// The name (lossy).
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// A cluster URL that cannot be parsed.
    #[error("bad cluster URL `{url}`: {reason}; expected etcd://host:port[,host:port...]/prefix")]
    BadUrl {
        /// What was given.
        url: String,
        /// Why.
        reason: String,
    },
    /// A payload larger than one etcd request may carry.
    #[error(
        "payload is {len} bytes, the etcd engine's maximum is {max} (etcd's request limit); store large blobs elsewhere and share a reference"
    )]
    PayloadTooLarge {
        /// The payload's length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A setting that cannot be used.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
}

impl Error {
    /// Whether retrying after re-reading can succeed (a conflict or a held artifact).
    pub fn is_contention(&self) -> bool {
        matches!(self, Error::Conflict { .. } | Error::Held { .. })
    }
}

impl From<etcd_client::Error> for Error {
    fn from(error: etcd_client::Error) -> Error {
        Error::Unavailable(error.to_string())
    }
}

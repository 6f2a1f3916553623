//! The refusals every backend answers with, defined once: the artifact does not exist, a
//! conditional write is stale, another agent holds the artifact, a hold was lost, an agent's
//! session was lost. The etcd engine returns these values, the facade's shared-memory backend
//! builds them from the segment's answers (which name no key), and the facade's `Error` and
//! `ccs_etcd::Error` carry each in the variant of its name, so the facade passes etcd's
//! through unchanged.
//!
//! Each message says what happened and what to do.

/// The artifact has never been written, or was deleted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("artifact `{key}` does not exist (never written, or deleted)")]
pub struct NotFound {
    /// The key asked for.
    pub key: String,
}

/// A conditional write found a newer version than the writer's view: nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "stale write to `{key}` refused: it is at version {current}, your view is version {yours}; read it again, then write"
)]
pub struct Conflict {
    /// The key written.
    pub key: String,
    /// The artifact's current version (0: never written).
    pub current: u64,
    /// The version the write was conditional on (0: no known version).
    pub yours: u64,
}

/// Another live agent holds the artifact exclusively (or this agent itself does).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("artifact `{key}` is held exclusively by agent `{by}`; retry after it commits or releases")]
pub struct Held {
    /// The key.
    pub key: String,
    /// The holder's name.
    pub by: String,
}

/// This agent's hold was reclaimed (its lease expired, or the agent was re-attached): nothing
/// was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "your hold on `{key}` was reclaimed (lease expired or the agent was re-attached); nothing was written: acquire it again"
)]
pub struct Fenced {
    /// The key.
    pub key: String,
}

/// This agent's session lapsed (its copies were invalidated meanwhile) and its name was
/// attached by another process: this handle can do nothing more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "agent `{name}` lost its session (its lease expired, so its copies were invalidated) and the name is now attached elsewhere; attach again"
)]
pub struct LeaseLost {
    /// The agent's name.
    pub name: String,
}

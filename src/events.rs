//! Eager agents: subscriptions to key prefixes, and the inbox of change events they receive.

use std::time::Duration;

use crate::agent::{Agent, Version};
use crate::error::Result;

/// A write to an artifact an eager agent subscribed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    /// The artifact.
    pub key: String,
    /// The version written.
    pub version: Version,
    /// The agent that wrote it.
    pub writer: String,
    /// The write was a delete.
    pub deleted: bool,
}

/// Events taken from an inbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Events {
    /// Oldest first.
    pub events: Vec<ChangeEvent>,
    /// Events lost since the last receive: the inbox was full (its writers never wait), or a
    /// writer died while pushing one. After a loss, re-read what matters.
    pub lost: u64,
}

impl Agent {
    /// Receive change events for every key starting with `prefix` (the empty prefix: every
    /// key), including keys created later. Needs the [`crate::Strategy::Eager`] strategy.
    /// Writes by this agent itself are not reported to it.
    pub fn subscribe(&self, prefix: &str) -> Result<()> {
        let shared = self.shared();
        shared
            .dir
            .subscribe(self.id, prefix)
            .map_err(|e| shared.error(e, prefix))
    }

    /// Stop receiving events for `prefix`; `false` if it was not subscribed.
    pub fn unsubscribe(&self, prefix: &str) -> Result<bool> {
        let shared = self.shared();
        shared
            .dir
            .unsubscribe(self.id, prefix)
            .map_err(|e| shared.error(e, prefix))
    }

    /// The prefixes this agent is subscribed to.
    pub fn subscriptions(&self) -> Result<Vec<String>> {
        let shared = self.shared();
        shared
            .dir
            .subscriptions(self.id.slot)
            .map_err(|e| shared.general(e))
    }

    /// Take up to `max` waiting events, without blocking.
    pub fn try_events(&self, max: usize) -> Result<Events> {
        let shared = self.shared();
        let delivery = shared
            .dir
            .poll_events(self.id, max)
            .map_err(|e| shared.general(e))?;
        Ok(self.events(delivery))
    }

    /// Take up to `max` events, blocking until one arrives or a loss is reported, or `timeout`
    /// passes (then the result is empty). `None` waits forever.
    pub fn wait_events(&self, max: usize, timeout: Option<Duration>) -> Result<Events> {
        let shared = self.shared();
        let timeout_ms = timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
        let delivery = shared
            .dir
            .wait_events(self.id, max, timeout_ms)
            .map_err(|e| shared.general(e))?;
        Ok(self.events(delivery))
    }

    fn events(&self, delivery: ccs_protocol::Delivery) -> Events {
        let shared = self.shared();
        Events {
            events: delivery
                .events
                .into_iter()
                .map(|event| ChangeEvent {
                    key: match shared.dir.key_of(event.line) {
                        Ok(Some(key)) => key,
                        _ => format!("#line{}", event.line),
                    },
                    version: Version::from(event.version),
                    writer: shared.agent_name(event.writer),
                    deleted: event.deleted,
                })
                .collect(),
            lost: delivery.lost,
        }
    }
}

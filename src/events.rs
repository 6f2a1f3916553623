//! Eager agents: subscriptions to key prefixes, and the inbox of change events they receive
//! ([`crate::ChangeEvent`]s).

use std::time::Duration;

use crate::Events;
use crate::agent::Agent;
use crate::backend::{Engine, dispatch};
use crate::error::Result;

impl Agent {
    /// Receive change events for every key starting with `prefix` (the empty prefix: every
    /// key), including keys created later. Needs the [`crate::Strategy::Eager`] strategy.
    /// Writes by this agent itself are not reported to it. On etcd, events are delivered for
    /// writes made after this call returns.
    pub fn subscribe(&self, prefix: &str) -> Result<()> {
        dispatch!(Engine, &self.engine, a => a.subscribe(prefix))
    }

    /// Stop receiving events for `prefix`; `false` if it was not subscribed.
    pub fn unsubscribe(&self, prefix: &str) -> Result<bool> {
        dispatch!(Engine, &self.engine, a => a.unsubscribe(prefix))
    }

    /// The prefixes this agent is subscribed to.
    pub fn subscriptions(&self) -> Result<Vec<String>> {
        dispatch!(Engine, &self.engine, a => a.subscriptions())
    }

    /// Take up to `max` waiting events, without blocking.
    pub fn try_events(&self, max: usize) -> Result<Events> {
        dispatch!(Engine, &self.engine, a => a.try_events(max))
    }

    /// Take up to `max` events, blocking until one arrives or a loss is reported, or `timeout`
    /// passes (then the result is empty). `None` waits forever.
    pub fn wait_events(&self, max: usize, timeout: Option<Duration>) -> Result<Events> {
        dispatch!(Engine, &self.engine, a => a.wait_events(max, timeout))
    }
}

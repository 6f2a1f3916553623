//! Eager agents: subscriptions to key prefixes, and the inbox of change events they receive
//! ([`crate::ChangeEvent`]s).

use std::time::Duration;

use crate::Events;
use crate::agent::{Agent, Engine};
use crate::error::Result;

impl Agent {
    /// Receive change events for every key starting with `prefix` (the empty prefix: every
    /// key), including keys created later. Needs the [`crate::Strategy::Eager`] strategy.
    /// Writes by this agent itself are not reported to it. On etcd, events are delivered for
    /// writes made after this call returns.
    pub fn subscribe(&self, prefix: &str) -> Result<()> {
        match &self.engine {
            Engine::Shm(a) => a.subscribe(prefix),
            Engine::Etcd(a) => a.subscribe(prefix),
        }
    }

    /// Stop receiving events for `prefix`; `false` if it was not subscribed.
    pub fn unsubscribe(&self, prefix: &str) -> Result<bool> {
        match &self.engine {
            Engine::Shm(a) => a.unsubscribe(prefix),
            Engine::Etcd(a) => a.unsubscribe(prefix),
        }
    }

    /// The prefixes this agent is subscribed to.
    pub fn subscriptions(&self) -> Result<Vec<String>> {
        match &self.engine {
            Engine::Shm(a) => a.subscriptions(),
            Engine::Etcd(a) => a.subscriptions(),
        }
    }

    /// Take up to `max` waiting events, without blocking.
    pub fn try_events(&self, max: usize) -> Result<Events> {
        match &self.engine {
            Engine::Shm(a) => a.try_events(max),
            Engine::Etcd(a) => a.try_events(max),
        }
    }

    /// Take up to `max` events, blocking until one arrives or a loss is reported, or `timeout`
    /// passes (then the result is empty). `None` waits forever.
    pub fn wait_events(&self, max: usize, timeout: Option<Duration>) -> Result<Events> {
        match &self.engine {
            Engine::Shm(a) => a.wait_events(max, timeout),
            Engine::Etcd(a) => a.wait_events(max, timeout),
        }
    }
}

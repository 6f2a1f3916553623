//! Eager agents on shared memory: subscriptions recorded in the segment, and the agent's
//! inbox ring of change events.

use std::time::Duration;

use crate::backend::shm::agent::Agent;
use crate::error::Result;
use crate::{ChangeEvent, Events};

impl Agent {
    pub(crate) fn subscribe(&self, prefix: &str) -> Result<()> {
        let shared = &self.shared;
        shared
            .dir
            .subscribe(self.id, prefix)
            .map_err(|e| shared.error(e, prefix))
    }

    pub(crate) fn unsubscribe(&self, prefix: &str) -> Result<bool> {
        let shared = &self.shared;
        shared
            .dir
            .unsubscribe(self.id, prefix)
            .map_err(|e| shared.error(e, prefix))
    }

    pub(crate) fn subscriptions(&self) -> Result<Vec<String>> {
        let shared = &self.shared;
        shared
            .dir
            .subscriptions(self.id.slot)
            .map_err(|e| shared.general(e))
    }

    pub(crate) fn try_events(&self, max: usize) -> Result<Events> {
        let shared = &self.shared;
        let delivery = shared
            .dir
            .poll_events(self.id, max)
            .map_err(|e| shared.general(e))?;
        Ok(self.events(delivery))
    }

    pub(crate) fn wait_events(&self, max: usize, timeout: Option<Duration>) -> Result<Events> {
        let shared = &self.shared;
        let timeout_ms = timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
        let delivery = shared
            .dir
            .wait_events(self.id, max, timeout_ms)
            .map_err(|e| shared.general(e))?;
        Ok(self.events(delivery))
    }

    fn events(&self, delivery: ccs_protocol::Delivery) -> Events {
        let shared = &self.shared;
        Events {
            events: delivery
                .events
                .into_iter()
                .map(|event| ChangeEvent {
                    // The key that published the version: not the line's current one if the
                    // line was reused since.
                    key: match shared.dir.key_of_version(event.line, event.version) {
                        Ok(Some(key)) => key,
                        _ => format!("#line{}", event.line),
                    },
                    version: event.version,
                    writer: shared.agent_name(event.writer),
                    deleted: event.deleted,
                })
                .collect(),
            lost: delivery.lost,
        }
    }
}

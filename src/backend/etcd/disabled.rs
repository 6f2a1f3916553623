//! The etcd backend in a build without the `etcd` feature: an `etcd://` location is refused
//! with [`Error::BadLocation`], and the backend's types are uninhabited, so the facade's
//! dispatch compiles unchanged and its etcd arms are dead code.

use std::time::Duration;

use ccs_protocol::Config;

use crate::agent::{ArtifactRef, Cached};
use crate::backend;
use crate::error::{Error, Result};
use crate::guard::ReadInner;
use crate::status::Status;
use crate::trace::{LogBatch, LogRecord};
use crate::{Check, Events, Read, Strategy, Version};

fn disabled(url: &str) -> Error {
    Error::BadLocation {
        location: url.to_owned(),
        reason: "this build of agent-coherence has no etcd backend (enable its `etcd` feature)"
            .to_owned(),
    }
}

/// No value: there is no etcd segment in this build.
pub(crate) enum Segment {}

/// No value: there is no etcd agent in this build.
pub(crate) enum Agent {}

/// No value: there is no etcd hold in this build.
pub(crate) enum Hold {}

impl Hold {
    pub(crate) fn version(&self) -> Version {
        match *self {}
    }

    pub(crate) fn commit(self, _: &str, _: &[u8]) -> Result<Version> {
        match self {}
    }

    pub(crate) fn release(self, _: &str) -> Result<()> {
        match self {}
    }

    pub(crate) fn renew(&mut self, _: &str, _: Duration) -> Result<()> {
        match *self {}
    }
}

impl Segment {
    pub(crate) fn connect(url: &str) -> Result<Segment> {
        Err(disabled(url))
    }

    pub(crate) fn destroy(url: &str) -> Result<()> {
        Err(disabled(url))
    }

    pub(crate) fn location(&self) -> &str {
        match *self {}
    }

    pub(crate) fn config(&self) -> Config {
        match *self {}
    }

    pub(crate) fn attach_with(&self, _: &str, _: Strategy) -> Result<Agent> {
        match *self {}
    }

    pub(crate) fn list(&self, _: &str) -> Result<Vec<String>> {
        match *self {}
    }

    pub(crate) fn status(&self) -> Result<Status> {
        match *self {}
    }

    pub(crate) fn log_records(&self) -> Result<Vec<LogRecord>> {
        match *self {}
    }

    pub(crate) fn log_follow(&self) -> Result<LogFollower> {
        match *self {}
    }
}

/// No value: there is no etcd log in this build.
pub(crate) enum LogFollower {}

impl LogFollower {
    pub(crate) fn skip_to_end(&mut self) -> Result<()> {
        match *self {}
    }

    pub(crate) fn poll(&mut self) -> Result<LogBatch> {
        match *self {}
    }
}

impl Agent {
    pub(crate) fn strategy(&self) -> Strategy {
        match *self {}
    }

    pub(crate) fn resolve(&self, _: &str) -> Result<Option<ccs_protocol::LineRef>> {
        match *self {}
    }

    pub(crate) fn get(&self, _: &(impl ArtifactRef + ?Sized)) -> Result<Read> {
        match *self {}
    }

    pub(crate) fn get_linearizable(&self, _: &(impl ArtifactRef + ?Sized)) -> Result<Read> {
        match *self {}
    }

    pub(crate) fn get_into(
        &self,
        _: &(impl ArtifactRef + ?Sized),
        _: &mut Vec<u8>,
    ) -> Result<(Version, bool)> {
        match *self {}
    }

    pub(crate) fn read(&self, _: &(impl ArtifactRef + ?Sized)) -> Result<ReadInner> {
        match *self {}
    }

    pub(crate) fn check(&self, _: &(impl ArtifactRef + ?Sized)) -> Result<Check> {
        match *self {}
    }

    pub(crate) fn refresh(&self, _: &mut Cached) -> Result<bool> {
        match *self {}
    }

    pub(crate) fn is_valid(&self, _: &(impl ArtifactRef + ?Sized)) -> Result<bool> {
        match *self {}
    }

    pub(crate) fn being_written(&self, _: &(impl ArtifactRef + ?Sized)) -> Result<bool> {
        match *self {}
    }

    pub(crate) fn put(&self, _: &(impl ArtifactRef + ?Sized), _: &[u8]) -> Result<Version> {
        match *self {}
    }

    pub(crate) fn put_if(
        &self,
        _: &(impl ArtifactRef + ?Sized),
        _: Version,
        _: &[u8],
    ) -> Result<Version> {
        match *self {}
    }

    pub(crate) fn put_blind(&self, _: &(impl ArtifactRef + ?Sized), _: &[u8]) -> Result<Version> {
        match *self {}
    }

    pub(crate) fn delete(&self, _: &(impl ArtifactRef + ?Sized)) -> Result<Version> {
        match *self {}
    }

    pub(crate) fn acquire(
        &self,
        _: &(impl ArtifactRef + ?Sized),
        _: Duration,
    ) -> Result<backend::Hold> {
        match *self {}
    }

    pub(crate) fn wait_changed(
        &self,
        _: &(impl ArtifactRef + ?Sized),
        _: Version,
        _: Option<Duration>,
    ) -> Result<Option<Version>> {
        match *self {}
    }

    pub(crate) fn subscribe(&self, _: &str) -> Result<()> {
        match *self {}
    }

    pub(crate) fn unsubscribe(&self, _: &str) -> Result<bool> {
        match *self {}
    }

    pub(crate) fn subscriptions(&self) -> Result<Vec<String>> {
        match *self {}
    }

    pub(crate) fn try_events(&self, _: usize) -> Result<Events> {
        match *self {}
    }

    pub(crate) fn wait_events(&self, _: usize, _: Option<Duration>) -> Result<Events> {
        match *self {}
    }
}

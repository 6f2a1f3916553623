//! The etcd backend: the facade's calls on `ccs_etcd`, for a segment at an `etcd://` URL.
//!
//! `ccs_etcd` is the coherence engine on an etcd cluster (`docs/protocol-etcd.md`); this
//! module only adapts it to the facade: its values are `ccs_types`' and pass through as they
//! are, its errors become the facade's [`Error`] (with the cluster URL as the location), its
//! status gains the facade's backend-neutral agent rows, and keys and names are held to the
//! shared-memory limits so that a key valid on one backend is valid on the other. `docs/backends.md` lists what differs.
//!
//! The engine's calls block on its own runtime and refuse to run inside another async
//! runtime; [`off_runtime`] moves a call made from inside one (the `ccs mcp` server) to a
//! scoped thread, so the facade stays callable from anywhere.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ccs_etcd::{Cluster, EtcdAgent, WaitResult};
use ccs_protocol::{Config, MAX_KEY_BYTES, MAX_NAME_BYTES};

use crate::agent::{ArtifactRef, Cached};
use crate::backend;
use crate::error::{Error, Result};
use crate::guard::ReadInner;
use crate::segment::Backend;
use crate::status::{AgentStatus, Status};
use crate::trace::{LogBatch, LogRecord};
use crate::{Check, Events, Read, Strategy, Version};

/// Change events an etcd agent's inbox keeps (`ccs_etcd`'s inbox capacity).
const INBOX_EVENTS: u32 = 4096;

/// The limits of the etcd engine, as a [`Config`] (see [`crate::Segment::config`]).
pub(crate) fn config() -> Config {
    Config {
        max_agents: 0,
        max_artifacts: 0,
        arena_bytes: 0,
        max_payload: ccs_etcd::layout::MAX_PAYLOAD as u64,
        write_lease_ms: 0,
        log_records: 0,
        inbox_events: INBOX_EVENTS,
    }
}

/// Run `f` outside any async runtime: here if there is none, else on a scoped thread.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|scope| scope.spawn(f).join())
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// NUL separates names in the engine's layout: refused on etcd, with a reason.
fn no_nul(text: &str, what: &'static str) -> Result<()> {
    if text.contains('\0') {
        return Err(Error::Unsupported {
            what,
            backend: Backend::Etcd,
            why: "the etcd layout separates names with NUL bytes; use keys and names without them",
        });
    }
    Ok(())
}

/// A key valid on both backends: 1 to [`MAX_KEY_BYTES`] bytes, no NUL.
pub(crate) fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(Error::BadKey {
            len: key.len(),
            max: MAX_KEY_BYTES,
        });
    }
    no_nul(key, "a key containing a NUL byte")
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(Error::BadName {
            len: name.len(),
            max: MAX_NAME_BYTES,
        });
    }
    no_nul(name, "an agent name containing a NUL byte")
}

/// The facade's error for an engine error at `location` (the cluster URL).
fn error(error: ccs_etcd::Error, location: &str) -> Error {
    use ccs_etcd::Error as E;
    let location = location.to_owned();
    match error {
        // The refusals both backends share pass through as they are.
        E::NotFound(refusal) => Error::NotFound(refusal),
        E::Conflict(refusal) => Error::Conflict(refusal),
        E::Held(refusal) => Error::Held(refusal),
        E::Fenced(refusal) => Error::Fenced(refusal),
        E::AgentBusy { name, holder } => Error::AgentBusy {
            name,
            pid: session_pid(&holder).1.unwrap_or(0),
        },
        E::LeaseLost(refusal) => Error::LeaseLost(refusal),
        E::Unavailable(reason) => Error::Unavailable { location, reason },
        E::Corrupt(reason) => Error::Corrupt { location, reason },
        E::BadUrl { url, reason } => Error::BadLocation {
            location: url,
            reason,
        },
        E::PayloadTooLarge { len, max } => Error::PayloadTooLarge { len, max },
        E::InvalidConfig(why) => Error::InvalidConfig(why),
        // Keys and names are checked here first, to the shared-memory limits.
        E::BadKey { key, reason } => Error::InvalidConfig(format!("key `{key}`: {reason}")),
        E::BadName { name, reason } => {
            Error::InvalidConfig(format!("agent name `{name}`: {reason}"))
        }
        other => Error::Unavailable {
            location,
            reason: other.to_string(),
        },
    }
}

/// (host, pid) of a session as it records itself: `host:pid`.
fn session_pid(session: &str) -> (Option<String>, Option<u32>) {
    match session.rsplit_once(':') {
        Some((host, pid)) => (Some(host.to_owned()), pid.parse().ok()),
        None => (Some(session.to_owned()), None),
    }
}

/// A connection to a cluster and one prefix in it.
pub(crate) struct Segment {
    cluster: Cluster,
}

impl Segment {
    pub(crate) fn connect(url: &str) -> Result<Segment> {
        off_runtime(|| Cluster::connect(url))
            .map(|cluster| Segment { cluster })
            .map_err(|e| error(e, url))
    }

    pub(crate) fn destroy(url: &str) -> Result<()> {
        off_runtime(|| Cluster::destroy(url)).map_err(|e| error(e, url))
    }

    pub(crate) fn url(&self) -> &str {
        self.cluster.url()
    }

    /// The cluster URL with its prefix, as the user named it.
    pub(crate) fn location(&self) -> &str {
        self.url()
    }

    /// The engine's limits, as a [`Config`].
    pub(crate) fn config(&self) -> Config {
        config()
    }

    pub(crate) fn attach_with(&self, name: &str, strategy: Strategy) -> Result<Agent> {
        check_name(name)?;
        // The same limits as on shared memory (1 ms to 24 days, at least 1 hit).
        let strategy = strategy.validate().map_err(Error::InvalidConfig)?;
        let agent = off_runtime(|| self.cluster.attach_with(name, strategy))
            .map_err(|e| error(e, self.url()))?;
        Ok(Agent {
            agent: Arc::new(agent),
            location: self.url().to_owned(),
            subscriptions: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn list(&self, prefix: &str) -> Result<Vec<String>> {
        no_nul(prefix, "a key prefix containing a NUL byte")?;
        off_runtime(|| self.cluster.list(prefix)).map_err(|e| error(e, self.url()))
    }

    pub(crate) fn log_records(&self) -> Result<Vec<LogRecord>> {
        off_runtime(|| self.cluster.log_records()).map_err(|e| error(e, self.url()))
    }

    pub(crate) fn log_follow(&self) -> Result<LogFollower> {
        let follower =
            off_runtime(|| self.cluster.log_follow()).map_err(|e| error(e, self.url()))?;
        Ok(LogFollower {
            follower,
            location: self.url().to_owned(),
        })
    }

    pub(crate) fn status(&self) -> Result<Status> {
        let status = off_runtime(|| self.cluster.status()).map_err(|e| error(e, self.url()))?;
        let agents = status
            .agents
            .into_iter()
            .map(|agent| {
                let (host, pid) = match &agent.session {
                    Some(session) => session_pid(session),
                    None => (None, None),
                };
                AgentStatus {
                    name: agent.name,
                    pid,
                    host,
                    alive: agent.alive,
                    generation: 0,
                    strategy: Strategy::Lazy,
                    subscriptions: Vec::new(),
                }
            })
            .collect();
        Ok(Status {
            backend: Backend::Etcd,
            config: config(),
            revision: Some(status.revision),
            agents,
            artifacts: status.artifacts,
        })
    }
}

/// An agent attached to a cluster prefix by this process.
pub(crate) struct Agent {
    /// Shared with the holds it grants, which commit through it.
    agent: Arc<EtcdAgent>,
    location: String,
    /// The prefixes subscribed through this handle (the engine keeps them in its watcher).
    subscriptions: Mutex<Vec<String>>,
}

impl Agent {
    fn fail(&self) -> impl Fn(ccs_etcd::Error) -> Error + '_ {
        move |e| error(e, &self.location)
    }

    pub(crate) fn strategy(&self) -> Strategy {
        self.agent.strategy()
    }

    /// A key on etcd is only its text: checked, nothing to resolve.
    pub(crate) fn resolve(&self, key: &str) -> Result<Option<ccs_protocol::LineRef>> {
        check_key(key)?;
        Ok(None)
    }

    /// A HIT is served from this process (no round trip); a MISS fetches and registers.
    pub(crate) fn get(&self, artifact: &(impl ArtifactRef + ?Sized)) -> Result<Read> {
        let key = artifact.key_str();
        check_key(key)?;
        off_runtime(|| self.agent.get(key)).map_err(self.fail())
    }

    /// A read whose version the cluster confirmed current during the call.
    pub(crate) fn get_linearizable(&self, artifact: &(impl ArtifactRef + ?Sized)) -> Result<Read> {
        let key = artifact.key_str();
        check_key(key)?;
        off_runtime(|| self.agent.get_linearizable(key)).map_err(self.fail())
    }

    pub(crate) fn get_into(
        &self,
        artifact: &(impl ArtifactRef + ?Sized),
        buffer: &mut Vec<u8>,
    ) -> Result<(Version, bool)> {
        let read = self.get(artifact)?;
        *buffer = read.bytes;
        Ok((read.version, read.hit))
    }

    /// The guard owns a copy of the bytes: there is no slot to pin.
    pub(crate) fn read(&self, artifact: &(impl ArtifactRef + ?Sized)) -> Result<ReadInner> {
        self.get(artifact).map(ReadInner::Owned)
    }

    pub(crate) fn check(&self, artifact: &(impl ArtifactRef + ?Sized)) -> Result<Check> {
        let key = artifact.key_str();
        check_key(key)?;
        off_runtime(|| self.agent.check(key)).map_err(self.fail())
    }

    /// A HIT when the agent's copy is valid (a local check, counted by its strategy like any
    /// HIT) and `cached` holds that version; the bytes are then left where they are.
    pub(crate) fn refresh(&self, cached: &mut Cached) -> Result<bool> {
        let read = self.get(&cached.key)?;
        if read.hit && read.version == cached.version {
            return Ok(true);
        }
        cached.bytes = read.bytes;
        cached.version = read.version;
        Ok(false)
    }

    pub(crate) fn is_valid(&self, artifact: &(impl ArtifactRef + ?Sized)) -> Result<bool> {
        let key = artifact.key_str();
        check_key(key)?;
        self.agent.is_valid(key).map_err(self.fail())
    }

    /// A write on etcd is one transaction, invisible until it commits: there is nothing in
    /// flight to report.
    pub(crate) fn being_written(&self, _: &(impl ArtifactRef + ?Sized)) -> Result<bool> {
        Err(Error::Unsupported {
            what: "being_written",
            backend: Backend::Etcd,
            why: "a write on etcd is one transaction, invisible until it commits; wait for it with wait_changed",
        })
    }

    fn write(
        &self,
        artifact: &(impl ArtifactRef + ?Sized),
        bytes: Option<&[u8]>,
        cond: ccs_etcd::Condition,
    ) -> Result<Version> {
        let key = artifact.key_str();
        check_key(key)?;
        off_runtime(|| match bytes {
            Some(bytes) => self.agent.put(key, bytes, cond),
            None => self.agent.delete(key, cond),
        })
        .map_err(self.fail())
    }

    pub(crate) fn put(
        &self,
        artifact: &(impl ArtifactRef + ?Sized),
        bytes: &[u8],
    ) -> Result<Version> {
        self.write(artifact, Some(bytes), ccs_etcd::Condition::View)
    }

    pub(crate) fn put_if(
        &self,
        artifact: &(impl ArtifactRef + ?Sized),
        expected: Version,
        bytes: &[u8],
    ) -> Result<Version> {
        self.write(
            artifact,
            Some(bytes),
            ccs_etcd::Condition::Version(expected),
        )
    }

    pub(crate) fn put_blind(
        &self,
        artifact: &(impl ArtifactRef + ?Sized),
        bytes: &[u8],
    ) -> Result<Version> {
        self.write(artifact, Some(bytes), ccs_etcd::Condition::Blind)
    }

    pub(crate) fn delete(&self, artifact: &(impl ArtifactRef + ?Sized)) -> Result<Version> {
        self.write(artifact, None, ccs_etcd::Condition::View)
    }

    pub(crate) fn acquire(
        &self,
        artifact: &(impl ArtifactRef + ?Sized),
        lease: Duration,
    ) -> Result<backend::Hold> {
        let key = artifact.key_str();
        check_key(key)?;
        let hold = off_runtime(|| self.agent.acquire(key, lease)).map_err(self.fail())?;
        Ok(backend::Hold::Etcd(Hold {
            agent: Arc::clone(&self.agent),
            location: self.location.clone(),
            hold,
        }))
    }

    pub(crate) fn wait_changed(
        &self,
        artifact: &(impl ArtifactRef + ?Sized),
        since: Version,
        timeout: Option<Duration>,
    ) -> Result<Option<Version>> {
        let key = artifact.key_str();
        check_key(key)?;
        match off_runtime(|| self.agent.wait_changed(key, since, timeout)).map_err(self.fail())? {
            WaitResult::Changed(version) => Ok(Some(version)),
            WaitResult::TimedOut(_) => Ok(None),
        }
    }

    fn subs(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn subscribe(&self, prefix: &str) -> Result<()> {
        if prefix.len() > MAX_KEY_BYTES {
            return Err(Error::BadKey {
                len: prefix.len(),
                max: MAX_KEY_BYTES,
            });
        }
        no_nul(prefix, "a key prefix containing a NUL byte")?;
        self.agent.subscribe(prefix).map_err(self.fail())?;
        let mut subs = self.subs();
        if !subs.iter().any(|s| s == prefix) {
            subs.push(prefix.to_owned());
        }
        Ok(())
    }

    pub(crate) fn unsubscribe(&self, prefix: &str) -> Result<bool> {
        self.subs().retain(|s| s != prefix);
        Ok(self.agent.unsubscribe(prefix))
    }

    pub(crate) fn subscriptions(&self) -> Result<Vec<String>> {
        Ok(self.subs().clone())
    }

    /// As on shared memory, only an eager agent has an inbox.
    fn require_eager(&self) -> Result<()> {
        if self.agent.strategy() != Strategy::Eager {
            return Err(Error::InvalidConfig(
                "only an eager agent has an inbox: attach it with the eager strategy".into(),
            ));
        }
        Ok(())
    }

    pub(crate) fn try_events(&self, max: usize) -> Result<Events> {
        self.require_eager()?;
        Ok(self.agent.try_events(max))
    }

    pub(crate) fn wait_events(&self, max: usize, timeout: Option<Duration>) -> Result<Events> {
        self.require_eager()?;
        Ok(self.agent.wait_events(max, timeout))
    }
}

/// An exclusive hold on etcd, with the agent that took it (its commit is that agent's write).
/// Its errors name the prefix's location, so the key the guard passes is not needed.
pub(crate) struct Hold {
    agent: Arc<EtcdAgent>,
    location: String,
    hold: ccs_etcd::Hold,
}

impl Hold {
    pub(crate) fn version(&self) -> Version {
        self.hold.version()
    }

    pub(crate) fn commit(self, _key: &str, bytes: &[u8]) -> Result<Version> {
        let Hold {
            agent,
            location,
            hold,
        } = self;
        off_runtime(|| agent.commit(hold, bytes)).map_err(|e| error(e, &location))
    }

    pub(crate) fn release(self, _key: &str) -> Result<()> {
        let Hold {
            agent,
            location,
            hold,
        } = self;
        off_runtime(|| agent.release(hold)).map_err(|e| error(e, &location))
    }

    pub(crate) fn renew(&mut self, _key: &str, lease: std::time::Duration) -> Result<()> {
        let Hold {
            agent,
            hold,
            location,
        } = self;
        off_runtime(|| agent.renew(hold, lease)).map_err(|e| error(e, location))
    }
}

/// A follower of a prefix's operation log.
pub(crate) struct LogFollower {
    follower: ccs_etcd::LogFollower,
    location: String,
}

impl LogFollower {
    pub(crate) fn skip_to_end(&mut self) -> Result<()> {
        let LogFollower { follower, location } = self;
        off_runtime(|| follower.skip_to_end()).map_err(|e| error(e, location))
    }

    pub(crate) fn poll(&mut self) -> Result<LogBatch> {
        let LogFollower { follower, location } = self;
        off_runtime(|| follower.poll()).map_err(|e| error(e, location))
    }
}

//! `Cluster`: a connection to an etcd cluster and one key prefix in it; attach agents, list
//! artifacts, read the status snapshot, destroy the prefix.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;

use etcd_client::{Client, ConnectOptions, GetOptions, Txn, TxnOp};

use crate::agent::EtcdAgent;
use crate::error::{Error, Result};
use crate::layout::{HoldValue, Layout, Meta, check_key, check_name, decode_version};
use crate::net::{Members, Net, Options, got};
use crate::oplog::{self, LogFollower, LogOp, LogOutcome, LogRecord, Rec};
use crate::state::Core;
use crate::types::{AgentState, AgentStatus, ArtifactStatus, Mesi, Status, Strategy};
use crate::{session, url, watcher};

/// A connection to an etcd cluster and one prefix in its key space. Cheap to clone; clones
/// share the connection and the runtime that runs its requests and agents' background tasks.
#[derive(Clone)]
pub struct Cluster {
    runtime: Arc<tokio::runtime::Runtime>,
    net: Net,
    url: String,
}

impl Cluster {
    /// Connect to `etcd://h1:2379,h2:2379/prefix` with default [`Options`].
    pub fn connect(url: &str) -> Result<Cluster> {
        Cluster::connect_with(url, Options::default())
    }

    /// Connect with explicit [`Options`]; the URL's query options (`?session_ttl=2s`, see
    /// [`url`]) are applied over them.
    pub fn connect_with(url: &str, options: Options) -> Result<Cluster> {
        let target = url::parse(url)?;
        let options = target.options(options)?;
        options.check()?;
        not_in_runtime()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ccs-etcd")
            .enable_all()
            .build()
            .map_err(|e| Error::Unavailable(format!("cannot start the I/O runtime: {e}")))?;
        let connect = ConnectOptions::new()
            // A member that accepts no connection, or stops answering HTTP/2 pings (a stopped
            // process, a cut link), fails its requests within about a request timeout; a
            // member without a leader refuses them at once. Either way `Net::call` moves on.
            .with_connect_timeout(options.request_timeout)
            .with_keep_alive(options.request_timeout, options.request_timeout)
            .with_keep_alive_while_idle(true)
            .with_require_leader(true);
        // One client per member (connections are made lazily, so a member that is down now
        // costs nothing here); processes start at different members to spread the load.
        let clients = runtime
            .block_on(async {
                tokio::time::timeout(options.op_timeout, async {
                    let mut clients = Vec::with_capacity(target.endpoints.len());
                    for endpoint in &target.endpoints {
                        clients.push(Client::connect([endpoint], Some(connect.clone())).await?);
                    }
                    Ok::<_, etcd_client::Error>(clients)
                })
                .await
            })
            .map_err(|_| {
                Error::Unavailable(format!(
                    "no answer from {url} within {:?}",
                    options.op_timeout
                ))
            })?
            .map_err(|e| Error::Unavailable(format!("cannot connect to {url}: {e}")))?;
        let first = std::process::id() as usize;
        Ok(Cluster {
            runtime: Arc::new(runtime),
            net: Net {
                members: Arc::new(Members::new(clients, first)),
                layout: Layout::new(&target.prefix),
                options,
            },
            url: url.to_owned(),
        })
    }

    /// Delete everything under the URL's prefix: artifacts, views, holds, registrations.
    /// Agents still attached lose their copies (their next read is a MISS of nothing).
    pub fn destroy(url: &str) -> Result<()> {
        let cluster = Cluster::connect(url)?;
        let root = cluster.net.layout.root().to_owned();
        let net = cluster.net.clone();
        cluster.run(async move { net.delete_prefix(&root).await })
    }

    /// The URL this handle was connected with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The settings.
    pub fn options(&self) -> Options {
        self.net.options
    }

    /// Run `fut` on the runtime, from a caller's (non-async) thread. Each request inside is
    /// bounded by `op_timeout`.
    pub(crate) fn run<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        not_in_runtime()?;
        self.runtime.block_on(fut)
    }

    /// As [`Cluster::run`], for waits whose length the caller chose.
    pub(crate) fn run_unbounded<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        self.run(fut)
    }

    /// Attach as agent `name` with the [`Strategy::Lazy`] strategy.
    pub fn attach(&self, name: &str) -> Result<EtcdAgent> {
        self.attach_with(name, Strategy::Lazy)
    }

    /// Attach as agent `name`: a session lease kept alive by a background task, and the key
    /// `s/<name>` created under it. [`Error::AgentBusy`] while another live session holds
    /// the name (anywhere).
    pub fn attach_with(&self, name: &str, strategy: Strategy) -> Result<EtcdAgent> {
        check_name(name)?;
        match strategy {
            Strategy::Lease(d) if d.is_zero() => {
                return Err(Error::InvalidConfig(
                    "a lease strategy needs a positive lifetime".to_owned(),
                ));
            }
            Strategy::AccessCount(0) => {
                return Err(Error::InvalidConfig(
                    "an access_count strategy needs at least 1 hit".to_owned(),
                ));
            }
            _ => {}
        }
        let session = self.run(session::open(&self.net, name, 0))?;
        let start = session.rev + 1;
        let log_next = session.log_next;
        let core = Arc::new(Core::new(
            name.to_owned(),
            self.net.clone(),
            strategy,
            session,
            log_next,
        ));
        core.lock().watched_rev = start - 1;
        core.log(Rec::new(LogOp::Attach, LogOutcome::Ok).at(start - 1));
        let mut tasks = vec![
            self.runtime.spawn(watcher::run(Arc::clone(&core), start)),
            self.runtime.spawn(session::keep_alive(Arc::clone(&core))),
        ];
        let flusher = core
            .log_on
            .then(|| self.runtime.spawn(oplog::ship::run(Arc::clone(&core))));
        tasks.extend(flusher);
        Ok(EtcdAgent::new(self.clone(), core, tasks))
    }

    /// Every record the prefix's operation log holds (the newest `Options::log_records` per
    /// agent), read at one revision, in the readers' order ([`crate::merge_order`]), with a
    /// [`LogOp::Lost`] record for each gap in an agent's seq (records below an agent's oldest
    /// one included). Malformed values are skipped; [`Cluster::log_follow`] counts them.
    /// Records an agent made in the last few tens of milliseconds may still be in its process
    /// ([`EtcdAgent::flush_log`] writes them at once).
    pub fn log_records(&self) -> Result<Vec<LogRecord>> {
        Ok(LogFollower::new(self.clone(), false).poll()?.records)
    }

    /// A follower of the prefix's operation log: its first [`LogFollower::poll`] returns what
    /// the log holds (or nothing after [`LogFollower::skip_to_end`]), each later one what was
    /// flushed since, from an etcd watch.
    pub fn log_follow(&self) -> Result<LogFollower> {
        Ok(LogFollower::new(self.clone(), true))
    }

    pub(crate) fn net(&self) -> &Net {
        &self.net
    }

    /// Keys of existing (not deleted) artifacts starting with `prefix`, sorted.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>> {
        if !prefix.is_empty() {
            check_key(prefix)?;
        }
        let l = &self.net.layout;
        let (kvs, _) = self.run(self.net.range(&format!("{}{prefix}", l.metas())))?;
        let mut keys = Vec::new();
        for kv in kvs {
            let Some(key) = l.key_of_meta(kv.key()) else {
                continue;
            };
            if !Meta::decode(kv.value())?.deleted {
                keys.push(key.to_owned());
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// A snapshot of the prefix, read at one revision: agents (alive or not), artifacts, and
    /// every agent's M/E/S/I state on every artifact.
    pub fn status(&self) -> Result<Status> {
        let l = &self.net.layout;
        let prefixes = [
            l.agents(),
            l.sessions(),
            l.metas(),
            l.holds(),
            l.all_copies(),
            l.all_views(),
        ];
        let txn = Txn::new().and_then(
            prefixes
                .iter()
                .map(|p| TxnOp::get(p.as_str(), Some(GetOptions::new().with_prefix())))
                .collect::<Vec<_>>(),
        );
        let resp = self.run(self.net.read_txn(txn))?;
        let revision = crate::net::revision(&resp);
        let names: Vec<String> = got(&resp, 0)
            .iter()
            .filter_map(|kv| l.tail(&l.agents(), kv.key()).map(str::to_owned))
            .collect();
        let sessions: HashMap<String, String> = got(&resp, 1)
            .iter()
            .filter_map(|kv| {
                let name = l.tail(&l.sessions(), kv.key())?;
                Some((
                    name.to_owned(),
                    String::from_utf8_lossy(kv.value()).into_owned(),
                ))
            })
            .collect();
        let holds: HashMap<String, String> = got(&resp, 3)
            .iter()
            .filter_map(|kv| {
                let key = l.tail(&l.holds(), kv.key())?;
                Some((key.to_owned(), HoldValue::decode(kv.value()).ok()?.holder))
            })
            .collect();
        let mut copies: HashMap<(String, String), u64> = HashMap::new();
        for kv in got(&resp, 4) {
            if let Some((key, agent)) = l.split_copy(kv.key()) {
                copies.insert(
                    (key.to_owned(), agent.to_owned()),
                    decode_version(kv.value())?,
                );
            }
        }
        let mut views: HashMap<(String, String), u64> = HashMap::new();
        for kv in got(&resp, 5) {
            let Some(rest) = l.tail(&l.all_views(), kv.key()) else {
                continue;
            };
            if let Some((agent, key)) = rest.split_once('\0') {
                views.insert(
                    (key.to_owned(), agent.to_owned()),
                    decode_version(kv.value())?,
                );
            }
        }
        let mut artifacts = BTreeMap::new();
        for kv in got(&resp, 2) {
            let Some(key) = l.key_of_meta(kv.key()) else {
                continue;
            };
            let meta = Meta::decode(kv.value())?;
            let holder = holds.get(key).cloned();
            let states = names
                .iter()
                .map(|agent| {
                    let pair = (key.to_owned(), agent.clone());
                    let state = if holder.as_deref() == Some(agent.as_str()) {
                        Mesi::Exclusive
                    } else if !meta.deleted && copies.get(&pair) == Some(&meta.version) {
                        Mesi::Shared
                    } else {
                        Mesi::Invalid
                    };
                    AgentState {
                        agent: agent.clone(),
                        state,
                        held: views.get(&pair).copied().filter(|v| *v != 0),
                    }
                })
                .collect();
            artifacts.insert(
                key.to_owned(),
                ArtifactStatus {
                    key: key.to_owned(),
                    version: meta.version,
                    size: meta.len,
                    writer: Some(meta.writer).filter(|w| !w.is_empty()),
                    deleted: meta.deleted,
                    holder,
                    states,
                },
            );
        }
        let agents = names
            .iter()
            .map(|name| AgentStatus {
                name: name.clone(),
                alive: sessions.contains_key(name),
                session: sessions.get(name).cloned(),
            })
            .collect();
        Ok(Status {
            revision,
            agents,
            artifacts: artifacts.into_values().collect(),
        })
    }
}

fn not_in_runtime() -> Result<()> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::InvalidConfig(
            "the etcd engine's calls block; call them outside an async runtime (e.g. from spawn_blocking)".to_owned(),
        ));
    }
    Ok(())
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

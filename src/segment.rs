//! Segments: create, open, destroy, attach, flush, and the status snapshot, on either backend.
//!
//! The location a segment is opened at chooses its backend ([`Backend`]): a name (under
//! `/dev/shm`) or a path is a shared-memory segment on this machine; a URL
//! `etcd://host1:2379,host2:2379/prefix` is a prefix of an etcd cluster, shared by agents on
//! many machines. The API is the same; `docs/backends.md` lists the few operations that exist
//! on one backend only, which return [`Error::Unsupported`] on the other.
//!
//! [`OpenOptions`] says how a segment is opened: whether a segment owned by another user is
//! accepted (refused by default), whether every write is made durable before it returns, and
//! the mode of a segment it creates. `docs/security.md` and `docs/durability.md` explain why.

use std::sync::Arc;

use ccs_protocol::Config;

use crate::Strategy;
use crate::agent::Agent;
use crate::backend::shm::Shared;
use crate::backend::{dispatch, etcd};
use crate::error::{Error, Result};
use crate::status::Status;
use crate::trace::{LogReader, LogRecord};

pub use ccs_protocol::{FsckReport, Switches};

/// Mode of newly created segments: owner read and write only.
pub const DEFAULT_MODE: u32 = 0o600;

/// How a location names an etcd cluster: its scheme, compared case-insensitively, with the
/// colon (so that `etcd:/host/x`, a malformed URL, is refused by the URL parser with a reason
/// instead of being taken for a shared-memory path).
const ETCD_SCHEME: &str = "etcd:";

/// Where a segment's directory lives: the engine behind the facade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// A segment in shared memory (`/dev/shm/NAME`) or in a file (a path containing `/`),
    /// for processes on this machine.
    SharedMemory,
    /// A prefix of an etcd cluster (`etcd://host:port[,host:port...]/prefix`), for processes
    /// on any machine that reaches the cluster.
    Etcd,
}

impl Backend {
    /// The backend that `location` names: [`Backend::Etcd`] for a location starting with
    /// the scheme `etcd:` in any case (`etcd://…`, `ETCD://…`; a malformed one such as
    /// `etcd:/h/x` is then refused as a bad URL), else [`Backend::SharedMemory`].
    ///
    /// ```
    /// use agent_coherence::Backend;
    /// assert_eq!(Backend::of("team-42"), Backend::SharedMemory);
    /// assert_eq!(Backend::of("/var/lib/ccs/team-42"), Backend::SharedMemory);
    /// assert_eq!(Backend::of("etcd://10.0.0.1:2379,10.0.0.2:2379/team-42"), Backend::Etcd);
    /// assert_eq!(Backend::of("ETCD://10.0.0.1:2379/team-42"), Backend::Etcd);
    /// assert_eq!(Backend::of("etcd:/10.0.0.1:2379/team-42"), Backend::Etcd); // refused later
    /// ```
    pub fn of(location: &str) -> Backend {
        let scheme = location.get(..ETCD_SCHEME.len());
        if scheme.is_some_and(|s| s.eq_ignore_ascii_case(ETCD_SCHEME)) {
            Backend::Etcd
        } else {
            Backend::SharedMemory
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::SharedMemory => "a shared-memory segment",
            Backend::Etcd => "an etcd cluster",
        })
    }
}

/// How to open (or create) a segment, in the manner of `std::fs::OpenOptions`.
///
/// The owner policy, durable writes and the mode concern shared-memory segments; on etcd they
/// are ignored (the cluster's own authentication decides who may use a prefix, and every write
/// is durable on a majority of its members before it returns).
///
/// ```
/// use agent_coherence::{Config, OpenOptions};
/// # let name = format!("doc-options-{}", std::process::id());
/// let seg = OpenOptions::new().mode(0o660).durable_puts(true).create(&name, Config::default())?;
/// let a = seg.attach("a")?;
/// a.put("k", b"durable once this returns (for a segment on a file)")?;
/// let again = OpenOptions::new().allow_other_owner(false).open(&name)?; // the default
/// assert_eq!(again.config(), seg.config());
/// # drop((a, seg, again));
/// # agent_coherence::Segment::destroy(&name)?;
/// # Ok::<(), agent_coherence::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOptions {
    allow_other_owner: bool,
    pub(crate) durable_puts: bool,
    mode: u32,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// The defaults: refuse another user's segment, writes not flushed, create mode 0600.
    pub fn new() -> OpenOptions {
        OpenOptions {
            allow_other_owner: false,
            durable_puts: false,
            mode: DEFAULT_MODE,
        }
    }

    /// Accept a segment whose file belongs to another user (refused by default with
    /// [`Error::ForeignOwner`]). That user can rewrite or truncate the segment at any time:
    /// allow it only for a user you trust. Symbolic links are refused either way.
    pub fn allow_other_owner(mut self, allow: bool) -> OpenOptions {
        self.allow_other_owner = allow;
        self
    }

    /// Make every write through this handle (put, put_if, put_blind, delete, commit) durable
    /// before it returns: the whole mapping is flushed with `msync(MS_SYNC)` after the write
    /// is published. Costs one `fdatasync` per write (milliseconds on a disk). A no-op for a
    /// shared-memory segment, which has no disk, and for etcd, whose writes always are
    /// durable. See `docs/durability.md`.
    pub fn durable_puts(mut self, durable: bool) -> OpenOptions {
        self.durable_puts = durable;
        self
    }

    /// Permission bits of a segment created with these options (default 0o600, owner only;
    /// e.g. 0o660 to share with a group). Set exactly: the umask does not narrow it.
    pub fn mode(mut self, mode: u32) -> OpenOptions {
        self.mode = mode;
        self
    }

    pub(crate) fn allows_other_owner(&self) -> bool {
        self.allow_other_owner
    }

    pub(crate) fn create_mode(&self) -> u32 {
        self.mode
    }

    /// Open an existing segment with these options (see [`Segment::open`]).
    pub fn open(&self, location: &str) -> Result<Segment> {
        Segment::open_with(location, self)
    }

    /// Create a new segment with these options (see [`Segment::create`]).
    pub fn create(&self, location: &str, config: Config) -> Result<Segment> {
        let inner = match Backend::of(location) {
            Backend::Etcd => Inner::Etcd(Arc::new(etcd::Segment::connect(location)?)),
            Backend::SharedMemory => Inner::Shm(Shared::create(location, config, self)?),
        };
        Ok(Segment { inner })
    }

    /// Open the segment at `location`, creating it with `config` if it does not exist.
    pub fn open_or_create(&self, location: &str, config: Config) -> Result<Segment> {
        match self.create(location, config) {
            Err(Error::SegmentExists { .. }) => self.open(location),
            other => other,
        }
    }
}

/// An open segment: the directory of artifacts that a team of agents shares, in shared
/// memory on this machine or in an etcd cluster ([`Backend`]).
///
/// Cheap to clone; every clone refers to the same mapping (or cluster connection).
///
/// ```
/// use agent_coherence::{Config, Segment};
/// # let name = format!("doc-segment-{}", std::process::id());
/// let seg = Segment::open_or_create(&name, Config::default())?;
/// let planner = seg.attach("planner")?;
/// planner.put("task/spec", b"rename foo to bar")?;
/// assert_eq!(planner.get("task/spec")?.version, 1);
/// # drop(planner); drop(seg);
/// Segment::destroy(&name)?;
/// # Ok::<(), agent_coherence::Error>(())
/// ```
#[derive(Clone)]
pub struct Segment {
    pub(crate) inner: Inner,
}

/// The backend behind a [`Segment`]: the one place the facade's segment-wide calls branch.
#[derive(Clone)]
pub(crate) enum Inner {
    Shm(Arc<Shared>),
    Etcd(Arc<etcd::Segment>),
}

impl Segment {
    /// Create a new segment at `location`, mode 0600. Fails with [`Error::SegmentExists`] if
    /// it exists.
    ///
    /// A name (under `/dev/shm`) or a path containing `/` creates a shared-memory segment
    /// sized by `config`. An `etcd://` URL has nothing to size or create: a prefix exists once
    /// something is written under it. This connects (checking that the cluster answers) and
    /// ignores `config`; it never fails with [`Error::SegmentExists`].
    pub fn create(location: &str, config: Config) -> Result<Segment> {
        OpenOptions::new().create(location, config)
    }

    /// [`Segment::create`] with an explicit file mode (e.g. 0o660 to share with a group).
    pub fn create_with_mode(location: &str, config: Config, mode: u32) -> Result<Segment> {
        OpenOptions::new().mode(mode).create(location, config)
    }

    /// Open an existing segment, validating its header and sizes, with the default
    /// [`OpenOptions`]: a segment owned by another user is refused ([`Error::ForeignOwner`]),
    /// a symbolic link always is ([`Error::Symlink`]). An `etcd://` URL connects to the
    /// cluster ([`Error::Unavailable`] if no quorum answers).
    pub fn open(location: &str) -> Result<Segment> {
        Segment::open_with(location, &OpenOptions::new())
    }

    /// Open an existing segment with `options` (owner policy, durable writes; the mode is
    /// ignored: the segment exists).
    pub fn open_with(location: &str, options: &OpenOptions) -> Result<Segment> {
        let inner = match Backend::of(location) {
            Backend::Etcd => Inner::Etcd(Arc::new(etcd::Segment::connect(location)?)),
            Backend::SharedMemory => Inner::Shm(Shared::open(location, options)?),
        };
        Ok(Segment { inner })
    }

    /// Open the segment at `location`, creating it with `config` if it does not exist.
    /// An existing segment keeps the sizes it was created with.
    pub fn open_or_create(location: &str, config: Config) -> Result<Segment> {
        OpenOptions::new().open_or_create(location, config)
    }

    /// Remove the segment. For shared memory, its name: processes that have it open keep
    /// using it until they drop it. For etcd, everything under the prefix (artifacts, views,
    /// holds, registrations): agents still attached lose their copies.
    pub fn destroy(location: &str) -> Result<()> {
        match Backend::of(location) {
            Backend::Etcd => etcd::Segment::destroy(location),
            Backend::SharedMemory => Shared::destroy(location),
        }
    }

    /// The backend this segment is on.
    pub fn backend(&self) -> Backend {
        match &self.inner {
            Inner::Shm(_) => Backend::SharedMemory,
            Inner::Etcd(_) => Backend::Etcd,
        }
    }

    /// The shared-memory segment, or [`Error::Unsupported`] naming `what` and `why`.
    pub(crate) fn shm(&self, what: &'static str, why: &'static str) -> Result<&Arc<Shared>> {
        match &self.inner {
            Inner::Shm(shared) => Ok(shared),
            Inner::Etcd(_) => Err(Error::Unsupported {
                what,
                backend: Backend::Etcd,
                why,
            }),
        }
    }

    /// Write the whole segment back to its file and wait until the device has it:
    /// `msync(MS_SYNC)` over the mapping. Everything published before the call (by any
    /// process) then survives a power loss or kernel crash, if the file system and device
    /// honour the flush. A no-op that succeeds for a shared-memory segment (tmpfs has no
    /// disk), and for etcd, which acknowledges a write only once a majority of its members
    /// has it in their write-ahead logs. See `docs/durability.md`.
    pub fn flush(&self) -> Result<()> {
        match &self.inner {
            Inner::Shm(shared) => shared.flush(),
            Inner::Etcd(_) => Ok(()),
        }
    }

    /// Whether writes through this handle are durable before they return: as asked with
    /// [`OpenOptions::durable_puts`] on shared memory; always on etcd.
    pub fn durable_puts(&self) -> bool {
        match &self.inner {
            Inner::Shm(shared) => shared.options.durable_puts,
            Inner::Etcd(_) => true,
        }
    }

    /// Attach this process as agent `name`, registering it on first use. The agent's coherence
    /// state (what it read, what is valid) persists across attaches. Fails with
    /// [`Error::AgentBusy`] while another live process is attached under that name (on etcd:
    /// on any machine).
    pub fn attach(&self, name: &str) -> Result<Agent> {
        self.attach_with(name, Strategy::Lazy)
    }

    /// [`Segment::attach`] with a freshness strategy: how long a valid copy is served as a
    /// HIT, and whether the agent receives change events ([`Strategy::Eager`]).
    pub fn attach_with(&self, name: &str, strategy: Strategy) -> Result<Agent> {
        Agent::attach(self, name, strategy)
    }

    /// A reader of the segment's operation log, at the oldest record it still holds.
    /// Fails if the segment was created with `log_records = 0` (shared memory). On etcd, the
    /// log the agents flush to the cluster (`docs/protocol-etcd.md` §7).
    pub fn log_reader(&self) -> Result<LogReader> {
        match &self.inner {
            Inner::Shm(shared) => LogReader::shm(Arc::clone(shared)),
            Inner::Etcd(segment) => Ok(LogReader::etcd(segment.log_follow()?)),
        }
    }

    /// Every record the log holds now, merged by time (on etcd, each key's writes in revision
    /// order).
    pub fn log_records(&self) -> Result<Vec<LogRecord>> {
        match &self.inner {
            Inner::Shm(_) => Ok(self.log_reader()?.poll()?.records),
            Inner::Etcd(segment) => segment.log_records(),
        }
    }

    /// The segment's run-time switches; shared memory only.
    pub fn switches(&self) -> Result<Switches> {
        self.shm("a run-time switch", NO_SWITCHES)?.switches()
    }

    /// Pause (`false`) or resume logging, for every process using the segment; shared memory
    /// only.
    pub fn set_logging(&self, on: bool) -> Result<()> {
        self.shm("a run-time switch", NO_SWITCHES)?.set_logging(on)
    }

    /// Turn invalidation off (`false`) or back on, for every process using the segment. With
    /// it off, writers stop clearing peers' valid bits, so an agent's private copy
    /// ([`crate::Agent::refresh`]) keeps being served as a HIT after a peer's write: the world
    /// without coherence, for demonstrations (`ccs demo refactor`). Conditional writes are
    /// still refused on stale views. Never turn it off on a segment that matters. Shared
    /// memory only.
    pub fn set_invalidation(&self, on: bool) -> Result<()> {
        self.shm("a run-time switch", NO_SWITCHES)?
            .set_invalidation(on)
    }

    /// The sizes the segment was created with.
    ///
    /// On etcd nothing is sized at creation; this returns the engine's limits:
    /// `max_payload` is its largest payload (1 MiB, under etcd's request limit),
    /// `inbox_events` an eager agent's inbox; `max_agents`, `max_artifacts` and `arena_bytes`
    /// are 0 (no fixed limit), `log_records` 0 (no operation log) and `write_lease_ms` 0
    /// (a write is one transaction: there is no transient hold to reclaim).
    pub fn config(&self) -> Config {
        dispatch!(Inner, &self.inner, segment => segment.config())
    }

    /// Where the segment lives, as the user named it.
    pub fn location(&self) -> &str {
        dispatch!(Inner, &self.inner, segment => segment.location())
    }

    /// A snapshot of agents, artifacts and every agent's MESI state on every artifact.
    pub fn status(&self) -> Result<Status> {
        dispatch!(Inner, &self.inner, segment => segment.status())
    }

    /// Keys of existing artifacts starting with `prefix`, sorted.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>> {
        dispatch!(Inner, &self.inner, segment => segment.list(prefix))
    }

    /// Check every structure of the segment; with `repair`, also repair what is safe.
    /// Shared memory only ([`Error::Unsupported`] on etcd, whose members check their own
    /// data: `etcdctl check`, `etcdutl`).
    ///
    /// Without `repair` nothing is written and no lock is taken: live agents are not disturbed.
    /// With `repair`, the agents whose processes are gone are released (the lines they hold,
    /// the pins they recorded, their pid), each while holding its kernel lock; while that
    /// lock is held, attaching as that agent fails with [`crate::Error::AgentBusy`]. Leaked
    /// descriptors and arena blocks are returned only if no agent is attached at all; the
    /// report's `not_repaired` says so otherwise.
    ///
    /// ```
    /// use agent_coherence::{Config, Segment};
    /// # let name = format!("doc-fsck-{}", std::process::id());
    /// let seg = Segment::create(&name, Config { arena_bytes: 1 << 20, max_payload: 1 << 16, ..Config::default() })?;
    /// seg.attach("planner")?.put("task/spec", b"v1")?;
    /// let report = seg.fsck(false)?;
    /// assert!(report.is_clean());
    /// assert_eq!(report.descriptors.live, 1);
    /// # drop(seg);
    /// # Segment::destroy(&name)?;
    /// # Ok::<(), agent_coherence::Error>(())
    /// ```
    pub fn fsck(&self, repair: bool) -> Result<FsckReport> {
        self.shm("fsck", NO_FSCK)?.fsck(repair)
    }

    /// The agent table: every registered agent, live or dead, with when it was last seen and
    /// how many views it holds. Shared memory only.
    pub fn agent_slots(&self) -> Result<Vec<crate::AgentSlot>> {
        self.shm("agent slots", NO_SLOTS)?.agent_slots()
    }

    /// Free the slot of agent `name` (dead or detached) for the next new name, with its views,
    /// holds and pins; `Ok(false)` if no such agent. A live agent is refused
    /// ([`Error::AgentAlive`]). If the name attaches again it starts with dropped views: a
    /// conditional write to an artifact it has not read since is refused. Shared memory only.
    pub fn forget_agent(&self, name: &str) -> Result<bool> {
        self.shm("forgetting an agent", NO_SLOTS)?
            .forget_agent(name)
    }

    /// Make `key`, which must not exist yet, start above version `floor` when it is first
    /// written (other new keys sharing its home line in the directory start above it too;
    /// versions only ever go up). For tests that take a key across a version boundary, such as
    /// the old 32-bit limit, without writing it 2^32 times. Shared memory only.
    #[doc(hidden)]
    pub fn raise_version_floor(&self, key: &str, floor: u64) -> Result<()> {
        let shared = self.shm("raising a version floor", NO_FLOOR)?;
        shared
            .dir
            .raise_version_floor(key, floor)
            .map_err(|e| shared.error(e, key))
    }
}

const NO_SWITCHES: &str =
    "the switches are words in a shared-memory segment; an etcd cluster has none";
const NO_SLOTS: &str = "agent slots are a shared-memory segment's table; on etcd an agent is a \
     session lease that ends with its process";
const NO_FLOOR: &str = "version floors are words of a shared-memory segment's directory; an etcd \
     key's versions are the cluster's revisions";
const NO_FSCK: &str = "fsck checks a shared-memory segment's structures; etcd members check \
     their own data (`etcdctl check`, `etcdutl`)";

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("location", &self.location())
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

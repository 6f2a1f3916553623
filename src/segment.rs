//! Segments: create, open, destroy, attach, flush, and the status snapshot.
//!
//! [`OpenOptions`] says how a segment is opened: whether a segment owned by another user is
//! accepted (refused by default), whether every write is made durable before it returns, and
//! the mode of a segment it creates. `docs/security.md` and `docs/durability.md` explain why.

#![allow(unsafe_code)] // viewing the mapping as atomic words, once, in `words_of`

use std::sync::Arc;
use std::time::{Duration, Instant};

use ccs_os::{Access, Location, LockFile, Mapping, OsError};
use ccs_protocol::{Config, Directory, Geometry, ProtocolError, Words};

use crate::agent::Agent;
use crate::error::{Error, Result};
use crate::os_env::{AGENT_LOCK_BASE, OsEnv};
use crate::status::Status;
use crate::strategy::Strategy;
use crate::trace::{LogReader, LogRecord};

pub use ccs_protocol::Switches;

/// How long an opener waits for a segment's creator to finish initialising it.
const INIT_WAIT: Duration = Duration::from_secs(2);

/// Mode of newly created segments: owner read and write only.
pub const DEFAULT_MODE: u32 = 0o600;

pub(crate) struct Shared {
    pub(crate) dir: Directory<OsEnv>,
    pub(crate) location: Location,
    pub(crate) name: String,
    pub(crate) options: OpenOptions,
    // Declared last: dropped after `dir`, whose words point into it.
    mapping: Mapping,
}

impl Shared {
    /// The name of the agent in `slot`, for messages.
    pub(crate) fn agent_name(&self, slot: u32) -> String {
        match self.dir.agent_name(slot) {
            Ok(Some(name)) => name,
            _ => format!("#{slot}"),
        }
    }

    pub(crate) fn error(&self, error: ProtocolError, key: &str) -> Error {
        Error::from_protocol(error, &self.name, key, |slot| self.agent_name(slot))
    }

    pub(crate) fn dir_words(&self) -> &Words {
        self.dir.words()
    }

    pub(crate) fn general(&self, error: ProtocolError) -> Error {
        Error::general(error, &self.name)
    }

    /// Called after every successful write (put, put_if, put_blind, delete, commit) of
    /// `version` of `key`: with [`OpenOptions::durable_puts`], flush the whole mapping
    /// (`msync(MS_SYNC)`) before the write returns.
    pub(crate) fn written(&self, key: &str, version: u64) -> Result<u64> {
        if self.options.durable_puts {
            self.mapping.flush().map_err(|source| Error::NotDurable {
                key: key.to_owned(),
                version,
                source,
            })?;
        }
        Ok(version)
    }

    fn access(&self) -> Access {
        self.options.access()
    }
}

/// How to open (or create) a segment, in the manner of `std::fs::OpenOptions`.
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
    durable_puts: bool,
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
    /// shared-memory segment, which has no disk. See `docs/durability.md`.
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

    /// Open an existing segment with these options (see [`Segment::open`]).
    pub fn open(&self, location: &str) -> Result<Segment> {
        Segment::open_with(location, self)
    }

    /// Create a new segment with these options (see [`Segment::create`]).
    pub fn create(&self, location: &str, config: Config) -> Result<Segment> {
        let loc = parse_location(location)?;
        let geometry = Geometry::new(config).map_err(|e| Error::general(e, location))?;
        let mapping = Mapping::create(&loc, geometry.total_bytes, self.mode).map_err(os_error)?;
        let built = OsEnv::new(&loc, self.access())
            .map_err(os_error)
            .and_then(|env| {
                Directory::create(words_of(&mapping), config, env)
                    .map_err(|e| Error::general(e, location))
            });
        match built {
            Ok(dir) => Ok(Segment::assemble(dir, loc, mapping, *self)),
            Err(error) => {
                drop(mapping);
                let _ = ccs_os::destroy(&loc);
                Err(error)
            }
        }
    }

    /// Open the segment at `location`, creating it with `config` if it does not exist.
    pub fn open_or_create(&self, location: &str, config: Config) -> Result<Segment> {
        match self.create(location, config) {
            Err(Error::SegmentExists { .. }) => self.open(location),
            other => other,
        }
    }

    fn access(&self) -> Access {
        Access {
            allow_other_owner: self.allow_other_owner,
        }
    }
}

/// An open shared-memory segment: the directory that agents on this machine share.
///
/// Cheap to clone; every clone refers to the same mapping.
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
    pub(crate) shared: Arc<Shared>,
}

pub(crate) fn os_error(error: OsError) -> Error {
    match error {
        OsError::AlreadyExists { location } => Error::SegmentExists { location },
        OsError::NotFound { location } => Error::SegmentNotFound { location },
        OsError::ForeignOwner {
            location,
            owner,
            owner_uid,
            your_uid,
        } => Error::ForeignOwner {
            location,
            owner,
            owner_uid,
            your_uid,
        },
        OsError::Symlink { location } => Error::Symlink { location },
        other => Error::Os(other),
    }
}

fn parse_location(location: &str) -> Result<Location> {
    Location::parse(location).map_err(|error| match error {
        OsError::Invalid { reason, .. } => Error::BadLocation {
            location: location.to_owned(),
            reason,
        },
        other => Error::Os(other),
    })
}

fn words_of(mapping: &Mapping) -> Words {
    // SAFETY: the mapping is page-aligned, `len` bytes long, and lives in `Shared` beside the
    // directory that uses these words, dropped after it; every process touches it only through
    // atomics (the protocol's rule).
    unsafe { Words::from_mapping(mapping.as_ptr(), mapping.len()) }
}

impl Segment {
    /// Create a new segment at `location` (a name under /dev/shm, or a path containing `/`),
    /// mode 0600. Fails with [`Error::SegmentExists`] if it exists.
    pub fn create(location: &str, config: Config) -> Result<Segment> {
        OpenOptions::new().create(location, config)
    }

    /// [`Segment::create`] with an explicit file mode (e.g. 0o660 to share with a group).
    pub fn create_with_mode(location: &str, config: Config, mode: u32) -> Result<Segment> {
        OpenOptions::new().mode(mode).create(location, config)
    }

    /// Open an existing segment, validating its header and sizes, with the default
    /// [`OpenOptions`]: a segment owned by another user is refused ([`Error::ForeignOwner`]),
    /// a symbolic link always is ([`Error::Symlink`]).
    pub fn open(location: &str) -> Result<Segment> {
        Segment::open_with(location, &OpenOptions::new())
    }

    /// Open an existing segment with `options` (owner policy, durable writes; the mode is
    /// ignored: the segment exists).
    pub fn open_with(location: &str, options: &OpenOptions) -> Result<Segment> {
        let loc = parse_location(location)?;
        let access = options.access();
        let started = Instant::now();
        loop {
            let mapping = match Mapping::open_with(&loc, access) {
                Ok(mapping) => mapping,
                // Created but not yet sized: its creator is between `O_EXCL` and `ftruncate`.
                Err(OsError::Empty { .. }) if started.elapsed() < INIT_WAIT => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                Err(error) => return Err(os_error(error)),
            };
            let env = OsEnv::new(&loc, access).map_err(os_error)?;
            // The header is validated here, and the geometry derived from it is copied into
            // this process: nothing later re-reads sizes from the header (docs/security.md).
            match Directory::open(words_of(&mapping), mapping.len() as u64, env) {
                Ok(dir) => return Ok(Segment::assemble(dir, loc, mapping, *options)),
                Err(ProtocolError::Uninitialised) if started.elapsed() < INIT_WAIT => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(error) => return Err(Error::general(error, location)),
            }
        }
    }

    /// Open the segment at `location`, creating it with `config` if it does not exist.
    /// An existing segment keeps the sizes it was created with.
    pub fn open_or_create(location: &str, config: Config) -> Result<Segment> {
        match Segment::create(location, config) {
            Err(Error::SegmentExists { .. }) => Segment::open(location),
            other => other,
        }
    }

    /// Remove the segment's name. Processes that have it open keep using it until they drop it.
    pub fn destroy(location: &str) -> Result<()> {
        ccs_os::destroy(&parse_location(location)?).map_err(os_error)
    }

    fn assemble(
        dir: Directory<OsEnv>,
        location: Location,
        mapping: Mapping,
        options: OpenOptions,
    ) -> Segment {
        let name = location.display_name();
        Segment {
            shared: Arc::new(Shared {
                dir,
                location,
                name,
                options,
                mapping,
            }),
        }
    }

    /// Write the whole segment back to its file and wait until the device has it:
    /// `msync(MS_SYNC)` over the mapping. Everything published before the call (by any
    /// process) then survives a power loss or kernel crash, if the file system and device
    /// honour the flush. A no-op that succeeds for a shared-memory segment (tmpfs has no
    /// disk). See `docs/durability.md`.
    pub fn flush(&self) -> Result<()> {
        self.shared.mapping.flush().map_err(Error::Os)
    }

    /// Whether writes through this handle are flushed before they return
    /// ([`OpenOptions::durable_puts`]).
    pub fn durable_puts(&self) -> bool {
        self.shared.options.durable_puts
    }

    /// Attach this process as agent `name`, registering it on first use. The agent's coherence
    /// state (what it read, what is valid) persists across attaches. Fails with
    /// [`Error::AgentBusy`] while another live process is attached under that name.
    pub fn attach(&self, name: &str) -> Result<Agent> {
        self.attach_with(name, Strategy::Lazy)
    }

    /// [`Segment::attach`] with a freshness strategy: how long a valid copy is served as a
    /// HIT, and whether the agent receives change events ([`Strategy::Eager`]).
    pub fn attach_with(&self, name: &str, strategy: Strategy) -> Result<Agent> {
        let wire = strategy.to_wire()?;
        let shared = &self.shared;
        let slot = shared
            .dir
            .register_agent(name)
            .map_err(|e| shared.general(e))?;
        let lock = LockFile::open_with(&shared.location, shared.access()).map_err(os_error)?;
        if !lock.try_lock(AGENT_LOCK_BASE + u64::from(slot))? {
            let (pid, _) = shared
                .dir
                .agent_process(slot)
                .map_err(|e| shared.general(e))?;
            return Err(Error::AgentBusy {
                name: name.to_owned(),
                pid,
            });
        }
        let id = shared
            .dir
            .begin_attach_with(slot, ccs_os::current_pid(), wire)
            .map_err(|e| shared.general(e))?;
        Ok(Agent::new(self.clone(), id, name.to_owned(), lock))
    }

    /// A reader of the segment's operation log, at the oldest record it still holds.
    /// Fails if the segment was created with `log_records = 0`.
    pub fn log_reader(&self) -> Result<LogReader> {
        LogReader::new(self.clone())
    }

    /// Every record the log holds now, merged by time.
    pub fn log_records(&self) -> Result<Vec<LogRecord>> {
        Ok(self.log_reader()?.poll()?.records)
    }

    /// The segment's run-time switches.
    pub fn switches(&self) -> Result<Switches> {
        self.shared
            .dir
            .switches()
            .map_err(|e| self.shared.general(e))
    }

    /// Pause (`false`) or resume logging, for every process using the segment.
    pub fn set_logging(&self, on: bool) -> Result<()> {
        self.shared
            .dir
            .set_logging(on)
            .map_err(|e| self.shared.general(e))
    }

    /// Turn invalidation off (`false`) or back on, for every process using the segment. With
    /// it off, writers stop clearing peers' valid bits, so an agent's private copy
    /// ([`crate::Agent::refresh`]) keeps being served as a HIT after a peer's write: the world
    /// without coherence, for demonstrations (`ccs demo refactor`). Conditional writes are
    /// still refused on stale views. Never turn it off on a segment that matters.
    pub fn set_invalidation(&self, on: bool) -> Result<()> {
        self.shared
            .dir
            .set_invalidation(on)
            .map_err(|e| self.shared.general(e))
    }

    /// The sizes the segment was created with.
    pub fn config(&self) -> Config {
        self.shared.dir.geometry().config
    }

    /// Where the segment lives, as the user named it.
    pub fn location(&self) -> &str {
        &self.shared.name
    }

    /// A snapshot of agents, artifacts and every agent's MESI state on every artifact.
    pub fn status(&self) -> Result<Status> {
        Status::read(&self.shared)
    }

    /// Keys of existing artifacts starting with `prefix`, sorted.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.shared
            .dir
            .keys_with_prefix(prefix)
            .map_err(|e| self.shared.general(e))
    }
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("location", &self.shared.name)
            .finish_non_exhaustive()
    }
}

//! Segments: create, open, destroy, attach, and the status snapshot.

#![allow(unsafe_code)] // viewing the mapping as atomic words, once, in `words_of`

use std::sync::Arc;
use std::time::{Duration, Instant};

use ccs_os::{Location, LockFile, Mapping, OsError};
use ccs_protocol::{Config, Directory, Geometry, ProtocolError, Words};

use crate::agent::Agent;
use crate::error::{Error, Result};
use crate::os_env::{AGENT_LOCK_BASE, OsEnv};
use crate::status::Status;

/// How long an opener waits for a segment's creator to finish initialising it.
const INIT_WAIT: Duration = Duration::from_secs(2);

/// Mode of newly created segments: owner read and write only.
pub const DEFAULT_MODE: u32 = 0o600;

pub(crate) struct Shared {
    pub(crate) dir: Directory<OsEnv>,
    pub(crate) location: Location,
    pub(crate) name: String,
    // Declared last: dropped after `dir`, whose words point into it.
    _mapping: Mapping,
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

fn os_error(error: OsError) -> Error {
    match error {
        OsError::AlreadyExists { location } => Error::SegmentExists { location },
        OsError::NotFound { location } => Error::SegmentNotFound { location },
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
        Segment::create_with_mode(location, config, DEFAULT_MODE)
    }

    /// [`Segment::create`] with an explicit file mode (e.g. 0o660 to share with a group).
    pub fn create_with_mode(location: &str, config: Config, mode: u32) -> Result<Segment> {
        let loc = parse_location(location)?;
        let geometry = Geometry::new(config).map_err(|e| Error::general(e, location))?;
        let mapping = Mapping::create(&loc, geometry.total_bytes, mode).map_err(os_error)?;
        let built = OsEnv::new(&loc).map_err(Error::Os).and_then(|env| {
            Directory::create(words_of(&mapping), config, env)
                .map_err(|e| Error::general(e, location))
        });
        match built {
            Ok(dir) => Ok(Segment::assemble(dir, loc, mapping)),
            Err(error) => {
                drop(mapping);
                let _ = ccs_os::destroy(&loc);
                Err(error)
            }
        }
    }

    /// Open an existing segment, validating its header and sizes.
    pub fn open(location: &str) -> Result<Segment> {
        let loc = parse_location(location)?;
        let started = Instant::now();
        loop {
            let mapping = match Mapping::open(&loc) {
                Ok(mapping) => mapping,
                // Created but not yet sized: its creator is between `O_EXCL` and `ftruncate`.
                Err(OsError::Empty { .. }) if started.elapsed() < INIT_WAIT => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                Err(error) => return Err(os_error(error)),
            };
            let env = OsEnv::new(&loc)?;
            match Directory::open(words_of(&mapping), mapping.len() as u64, env) {
                Ok(dir) => return Ok(Segment::assemble(dir, loc, mapping)),
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

    fn assemble(dir: Directory<OsEnv>, location: Location, mapping: Mapping) -> Segment {
        let name = location.display_name();
        Segment {
            shared: Arc::new(Shared {
                dir,
                location,
                name,
                _mapping: mapping,
            }),
        }
    }

    /// Attach this process as agent `name`, registering it on first use. The agent's coherence
    /// state (what it read, what is valid) persists across attaches. Fails with
    /// [`Error::AgentBusy`] while another live process is attached under that name.
    pub fn attach(&self, name: &str) -> Result<Agent> {
        let shared = &self.shared;
        let slot = shared
            .dir
            .register_agent(name)
            .map_err(|e| shared.general(e))?;
        let lock = LockFile::open(&shared.location)?;
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
            .begin_attach(slot, ccs_os::current_pid())
            .map_err(|e| shared.general(e))?;
        Ok(Agent::new(self.clone(), id, name.to_owned(), lock))
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

//! The shared-memory segment: create, open and destroy the mapping, attach agents, and the
//! segment-wide operations (flush, switches, list) behind the facade's [`crate::Segment`].

#![allow(unsafe_code)] // viewing the mapping as atomic words, once, in `words_of`

use std::sync::Arc;
use std::time::{Duration, Instant};

use ccs_os::{Access, Location, LockFile, Mapping, OsError};
use ccs_protocol::{Config, Directory, Env as _, Geometry, ProtocolError, Switches, Words};

use crate::Strategy;
use crate::backend::shm::agent::Agent;
use crate::backend::shm::agents::claim;
use crate::backend::shm::os_env::{AGENT_LOCK_BASE, OsEnv};
use crate::backend::shm::strategy;
use crate::error::{Error, Result};
use crate::segment::OpenOptions;

/// Lookups an attach makes before giving up on a slot that keeps being taken over.
const ATTACH_ATTEMPTS: u32 = 8;

/// How long an opener waits for a segment's creator to finish initialising it.
const INIT_WAIT: Duration = Duration::from_secs(2);

/// One open mapping and the directory on it; shared (through an `Arc`) by the facade's
/// `Segment` clones, the agents attached through them, their guards and log readers.
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

    pub(crate) fn dir_words(&self) -> Words<'_> {
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

    pub(crate) fn access(&self) -> Access {
        access(&self.options)
    }

    /// Create a new segment at `location` (see [`crate::Segment::create`]).
    pub(crate) fn create(
        location: &str,
        config: Config,
        options: &OpenOptions,
    ) -> Result<Arc<Shared>> {
        let loc = parse_location(location)?;
        let geometry = Geometry::new(config).map_err(|e| Error::general(e, location))?;
        let mapping =
            Mapping::create(&loc, geometry.total_bytes, options.create_mode()).map_err(os_error)?;
        let built = OsEnv::new(&loc, access(options))
            .map_err(os_error)
            .and_then(|env| {
                Directory::create(words_of(&mapping), config, env)
                    .map_err(|e| Error::general(e, location))
            });
        match built {
            Ok(dir) => Ok(Shared::assemble(dir, loc, mapping, *options)),
            Err(error) => {
                drop(mapping);
                let _ = ccs_os::destroy(&loc);
                Err(error)
            }
        }
    }

    /// Open an existing segment (see [`crate::Segment::open_with`]).
    pub(crate) fn open(location: &str, options: &OpenOptions) -> Result<Arc<Shared>> {
        let loc = parse_location(location)?;
        let access = access(options);
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
                Ok(dir) => return Ok(Shared::assemble(dir, loc, mapping, *options)),
                Err(ProtocolError::Uninitialised) if started.elapsed() < INIT_WAIT => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(error) => return Err(Error::general(error, location)),
            }
        }
    }

    /// Remove the segment's name.
    pub(crate) fn destroy(location: &str) -> Result<()> {
        ccs_os::destroy(&parse_location(location)?).map_err(os_error)
    }

    fn assemble(
        dir: Directory<OsEnv>,
        location: Location,
        mapping: Mapping,
        options: OpenOptions,
    ) -> Arc<Shared> {
        let name = location.display_name();
        Arc::new(Shared {
            dir,
            location,
            name,
            options,
            mapping,
        })
    }

    /// `msync(MS_SYNC)` over the whole mapping.
    pub(crate) fn flush(&self) -> Result<()> {
        self.mapping.flush().map_err(Error::Os)
    }

    /// Register (on first use; taking over the slot of the agent dead longest when the table
    /// is full) and attach agent `name`, taking its kernel liveness lock.
    pub(crate) fn attach_with(self: &Arc<Shared>, name: &str, strategy: Strategy) -> Result<Agent> {
        let wire = strategy::to_wire(strategy)?;
        let lock = LockFile::open_with(&self.location, self.access()).map_err(os_error)?;
        // A lookup runs without the structure lock, so the slot found may be taken over for
        // another name before this process locks it: then look again.
        for _ in 0..ATTACH_ATTEMPTS {
            let slot = self
                .dir
                .register_agent_claiming(name, |slot| claim(&lock, slot))
                .map_err(|e| self.general(e))?;
            let locked = lock.try_lock(AGENT_LOCK_BASE + u64::from(slot))?;
            // Once locked, nobody can take the slot over: its name is stable. If another process
            // holds the lock, it may be taking the slot over right now: a takeover holds the
            // structure lock throughout, so read the name once that lock is free.
            let current = if locked {
                self.dir.agent_name(slot)
            } else {
                self.dir
                    .env()
                    .with_structure_lock(|| self.dir.agent_name(slot))
                    .and_then(|name| name)
            };
            let still_ours = current.map_err(|e| self.general(e))? == Some(name.to_owned());
            if !still_ours {
                if locked {
                    lock.unlock(AGENT_LOCK_BASE + u64::from(slot))?;
                }
                continue;
            }
            if !locked {
                let (pid, _) = self.dir.agent_process(slot).map_err(|e| self.general(e))?;
                return Err(Error::AgentBusy {
                    name: name.to_owned(),
                    pid,
                });
            }
            let id = self
                .dir
                .begin_attach_with(slot, ccs_os::current_pid(), wire)
                .map_err(|e| self.general(e))?;
            return Ok(Agent::new(Arc::clone(self), id, lock));
        }
        Err(Error::AgentBusy {
            name: name.to_owned(),
            pid: 0,
        })
    }

    pub(crate) fn switches(&self) -> Result<Switches> {
        self.dir.switches().map_err(|e| self.general(e))
    }

    pub(crate) fn set_logging(&self, on: bool) -> Result<()> {
        self.dir.set_logging(on).map_err(|e| self.general(e))
    }

    pub(crate) fn set_invalidation(&self, on: bool) -> Result<()> {
        self.dir.set_invalidation(on).map_err(|e| self.general(e))
    }

    /// Where the segment lives, as the user named it.
    pub(crate) fn location(&self) -> &str {
        &self.name
    }

    pub(crate) fn config(&self) -> Config {
        self.dir.geometry().config
    }

    pub(crate) fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.dir
            .keys_with_prefix(prefix)
            .map_err(|e| self.general(e))
    }
}

fn access(options: &OpenOptions) -> Access {
    Access {
        allow_other_owner: options.allows_other_owner(),
    }
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

fn words_of(mapping: &Mapping) -> Words<'static> {
    // The mapping lives in `Shared` beside the directory that uses these words and is dropped
    // after it, so `'static` is never observed: the directory lends its words only borrowed
    // from itself.
    // SAFETY: the mapping is page-aligned and `len` bytes long, outlives every use of the
    // words (above), and every process touches it only through atomics (the protocol's rule).
    unsafe { Words::from_mapping(mapping.as_ptr(), mapping.len()) }
}

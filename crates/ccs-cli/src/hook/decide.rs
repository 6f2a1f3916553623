//! The decisions, on the segment: files are artifacts whose payload is the file's fingerprint
//! ([`FileState`]), agents are sessions (or sub-agents), and the MESI protocol does the rest.
//!
//! - Before a read, the agent syncs its view with the file on disk (publishing the disk's
//!   state if it moved); after the read, the read counts only if nothing moved in between (no
//!   peer's claim, no change on disk), else the file is published as changed outside and the
//!   agent's copy is invalid.
//! - Before an edit, the agent *claims* the file: a conditional write (`put_if`) of the disk's
//!   fingerprint and a claim ([`Record`]) at the version it holds. It succeeds only if that
//!   version is still current, and then invalidates every peer's copy before the edit starts,
//!   so of several sessions editing from the same version exactly one is allowed. A peer that
//!   reads while the claim is in force holds the claim's version, whose content is about to
//!   change: its edit is refused as made from the version before the claim. A refused claim is the denial, and
//!   the operation log records it as the refused conditional write it is (a `put` with
//!   `mode=if` and outcome `Conflict`), which `ccs stats` counts as a stale edit prevented.
//!   (Publishing a fingerprint uses plain view-conditional `put`s, so their lost races are
//!   never counted as denials.)
//! - After an edit, the agent publishes the new fingerprint (the version after its claim).
//! - After a shell command, the files whose fingerprint moved are published by [`OUTSIDE`]:
//!   nobody, not even the session that ran the command, holds what it wrote.

use agent_coherence::Conflict;
use std::path::Path;

use agent_coherence::{Agent, Error, Segment, Version};

use super::error::HookError;

use super::fingerprint::FileState;
use super::record::{Claim, Record};
use super::segment::{OUTSIDE, attach};

/// Bounded retries of a view sync racing with writers (each retry means a peer wrote).
const SYNC_ATTEMPTS: u32 = 64;

/// Bounded retries of a write that finds a peer's write in progress on the line (`Held`): a
/// plain write holds the line for microseconds.
const HELD_ATTEMPTS: u32 = 200;

/// Run `op` again while a peer's write in progress holds the line.
fn patiently<T>(mut op: impl FnMut() -> Result<T, Error>) -> Result<T, Error> {
    for attempt in 0..HELD_ATTEMPTS {
        match op() {
            Err(Error::Held { .. }) => {
                std::thread::sleep(std::time::Duration::from_micros(20 << attempt.min(6)));
            }
            other => return other,
        }
    }
    op()
}

/// The agent's standing on `key`, waiting out a peer's write caught between invalidating the
/// copies and publishing its version (the copy is invalid but still names the current
/// version for that instant).
fn settled_check(agent: &Agent, key: &str) -> Result<agent_coherence::Check, Error> {
    let mut check = agent.check(key)?;
    for attempt in 0..HELD_ATTEMPTS {
        if check.valid || check.held != Some(check.current) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_micros(20 << attempt.min(6)));
        check = agent.check(key)?;
    }
    Ok(check)
}

/// Why an edit is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// The agent never read the file, which exists.
    NeverRead,
    /// A peer changed the file since the agent read it.
    Stale,
    /// The file changed on disk, by other means than a session's edit, since the agent read it.
    ChangedOutside,
    /// Another session is editing the file right now.
    BeingEdited,
}

impl Denial {
    /// The reason given to the model: byte-stable (the same situation gives the same bytes),
    /// naming the file and what to do.
    pub fn reason(self, file: &str) -> String {
        match self {
            Denial::NeverRead => format!(
                "ccs: {file} was not read in this session. Read it first, then make the edit."
            ),
            Denial::Stale => format!(
                "ccs: {file} was changed by another session since you last read it. Read it \
                 again, then redo your edit on the new content."
            ),
            Denial::ChangedOutside => format!(
                "ccs: {file} was changed on disk (outside this session's edits) since you last \
                 read it. Read it again, then redo your edit on the new content."
            ),
            Denial::BeingEdited => format!(
                "ccs: {file} is being edited by another session right now. Read it again once \
                 that edit is done, then redo your edit on the new content."
            ),
        }
    }
}

/// What a step found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to say.
    Quiet,
    /// An edit refused.
    Denied(Denial),
    /// Something the model should know (the file moved while it read it).
    Note(String),
}

/// The current version's record, read by `agent` (which then holds that version); version 0
/// and no record if never written.
fn current(agent: &Agent, key: &str) -> Result<(Version, Option<Record>), Error> {
    match agent.get(key) {
        Ok(read) => Ok((read.version, Record::decode(&read.bytes))),
        Err(Error::NotFound { .. }) => Ok((agent.check(key)?.current, None)),
        Err(error) => Err(error),
    }
}

/// Make `agent`'s copy of `key` the version that records `disk`: read the current version (a
/// HIT if the copy is valid); if it records other content, or a claim of this agent's or one
/// run out, publish `disk` unclaimed over it. Another agent's claim in force is left alone:
/// that edit is in flight and the file may be half written; its PostToolUse publishes it.
/// Returns the version the agent holds.
pub fn sync(agent: &Agent, key: &str, disk: &FileState) -> Result<Version, Error> {
    for _ in 0..SYNC_ATTEMPTS {
        let (version, recorded) = current(agent, key)?;
        let settled = recorded.as_ref().is_some_and(|r| {
            r.claimed_by_other(agent.name()).is_some()
                || (r.claim.is_none() && r.state.same_content(disk))
        });
        if settled || (version == 0 && *disk == FileState::Absent) {
            return Ok(version);
        }
        // Conditional on the agent's view (it just read `version`), not `put_if`: a race lost
        // here is no denied edit, and the log tells the two apart by the write's mode.
        match patiently(|| agent.put(key, &Record::unclaimed(disk.clone()).encode())) {
            Ok(version) => return Ok(version),
            Err(Error::Conflict { .. }) => {} // a peer wrote meanwhile: look again
            Err(error) => return Err(error),
        }
    }
    Err(Error::Conflict(Conflict {
        key: key.to_owned(),
        current: agent.check(key)?.current,
        yours: 0,
    }))
}

/// Publish `disk` as a change made outside the sessions (by [`OUTSIDE`]), invalidating every
/// session's copy.
pub fn publish_outside(segment: &Segment, key: &str, disk: &FileState) -> Result<(), Error> {
    let outside = attach(segment, OUTSIDE)?;
    sync(&outside, key, disk).map(drop)
}

/// Before a read: sync the agent's view with the disk.
pub fn before_read(agent: &Agent, key: &str, path: &Path) -> Result<Outcome, Failure> {
    let disk = disk_state(path)?;
    sync(agent, key, &disk)?;
    Ok(Outcome::Quiet)
}

/// After a read: the read counts if the agent's copy is still current and the disk still
/// matches it; otherwise the file moved during the read, and is published as changed outside
/// so that the agent's copy is invalid until it reads again.
pub fn after_read(agent: &Agent, key: &str, path: &Path, file: &str) -> Result<Outcome, Failure> {
    let disk = disk_state(path)?;
    let check = agent.check(key)?;
    if check.is_current() {
        let (_, recorded) = current(agent, key)?;
        if recorded.is_some_and(|r| r.state.same_content(&disk)) {
            return Ok(Outcome::Quiet);
        }
    } else if check.held.is_none() {
        // No PreToolUse for this read (only PostToolUse installed): take it as read now.
        sync(agent, key, &disk)?;
        return Ok(Outcome::Quiet);
    }
    publish_outside(agent.segment(), key, &disk)?;
    Ok(Outcome::Note(format!(
        "ccs: {file} changed while you were reading it. Read it again before you edit it."
    )))
}

/// Before an edit: claim the file at the version the agent holds, or deny.
pub fn before_edit(agent: &Agent, key: &str, path: &Path) -> Result<Outcome, Failure> {
    let disk = disk_state(path)?;
    if disk == FileState::Absent {
        return Ok(Outcome::Quiet); // creating a file needs no read
    }
    let check = settled_check(agent, key)?;
    let Some(held) = check.held else {
        if check.current == 0 {
            // Publish the file as it is, so that the refusal below is a real refused write.
            publish_outside(agent.segment(), key, &disk)?;
        }
        refuse(agent, key, 0, &disk)?;
        return Ok(Outcome::Denied(Denial::NeverRead));
    };
    if !check.is_current() {
        refuse(agent, key, held, &disk)?;
        return Ok(Outcome::Denied(Denial::Stale));
    }
    let (_, recorded) = current(agent, key)?;
    if recorded
        .as_ref()
        .is_some_and(|r| r.claimed_by_other(agent.name()).is_some())
    {
        // What the agent read is the content before the claim: its edit is from that version.
        refuse(agent, key, held.saturating_sub(1), &disk)?;
        return Ok(Outcome::Denied(Denial::BeingEdited));
    }
    if !recorded.is_some_and(|r| r.state.same_content(&disk)) {
        publish_outside(agent.segment(), key, &disk)?;
        refuse(agent, key, held, &disk)?;
        return Ok(Outcome::Denied(Denial::ChangedOutside));
    }
    let claim = Record {
        state: disk.clone(),
        claim: Some(Claim::new(agent.name())),
    };
    match patiently(|| agent.put_if(key, held, &claim.encode())) {
        Ok(_) => Ok(Outcome::Quiet),
        Err(Error::Conflict { .. }) => Ok(Outcome::Denied(Denial::Stale)),
        Err(Error::Held { .. }) => Ok(Outcome::Denied(Denial::BeingEdited)),
        Err(error) => Err(error.into()),
    }
}

/// The refused conditional write that records a denial in the operation log: `put_if` at the
/// version the agent's edit is based on (0: none), which is not the current one.
fn refuse(agent: &Agent, key: &str, based_on: Version, disk: &FileState) -> Result<(), Error> {
    if agent.check(key)?.current == based_on {
        return Ok(()); // would succeed: nothing to refuse (a copy invalidated in place)
    }
    let refused = Record::unclaimed(disk.clone()).encode();
    match patiently(|| agent.put_if(key, based_on, &refused)) {
        // Versions only grow, so a write at an older version cannot succeed; a line held for
        // this long leaves the denial unrecorded, never turned into an allowed edit.
        Err(Error::Conflict { .. } | Error::Held { .. }) | Ok(_) => Ok(()),
        Err(error) => Err(error),
    }
}

/// After an edit (or a failed one): publish the file as it is now, which ends the claim.
pub fn after_edit(agent: &Agent, key: &str, path: &Path) -> Result<Outcome, Failure> {
    let disk = disk_state(path)?;
    sync(agent, key, &disk)?;
    Ok(Outcome::Quiet)
}

/// After a shell command: publish, as changed outside, every tracked file of this worktree
/// whose fingerprint moved. `files` maps keys to paths (only this worktree's keys); returns
/// the indices of those that changed.
pub fn after_shell(
    segment: &Segment,
    files: &[(String, std::path::PathBuf)],
) -> Result<Vec<usize>, Failure> {
    let mut outside: Option<Agent> = None;
    let mut changed = Vec::new();
    for (index, (key, path)) in files.iter().enumerate() {
        let agent = match &mut outside {
            Some(agent) => agent,
            None => outside.insert(attach(segment, OUTSIDE)?),
        };
        let recorded = match agent.get(key.as_str()) {
            Ok(read) => Record::decode(&read.bytes),
            Err(Error::NotFound { .. }) => continue,
            Err(error) => return Err(error.into()),
        };
        if recorded
            .as_ref()
            .is_some_and(|r| !r.state.metadata_moved(path))
        {
            continue;
        }
        let disk = disk_state(path)?;
        if recorded.is_some_and(|r| r.state.same_content(&disk)) {
            continue;
        }
        sync(agent, key, &disk)?;
        changed.push(index);
    }
    Ok(changed)
}

fn disk_state(path: &Path) -> Result<FileState, Failure> {
    FileState::of(path).map_err(|source| {
        Failure::File(HookError::File {
            path: path.to_owned(),
            source,
        })
    })
}

/// A step's failure: the segment's (the caller names the segment) or a file's.
#[derive(Debug)]
pub enum Failure {
    /// An operation on the segment failed.
    Segment(Error),
    /// A file could not be read.
    File(HookError),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure::Segment(error)
    }
}

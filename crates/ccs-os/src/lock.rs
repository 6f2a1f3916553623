//! Linux open-file-description (OFD) byte-range locks on a segment.
//!
//! Each [`LockFile`] re-opens the segment by name, so it is its own *open file description*
//! (a `dup` would share one, and with it the locks). An exclusive lock on one byte
//! (`F_OFD_SETLK` / `F_OFD_SETLKW` with `l_pid = 0`) is owned by that description and the
//! kernel drops it when the description's last fd closes — in particular at once when the
//! owning process dies, however it dies. That makes these locks liveness beacons: "byte *n* is
//! locked" means "the agent in slot *n* is alive". Locks may lie beyond the end of the file.
//!
//! Two locks taken through the same `LockFile` never conflict with each other (a description
//! never conflicts with itself), so probe with a `LockFile` that holds no locks. A child made
//! by `fork` inherits the fd and so shares the description and its locks; the fd is
//! close-on-exec, so an `exec`ed program does not.
//!
//! See [fcntl(2), "Open file description locks"](https://man7.org/linux/man-pages/man2/fcntl.2.html).
//!
//! ```
//! use ccs_os::{Location, LockFile, Mapping};
//!
//! # struct Cleanup(ccs_os::Location); // removes the segment even if the example fails
//! # impl Drop for Cleanup { fn drop(&mut self) { let _ = ccs_os::destroy(&self.0); } }
//! let loc = Location::parse(&format!("ccs-os-doc-lock-{}", std::process::id()))?;
//! # let _cleanup = Cleanup(loc.clone());
//! let _segment = Mapping::create(&loc, 4096, 0o600)?;
//! let holder = LockFile::open(&loc)?;
//! let prober = LockFile::open(&loc)?;
//! assert!(holder.try_lock(7)?);
//! assert!(prober.is_held_elsewhere(7)?);
//! assert!(!prober.try_lock(7)?);
//! drop(holder); // closing the description releases its locks
//! assert!(!prober.is_held_elsewhere(7)?);
//! ccs_os::destroy(&loc)?;
//! # Ok::<(), ccs_os::OsError>(())
//! ```

// `fcntl` with a `struct flock` is not covered by rustix (its `fcntl_lock` is whole-file
// `flock`-style) nor by std, so this module calls libc directly.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd as _;

use crate::location::Access;
use crate::{Location, OsError};

/// A separate open file description on a segment, used for byte-range locks.
#[derive(Debug)]
pub struct LockFile {
    file: File,
    location: Location,
}

impl LockFile {
    /// Open the existing segment read-write as a new open file description, refusing one
    /// owned by another user (see [`LockFile::open_with`]).
    ///
    /// # Errors
    ///
    /// As [`LockFile::open_with`] with `Access::default()`.
    pub fn open(loc: &Location) -> Result<LockFile, OsError> {
        LockFile::open_with(loc, Access::default())
    }

    /// Open the existing segment read-write as a new open file description, with the same
    /// checks as [`Mapping::open_with`](crate::Mapping::open_with): no symbolic link, a
    /// regular file, owned by this user unless `access` allows another owner. The name is
    /// resolved again here, so the checks are repeated on what is actually opened.
    ///
    /// See [shm_open(3)](https://man7.org/linux/man-pages/man3/shm_open.3.html) and
    /// [open(2)](https://man7.org/linux/man-pages/man2/open.2.html).
    ///
    /// # Errors
    ///
    /// [`OsError::NotFound`] if the segment does not exist; [`OsError::Symlink`],
    /// [`OsError::ForeignOwner`] or [`OsError::Invalid`] as for a mapping;
    /// [`OsError::PermissionDenied`] or [`OsError::Io`] if the kernel refuses.
    pub fn open_with(loc: &Location, access: Access) -> Result<LockFile, OsError> {
        Ok(LockFile {
            file: loc.open_rdwr(access)?,
            location: loc.clone(),
        })
    }

    /// Take an exclusive (write) lock on the one byte at offset `byte` without waiting
    /// (`F_OFD_SETLK`).
    ///
    /// Returns `Ok(true)` if taken (or already held by this description), `Ok(false)` if
    /// another open file description holds a lock on it.
    ///
    /// See [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html).
    ///
    /// # Errors
    ///
    /// [`OsError::Invalid`] if `byte` exceeds `i64::MAX`; [`OsError::Io`] on any other failure.
    pub fn try_lock(&self, byte: u64) -> Result<bool, OsError> {
        let mut fl = self.flock(byte, libc::F_WRLCK)?;
        match self.fcntl(libc::F_OFD_SETLK, &mut fl) {
            Ok(()) => Ok(true),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => Ok(false),
            Err(e) => Err(self.io_error("fcntl(F_OFD_SETLK)", e)),
        }
    }

    /// Take an exclusive (write) lock on the byte at `byte`, waiting as long as it takes
    /// (`F_OFD_SETLKW`, restarted after signals).
    ///
    /// See [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html).
    ///
    /// # Errors
    ///
    /// [`OsError::Invalid`] if `byte` exceeds `i64::MAX`; [`OsError::Io`] on any other failure.
    pub fn lock(&self, byte: u64) -> Result<(), OsError> {
        let mut fl = self.flock(byte, libc::F_WRLCK)?;
        loop {
            match self.fcntl(libc::F_OFD_SETLKW, &mut fl) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_error("fcntl(F_OFD_SETLKW)", e)),
            }
        }
    }

    /// Release this description's lock on the byte at `byte` (a no-op if it holds none).
    ///
    /// See [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html).
    ///
    /// # Errors
    ///
    /// [`OsError::Invalid`] if `byte` exceeds `i64::MAX`; [`OsError::Io`] on any other failure.
    pub fn unlock(&self, byte: u64) -> Result<(), OsError> {
        let mut fl = self.flock(byte, libc::F_UNLCK)?;
        self.fcntl(libc::F_OFD_SETLK, &mut fl)
            .map_err(|e| self.io_error("fcntl(F_OFD_SETLK, F_UNLCK)", e))
    }

    /// Whether some *other* open file description holds a lock on the byte at `byte`
    /// (`F_OFD_GETLK` for a write lock; `l_type != F_UNLCK` on return).
    ///
    /// Locks held by this description are invisible here, so probe with a `LockFile` that holds
    /// none. The answer may be stale as soon as it is returned.
    ///
    /// See [fcntl(2)](https://man7.org/linux/man-pages/man2/fcntl.2.html).
    ///
    /// # Errors
    ///
    /// [`OsError::Invalid`] if `byte` exceeds `i64::MAX`; [`OsError::Io`] on any other failure.
    pub fn is_held_elsewhere(&self, byte: u64) -> Result<bool, OsError> {
        let mut fl = self.flock(byte, libc::F_WRLCK)?;
        self.fcntl(libc::F_OFD_GETLK, &mut fl)
            .map_err(|e| self.io_error("fcntl(F_OFD_GETLK)", e))?;
        Ok(i32::from(fl.l_type) != libc::F_UNLCK)
    }

    /// A `struct flock` for the single byte at `byte`, `l_pid = 0` as OFD locks require.
    fn flock(&self, byte: u64, l_type: libc::c_int) -> Result<libc::flock, OsError> {
        let start = libc::off_t::try_from(byte).map_err(|_| {
            OsError::invalid(
                self.location.display_name(),
                format!(
                    "lock offset {byte} is beyond the largest file offset {}",
                    libc::off_t::MAX
                ),
            )
        })?;
        // SAFETY: `struct flock` is plain old data (integers only, plus padding on some
        // targets); all-zero bytes are a valid value of it, and zero is what `l_pid` must be.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        // F_WRLCK, F_UNLCK and SEEK_SET are small constants that fit `c_short`.
        fl.l_type = l_type as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        fl.l_start = start;
        fl.l_len = 1;
        Ok(fl)
    }

    /// `fcntl(fd, cmd, fl)` for one of the `F_OFD_*` lock commands.
    fn fcntl(&self, cmd: libc::c_int, fl: &mut libc::flock) -> io::Result<()> {
        // SAFETY: the fd is open for as long as `self.file` lives, which spans the call; `fl`
        // is an exclusive reference to an initialised `struct flock`, which is exactly what the
        // F_OFD_SETLK, F_OFD_SETLKW and F_OFD_GETLK commands read (and, for GETLK, write).
        let rc = unsafe { libc::fcntl(self.file.as_raw_fd(), cmd, std::ptr::from_mut(fl)) };
        if rc == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    fn io_error(&self, op: &'static str, source: io::Error) -> OsError {
        OsError::Io {
            op,
            location: self.location.display_name(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead as _, BufReader, Write as _};
    use std::process::{Child, Command, Stdio};

    use super::*;
    use crate::Mapping;
    use crate::testutil::{Segment, unique_path, unique_shm};

    fn must<T>(r: Result<T, OsError>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    /// A segment plus its mapping, removed on drop.
    fn segment(loc: crate::Location) -> (Segment, Mapping) {
        let seg = Segment::new(loc);
        let map = must(Mapping::create(&seg.loc, 4096, 0o600));
        (seg, map)
    }

    #[test]
    fn second_description_sees_the_lock() {
        for loc in [unique_shm("lock"), unique_path("lock")] {
            let (seg, _map) = segment(loc);
            let a = must(LockFile::open(&seg.loc));
            let b = must(LockFile::open(&seg.loc));
            assert!(must(a.try_lock(3)));
            assert!(
                must(a.try_lock(3)),
                "re-locking through the same description succeeds"
            );
            assert!(
                !must(a.is_held_elsewhere(3)),
                "a description does not see its own lock"
            );
            assert!(must(b.is_held_elsewhere(3)));
            assert!(!must(b.try_lock(3)));
            assert!(!must(b.is_held_elsewhere(4)), "only the one byte is locked");
            assert!(must(b.try_lock(4)));
            must(a.unlock(3));
            assert!(!must(b.is_held_elsewhere(3)));
            assert!(must(a.is_held_elsewhere(4)));
        }
    }

    #[test]
    fn dropping_the_holder_frees_the_lock() {
        let (seg, _map) = segment(unique_shm("drop"));
        let holder = must(LockFile::open(&seg.loc));
        let prober = must(LockFile::open(&seg.loc));
        // Far beyond EOF on purpose.
        let byte = 1 << 40;
        must(holder.lock(byte));
        assert!(must(prober.is_held_elsewhere(byte)));
        drop(holder);
        assert!(!must(prober.is_held_elsewhere(byte)));
        assert!(must(prober.try_lock(byte)));
    }

    #[test]
    fn offset_beyond_off_t_is_invalid() {
        let (seg, _map) = segment(unique_shm("big"));
        let f = must(LockFile::open(&seg.loc));
        assert!(matches!(f.try_lock(u64::MAX), Err(OsError::Invalid { .. })));
    }

    #[test]
    fn open_missing_is_not_found() {
        let seg = Segment::new(unique_shm("missing"));
        assert!(matches!(
            LockFile::open(&seg.loc),
            Err(OsError::NotFound { .. })
        ));
    }

    const CHILD_ENV: &str = "CCS_OS_TEST_LOCK_CHILD";
    const CHILD_MARKER: &str = "ccs-os-child-locked";
    const CHILD_BYTE: u64 = 9;

    /// Not a test on its own: when re-executed by `lock_is_released_when_holder_is_killed`
    /// with `CHILD_ENV` set, this takes the lock, says so and sleeps until killed.
    #[test]
    fn child_lock_holder() {
        let Ok(name) = std::env::var(CHILD_ENV) else {
            return;
        };
        let loc = must(crate::Location::parse(&name));
        let f = must(LockFile::open(&loc));
        must(f.lock(CHILD_BYTE));
        let mut out = std::io::stdout().lock();
        writeln!(out, "{CHILD_MARKER}").unwrap_or_else(|e| panic!("{e}"));
        out.flush().unwrap_or_else(|e| panic!("{e}"));
        std::thread::sleep(std::time::Duration::from_secs(30));
    }

    /// Kills the child (if still running) and reaps it, whatever happens in the test.
    struct ChildGuard(Child);

    impl Drop for ChildGuard {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn lock_is_released_when_holder_is_killed() {
        let (seg, _map) = segment(unique_shm("kill"));
        let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
        let child = Command::new(exe)
            .args([
                "lock::tests::child_lock_holder",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, seg.loc.display_name())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let mut child = ChildGuard(child);
        let stdout = child.0.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let mut locked = false;
        for line in BufReader::new(stdout).lines() {
            if line
                .unwrap_or_else(|e| panic!("{e}"))
                .contains(CHILD_MARKER)
            {
                locked = true;
                break;
            }
        }
        assert!(locked, "child exited without taking the lock");

        let prober = must(LockFile::open(&seg.loc));
        assert!(must(prober.is_held_elsewhere(CHILD_BYTE)));
        assert!(!must(prober.try_lock(CHILD_BYTE)));

        child.0.kill().unwrap_or_else(|e| panic!("{e}")); // SIGKILL
        let status = child.0.wait().unwrap_or_else(|e| panic!("{e}"));
        assert!(!status.success());

        assert!(!must(prober.is_held_elsewhere(CHILD_BYTE)));
        assert!(must(prober.try_lock(CHILD_BYTE)));
    }
}

//! A shared, read-write mapping of a whole segment file, and segment removal.
//!
//! The mapping is `MAP_SHARED`: stores through it are seen by every other process that maps the
//! same segment. It never hands out `&[u8]` or `&mut [u8]` (other processes write these bytes
//! at any time); callers get a page-aligned base pointer and a length, and build `repr(C)`
//! atomics on top.
//!
//! ```
//! use ccs_os::{Location, Mapping};
//!
//! # struct Cleanup(ccs_os::Location); // removes the segment even if the example fails
//! # impl Drop for Cleanup { fn drop(&mut self) { let _ = ccs_os::destroy(&self.0); } }
//! let loc = Location::parse(&format!("ccs-os-doc-mapping-{}", std::process::id()))?;
//! # let _cleanup = Cleanup(loc.clone());
//! let created = Mapping::create(&loc, 4096, 0o600)?;
//! let opened = Mapping::open(&loc)?;
//! assert_eq!(opened.len(), created.len());
//! ccs_os::destroy(&loc)?; // the mappings stay valid until dropped
//! # Ok::<(), ccs_os::OsError>(())
//! ```

use std::fs::{File, OpenOptions, Permissions};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};

use memmap2::{MmapOptions, MmapRaw};
use rustix::shm;

use crate::location::Access;
use crate::{Location, OsError};

/// A shared, read-write mapping of a whole segment.
///
/// `Send + Sync`: it is only an address range; what is stored there and how it is synchronised
/// is the business of the layer above. The mapping is removed (`munmap`) on drop.
///
/// If another process shrinks the segment file while it is mapped, touching the lost pages
/// raises `SIGBUS`; segments are fixed-size by protocol and must never be truncated.
#[derive(Debug)]
pub struct Mapping {
    map: MmapRaw,
    location: Location,
}

// Compile-time check: `MmapRaw` is `Send + Sync`, so `Mapping` is too without any `unsafe impl`.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Mapping>();
};

impl Mapping {
    /// Create a new segment of `size` bytes with permission bits `mode` (callers pass `0o600`
    /// by default), and map it shared.
    ///
    /// Opens with `O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC`, sets the mode exactly (`fchmod`, so
    /// the umask does not narrow it), then `ftruncate`s to `size`. If any step after creation
    /// fails, the new object is removed again.
    ///
    /// See [shm_open(3)](https://man7.org/linux/man-pages/man3/shm_open.3.html),
    /// [open(2)](https://man7.org/linux/man-pages/man2/open.2.html),
    /// [ftruncate(2)](https://man7.org/linux/man-pages/man2/ftruncate.2.html),
    /// [mmap(2)](https://man7.org/linux/man-pages/man2/mmap.2.html).
    ///
    /// # Errors
    ///
    /// [`OsError::AlreadyExists`] if the segment exists; [`OsError::Invalid`] for a zero or
    /// unmappable size or a mode outside `0o777`; [`OsError::PermissionDenied`] or
    /// [`OsError::Io`] if the kernel refuses.
    pub fn create(loc: &Location, size: u64, mode: u32) -> Result<Mapping, OsError> {
        let name = loc.display_name();
        if size == 0 {
            return Err(OsError::invalid(
                name,
                "a segment cannot be 0 bytes long; pass a positive size",
            ));
        }
        let len = usize::try_from(size).map_err(|_| {
            OsError::invalid(
                name.clone(),
                format!(
                    "{size} bytes do not fit in this process's address space; use a smaller size"
                ),
            )
        })?;
        if mode & !0o777 != 0 {
            return Err(OsError::invalid(
                name,
                format!(
                    "mode {mode:#o} has bits outside 0o777; pass permission bits only, e.g. 0o600"
                ),
            ));
        }
        let file = create_exclusive(loc, mode)?;
        let mapped = (|| {
            file.set_permissions(Permissions::from_mode(mode))
                .map_err(|e| OsError::from_io("fchmod", name.clone(), e))?;
            file.set_len(size)
                .map_err(|e| OsError::from_io("ftruncate", name.clone(), e))?;
            sync_parent_dir(loc)?;
            map_shared(&file, len, loc)
        })();
        match mapped {
            Ok(map) => Ok(Mapping {
                map,
                location: loc.clone(),
            }),
            Err(e) => {
                // Best effort: do not leave a half-made segment behind under the name; the
                // original error is the one worth reporting.
                let _ = destroy(loc);
                Err(e)
            }
        }
    }

    /// Open an existing segment read-write and map all of it; the size comes from `fstat`.
    /// Refuses a segment owned by another user: see [`Mapping::open_with`].
    ///
    /// # Errors
    ///
    /// As [`Mapping::open_with`] with `Access::default()`.
    pub fn open(loc: &Location) -> Result<Mapping, OsError> {
        Mapping::open_with(loc, Access::default())
    }

    /// Open an existing segment read-write and map all of it; the size comes from `fstat`.
    ///
    /// The file is opened with `O_NOFOLLOW` and checked on its descriptor: a symbolic link,
    /// anything but a regular file, and (unless `access.allow_other_owner`) a file owned by
    /// another user are refused before anything is mapped.
    ///
    /// See [shm_open(3)](https://man7.org/linux/man-pages/man3/shm_open.3.html),
    /// [fstat(2)](https://man7.org/linux/man-pages/man2/fstat.2.html),
    /// [mmap(2)](https://man7.org/linux/man-pages/man2/mmap.2.html).
    ///
    /// # Errors
    ///
    /// [`OsError::NotFound`] if it does not exist; [`OsError::Empty`] if it has no bytes yet;
    /// [`OsError::Symlink`] if its name is a symbolic link; [`OsError::ForeignOwner`] if it
    /// belongs to another user and `access` does not allow that; [`OsError::Invalid`] if it
    /// is not a regular file, or too large for this address space;
    /// [`OsError::PermissionDenied`] or [`OsError::Io`] if the kernel refuses.
    pub fn open_with(loc: &Location, access: Access) -> Result<Mapping, OsError> {
        let name = loc.display_name();
        let file = loc.open_rdwr(access)?;
        let meta = file
            .metadata()
            .map_err(|e| OsError::from_io("fstat", name.clone(), e))?;
        if !meta.file_type().is_file() {
            return Err(OsError::invalid(
                name,
                "it is not a regular file; name a segment created by `ccs`",
            ));
        }
        let size = meta.len();
        if size == 0 {
            return Err(OsError::Empty { location: name });
        }
        let len = usize::try_from(size).map_err(|_| {
            OsError::invalid(
                name,
                format!(
                    "it is {size} bytes long, which does not fit in this process's address space"
                ),
            )
        })?;
        let map = map_shared(&file, len, loc)?;
        Ok(Mapping {
            map,
            location: loc.clone(),
        })
    }

    /// The page-aligned base address of the mapping.
    ///
    /// Valid for [`len`](Self::len) bytes while `self` lives. Other processes may write these
    /// bytes at any moment: access them only through atomics or volatile reads, never through
    /// `&[u8]`/`&mut` references.
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    /// Length of the mapping in bytes (the segment size when it was mapped).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Always `false`: a segment is never empty (creating or opening an empty one fails).
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// Where the mapped segment lives.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Write every modified page of the mapping back to the file and wait for the device to
    /// report it stored: `msync(MS_SYNC)` over the whole mapping. On Linux this is
    /// `fdatasync` of the mapped range (data, and the metadata needed to read it back, such as
    /// the size). Cost: proportional to the pages dirtied since the last flush, plus one
    /// device cache flush; a few milliseconds on a disk, far more than a `put`.
    ///
    /// For a shared-memory segment (tmpfs) there is no device: the call succeeds and does
    /// nothing durable.
    ///
    /// See [msync(2)](https://man7.org/linux/man-pages/man2/msync.2.html).
    ///
    /// # Errors
    ///
    /// [`OsError::Io`] if write-back failed (e.g. `EIO` from the device): what was written
    /// since the last successful flush may not be on disk.
    pub fn flush(&self) -> Result<(), OsError> {
        self.map
            .flush()
            .map_err(|e| OsError::from_io("msync", self.location.display_name(), e))
    }
}

/// Make a new file-path segment's directory entry durable: `fsync` on its parent directory
/// (without it, a flushed segment's data could survive a power loss while its name does
/// not). Nothing to do for a shared-memory name.
///
/// See [fsync(2)](https://man7.org/linux/man-pages/man2/fsync.2.html).
fn sync_parent_dir(loc: &Location) -> Result<(), OsError> {
    let Location::Path(path) = loc else {
        return Ok(());
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| OsError::from_io("fsync (parent directory)", loc.display_name(), e))
}

/// `O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC` with `mode`.
fn create_exclusive(loc: &Location, mode: u32) -> Result<File, OsError> {
    let result = match loc {
        Location::Shm(name) => shm::open(
            Location::shm_name(name)?.as_str(),
            shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR,
            shm::Mode::from_raw_mode(mode),
        )
        .map(File::from)
        .map_err(std::io::Error::from),
        // std always adds O_CLOEXEC. `O_EXCL` never follows a symbolic link, even a dangling
        // one: the new file is always created under the name given.
        Location::Path(path) => OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path),
    };
    result.map_err(|e| OsError::from_io("create", loc.display_name(), e))
}

/// `mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)`.
fn map_shared(file: &File, len: usize, loc: &Location) -> Result<MmapRaw, OsError> {
    MmapOptions::new()
        .len(len)
        .map_raw(file)
        .map_err(|e| OsError::from_io("mmap", loc.display_name(), e))
}

/// Remove the segment's name: `shm_unlink` for a shared-memory name, `unlink` for a path.
///
/// Processes that have it mapped keep their mappings; the memory is freed when the last one
/// goes away.
///
/// See [shm_unlink(3)](https://man7.org/linux/man-pages/man3/shm_unlink.3.html) and
/// [unlink(2)](https://man7.org/linux/man-pages/man2/unlink.2.html).
///
/// # Errors
///
/// [`OsError::NotFound`] if there is no such segment; [`OsError::PermissionDenied`] or
/// [`OsError::Io`] if the kernel refuses.
pub fn destroy(loc: &Location) -> Result<(), OsError> {
    let result = match loc {
        Location::Shm(name) => {
            shm::unlink(Location::shm_name(name)?.as_str()).map_err(std::io::Error::from)
        }
        Location::Path(path) => std::fs::remove_file(path),
    };
    result.map_err(|e| OsError::from_io("unlink", loc.display_name(), e))
}

#[cfg(test)]
mod tests {
    // Tests build an `AtomicU64` over mapped bytes, the way the protocol layer does (via
    // `ccs_protocol::sync`, which this crate cannot depend on).
    #![allow(unsafe_code, clippy::disallowed_types)]

    use std::os::unix::fs::PermissionsExt as _;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::testutil::{Segment, unique_path, unique_shm};

    fn must<T>(r: Result<T, OsError>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    fn both() -> [Segment; 2] {
        [
            Segment::new(unique_shm("map")),
            Segment::new(unique_path("map")),
        ]
    }

    #[test]
    fn create_twice_is_already_exists() {
        for seg in both() {
            let _m = must(Mapping::create(&seg.loc, 4096, 0o600));
            let err = Mapping::create(&seg.loc, 4096, 0o600).err();
            assert!(
                matches!(err, Some(OsError::AlreadyExists { .. })),
                "{err:?}"
            );
        }
    }

    #[test]
    fn open_missing_is_not_found() {
        for seg in both() {
            let err = Mapping::open(&seg.loc).err();
            assert!(matches!(err, Some(OsError::NotFound { .. })), "{err:?}");
        }
    }

    #[test]
    fn destroy_missing_is_not_found() {
        for seg in both() {
            let err = destroy(&seg.loc).err();
            assert!(matches!(err, Some(OsError::NotFound { .. })), "{err:?}");
        }
    }

    #[test]
    fn created_file_mode_is_exact() {
        for seg in both() {
            let _m = must(Mapping::create(&seg.loc, 4096, 0o600));
            let meta = std::fs::metadata(seg.fs_path()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
            assert_eq!(meta.len(), 4096);
        }
    }

    #[test]
    fn bad_create_arguments_are_invalid() {
        let seg = Segment::new(unique_shm("bad"));
        for (size, mode) in [(0, 0o600), (4096, 0o4600)] {
            let err = Mapping::create(&seg.loc, size, mode).err();
            assert!(matches!(err, Some(OsError::Invalid { .. })), "{err:?}");
        }
        // Nothing was left behind.
        assert!(!seg.fs_path().exists());
    }

    #[test]
    fn open_empty_is_invalid() {
        let seg = Segment::new(unique_path("empty"));
        std::fs::File::create(seg.fs_path()).unwrap_or_else(|e| panic!("{e}"));
        let err = Mapping::open(&seg.loc).err();
        assert!(matches!(err, Some(OsError::Empty { .. })), "{err:?}");
    }

    #[test]
    fn length_and_alignment() {
        for seg in both() {
            let m = must(Mapping::create(&seg.loc, 10_000, 0o600));
            assert_eq!(m.len(), 10_000);
            assert!(!m.is_empty());
            assert_eq!(m.as_ptr() as usize % 4096, 0);
            assert_eq!(m.location(), &seg.loc);
            let o = must(Mapping::open(&seg.loc));
            assert_eq!(o.len(), 10_000);
        }
    }

    #[test]
    fn store_in_one_mapping_is_seen_in_another() {
        for seg in both() {
            let a = must(Mapping::create(&seg.loc, 4096, 0o600));
            let b = must(Mapping::open(&seg.loc));
            assert_ne!(a.as_ptr(), b.as_ptr());
            // SAFETY: both bases are page aligned (so 8-byte aligned), valid for 4096 bytes while
            // `a` and `b` live, and the bytes are only ever accessed atomically.
            let (wa, wb) = unsafe {
                (
                    AtomicU64::from_ptr(a.as_ptr().cast::<u64>()),
                    AtomicU64::from_ptr(b.as_ptr().cast::<u64>()),
                )
            };
            assert_eq!(wb.load(Ordering::Acquire), 0);
            // Release pairs with the Acquire load below (through the other mapping).
            wa.store(0xdead_beef_cafe_f00d, Ordering::Release);
            assert_eq!(wb.load(Ordering::Acquire), 0xdead_beef_cafe_f00d);
        }
    }

    #[test]
    fn a_symlink_is_never_followed() {
        let target = Segment::new(unique_path("symlink-target"));
        let link = Segment::new(unique_path("symlink"));
        let _m = must(Mapping::create(&target.loc, 4096, 0o600));
        std::os::unix::fs::symlink(target.fs_path(), link.fs_path())
            .unwrap_or_else(|e| panic!("{e}"));
        let err = Mapping::open(&link.loc).err();
        assert!(matches!(err, Some(OsError::Symlink { .. })), "{err:?}");
        let err = crate::LockFile::open(&link.loc).err();
        assert!(matches!(err, Some(OsError::Symlink { .. })), "{err:?}");
        // Creating through a link (even a dangling one) fails too: O_EXCL.
        must(destroy(&target.loc));
        let err = Mapping::create(&link.loc, 4096, 0o600).err();
        assert!(
            matches!(err, Some(OsError::AlreadyExists { .. })),
            "{err:?}"
        );
        assert!(!target.fs_path().exists(), "created through the link");
    }

    #[test]
    fn another_users_segment_is_refused_unless_allowed() {
        if rustix::process::geteuid().as_raw() != 0 {
            eprintln!("skipped: needs root to chown a file to another user");
            return;
        }
        for seg in both() {
            let _m = must(Mapping::create(&seg.loc, 4096, 0o600));
            std::os::unix::fs::chown(seg.fs_path(), Some(65534), None)
                .unwrap_or_else(|e| panic!("{e}"));
            let err = Mapping::open(&seg.loc).err();
            assert!(
                matches!(
                    err,
                    Some(OsError::ForeignOwner {
                        owner_uid: 65534,
                        your_uid: 0,
                        ..
                    })
                ),
                "{err:?}"
            );
            assert!(matches!(
                crate::LockFile::open(&seg.loc),
                Err(OsError::ForeignOwner { .. })
            ));
            let allow = Access {
                allow_other_owner: true,
            };
            let m = must(Mapping::open_with(&seg.loc, allow));
            assert_eq!(m.len(), 4096);
            must(crate::LockFile::open_with(&seg.loc, allow));
        }
    }

    #[test]
    fn flush_succeeds_on_both_kinds() {
        for seg in both() {
            let m = must(Mapping::create(&seg.loc, 8192, 0o600));
            must(m.flush());
        }
    }

    #[test]
    fn destroy_removes_the_name() {
        let seg = Segment::new(unique_shm("destroy"));
        let m = must(Mapping::create(&seg.loc, 4096, 0o600));
        assert!(seg.fs_path().exists());
        must(destroy(&seg.loc));
        assert!(!seg.fs_path().exists());
        assert_eq!(m.len(), 4096, "the mapping outlives the name");
        assert!(matches!(
            Mapping::open(&seg.loc),
            Err(OsError::NotFound { .. })
        ));
    }
}

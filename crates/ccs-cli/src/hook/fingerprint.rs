//! What a file's artifact holds: not the file, but its fingerprint (SHA-256 of the content,
//! size and modification time), so that a change made by any means (an editor, a formatter, a
//! `git checkout`) is noticed by comparing the file on disk with the last version published.
//!
//! The payload is one text line, readable with `ccs get`: `sha256=HEX size=N mtime=NS`, or
//! `absent` for a file that no longer exists. Only the hash decides whether the content
//! changed; size and mtime let a scan skip hashing files whose metadata did not move (as git's
//! index does).

use std::io::Read as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use sha2::{Digest as _, Sha256};

/// The SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// A file's state on disk, as published in its artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    /// The file does not exist (or is not a regular file).
    Absent,
    /// The file's content hash, size and modification time.
    Present {
        /// SHA-256 of the content, hex.
        hash: String,
        /// Bytes.
        size: u64,
        /// Modification time, nanoseconds since the epoch.
        mtime_ns: i128,
    },
}

impl FileState {
    /// Read and hash the file at `path`.
    pub fn of(path: &Path) -> std::io::Result<FileState> {
        let mut file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(FileState::Absent);
            }
            Err(error) => return Err(error),
        };
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Ok(FileState::Absent);
        }
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
        }
        Ok(FileState::Present {
            hash: hex(&hasher.finalize()),
            size: meta.len(),
            mtime_ns: mtime_ns(&meta),
        })
    }

    /// Whether the file at `path` may differ from `self` judging by its metadata alone: a
    /// different size or modification time, or a different existence.
    pub fn metadata_moved(&self, path: &Path) -> bool {
        let meta = std::fs::metadata(path)
            .ok()
            .filter(std::fs::Metadata::is_file);
        match (self, meta) {
            (FileState::Absent, None) => false,
            (FileState::Present { size, mtime_ns, .. }, Some(meta)) => {
                *size != meta.len() || *mtime_ns != self::mtime_ns(&meta)
            }
            _ => true,
        }
    }

    /// Same content (the hash, or both absent).
    pub fn same_content(&self, other: &FileState) -> bool {
        match (self, other) {
            (FileState::Absent, FileState::Absent) => true,
            (FileState::Present { hash: a, .. }, FileState::Present { hash: b, .. }) => a == b,
            _ => false,
        }
    }

    /// The artifact payload.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            FileState::Absent => b"absent\n".to_vec(),
            FileState::Present {
                hash,
                size,
                mtime_ns,
            } => format!("sha256={hash} size={size} mtime={mtime_ns}\n").into_bytes(),
        }
    }

    /// Parse a payload; `None` if it is not one this module wrote.
    pub fn decode(bytes: &[u8]) -> Option<FileState> {
        let text = std::str::from_utf8(bytes).ok()?.trim_end();
        if text == "absent" {
            return Some(FileState::Absent);
        }
        let mut parts = text.split(' ');
        let hash = parts.next()?.strip_prefix("sha256=")?;
        let size = parts.next()?.strip_prefix("size=")?.parse().ok()?;
        let mtime_ns = parts.next()?.strip_prefix("mtime=")?.parse().ok()?;
        if parts.next().is_some() || hash.len() != 64 {
            return None;
        }
        Some(FileState::Present {
            hash: hash.to_owned(),
            size,
            mtime_ns,
        })
    }
}

fn mtime_ns(meta: &std::fs::Metadata) -> i128 {
    i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_change() -> std::io::Result<()> {
        let dir = std::env::temp_dir().join(format!("ccs-fp-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("f");
        assert_eq!(FileState::of(&path)?, FileState::Absent);
        std::fs::write(&path, b"one")?;
        let one = FileState::of(&path)?;
        assert_eq!(FileState::decode(&one.encode()), Some(one.clone()));
        assert!(!one.metadata_moved(&path));
        std::fs::write(&path, b"two!")?;
        let two = FileState::of(&path)?;
        assert!(!one.same_content(&two));
        assert!(one.metadata_moved(&path));
        assert_eq!(FileState::decode(b"absent\n"), Some(FileState::Absent));
        assert_eq!(FileState::decode(b"garbage"), None);
        std::fs::remove_dir_all(&dir)
    }
}

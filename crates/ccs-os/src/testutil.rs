//! Test helpers: unique segment names and a guard that removes a segment on drop.

use std::path::PathBuf;
use std::sync::Mutex;

use crate::{Location, destroy};

static COUNTER: Mutex<u32> = Mutex::new(0);

fn unique(tag: &str) -> String {
    let n = {
        // A poisoned counter is still a counter.
        let mut n = COUNTER.lock().unwrap_or_else(|e| e.into_inner());
        *n += 1;
        *n
    };
    format!("ccs-os-test-{}-{n}-{tag}", std::process::id())
}

/// A shared-memory name no other test (in this or another process) uses.
pub(crate) fn unique_shm(tag: &str) -> Location {
    Location::Shm(unique(tag))
}

/// A file path in the temporary directory no other test uses.
pub(crate) fn unique_path(tag: &str) -> Location {
    Location::Path(std::env::temp_dir().join(unique(tag)))
}

/// Removes its segment on drop, whether or not the test passed.
pub(crate) struct Segment {
    pub(crate) loc: Location,
}

impl Segment {
    pub(crate) fn new(loc: Location) -> Segment {
        Segment { loc }
    }

    /// Where the segment appears in the file system.
    pub(crate) fn fs_path(&self) -> PathBuf {
        match &self.loc {
            Location::Shm(name) => PathBuf::from("/dev/shm").join(name),
            Location::Path(path) => path.clone(),
        }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // The segment may never have been created, or a test may have destroyed it already.
        let _ = destroy(&self.loc);
    }
}

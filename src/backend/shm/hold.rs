//! An exclusive hold on shared memory: the directory's hold on a line, with the segment that
//! granted it, so that it commits, releases and renews on its own.

use std::time::Duration;

use crate::Version;
use crate::backend::shm::segment_ref::SegmentRef;
use crate::error::Result;

/// A hold on one line of one segment. The segment is that of the agent that took the hold,
/// which the facade's guard, the hold's only owner, keeps alive ([`SegmentRef`]); the guard
/// also keeps the key, and passes it for the messages of errors.
pub(crate) struct Hold {
    pub(super) segment: SegmentRef,
    pub(super) hold: ccs_protocol::Hold,
}

impl Hold {
    pub(crate) fn version(&self) -> Version {
        self.hold.version
    }

    pub(crate) fn commit(self, key: &str, bytes: &[u8]) -> Result<Version> {
        let shared = self.segment.get();
        let version = shared
            .dir
            .commit(self.hold, bytes)
            .map_err(|e| shared.error(e, key))?;
        shared.written(key, version)
    }

    pub(crate) fn release(self, key: &str) -> Result<()> {
        let shared = self.segment.get();
        shared
            .dir
            .release(self.hold)
            .map_err(|e| shared.error(e, key))
    }

    pub(crate) fn renew(&mut self, key: &str, lease: Duration) -> Result<()> {
        let shared = self.segment.get();
        shared
            .dir
            .renew(self.hold, lease_ms(lease))
            .map_err(|e| shared.error(e, key))
    }
}

/// A lease in whole milliseconds, at least 1.
pub(super) fn lease_ms(lease: Duration) -> u64 {
    u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(1)
}

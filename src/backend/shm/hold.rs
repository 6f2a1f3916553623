//! An exclusive hold on shared memory: the directory's hold on a line, with the segment that
//! granted it, so that it commits, releases and renews on its own.

use std::sync::Arc;
use std::time::Duration;

use crate::Version;
use crate::backend::shm::segment::Shared;
use crate::error::Result;

/// A hold on one line of one segment.
pub(crate) struct Hold {
    pub(super) shared: Arc<Shared>,
    pub(super) hold: ccs_protocol::Hold,
    pub(super) key: String,
}

impl Hold {
    pub(crate) fn version(&self) -> Version {
        self.hold.version
    }

    pub(crate) fn commit(self, bytes: &[u8]) -> Result<Version> {
        let version = self
            .shared
            .dir
            .commit(self.hold, bytes)
            .map_err(|e| self.shared.error(e, &self.key))?;
        self.shared.written(&self.key, version)
    }

    pub(crate) fn release(self) -> Result<()> {
        self.shared
            .dir
            .release(self.hold)
            .map_err(|e| self.shared.error(e, &self.key))
    }

    pub(crate) fn renew(&mut self, lease: Duration) -> Result<()> {
        self.shared
            .dir
            .renew(self.hold, lease_ms(lease))
            .map_err(|e| self.shared.error(e, &self.key))
    }
}

/// A lease in whole milliseconds, at least 1.
pub(super) fn lease_ms(lease: Duration) -> u64 {
    u64::try_from(lease.as_millis()).unwrap_or(u64::MAX).max(1)
}

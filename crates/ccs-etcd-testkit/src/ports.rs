//! Port blocks for test clusters, handed out without overlap by construction.
//!
//! `scripts/etcd-cluster` puts a cluster on client ports `base..base+3` and peer ports
//! `base+100..base+103`. The blocks tile a range (`CCS_ETCD_PORT_BASE` and the 1,000 ports
//! after it when that variable is set, else 24000-31999: below Linux's ephemeral ports, 32768
//! on, where outgoing connections take their source ports): in each 200 ports, 25 bases 4
//! apart, so no two blocks share a port. A block is claimed by an exclusive `flock` on
//! `$TMPDIR/ccs-etcd-ports/<base>.lock`, which the kernel releases when the holder exits,
//! and only if none of its six ports is listened on and the script records no cluster on it
//! (the cluster of a process that has exited may still be stopping).

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::PathBuf;

use rustix::fs::{FlockOperation, flock};

/// Ports between two groups of 25 bases: a cluster's peer ports are its client ports + 100.
const GROUP: u16 = 200;
const STRIDE: u16 = 4;
const PER_GROUP: u16 = 25;

/// The ports of one cluster, held until dropped.
#[derive(Debug)]
pub struct PortBlock {
    base: u16,
    _lock: File,
}

impl PortBlock {
    /// Claim a free block. Panics (the test fails) if every block of the range is taken.
    pub fn claim() -> PortBlock {
        let (start, len) = range();
        let slots = (len / GROUP) * PER_GROUP;
        let dir = std::env::temp_dir().join("ccs-etcd-ports");
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {e}", dir.display());
        }
        // Start from a slot derived from the pid: processes running at once seldom contend.
        let first = (std::process::id() % u32::from(slots)) as u16;
        (0..slots)
            .map(|i| (first + i) % slots)
            .map(|k| start + GROUP * (k / PER_GROUP) + STRIDE * (k % PER_GROUP))
            .find_map(|base| try_claim(&dir, base))
            .unwrap_or_else(|| {
                panic!(
                    "no free etcd port block in {start}-{}: stop stray clusters \
                     (scripts/etcd-cluster stop) or set CCS_ETCD_PORT_BASE to a free range",
                    u32::from(start) + u32::from(len) - 1
                )
            })
    }

    /// The block's base: `CCS_ETCD_PORT_BASE` for `scripts/etcd-cluster`.
    pub fn base(&self) -> u16 {
        self.base
    }
}

/// `CCS_ETCD_PORT_BASE` and the 1,000 ports after it, or the default range.
fn range() -> (u16, u16) {
    match std::env::var("CCS_ETCD_PORT_BASE")
        .ok()
        .and_then(|b| b.parse::<u16>().ok())
    {
        Some(base) if base <= u16::MAX - 1000 => (base, 1000),
        _ => (24000, 8000),
    }
}

fn try_claim(dir: &std::path::Path, base: u16) -> Option<PortBlock> {
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!("{base}.lock")))
        .ok()?;
    flock(&lock, FlockOperation::NonBlockingLockExclusive).ok()?;
    if script_state(base).exists() {
        return None;
    }
    let ports = [0, 1, 2, 100, 101, 102].map(|offset| base + offset);
    ports
        .iter()
        .all(|&port| TcpListener::bind(("127.0.0.1", port)).is_ok())
        .then_some(PortBlock { base, _lock: lock })
}

/// The file in which `scripts/etcd-cluster` records the data dir of the cluster on `base`.
fn script_state(base: u16) -> PathBuf {
    std::env::temp_dir().join(format!("ccs-etcd-{base}.dir"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_claimed_at_once_are_distinct_and_do_not_overlap() {
        let blocks: Vec<PortBlock> = (0..30).map(|_| PortBlock::claim()).collect();
        let mut ports: Vec<u16> = blocks
            .iter()
            .flat_map(|b| [0, 1, 2, 100, 101, 102].map(|o| b.base() + o))
            .collect();
        let n = ports.len();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), n, "two blocks share a port");
        // A released block can be claimed again.
        drop(blocks);
        let again = PortBlock::claim();
        assert!(again.base() >= range().0);
    }
}

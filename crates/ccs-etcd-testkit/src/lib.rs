//! The etcd test kit: the one place where tests get an etcd cluster. Every etcd test of the
//! workspace (ccs-etcd's, the `ccs` binary's, the facade's conformance suite) starts its
//! clusters here, with `scripts/etcd-cluster`, on ports [`PortBlock::claim`] hands out: no two
//! clusters, in this process or another, can be given the same ports.
//!
//! - [`shared_endpoints`]: the cluster `CCS_ETCD_ENDPOINTS` names, or one private cluster per
//!   test process, started on first use and stopped when the process exits.
//! - [`TestCluster::start`]: a private cluster for a test that harms it (kills, pauses,
//!   restarts members); stopped when dropped.
//! - [`TestCluster::start_partitionable`]: the same in network namespaces, so that the test can
//!   partition the members (`isolate`, `cut`, `heal`).

mod cluster;
mod ports;

pub use cluster::TestCluster;
pub use ports::PortBlock;

use std::process::Command;
use std::sync::OnceLock;

/// Whether etcd is installed; if not, say loudly that the etcd tests are skipped.
pub fn installed() -> bool {
    let ok = Command::new("etcd").arg("--version").output().is_ok();
    if !ok {
        eprintln!(
            "\n*** SKIPPING: etcd is not installed (scripts/deps installs etcd-server and \
             etcd-client) ***\n"
        );
    }
    ok
}

/// Endpoints (`http://host:port,...`) of the cluster the tests of this process share:
/// `CCS_ETCD_ENDPOINTS`, or a private cluster started on first use, which the script's
/// watchdog stops once this process has exited. `None` only if no cluster is named and etcd is
/// not installed.
pub fn shared_endpoints() -> Option<&'static str> {
    static SHARED: OnceLock<Option<(String, Option<TestCluster>)>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            if let Ok(endpoints) = std::env::var("CCS_ETCD_ENDPOINTS") {
                return Some((endpoints, None));
            }
            if !installed() {
                return None;
            }
            // A static is never dropped: the cluster lives as long as the process.
            let cluster = TestCluster::start();
            Some((cluster.endpoints().to_owned(), Some(cluster)))
        })
        .as_ref()
        .map(|(endpoints, _)| endpoints.as_str())
}

/// `host:port,...` of `http://host:port,...` endpoints, as `etcd://` URLs name them.
pub fn hosts(endpoints: &str) -> String {
    endpoints
        .split(',')
        .map(|e| e.trim().trim_start_matches("http://").trim_end_matches('/'))
        .collect::<Vec<_>>()
        .join(",")
}

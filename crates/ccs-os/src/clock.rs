//! Monotonic time and process identity.
//!
//! ```
//! let t0 = ccs_os::monotonic_ns();
//! assert!(ccs_os::monotonic_ns() >= t0);
//! assert!(ccs_os::process_exists(ccs_os::current_pid()));
//! ```

use rustix::process::{Pid, test_kill_process};
use rustix::time::{ClockId, clock_gettime};

/// `CLOCK_MONOTONIC` in nanoseconds: system-wide, so comparable between processes on one
/// machine; never goes backwards; does not count time while suspended.
///
/// See [clock_gettime(2)](https://man7.org/linux/man-pages/man2/clock_gettime.2.html).
pub fn monotonic_ns() -> u64 {
    let ts = clock_gettime(ClockId::Monotonic);
    // CLOCK_MONOTONIC is never negative; saturate rather than wrap in any case.
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// This process's pid.
///
/// See [getpid(2)](https://man7.org/linux/man-pages/man2/getpid.2.html).
pub fn current_pid() -> u32 {
    std::process::id()
}

/// Whether a process with this pid exists (`kill(pid, 0)`; `EPERM` counts as existing).
///
/// For display only: pids are reused, so this cannot tell whether it is the *same* process.
/// Liveness decisions belong to [`LockFile`](crate::LockFile) locks. Pid 0 and pids above
/// `i32::MAX` are never processes and give `false`.
///
/// See [kill(2)](https://man7.org/linux/man-pages/man2/kill.2.html).
pub fn process_exists(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return false;
    };
    match test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_does_not_go_back() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(a > 0 && b >= a);
    }

    #[test]
    fn pids() {
        assert_eq!(current_pid(), std::process::id());
        assert!(process_exists(current_pid()));
        assert!(process_exists(1), "init exists (EPERM counts as existing)");
        assert!(!process_exists(0));
        assert!(!process_exists(u32::MAX));
    }

    #[test]
    fn reaped_child_does_not_exist() {
        let mut child = std::process::Command::new("true")
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let pid = child.id();
        child.wait().unwrap_or_else(|e| panic!("{e}"));
        // The pid could in principle be reused at once; that is vanishingly unlikely here.
        assert!(!process_exists(pid));
    }
}

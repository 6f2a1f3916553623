//! Ctrl-C during a bench: note it, so the run stops at its next check and cleans up (kills its
//! children, destroys its segment and side mapping) instead of leaving them in /dev/shm.

#![allow(unsafe_code)] // installing a signal handler, in `install`

use ccs_protocol::sync::{AtomicBool, Ordering};

/// Set to 1 by the SIGINT/SIGTERM handler.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_signal: libc::c_int) {
    // Async-signal-safe: one atomic store. Relaxed: `interrupted` only polls for it.
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Route SIGINT and SIGTERM to the flag (once per process; idempotent).
pub fn install() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `on_signal` is an `extern "C" fn(c_int)` that only performs an atomic store,
        // which is async-signal-safe; `signal(2)` with a valid signal number and handler has no
        // other preconditions. A failure (SIG_ERR) leaves the default action, which is fine.
        unsafe {
            libc::signal(
                signal,
                on_signal as extern "C" fn(libc::c_int) as *const () as libc::sighandler_t,
            );
        }
    }
}

/// Whether a SIGINT or SIGTERM arrived since `install`.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

//! A pointer to an agent's segment for what a facade guard owns (a zero-copy read's pin, an
//! exclusive hold), instead of a count of the mapping's `Arc`.
//!
//! The guard that owns the pin or hold also keeps the agent that granted it alive (it borrows
//! the agent, or holds its `Arc`), and the agent holds the mapping's `Arc`; a count here would
//! only cost two atomic read-modify-writes per read or write (about 5 ns of a zero-copy HIT).
//! As crossbeam-epoch's `Shared<'g>` is valid while its guard is, a `SegmentRef` is valid while
//! its owner's agent is; the owner cannot name that lifetime (it may own the agent through an
//! `Arc`), so the constructor is `unsafe` and the caller states why the agent outlives it.

#![allow(unsafe_code)] // a pointer kept valid by its owner's agent

use std::ptr::NonNull;

use crate::backend::shm::segment::Shared;

/// The segment of the agent that granted what its owner holds.
pub(crate) struct SegmentRef(NonNull<Shared>);

// SAFETY: a `SegmentRef` only gives out `&Shared` (`Shared` is `Send` and `Sync`, checked
// below: its directory is atomics, the rest immutable), from whichever thread owns it, as the
// `Arc<Shared>` it replaces allowed.
unsafe impl Send for SegmentRef {}
// SAFETY: as above; `&SegmentRef` gives out only `&Shared`.
unsafe impl Sync for SegmentRef {}

/// The `Send` and `Sync` above rest on `Shared`'s own.
const _: () = {
    const fn shared_is_send_and_sync<T: Send + Sync>() {}
    shared_is_send_and_sync::<Shared>();
};

impl SegmentRef {
    /// # Safety
    ///
    /// `shared` must stay alive, at this address, until the `SegmentRef` and everything that
    /// borrowed from it are dropped: its owner keeps the agent that holds the `Arc` of
    /// `shared` alive longer (see [`crate::ReadGuard`], [`crate::WriteGuard`]).
    pub(crate) unsafe fn new(shared: &Shared) -> SegmentRef {
        SegmentRef(NonNull::from(shared))
    }

    pub(crate) fn get(&self) -> &Shared {
        // SAFETY: `new`'s contract: the segment outlives `self`.
        unsafe { self.0.as_ref() }
    }
}

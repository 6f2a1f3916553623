//! Python bindings of agent-coherence: the native module `agent_coherence_shm._native`.
//!
//! The Python package `agent_coherence_shm` (distribution `agent-coherence-shm`, built with
//! maturin from `crates/ccs-python/pyproject.toml`) re-exports everything defined here and adds
//! the pure-Python LangGraph store `agent_coherence_shm.langgraph`. See `docs/python.md`.
//!
//! What each Python class wraps:
//!
//! | Python | Rust |
//! |---|---|
//! | `Segment` | [`agent_coherence::Segment`] (create, open, destroy, attach, status, list, fsck) |
//! | `Agent` | an `Arc<`[`agent_coherence::Agent`]`>`; detaches on `close()` or when collected |
//! | `Read`, `Check` | [`agent_coherence::Read`], [`agent_coherence::Check`] |
//! | `ReadBuffer` | [`agent_coherence::ReadGuard`], exported through the buffer protocol |
//! | `Cached` | [`agent_coherence::Cached`] with [`agent_coherence::Agent::refresh`] |
//! | `WriteGuard` | [`agent_coherence::WriteGuard`] over an `Arc<Agent>` |
//! | `CoherenceError` and subclasses | every variant of [`agent_coherence::Error`] |
//! | `StoreEntry` | `ShmStore`'s entry of one item: its native get and rewrite |
//! | `HotIndex` | `ShmStore`'s index of its entries, and its `get` / `put` bound natively |
//! | `max_cosine` | cosine similarity over `f32` vectors, for `ShmStore`'s vector search |
//!
//! The GIL: calls that can block (waiting, writes that may meet a stuck writer, opening a
//! segment whose creator is still initialising it, `fsck`) run with the GIL released
//! (`Python::detach`); `wait_changed` waits in short slices and checks for signals between
//! them, so Ctrl-C interrupts it. Reads keep the GIL: a HIT is a few atomic loads, cheaper than
//! releasing and re-taking it.
//!
//! Linking: the crate links libpython like any PyO3 crate built by plain cargo, so
//! `cargo build/test/clippy --workspace` work; maturin (≥ 1.9.4) sets
//! `PYO3_BUILD_EXTENSION_MODULE` so the wheel it builds does not link libpython (PyO3 0.26+
//! replaced the old `extension-module` cargo feature with that variable).
//!
//! `unsafe` is denied except in `buffer`, which lends a pinned version's bytes to Python.

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod agent;
mod buffer;
mod errors;
mod hot;
mod msgpack;
mod plain_value;
mod segment;
mod similarity;
mod store_entry;

use pyo3::prelude::*;

/// The native module. Its contents are re-exported by `agent_coherence_shm`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("MAX_KEY_BYTES", agent_coherence::MAX_KEY_BYTES)?;
    m.add("MAX_NAME_BYTES", agent_coherence::MAX_NAME_BYTES)?;
    m.add("MAX_AGENTS_LIMIT", agent_coherence::MAX_AGENTS_LIMIT)?;
    m.add_class::<segment::Segment>()?;
    m.add_class::<agent::Agent>()?;
    m.add_class::<agent::Read>()?;
    m.add_class::<agent::Check>()?;
    m.add_class::<agent::Cached>()?;
    m.add_class::<agent::WriteGuard>()?;
    m.add_class::<buffer::ReadBuffer>()?;
    m.add_class::<store_entry::StoreEntry>()?;
    m.add_class::<hot::HotIndex>()?;
    m.add_function(wrap_pyfunction!(similarity::max_cosine, m)?)?;
    errors::register(m)?;
    Ok(())
}

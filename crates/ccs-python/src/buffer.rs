//! `ReadBuffer`: a pinned version lent to Python through the buffer protocol, without copying.
//!
//! The exporter owns an [`agent_coherence::ReadGuard`], which pins one published version in
//! the segment: no protocol-abiding process writes that slot until the guard drops, and the
//! guard holds the mapping open. Each buffer view handed out (a `memoryview`, `bytes(obj)`,
//! `numpy.frombuffer`, ...) holds a strong reference to the exporter in `view.obj`, so the guard
//! (and with it the pin and the mapping) outlives every view: Python drops the exporter only
//! when the object and all its views are gone. Views are read-only: a request for a writable
//! buffer fails with `BufferError`.

#![allow(unsafe_code)] // the buffer protocol's C entry point, in `__getbuffer__`

use std::ffi::{c_int, c_void};

use agent_coherence::ReadGuard;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// A zero-copy read (from `Agent.read(key)`): one version's bytes, pinned in the segment while
/// this object or any view of it lives, even if newer versions are written meanwhile.
///
/// It implements the buffer protocol: `memoryview(buf)` is a read-only view over the segment's
/// memory, `bytes(buf)` copies it. The pin is released when the object and all views are gone.
#[pyclass(frozen, module = "agent_coherence_shm")]
pub(crate) struct ReadBuffer {
    // A guard that owns its agent (`Agent::read_owned`): closing the Python agent while a
    // buffer lives leaves the agent attached, and its pin valid, until the buffer goes.
    guard: ReadGuard<'static>,
}

impl ReadBuffer {
    pub(crate) fn new(guard: ReadGuard<'static>) -> ReadBuffer {
        ReadBuffer { guard }
    }
}

#[pymethods]
impl ReadBuffer {
    /// The pinned version.
    #[getter]
    fn version(&self) -> u64 {
        self.guard.version()
    }

    /// Whether the agent already held this version (HIT).
    #[getter]
    fn hit(&self) -> bool {
        self.guard.hit()
    }

    /// A copy of the bytes.
    fn tobytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.guard.bytes())
    }

    fn __len__(&self) -> usize {
        self.guard.bytes().len()
    }

    fn __repr__(&self) -> String {
        format!(
            "ReadBuffer(version={}, len={})",
            self.guard.version(),
            self.guard.bytes().len()
        )
    }

    /// Fill `view` with a read-only, one-dimensional view of unsigned bytes over the pinned
    /// version. The Python interpreter calls this with a valid `view` to fill.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let bytes = slf.get().guard.bytes();
        let len = ffi::Py_ssize_t::try_from(bytes.len()).map_err(|_| {
            pyo3::exceptions::PyBufferError::new_err("payload too large for a buffer")
        })?;
        // Why this is sound: `view` is the interpreter's valid, writable Py_buffer (the
        // protocol's contract for bf_getbuffer). `PyBuffer_FillInfo` stores a new strong
        // reference to the exporter in `view.obj`, so the `ReadGuard` that owns these bytes lives
        // until the view is released: the pointer stays valid, and the pinned slot is never
        // written by a protocol-abiding process meanwhile, for the view's whole life.
        // SAFETY: as above; `readonly = 1` (the bytes are never written through the view, a
        // writable request fails with BufferError) and the length is the slice's own.
        let filled = unsafe {
            ffi::PyBuffer_FillInfo(
                view,
                slf.as_ptr(),
                bytes.as_ptr().cast_mut().cast::<c_void>(),
                len,
                1,
                flags,
            )
        };
        if filled == -1 {
            return Err(PyErr::fetch(slf.py()));
        }
        Ok(())
    }
}

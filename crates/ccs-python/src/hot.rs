//! `HotIndex`: `ShmStore`'s index of the items it holds bound (`StoreEntry`), from the
//! `(namespace, key)` a caller passes to the entry, and `ShmStore.get` / `ShmStore.put` served
//! from it natively.
//!
//! The store (`agent_coherence_shm.langgraph.store`) makes one index and, unless a subclass
//! overrides the method, the run's config names the agent (`agent_from_config`), or (for
//! `put`) a vector index or `agent_from_namespace` applies, binds the index's `get` and `put`
//! on the instance, so that `store.get(ns, key)` and `store.put(ns, key, value)` are one native
//! call with no Python frame:
//!
//! - `get`: the entry of `(namespace, key)`; its `StoreEntry::read` returns the item of the
//!   version held (a HIT: two atomic loads, the item already decoded for that version) or of
//!   the version it fetches (a MISS). Anything else — no entry, an unhashable namespace, an
//!   entry that cannot answer, a deleted item — goes to the store's Python path
//!   (`ShmStore._get_locked`), which answers exactly as `ShmStore.get` does.
//! - `put`: an exact `tuple` namespace already validated by the store, a `str` key, no TTL,
//!   an entry bound to the item, and a plain value: `StoreEntry::write`, the value encoded
//!   natively and written on exactly the version held. A refusal (`Conflict`), a value that is
//!   not plain, or a write the entry cannot make goes to the store's locked path
//!   (`ShmStore._put_locked`); any other call to `ShmStore.put` itself.
//!
//! The index holds the store weakly (the store holds the index through the bound methods: a
//! strong reference would make every store a reference cycle), and holds no borrow of itself:
//! it is `frozen`, its table a Python `dict` of `dict`s used under the GIL and its count a
//! `Mutex` held for no call into Python, so threads sharing a store never meet "Already
//! borrowed".

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PySet, PyString, PyTuple, PyWeakrefMethods, PyWeakrefReference};

use crate::errors::NotFound;
use crate::store_entry::StoreEntry;

/// Entries kept at most (the store's Python cache had the same bound): the index is cleared
/// when it would hold more; entries come back on their next read or write.
const MAX_ENTRIES: usize = 100_000;

/// The index and its native `get` / `put` (see the module doc).
#[pyclass(frozen, module = "agent_coherence_shm")]
pub(crate) struct HotIndex {
    /// namespace (as callers pass it) -> {key -> StoreEntry}.
    table: Py<PyDict>,
    /// Entries in `table` (held for no call into Python).
    count: Mutex<usize>,
    /// The store, weakly.
    store: Py<PyWeakrefReference>,
    /// `ShmStore.put` (the class's function), for the calls `put` does not serve.
    put_function: Py<PyAny>,
    /// The namespaces the store's `put` validated (its `_valid` set).
    valid: Py<PySet>,
}

impl HotIndex {
    /// The entry of `(namespace, key)`, if any; `None` also for an unhashable namespace or
    /// key (the store's Python path says what they are).
    fn entry<'py>(
        &self,
        py: Python<'py>,
        namespace: &Bound<'py, PyAny>,
        key: &Bound<'py, PyAny>,
    ) -> Option<Bound<'py, StoreEntry>> {
        let keys = self.table.bind(py).get_item(namespace).ok()??;
        let keys = keys.cast_into_exact::<PyDict>().ok()?;
        let entry = keys.get_item(key).ok()??;
        entry.cast_into_exact::<StoreEntry>().ok()
    }

    /// The store; `RuntimeError` if it was collected (only a method kept past the store's
    /// life can ask).
    fn store<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.store.bind(py).upgrade().ok_or_else(|| {
            pyo3::exceptions::PyRuntimeError::new_err("this ShmStore was garbage-collected")
        })
    }

    fn count(&self) -> std::sync::MutexGuard<'_, usize> {
        // A poisoned count is still a count.
        self.count
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[pymethods]
impl HotIndex {
    /// The index of `store` (held weakly), whose `put` is `put_function` and whose validated
    /// namespaces are `valid`.
    #[new]
    fn new(
        py: Python<'_>,
        store: &Bound<'_, PyAny>,
        put_function: Py<PyAny>,
        valid: Py<PySet>,
    ) -> PyResult<HotIndex> {
        Ok(HotIndex {
            table: PyDict::new(py).unbind(),
            count: Mutex::new(0),
            store: PyWeakrefReference::new(store)?.unbind(),
            put_function,
            valid,
        })
    }

    /// The entry of `(namespace, key)`, or `None`.
    fn lookup<'py>(
        &self,
        py: Python<'py>,
        namespace: &Bound<'py, PyAny>,
        key: &Bound<'py, PyAny>,
    ) -> Option<Bound<'py, StoreEntry>> {
        self.entry(py, namespace, key)
    }

    /// Serve `(namespace, key)` from `entry` (the index is cleared first when full).
    fn insert(
        &self,
        py: Python<'_>,
        namespace: &Bound<'_, PyTuple>,
        key: &Bound<'_, PyString>,
        entry: &Bound<'_, StoreEntry>,
    ) -> PyResult<()> {
        let table = self.table.bind(py);
        let full = *self.count() >= MAX_ENTRIES;
        if full {
            self.clear(py);
        }
        let keys = match table.get_item(namespace)? {
            Some(keys) => keys.cast_into_exact::<PyDict>()?,
            None => {
                let keys = PyDict::new(py);
                table.set_item(namespace, &keys)?;
                keys
            }
        };
        let added = !keys.contains(key)?;
        keys.set_item(key, entry)?;
        if added {
            *self.count() += 1;
        }
        Ok(())
    }

    /// Forget every entry.
    fn clear(&self, py: Python<'_>) {
        *self.count() = 0;
        self.table.bind(py).clear();
    }

    fn __len__(&self) -> usize {
        *self.count()
    }

    /// `ShmStore.get` (see the module doc).
    #[pyo3(signature = (namespace, key, *, refresh_ttl = None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        namespace: &Bound<'py, PyAny>,
        key: &Bound<'py, PyAny>,
        refresh_ttl: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let _ = refresh_ttl; // ShmStore does not expire items (supports_ttl is False)
        if let Some(entry) = self.entry(py, namespace, key) {
            match StoreEntry::read(&entry) {
                Ok(Some(item)) => return Ok(item),
                Ok(None) => {}
                Err(error) if error.is_instance_of::<NotFound>(py) => {} // deleted
                Err(error) => return Err(error),
            }
        }
        self.store(py)?
            .call_method1(pyo3::intern!(py, "_get_locked"), (namespace, key))
    }

    /// `ShmStore.put` (see the module doc).
    #[pyo3(signature = (namespace, key, value, index = None, *, ttl = None))]
    fn put<'py>(
        &self,
        py: Python<'py>,
        namespace: &Bound<'py, PyAny>,
        key: &Bound<'py, PyAny>,
        value: &Bound<'py, PyAny>,
        index: Option<&Bound<'py, PyAny>>,
        ttl: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let simple = ttl.is_none_or(|ttl| ttl.is_none())
            && namespace.is_exact_instance_of::<PyTuple>()
            && key.is_exact_instance_of::<PyString>();
        if simple
            && self.valid.bind(py).contains(namespace)?
            && let Some(entry) = self.entry(py, namespace, key)
        {
            let none = py.None().into_bound(py);
            // The Python put's lock-free rewrite: anything it does not write (a value
            // that is not plain, a Conflict, an entry without a version) is decided by
            // the locked path, as there.
            match StoreEntry::write(&entry, value, &none) {
                Ok(true) => return Ok(none),
                Ok(false) => {}
                Err(error) if error.is_instance_of::<crate::errors::Conflict>(py) => {}
                Err(error) => return Err(error),
            }
            return self.store(py)?.call_method1(
                pyo3::intern!(py, "_put_locked"),
                (namespace, key, value, &none),
            );
        }
        let store = self.store(py)?;
        let kwargs = PyDict::new(py);
        if let Some(ttl) = ttl {
            kwargs.set_item(pyo3::intern!(py, "ttl"), ttl)?;
        }
        self.put_function
            .bind(py)
            .call((store, namespace, key, value, index), Some(&kwargs))
    }
}

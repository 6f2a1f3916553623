//! `StoreEntry`: one agent's cached view of one `ShmStore` item, with the store's two hot
//! paths done natively — a `get` (HIT or MISS) and the rewrite of an item the agent holds.
//!
//! The Python store (`agent_coherence_shm.langgraph.store`) keeps one entry per (agent, item)
//! and reads and sets its attributes (`view`, `cached`, `snap`, `tomb`) as it did when the entry
//! was a Python object; `snap` is `None` or `(version, doc, item)`, the version decoded or
//! written last (a version `rewrite` wrote is kept in parts until `snap` is read), `doc` the item's envelope as a list (`_codec.Doc`: slot 8 the value's bytes, or
//! the value itself when slot 10, the kind, is `VALUE`), `item` its `Item` (`None` until read).
//! Once the store `bind`s an entry to its item, `get()` and `rewrite()` do in one native call
//! what the store's Python did in many:
//!
//! - `get()`: refresh the copy; a HIT returns the item of that version; a MISS reads the
//!   envelope (`crate::msgpack`) from the copy, without making a `bytes` of the whole item, and
//!   builds the `Item` (the store's `_StoredItem`, its value left as bytes, decoded on first
//!   access by the store's decoder of that kind). Whatever it does not expect (an envelope not
//!   of format 2, an item of another namespace or key, a version it has no snapshot for) it
//!   leaves to the store's Python path, which raises the right error.
//! - `rewrite(value, vectors)`: encode the envelope with the value inline (`crate::plain_value`)
//!   and write it on exactly the version held (`put_if`, the GIL released). A value that is not
//!   plain returns `False` untouched: the store encodes it with LangGraph's serializer.
//!
//! Both run with the GIL held from start to end except for the write itself. No borrow of the
//! entry is held across anything that can run Python code — the write (the GIL released), a
//! call into Python, an allocation of an object the garbage collector tracks (a collection can
//! run finalizers, and with them another thread), or the release of an object (its finalizer):
//! each borrow copies references out or puts new ones in, and old ones are released after it.
//! So another thread using the entry never meets a borrowed entry ("Already borrowed").
//!
//! `crate::hot` serves `ShmStore.get` and `put` from these entries without Python code.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::IntoPyObjectExt;
use pyo3::PyTraverseError;
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::agent::{Agent, Cached};
use crate::errors::OrRaise;
use crate::msgpack::{Reader, Writer};
use crate::plain_value;

/// The envelope's format (`_codec.FORMAT`) and its number of slots.
const FORMAT: i64 = 2;
const SLOTS: usize = 11;
/// Slots of a doc (`_codec`'s NAMESPACE ... KIND).
const NAMESPACE: usize = 1;
const KEY: usize = 2;
const CREATED: usize = 4;
const NS_ORDER: usize = 6;
const ITEM_ORDER: usize = 7;
const BODY: usize = 8;
const KIND: usize = 10;
/// Value kinds (`_codec.PLAIN`, `EXT`, `TYPED`, and `VALUE`: the body is the value itself).
const PLAIN: i64 = 0;
const TYPED: i64 = 2;
const VALUE: i64 = -1;

/// What the store tells an entry once, so that its hot paths need nothing from Python.
struct Binding {
    /// The agent that reads and writes (the entry's view's).
    agent: Py<Agent>,
    /// Its name: an item's writer.
    writer: Py<PyString>,
    /// The artifact, resolved (shared: a write takes it along with the GIL released).
    artifact: Arc<agent_coherence::Key>,
    /// The namespace as stored and the item's key: every version read must carry them.
    scope: Py<PyTuple>,
    key: Py<PyString>,
    /// The same as text, to check a version's envelope against without making objects.
    labels: Vec<String>,
    key_text: String,
    /// The envelope's first slots, the same in every version this agent writes: its header,
    /// format, namespace, key and writer.
    head: Vec<u8>,
    /// The namespace items show (the scope, or `(agent,) + scope` in `agent_from_namespace`).
    shown: Py<PyTuple>,
    /// The store's decoder of each stored kind, and the item class with its `__new__`.
    decoders: Py<PyTuple>,
    item_class: Py<PyAny>,
    new_item: Py<PyAny>,
}

/// One agent's cached view of one store item (see the module doc).
#[pyclass(module = "agent_coherence_shm")]
pub(crate) struct StoreEntry {
    /// The store's view (agent) this entry belongs to.
    #[pyo3(get, set)]
    view: Py<PyAny>,
    /// The agent's private copy of the artifact, once read or written.
    #[pyo3(get, set)]
    cached: Option<Py<Cached>>,
    /// `None` or `(version, doc, item)`: the version decoded or written last (read through
    /// the `snap` getter, which makes it from `written` first).
    snap: Py<PyAny>,
    /// The version `rewrite` wrote last, if it is the last: the snapshot in parts, its doc
    /// made only when asked for (a put that nobody reads back makes none).
    written: Option<Arc<Written>>,
    /// The version of `snap` and its item, when the item is made: a HIT needs no more.
    current: Option<(u64, Py<PyAny>)>,
    /// The deletion version this agent saw (a read found the item deleted), else 0.
    #[pyo3(get, set)]
    tomb: u64,
    binding: Option<Arc<Binding>>,
}

/// A version `rewrite` wrote: what its snapshot's doc holds besides the bound namespace, key
/// and writer.
pub(crate) struct Written {
    version: u64,
    created: Py<PyAny>,
    updated: i64,
    ns_order: Py<PyAny>,
    item_order: Py<PyAny>,
    value: Py<PyAny>,
    vectors: Py<PyAny>,
}

/// A version just fetched, read from the copy: its text and bytes as Python objects (made
/// under the copy's lock: none of them is tracked by the garbage collector), the rest numbers.
/// Its namespace and key are the bound ones (checked as read): the binding's objects serve.
struct Fetched {
    writer: Py<PyString>,
    times: [i64; 4],
    body: Py<PyBytes>,
    vectors: Option<Py<PyBytes>>,
    kind: i64,
}

/// The envelope in `data` (format 2, see `_codec`) if it holds item `key` of namespace
/// `labels`; `None` if it is anything else.
fn fetch(py: Python<'_>, data: &[u8], labels: &[String], key: &str) -> Option<Fetched> {
    let mut r = Reader::new(data);
    if r.array()? != SLOTS || r.int()? != FORMAT || r.array()? != labels.len() {
        return None;
    }
    for label in labels {
        if r.str()? != label {
            return None;
        }
    }
    if r.str()? != key {
        return None;
    }
    let writer = PyString::new(py, r.str()?).unbind();
    let times = [r.int()?, r.int()?, r.int()?, r.int()?];
    let body = PyBytes::new(py, r.bin()?).unbind();
    let vectors = r.nil_or_bin()?.map(|v| PyBytes::new(py, v).unbind());
    let kind = r.int()?;
    if !(PLAIN..=TYPED).contains(&kind) || !r.is_empty() {
        return None;
    }
    Some(Fetched {
        writer,
        times,
        body,
        vectors,
        kind,
    })
}

/// Microseconds since the Unix epoch, as `time.time_ns() // 1000` gives them.
fn now_micros() -> PyResult<i64> {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| pyo3::exceptions::PyOSError::new_err("the clock is before 1970"))?;
    i64::try_from(since.as_micros())
        .map_err(|_| pyo3::exceptions::PyOSError::new_err("the clock is past year 292277"))
}

thread_local! {
    /// Reused by `rewrite`: the value's MessagePack, then the envelope's.
    static BUFFERS: std::cell::RefCell<(Vec<u8>, Vec<u8>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// What a version's snapshot is read from: the snapshot or, for a version `rewrite` wrote, its
/// parts.
enum Held {
    Snap(Py<PyAny>),
    Written(Arc<Written>),
}

impl StoreEntry {
    /// The doc of a version `rewrite` wrote, from its parts (`_codec.Doc`, the value inline).
    fn written_doc<'py>(
        py: Python<'py>,
        binding: &Binding,
        w: &Written,
    ) -> PyResult<Bound<'py, PyList>> {
        PyList::new(
            py,
            [
                FORMAT.into_bound_py_any(py)?,
                binding.scope.bind(py).clone().into_any(),
                binding.key.bind(py).clone().into_any(),
                binding.writer.bind(py).clone().into_any(),
                w.created.bind(py).clone(),
                w.updated.into_bound_py_any(py)?,
                w.ns_order.bind(py).clone(),
                w.item_order.bind(py).clone(),
                w.value.bind(py).clone(),
                w.vectors.bind(py).clone(),
                VALUE.into_bound_py_any(py)?,
            ],
        )
    }

    /// The snapshot (`None` or `(version, doc, item)`), made from `written` if the last
    /// version is one `rewrite` wrote (and kept, unless another thread changed the entry
    /// meanwhile).
    fn snapshot(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let (held, binding) = {
            let entry = slf.try_borrow()?;
            match (&entry.written, &entry.binding) {
                (Some(w), Some(b)) => (Held::Written(Arc::clone(w)), Arc::clone(b)),
                _ => return Ok(entry.snap.clone_ref(py)),
            }
        };
        let Held::Written(w) = held else {
            return Ok(py.None());
        };
        let doc = Self::written_doc(py, &binding, &w)?;
        let snap = (w.version, doc, py.None()).into_py_any(py)?;
        let old = {
            let mut entry = slf.try_borrow_mut()?;
            match &entry.written {
                Some(now) if Arc::ptr_eq(now, &w) => {
                    entry.written = None;
                    Some(std::mem::replace(&mut entry.snap, snap.clone_ref(py)))
                }
                _ => None,
            }
        };
        drop(old); // released with no borrow held
        Ok(snap)
    }

    /// The `Item` of `doc` (built as the store's `_item()` builds it), `created` its
    /// `created_at` if already made.
    fn item<'py>(
        py: Python<'py>,
        binding: &Binding,
        doc: &Bound<'py, PyList>,
        created: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let item = binding
            .new_item
            .bind(py)
            .call1((binding.item_class.bind(py),))?;
        let kind: i64 = doc.get_item(KIND)?.extract()?;
        let body = doc.get_item(BODY)?;
        if kind == VALUE {
            item.setattr(pyo3::intern!(py, "_body"), body)?;
            item.setattr(pyo3::intern!(py, "_raw"), py.None())?;
        } else {
            let decoder = binding.decoders.bind(py).get_item(usize::try_from(kind)?)?;
            item.setattr(pyo3::intern!(py, "_raw"), body)?;
            item.setattr(pyo3::intern!(py, "_decode"), decoder)?;
        }
        item.setattr(pyo3::intern!(py, "key"), doc.get_item(KEY)?)?;
        item.setattr(pyo3::intern!(py, "namespace"), binding.shown.bind(py))?;
        item.setattr(pyo3::intern!(py, "_created_us"), doc.get_item(CREATED)?)?;
        item.setattr(pyo3::intern!(py, "_updated_us"), doc.get_item(CREATED + 1)?)?;
        item.setattr(pyo3::intern!(py, "_created"), created)?;
        item.setattr(pyo3::intern!(py, "_updated"), py.None())?;
        Ok(item)
    }

    /// Whether `doc` is of the bound namespace and key.
    fn is_bound_item(binding: &Binding, doc: &Bound<'_, PyList>) -> PyResult<bool> {
        let py = doc.py();
        Ok(doc.get_item(NAMESPACE)?.eq(binding.scope.bind(py))?
            && doc.get_item(KEY)?.eq(binding.key.bind(py))?)
    }

    /// `get()` for native callers (`crate::hot`): the item, or `None` where the store's
    /// Python path must answer.
    pub(crate) fn read<'py>(slf: &Bound<'py, Self>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let py = slf.py();
        // The copy, the binding and the version held with its item, copied out of one short
        // borrow.
        let (cached, binding, current) = {
            let entry = slf.try_borrow()?;
            let (Some(cached), Some(binding)) = (&entry.cached, &entry.binding) else {
                return Ok(None);
            };
            (
                cached.clone_ref(py),
                Arc::clone(binding),
                entry
                    .current
                    .as_ref()
                    .map(|(version, item)| (*version, item.clone_ref(py))),
            )
        };
        let (held, old_item, snap) = match current {
            Some((version, item)) => (version, Some(item.into_bound(py)), None),
            None => {
                let snap = Self::snapshot(slf)?.into_bound(py);
                let Ok(snap) = snap.cast_into_exact::<PyTuple>() else {
                    return Ok(None);
                };
                let item = snap.get_item(2)?;
                let item = (!item.is_none()).then_some(item);
                (snap.get_item(0)?.extract()?, item, Some(snap))
            }
        };
        let (version, fetched) = cached.get().refresh_with(py, |version, data| match data {
            Some(data) if version != held => (
                version,
                Some(fetch(py, data, &binding.labels, &binding.key_text)),
            ),
            _ => (version, None),
        })?;
        let (doc, created) = match fetched {
            // The version held: its item, or (a version this agent wrote) made from its doc.
            None if version == held => {
                if let Some(item) = old_item {
                    return Ok(Some(item));
                }
                let Some(snap) = snap else {
                    return Ok(None);
                };
                let doc = snap.get_item(1)?.cast_into_exact::<PyList>()?;
                (doc, py.None().into_bound(py))
            }
            // Not an item this can read (another format, namespace or key): the store's
            // path says what it is.
            None | Some(None) => return Ok(None),
            Some(Some(f)) => {
                let doc = PyList::new(
                    py,
                    [
                        FORMAT.into_bound_py_any(py)?,
                        binding.scope.bind(py).clone().into_any(),
                        binding.key.bind(py).clone().into_any(),
                        f.writer.into_bound(py).into_any(),
                        f.times[0].into_bound_py_any(py)?,
                        f.times[1].into_bound_py_any(py)?,
                        f.times[2].into_bound_py_any(py)?,
                        f.times[3].into_bound_py_any(py)?,
                        f.body.into_bound(py).into_any(),
                        f.vectors.into_bound_py_any(py)?,
                        f.kind.into_bound_py_any(py)?,
                    ],
                )?;
                // The same life as the version decoded before: its created_at, if made.
                let created = match old_item {
                    Some(old) => {
                        let old_created = old.getattr(pyo3::intern!(py, "_created_us"))?;
                        if old_created.extract::<i64>()? == f.times[0] {
                            old.getattr(pyo3::intern!(py, "_created"))?
                        } else {
                            py.None().into_bound(py)
                        }
                    }
                    None => py.None().into_bound(py),
                };
                (doc, created)
            }
        };
        if !Self::is_bound_item(&binding, &doc)? {
            return Ok(None); // a version this agent wrote elsewhere: the store's path checks it
        }
        let item = Self::item(py, &binding, &doc, created)?;
        let snap = (version, doc, item.clone()).into_py_any(py)?;
        let old = {
            let mut entry = slf.try_borrow_mut()?;
            let old = (
                std::mem::replace(&mut entry.snap, snap),
                entry.current.replace((version, item.clone().unbind())),
                entry.written.take(),
            );
            entry.tomb = 0;
            old
        };
        drop(old); // released with no borrow held
        Ok(Some(item))
    }

    /// `rewrite()` for native callers (`crate::hot`).
    pub(crate) fn write(
        slf: &Bound<'_, Self>,
        value: &Bound<'_, PyAny>,
        vectors: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let py = slf.py();
        let (binding, held) = {
            let entry = slf.try_borrow()?;
            let Some(binding) = &entry.binding else {
                return Ok(false);
            };
            if entry.tomb != 0 {
                return Ok(false);
            }
            let held = match &entry.written {
                Some(w) => Held::Written(Arc::clone(w)),
                None => Held::Snap(entry.snap.clone_ref(py)),
            };
            (Arc::clone(binding), held)
        };
        let (held, created, ns_order, item_order) = match held {
            Held::Written(w) => (
                w.version,
                w.created.clone_ref(py).into_bound(py),
                w.ns_order.clone_ref(py).into_bound(py),
                w.item_order.clone_ref(py).into_bound(py),
            ),
            Held::Snap(snap) => {
                let Ok(snap) = snap.into_bound(py).cast_into_exact::<PyTuple>() else {
                    return Ok(false);
                };
                let old = snap.get_item(1)?.cast_into_exact::<PyList>()?;
                (
                    snap.get_item(0)?.extract()?,
                    old.get_item(CREATED)?,
                    old.get_item(NS_ORDER)?,
                    old.get_item(ITEM_ORDER)?,
                )
            }
        };
        let vectors_bytes = if vectors.is_none() {
            None
        } else {
            Some(vectors.cast_exact::<PyBytes>()?.clone())
        };
        let now = now_micros()?;
        let agent = binding.agent.get().agent()?;
        let artifact = Arc::clone(&binding.artifact);
        let written = BUFFERS.with_borrow_mut(|(raw, envelope)| -> PyResult<Option<u64>> {
            raw.clear();
            if !plain_value::encode(value, raw) {
                return Ok(None);
            }
            envelope.clear();
            envelope.extend_from_slice(&binding.head);
            let mut w = Writer(&mut *envelope);
            let fits = (|| {
                w.int(created.extract().ok()?);
                w.int(now);
                w.int(ns_order.extract().ok()?);
                w.int(item_order.extract().ok()?);
                w.bin(raw)?;
                match &vectors_bytes {
                    Some(v) => w.bin(v.as_bytes())?,
                    None => w.nil(),
                }
                w.int(PLAIN);
                Some(())
            })();
            if fits.is_none() {
                return Ok(None);
            }
            let envelope: &[u8] = envelope;
            // After this process's other writes as this agent (threads sharing the store).
            let order = binding.agent.get();
            py.detach(|| order.ordered(|| agent.put_if(&*artifact, held, envelope)))
                .or_raise(py)
                .map(Some)
        })?;
        let Some(version) = written else {
            return Ok(false);
        };
        let written = Arc::new(Written {
            version,
            created: created.unbind(),
            updated: now,
            ns_order: ns_order.unbind(),
            item_order: item_order.unbind(),
            value: value.clone().unbind(),
            vectors: vectors.clone().unbind(),
        });
        let old = {
            let mut entry = slf.try_borrow_mut()?;
            (
                entry.written.replace(written),
                std::mem::replace(&mut entry.snap, py.None()),
                entry.current.take(),
            )
        };
        drop(old); // released with no borrow held
        Ok(true)
    }
}

#[pymethods]
impl StoreEntry {
    /// `None` or `(version, doc, item)`: the version decoded or written last.
    #[getter]
    fn snap(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::snapshot(slf)
    }

    #[setter]
    fn set_snap(slf: &Bound<'_, Self>, snap: Py<PyAny>) -> PyResult<()> {
        let py = slf.py();
        let current = match snap.bind(py).cast_exact::<PyTuple>() {
            Ok(t) if t.len() == 3 && !t.get_item(2)?.is_none() => {
                Some((t.get_item(0)?.extract()?, t.get_item(2)?.unbind()))
            }
            _ => None,
        };
        let old = {
            let mut entry = slf.try_borrow_mut()?;
            (
                std::mem::replace(&mut entry.current, current),
                std::mem::replace(&mut entry.snap, snap),
                entry.written.take(),
            )
        };
        drop(old); // released with no borrow held
        Ok(())
    }

    /// The references the entry owns outright (the shared `binding` and `written` are not
    /// visited): the garbage collector sees the cycle entry → view → `view.entries` → entry
    /// of a store dropped without `close()`, and frees it.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.view)?;
        visit.call(&self.cached)?;
        visit.call(&self.snap)?;
        if let Some((_, item)) = &self.current {
            visit.call(item)?;
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        self.cached = None;
        self.current = None;
        self.written = None;
        self.binding = None;
    }

    #[new]
    fn new(py: Python<'_>, view: Py<PyAny>) -> StoreEntry {
        StoreEntry {
            view,
            cached: None,
            snap: py.None(),
            written: None,
            current: None,
            tomb: 0,
            binding: None,
        }
    }

    /// Tie the entry to its item, for `get()` and `rewrite()`: the view's `agent` and
    /// `writer` name, the item's stored `scope` and `key`, the namespace items `shown` with,
    /// and the store's `decoders` and item class. Needs `cached` set.
    #[allow(clippy::too_many_arguments)]
    fn bind(
        slf: &Bound<'_, Self>,
        agent: Py<Agent>,
        writer: Py<PyString>,
        scope: Py<PyTuple>,
        key: Py<PyString>,
        shown: Py<PyTuple>,
        decoders: Py<PyTuple>,
        item_class: Py<PyAny>,
    ) -> PyResult<()> {
        let py = slf.py();
        let Some(cached) = slf.try_borrow()?.cached.as_ref().map(|c| c.clone_ref(py)) else {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "a store entry is bound once its copy exists",
            ));
        };
        let artifact = Arc::new(cached.get().resolved_key());
        let new_item = item_class
            .bind(py)
            .getattr(pyo3::intern!(py, "__new__"))?
            .unbind();
        let labels = scope.bind(py).extract::<Vec<String>>()?;
        let key_text = key.bind(py).to_str()?.to_owned();
        let mut head = Vec::new();
        let mut w = Writer(&mut head);
        let written = (|| {
            w.array(SLOTS)?;
            w.int(FORMAT);
            w.array(labels.len())?;
            for label in &labels {
                w.str(label)?;
            }
            w.str(&key_text)?;
            w.str(writer.bind(py).to_str().ok()?)
        })();
        if written.is_none() {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "a namespace, key or agent name too long for MessagePack",
            ));
        }
        let binding = Arc::new(Binding {
            agent,
            writer,
            artifact,
            scope,
            key,
            labels,
            key_text,
            head,
            shown,
            decoders,
            item_class,
            new_item,
        });
        let old = slf.try_borrow_mut()?.binding.replace(binding);
        drop(old); // released with no borrow held
        Ok(())
    }

    /// The item, current for the agent: a HIT returns the item of the version held; a MISS
    /// fetches the current version and returns its new item. `None`: the store's Python path
    /// must answer (unbound, no snapshot, or a version this cannot read). `NotFound` if the
    /// item was deleted.
    fn get(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        Ok(Self::read(slf)?.map_or_else(|| py.None(), Bound::unbind))
    }

    /// Write `value` (with `vectors`, `bytes` or `None`) as the next version of the item,
    /// conditional on the version held, keeping its creation and insertion stamps; `True`
    /// once written. `False`, nothing done, if the value is not plain or the entry holds no
    /// version (unbound, no snapshot, or a deletion seen). `Conflict` if another agent wrote since.
    fn rewrite(
        slf: &Bound<'_, Self>,
        value: &Bound<'_, PyAny>,
        vectors: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        Self::write(slf, value, vectors)
    }
}

//! Every [`agent_coherence::Error`] variant as a Python exception under `CoherenceError`.
//!
//! The message is the Rust error's `Display`, unchanged; the variant's fields become attributes
//! of the exception (for example `Conflict.current`, `Conflict.yours`, `Conflict.key`).

use agent_coherence::Error;
use pyo3::IntoPyObjectExt;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    agent_coherence_shm,
    CoherenceError,
    PyException,
    "Base class of every error agent-coherence raises."
);
create_exception!(
    agent_coherence_shm,
    NotFound,
    CoherenceError,
    "The artifact has never been written, or was deleted. Attribute: `key`."
);
create_exception!(
    agent_coherence_shm,
    Conflict,
    CoherenceError,
    "A conditional write found a newer version than the writer's view; nothing was written. \
     Attributes: `key`, `current` (the artifact's version), `yours` (the version the write was \
     conditional on). Read again, then write."
);
create_exception!(
    agent_coherence_shm,
    Held,
    CoherenceError,
    "Another live agent holds the artifact exclusively. Attributes: `key`, `by` (the holder)."
);
create_exception!(
    agent_coherence_shm,
    Fenced,
    CoherenceError,
    "This agent's hold was reclaimed (lease expired or re-attached); nothing was written. \
     Attribute: `key`."
);
create_exception!(
    agent_coherence_shm,
    AgentBusy,
    CoherenceError,
    "A live process (maybe this one) is already attached as this agent. Attributes: `name`, `pid`."
);
create_exception!(
    agent_coherence_shm,
    BadLocation,
    CoherenceError,
    "A segment name or path that cannot name a segment. Attributes: `location`, `reason`."
);
create_exception!(
    agent_coherence_shm,
    SegmentNotFound,
    CoherenceError,
    "The segment does not exist. Attribute: `location`."
);
create_exception!(
    agent_coherence_shm,
    SegmentExists,
    CoherenceError,
    "The segment exists already. Attribute: `location`."
);
create_exception!(
    agent_coherence_shm,
    ForeignOwner,
    CoherenceError,
    "The segment belongs to another user and that was not allowed. Attributes: `location`, \
     `owner`, `owner_uid`, `your_uid`."
);
create_exception!(
    agent_coherence_shm,
    Symlink,
    CoherenceError,
    "The segment's path is a symbolic link, which is never followed. Attribute: `location`."
);
create_exception!(
    agent_coherence_shm,
    NotDurable,
    CoherenceError,
    "A write was published but flushing it to disk failed. Attributes: `key`, `version`."
);
create_exception!(
    agent_coherence_shm,
    Corrupt,
    CoherenceError,
    "The segment's contents failed validation (corrupted, another layout version, or never \
     initialised). Attribute: `location`."
);
create_exception!(
    agent_coherence_shm,
    CapacityExceeded,
    CoherenceError,
    "A fixed-size resource of the segment is exhausted. Attributes: `what`, `limit`."
);
create_exception!(
    agent_coherence_shm,
    PayloadTooLarge,
    CoherenceError,
    "A payload larger than the segment allows. Attributes: `len`, `max`."
);
create_exception!(
    agent_coherence_shm,
    BadKey,
    CoherenceError,
    "A key that is empty or longer than MAX_KEY_BYTES bytes. Attributes: `len`, `max`."
);
create_exception!(
    agent_coherence_shm,
    BadName,
    CoherenceError,
    "An agent name that is empty or longer than MAX_NAME_BYTES bytes. Attributes: `len`, `max`."
);
create_exception!(
    agent_coherence_shm,
    InvalidConfig,
    CoherenceError,
    "A configuration that cannot describe a segment."
);
create_exception!(
    agent_coherence_shm,
    OsFailure,
    CoherenceError,
    "The operating system refused or failed (permissions, I/O)."
);

/// Add the exception classes to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("CoherenceError", py.get_type::<CoherenceError>())?;
    m.add("NotFound", py.get_type::<NotFound>())?;
    m.add("Conflict", py.get_type::<Conflict>())?;
    m.add("Held", py.get_type::<Held>())?;
    m.add("Fenced", py.get_type::<Fenced>())?;
    m.add("AgentBusy", py.get_type::<AgentBusy>())?;
    m.add("BadLocation", py.get_type::<BadLocation>())?;
    m.add("SegmentNotFound", py.get_type::<SegmentNotFound>())?;
    m.add("SegmentExists", py.get_type::<SegmentExists>())?;
    m.add("ForeignOwner", py.get_type::<ForeignOwner>())?;
    m.add("Symlink", py.get_type::<Symlink>())?;
    m.add("NotDurable", py.get_type::<NotDurable>())?;
    m.add("Corrupt", py.get_type::<Corrupt>())?;
    m.add("CapacityExceeded", py.get_type::<CapacityExceeded>())?;
    m.add("PayloadTooLarge", py.get_type::<PayloadTooLarge>())?;
    m.add("BadKey", py.get_type::<BadKey>())?;
    m.add("BadName", py.get_type::<BadName>())?;
    m.add("InvalidConfig", py.get_type::<InvalidConfig>())?;
    m.add("OsFailure", py.get_type::<OsFailure>())?;
    Ok(())
}

/// An exception of type `T` with `message`, and `attrs` set on the instance.
fn raise<T: pyo3::PyTypeInfo>(
    py: Python<'_>,
    message: String,
    attrs: &[(&str, Py<PyAny>)],
) -> PyErr {
    let err = PyErr::new::<T, _>(message);
    let value = err.value(py);
    for (name, attr) in attrs {
        // Setting an attribute on a fresh exception instance cannot fail but by memory
        // exhaustion; the exception is raised either way.
        let _ = value.setattr(*name, attr.bind(py));
    }
    err
}

fn obj<'py, T: IntoPyObjectExt<'py>>(py: Python<'py>, value: T) -> Py<PyAny> {
    // Strings and integers convert infallibly; `None` stands in if one ever did not.
    value.into_py_any(py).unwrap_or_else(|_| py.None())
}

/// The Python exception for a Rust error: same message, fields as attributes.
pub(crate) fn to_py(py: Python<'_>, error: Error) -> PyErr {
    let message = error.to_string();
    match error {
        Error::NotFound(refusal) => {
            raise::<NotFound>(py, message, &[("key", obj(py, refusal.key))])
        }
        Error::Conflict(agent_coherence::Conflict {
            key,
            current,
            yours,
        }) => raise::<Conflict>(
            py,
            message,
            &[
                ("key", obj(py, key)),
                ("current", obj(py, current)),
                ("yours", obj(py, yours)),
            ],
        ),
        Error::Held(agent_coherence::Held { key, by }) => {
            raise::<Held>(py, message, &[("key", obj(py, key)), ("by", obj(py, by))])
        }
        Error::Fenced(refusal) => raise::<Fenced>(py, message, &[("key", obj(py, refusal.key))]),
        Error::AgentBusy { name, pid } => raise::<AgentBusy>(
            py,
            message,
            &[("name", obj(py, name)), ("pid", obj(py, pid))],
        ),
        Error::BadLocation { location, reason } => raise::<BadLocation>(
            py,
            message,
            &[("location", obj(py, location)), ("reason", obj(py, reason))],
        ),
        Error::SegmentNotFound { location } => {
            raise::<SegmentNotFound>(py, message, &[("location", obj(py, location))])
        }
        Error::SegmentExists { location } => {
            raise::<SegmentExists>(py, message, &[("location", obj(py, location))])
        }
        Error::ForeignOwner {
            location,
            owner,
            owner_uid,
            your_uid,
        } => raise::<ForeignOwner>(
            py,
            message,
            &[
                ("location", obj(py, location)),
                ("owner", obj(py, owner)),
                ("owner_uid", obj(py, owner_uid)),
                ("your_uid", obj(py, your_uid)),
            ],
        ),
        Error::Symlink { location } => {
            raise::<Symlink>(py, message, &[("location", obj(py, location))])
        }
        Error::NotDurable { key, version, .. } => raise::<NotDurable>(
            py,
            message,
            &[("key", obj(py, key)), ("version", obj(py, version))],
        ),
        Error::Segment { location, .. } => {
            raise::<Corrupt>(py, message, &[("location", obj(py, location))])
        }
        Error::CapacityExceeded { what, limit } => raise::<CapacityExceeded>(
            py,
            message,
            &[("what", obj(py, what)), ("limit", obj(py, limit))],
        ),
        Error::PayloadTooLarge { len, max } => {
            raise::<PayloadTooLarge>(py, message, &[("len", obj(py, len)), ("max", obj(py, max))])
        }
        Error::BadKey { len, max } => {
            raise::<BadKey>(py, message, &[("len", obj(py, len)), ("max", obj(py, max))])
        }
        Error::BadName { len, max } => {
            raise::<BadName>(py, message, &[("len", obj(py, len)), ("max", obj(py, max))])
        }
        Error::InvalidConfig(_) => raise::<InvalidConfig>(py, message, &[]),
        Error::Os(_) => raise::<OsFailure>(py, message, &[]),
        // `Error` is non-exhaustive: a variant added later is still a CoherenceError.
        _ => raise::<CoherenceError>(py, message, &[]),
    }
}

/// `result.map_err(|e| to_py(py, e))`, shorter.
pub(crate) trait OrRaise<T> {
    /// Convert the error to its Python exception.
    fn or_raise(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> OrRaise<T> for agent_coherence::Result<T> {
    fn or_raise(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, e))
    }
}

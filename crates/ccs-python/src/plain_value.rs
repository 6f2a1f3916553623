//! MessagePack of a *plain* Python value: one built only of exact `dict` (with `str` keys),
//! `list`, `str`, `int` (64-bit), `float`, `bool`, `None` and `bytes`.
//!
//! For such a value this is the encoding `ormsgpack.packb` writes under `ShmStore`'s options
//! (the options of LangGraph's `JsonPlusSerializer`), value for value: it decodes to an equal
//! value of the same types, NaN and infinities included (a float is always `float 64`). Anything
//! else — a tuple, a datetime, a UUID, a subclass, a non-`str` key, an integer beyond 64 bits, a
//! string with lone surrogates, a value nested deeper than ormsgpack allows — is not plain, and
//! the caller encodes the value with LangGraph's serializer instead, so the value stays
//! faithful whichever path it takes.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString};

use crate::msgpack::Writer;

/// Nesting ormsgpack refuses (its recursion limit): such a value takes the serializer's path.
const MAX_DEPTH: usize = 255;

/// Append `value`'s MessagePack to `out`; `false` (with `out` in an unspecified state) if the
/// value is not plain.
pub(crate) fn encode(value: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> bool {
    encode_at(value, &mut Writer(out), 0).is_some()
}

fn encode_at(value: &Bound<'_, PyAny>, out: &mut Writer<'_>, depth: usize) -> Option<()> {
    if depth > MAX_DEPTH {
        return None;
    }
    if let Ok(text) = value.cast_exact::<PyString>() {
        return out.str(text.to_str().ok()?);
    }
    if let Ok(dict) = value.cast_exact::<PyDict>() {
        out.map(dict.len())?;
        for (key, item) in dict.iter() {
            out.str(key.cast_exact::<PyString>().ok()?.to_str().ok()?)?;
            encode_at(&item, out, depth + 1)?;
        }
        return Some(());
    }
    if let Ok(list) = value.cast_exact::<PyList>() {
        out.array(list.len())?;
        for item in list.iter() {
            encode_at(&item, out, depth + 1)?;
        }
        return Some(());
    }
    if value.is_none() {
        out.nil();
        return Some(());
    }
    // bool before int: it is an int subclass.
    if let Ok(flag) = value.cast_exact::<PyBool>() {
        out.bool(flag.is_true());
        return Some(());
    }
    if value.is_exact_instance_of::<PyInt>() {
        if let Ok(small) = value.extract::<i64>() {
            out.int(small);
        } else {
            out.uint(value.extract::<u64>().ok()?);
        }
        return Some(());
    }
    if let Ok(float) = value.cast_exact::<PyFloat>() {
        out.f64(float.value());
        return Some(());
    }
    if let Ok(bytes) = value.cast_exact::<PyBytes>() {
        return out.bin(bytes.as_bytes());
    }
    None
}

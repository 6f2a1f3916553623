//! Cosine similarity over the embeddings `ShmStore` keeps in the segment.
//!
//! Vectors travel as little-endian `f32` bytes (what the store writes into each item's
//! payload), so every process reads the same index. An item may carry several vectors (one per
//! indexed text); its score is the best of them, the max pooling LangGraph's `InMemoryStore`
//! applies. Sums are accumulated in `f64`; a zero vector scores 0, as in `InMemoryStore`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// The `f32` values of little-endian bytes; `None` if the length is not a multiple of 4.
fn floats(bytes: &[u8]) -> Option<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// The cosine of `query` (with norm `query_norm`) and `vector`, of the same length.
fn cosine(query: &[f32], query_norm: f64, vector: &[u8]) -> f64 {
    let mut dot = 0.0f64;
    let mut norm = 0.0f64;
    for (q, c) in query.iter().zip(vector.chunks_exact(4)) {
        let v = f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        dot += f64::from(*q) * v;
        norm += v * v;
    }
    if norm > 0.0 && query_norm > 0.0 {
        dot / (norm.sqrt() * query_norm)
    } else {
        0.0
    }
}

/// For each entry of `vectors` (the concatenated vectors of one item, or `None` for an item
/// without any), the best cosine similarity of one of its vectors to `query`, or `None`.
/// `ValueError` if `query` is not whole `f32`s or an entry is not whole vectors of its length.
#[pyfunction]
pub(crate) fn max_cosine(
    query: &[u8],
    vectors: Vec<Option<Bound<'_, PyBytes>>>,
) -> PyResult<Vec<Option<f64>>> {
    let query = floats(query).filter(|q| !q.is_empty()).ok_or_else(|| {
        PyValueError::new_err("the query vector must be a non-empty run of little-endian f32")
    })?;
    let width = query.len() * 4;
    let query_norm = query
        .iter()
        .map(|q| f64::from(*q) * f64::from(*q))
        .sum::<f64>()
        .sqrt();
    vectors
        .iter()
        .map(|entry| {
            let Some(entry) = entry else { return Ok(None) };
            let bytes = entry.as_bytes();
            if bytes.is_empty() {
                return Ok(None);
            }
            if !bytes.len().is_multiple_of(width) {
                return Err(PyValueError::new_err(format!(
                    "an item's vectors are {} bytes, not a multiple of the query's {width}: \
                     the index was written with other dimensions",
                    bytes.len()
                )));
            }
            Ok(bytes
                .chunks_exact(width)
                .map(|vector| cosine(&query, query_norm, vector))
                .reduce(f64::max))
        })
        .collect()
}

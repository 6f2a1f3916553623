"""Vector search: the ``index`` configuration as ``InMemoryStore`` takes it, and the ranking.

``index={"dims": 1536, "embed": embeddings, "fields": ["text"]}`` (``fields`` defaults to the
whole value, ``"$"``; the SQLite store's spelling ``text_fields`` is accepted too). A put embeds
the texts at the item's fields (or at the put's own ``index=[...]``; ``index=False``: none) and
stores the vectors *in the item*, as little-endian ``f32``, so every process that opens the
segment searches the same index. A search with ``query`` embeds the query once and scores each
candidate natively (``agent_coherence_shm._native.max_cosine``: cosine similarity, best vector
of the item), then orders and pages exactly as ``InMemoryStore`` does: scored items by score,
then, if the page is not full, items without vectors with score ``None``.
"""

from __future__ import annotations

import asyncio
import sys
from array import array
from typing import Any, Sequence

from langgraph.store.base import (
    IndexConfig,
    Op,
    PutOp,
    SearchItem,
    SearchOp,
    ensure_embeddings,
    get_text_at_path,
    tokenize_path,
)

from agent_coherence_shm._native import max_cosine

_SWAP = sys.byteorder != "little"


def pack(vectors: Sequence[Sequence[float]]) -> bytes | None:
    """The vectors as one run of little-endian ``f32``; ``None`` for no vector."""
    if not vectors:
        return None
    floats = array("f")
    for vector in vectors:
        floats.extend(vector)
    if _SWAP:  # pragma: no cover - big-endian hosts
        floats.byteswap()
    return floats.tobytes()


class Index:
    """A store's embedding configuration."""

    def __init__(self, config: IndexConfig | dict[str, Any]) -> None:
        config = dict(config)
        if "fields" not in config and "text_fields" in config:
            config["fields"] = config["text_fields"]
        self.config = config
        self.dims = int(config["dims"])
        self.embeddings = ensure_embeddings(config.get("embed"))
        self.fields = [
            (path, tokenize_path(path) if path != "$" else path)
            for path in (config.get("fields") or ["$"])
        ]
        config["__tokenized_fields"] = self.fields

    def texts(self, value: dict[str, Any], index: Any) -> list[str]:
        """The texts of ``value`` to embed for a put with ``index`` (``None``: the store's
        fields; ``False``: none; a list of paths: those)."""
        if index is False:
            return []
        paths = self.fields if index is None else [(p, tokenize_path(p)) for p in index]
        texts: list[str] = []
        for _, path in paths:
            texts.extend(get_text_at_path(value, path))
        return texts

    def check(self, vectors: Sequence[Sequence[float]]) -> None:
        for vector in vectors:
            if len(vector) != self.dims:
                raise ValueError(
                    f"the embeddings returned a vector of {len(vector)} dimensions; the store's "
                    f"index has dims={self.dims}"
                )


def rank(
    query: Sequence[float],
    candidates: list[tuple[SearchItem, bytes | None]],
    offset: int,
    limit: int,
) -> list[SearchItem]:
    """One page of ``candidates`` (in insertion order) ranked by similarity to ``query``,
    with ``InMemoryStore``'s paging: scored items by score (ties keep insertion order), then
    items without vectors, unscored, to fill the page."""
    scores = max_cosine(pack([query]) or b"", [vectors for _, vectors in candidates])
    scored = [(score, item) for score, (item, _) in zip(scores, candidates) if score is not None]
    scored.sort(key=lambda pair: pair[0], reverse=True)
    page: list[SearchItem] = []
    for score, item in scored[offset : offset + limit]:
        item.score = float(score)
        page.append(item)
    if len(page) < limit:
        scoreless = [item for score, (item, _) in zip(scores, candidates) if score is None]
        page.extend(scoreless[: limit - len(page)])
    return page


def embed_ops(index: Index | None, ops: list[Op]) -> tuple[dict[str, list[float]], dict[int, bytes | None]]:
    """The embeddings a batch needs: its search queries' (by query) and its puts' vectors (by
    the put's position in ``ops``); none without an index."""
    if index is None:
        return {}, {}
    embeddings = index.embeddings
    queries = {q: embeddings.embed_query(q) for q in _queries(ops)}
    vectors = {}
    for i, texts in _texts(index, ops).items():
        embedded = embeddings.embed_documents(texts)
        index.check(embedded)
        vectors[i] = pack(embedded)
    return queries, vectors


async def aembed_ops(
    index: Index | None, ops: list[Op]
) -> tuple[dict[str, list[float]], dict[int, bytes | None]]:
    """``embed_ops`` with the embeddings' async API."""
    if index is None:
        return {}, {}
    embeddings = index.embeddings
    wanted = list(_queries(ops))
    embedded_queries = await asyncio.gather(*(embeddings.aembed_query(q) for q in wanted))
    queries = dict(zip(wanted, embedded_queries))
    vectors = {}
    for i, texts in _texts(index, ops).items():
        embedded = await embeddings.aembed_documents(texts)
        index.check(embedded)
        vectors[i] = pack(embedded)
    return queries, vectors


def _queries(ops: list[Op]) -> set[str]:
    return {op.query for op in ops if isinstance(op, SearchOp) and op.query}


def _texts(index: Index, ops: list[Op]) -> dict[int, list[str]]:
    """The texts to embed, by the position of the put that writes them."""
    texts = {}
    for i, op in enumerate(ops):
        if isinstance(op, PutOp) and op.value is not None:
            found = index.texts(op.value, op.index)
            if found:
                texts[i] = found
    return texts

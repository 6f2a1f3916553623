"""CrewAI over the segment: a memory ``StorageBackend`` whose records are coherent artifacts.

`ShmMemoryStorage` implements CrewAI's ``crewai.memory.storage.backend.StorageBackend``, the
storage under ``crewai.Memory`` (``Memory(storage=ShmMemoryStorage(...))``, a crew's
``memory=``). Each ``MemoryRecord`` is an artifact, ``crewai/memory/<record id>`` (JSON), so
crew members in separate processes share one memory: a record read by ``recall`` (``search``)
or ``get_record`` is the version current at that moment, a peer's later update invalidates the
copy, and an ``update`` of a record from a stale view (the crew member read v1, a peer wrote
v2) is refused with ``Conflict`` instead of overwriting v2 with an edit of v1. ``Memory.update``
re-reads the record by id before writing, so it builds on the current version.

Search is exact (cosine similarity over every record in scope), which suits the small shared
memories of a crew (a task spec, decisions, findings); recall never writes (no access-time
touch), so reading shared memory never bumps versions.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from crewai.memory.types import MemoryRecord, ScopeInfo

from agent_coherence_shm.adapters.artifacts import Artifacts

__all__ = ["ShmMemoryStorage"]


def _in_scope(scope: str, prefix: str | None) -> bool:
    if not prefix or prefix == "/":
        return True
    prefix = prefix.rstrip("/")
    return scope == prefix or scope.startswith(prefix + "/")


def _matches(
    record: MemoryRecord, categories: list[str] | None, metadata_filter: dict[str, Any] | None
) -> bool:
    if categories and not set(categories) & set(record.categories):
        return False
    return not metadata_filter or all(
        record.metadata.get(k) == v for k, v in metadata_filter.items()
    )


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


class ShmMemoryStorage:
    """A CrewAI memory storage backend in the segment, shared by crew members in several
    processes with MESI coherence (see the module doc)."""

    def __init__(self, artifacts: Artifacts, name: str = "crew") -> None:
        self.artifacts = artifacts
        self.prefix = f"crewai/memory/{name}/"

    def _key(self, record_id: str) -> str:
        return self.prefix + record_id

    def _records(self, scope_prefix: str | None = None) -> list[MemoryRecord]:
        out = []
        for key in self.artifacts.keys(self.prefix):
            stored = self.artifacts.get(key)
            if stored is not None:
                record = MemoryRecord.model_validate(stored)
                if _in_scope(record.scope, scope_prefix):
                    out.append(record)
        return out

    def _put(self, record: MemoryRecord) -> None:
        # The embedding is excluded from a record's serialization (it is for prompts): keep it.
        stored = {**record.model_dump(mode="json"), "embedding": record.embedding}
        self.artifacts.put(self._key(record.id), stored)

    # -- StorageBackend ---------------------------------------------------------------------

    def save(self, records: list[MemoryRecord]) -> None:
        """Store new records (a record id a peer already wrote and this member never read is
        admitted as its first write; one it read and a peer rewrote since is a `Conflict`)."""
        for record in records:
            self._put(record)

    def search(
        self,
        query_embedding: list[float],
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        metadata_filter: dict[str, Any] | None = None,
        limit: int = 10,
        min_score: float = 0.0,
    ) -> list[tuple[MemoryRecord, float]]:
        """The records in scope most similar to ``query_embedding``, best first."""
        scored = []
        for record in self._records(scope_prefix):
            if not _matches(record, categories, metadata_filter):
                continue
            score = _cosine(query_embedding, record.embedding) if record.embedding else 0.0
            if score >= min_score:
                scored.append((record, score))
        scored.sort(key=lambda rs: (-rs[1], rs[0].id))
        return scored[:limit]

    def delete(
        self,
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        record_ids: list[str] | None = None,
        older_than: datetime | None = None,
        metadata_filter: dict[str, Any] | None = None,
    ) -> int:
        """Delete the matching records (each read first, so the deletion is conditional on
        the version seen); returns how many."""
        deleted = 0
        for record in self._records(scope_prefix):
            if record_ids is not None and record.id not in record_ids:
                continue
            if older_than is not None and record.created_at >= older_than:
                continue
            if not _matches(record, categories, metadata_filter):
                continue
            deleted += self.artifacts.delete(self._key(record.id))
        return deleted

    def update(self, record: MemoryRecord) -> None:
        """Replace the record with the same id: `Conflict` if a peer updated it since this
        member last read it."""
        self._put(record)

    def get_record(self, record_id: str) -> MemoryRecord | None:
        """The current version of a record, or None."""
        stored = self.artifacts.get(self._key(record_id))
        return MemoryRecord.model_validate(stored) if stored is not None else None

    def list_records(
        self, scope_prefix: str | None = None, limit: int = 200, offset: int = 0
    ) -> list[MemoryRecord]:
        """Records in scope, newest first."""
        records = sorted(self._records(scope_prefix), key=lambda r: r.created_at, reverse=True)
        return records[offset : offset + limit]

    def get_scope_info(self, scope: str) -> ScopeInfo:
        """How many records a scope holds, their categories, dates and child scopes."""
        records = self._records(scope)
        dates = [r.created_at for r in records]
        return ScopeInfo(
            path=scope,
            record_count=len(records),
            categories=sorted({c for r in records for c in r.categories}),
            oldest_record=min(dates) if dates else None,
            newest_record=max(dates) if dates else None,
            child_scopes=self.list_scopes(scope),
        )

    def list_scopes(self, parent: str = "/") -> list[str]:
        """The immediate child scopes of ``parent``."""
        base = parent.rstrip("/")
        children = set()
        for record in self._records(parent):
            rest = record.scope[len(base) :].strip("/")
            if rest:
                children.add(f"{base}/{rest.split('/')[0]}")
        return sorted(children)

    def list_categories(self, scope_prefix: str | None = None) -> dict[str, int]:
        """Each category in scope with its number of records."""
        counts: dict[str, int] = {}
        for record in self._records(scope_prefix):
            for category in record.categories:
                counts[category] = counts.get(category, 0) + 1
        return counts

    def count(self, scope_prefix: str | None = None) -> int:
        """The number of records in scope."""
        return len(self._records(scope_prefix))

    def reset(self, scope_prefix: str | None = None) -> None:
        """Delete every record in scope."""
        self.delete(scope_prefix=scope_prefix)

    async def asave(self, records: list[MemoryRecord]) -> None:
        """`save`, for CrewAI's async paths (the segment's calls do not block)."""
        self.save(records)

    async def asearch(self, *args: Any, **kwargs: Any) -> list[tuple[MemoryRecord, float]]:
        """`search`, for CrewAI's async paths."""
        return self.search(*args, **kwargs)

    async def adelete(self, *args: Any, **kwargs: Any) -> int:
        """`delete`, for CrewAI's async paths."""
        return self.delete(*args, **kwargs)

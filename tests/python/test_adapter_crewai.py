"""The CrewAI adapter against the real crewai (pinned in requirements-frameworks.txt): a
`crewai.Memory` over `ShmMemoryStorage`, with a deterministic local embedder and every field
given so that no LLM is called (no network); the story runs in two processes."""

from __future__ import annotations

import asyncio
import os
import zlib
from datetime import datetime, timedelta
from typing import Any

# No telemetry or tracing export from crewai during the tests (and so no network attempt).
os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("OTEL_SDK_DISABLED", "true")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")

import pytest  # noqa: E402
from agent_coherence_shm import Conflict, Segment  # noqa: E402
from agent_coherence_shm.adapters import Artifacts  # noqa: E402
from agent_coherence_shm.adapters.crewai import ShmMemoryStorage  # noqa: E402
from crewai import Memory  # noqa: E402
from crewai.memory.types import MemoryRecord  # noqa: E402

import story  # noqa: E402
from conftest import SMALL  # noqa: E402
from story import TIMEOUT, executor_process  # noqa: E402

V1 = "task spec: " + story.V1
V2 = "task spec: " + story.V2


def embed(texts: list[str]) -> list[list[float]]:
    """A bag of hashed words: deterministic, local, good enough to rank a handful of records."""
    out = []
    for text in texts:
        vector = [0.0] * 64
        for word in text.lower().split():
            vector[zlib.crc32(word.encode()) % 64] += 1.0
        out.append(vector)
    return out


def crew_memory(handle: Any) -> Memory:
    return Memory(storage=ShmMemoryStorage(Artifacts(handle)), embedder=embed)


def remember_spec(memory: Memory, text: str) -> MemoryRecord:
    # Every field given and no similar record: CrewAI stores it without asking an LLM.
    record = memory.remember(text, scope="/task", categories=["spec"], importance=0.9)
    assert record is not None
    return record


def recall_spec(memory: Memory) -> list[MemoryRecord]:
    return [m.record for m in memory.recall("task spec", scope="/task", depth="shallow")]


def _executor(segment: str, go: Any, out: Any) -> None:
    with Segment.open(segment).attach("executor") as handle:
        memory = crew_memory(handle)
        (spec,) = recall_spec(memory)
        out.put(spec.content)
        go.get(timeout=TIMEOUT)  # the planner updated the spec
        try:
            memory._storage.update(spec.model_copy(update={"content": "done, per v1"}))
            out.put("stale update admitted")
        except Conflict as refused:
            out.put(("Conflict", refused.current, refused.yours))
        (spec,) = recall_spec(memory)
        out.put(spec.content)
        memory.update(spec.id, metadata={"done_by": "executor"})  # builds on the current version
        out.put("done")


def test_two_processes_share_crew_memory_and_refuse_a_stale_update(name: str) -> None:
    Segment.create(name, **SMALL)
    with Segment.open(name).attach("planner") as handle:
        memory = crew_memory(handle)
        record = remember_spec(memory, V1)
        with executor_process(_executor, name) as (go, out):
            assert out.get(timeout=TIMEOUT) == V1
            memory.update(record.id, content=V2)
            go.put("v2 written")
            assert out.get(timeout=TIMEOUT) == ("Conflict", 2, 1)
            assert out.get(timeout=TIMEOUT) == V2  # the executor's next recall
            assert out.get(timeout=TIMEOUT) == "done"
        (spec,) = recall_spec(memory)
        assert (spec.content, spec.metadata) == (V2, {"done_by": "executor"})


def test_storage_backend_interface(seg: Segment) -> None:
    with seg.attach("a") as a_handle:
        store = ShmMemoryStorage(Artifacts(a_handle))
        now = datetime(2026, 1, 1)
        records = [
            MemoryRecord(
                id="r1",
                content="alpha",
                scope="/crew/research",
                categories=["facts"],
                embedding=[1.0, 0.0],
                created_at=now,
                metadata={"src": "web"},
            ),
            MemoryRecord(
                id="r2",
                content="beta",
                scope="/crew/research/deep",
                categories=["facts", "todo"],
                embedding=[0.6, 0.8],
                created_at=now + timedelta(days=1),
            ),
            MemoryRecord(
                id="r3",
                content="gamma",
                scope="/crew/ops",
                categories=["todo"],
                embedding=[0.0, 1.0],
                created_at=now + timedelta(days=2),
            ),
        ]
        store.save(records)
        assert [(r.id, round(s, 2)) for r, s in store.search([1.0, 0.0])] == [
            ("r1", 1.0),
            ("r2", 0.6),
            ("r3", 0.0),
        ]
        assert [r.id for r, _ in store.search([1.0, 0.0], scope_prefix="/crew/research")] == [
            "r1",
            "r2",
        ]
        assert [r.id for r, _ in store.search([1.0, 0.0], categories=["todo"], min_score=0.1)] == [
            "r2"
        ]
        assert [r.id for r, _ in store.search([0.0, 1.0], metadata_filter={"src": "web"})] == ["r1"]
        assert [r.id for r in store.list_records()] == ["r3", "r2", "r1"]
        assert [r.id for r in store.list_records(limit=1, offset=1)] == ["r2"]
        assert store.list_scopes("/") == ["/crew"]
        assert store.list_scopes("/crew") == ["/crew/ops", "/crew/research"]
        assert store.list_categories() == {"facts": 2, "todo": 2}
        info = store.get_scope_info("/crew/research")
        assert (info.record_count, info.categories, info.child_scopes) == (
            2,
            ["facts", "todo"],
            ["/crew/research/deep"],
        )
        assert store.count("/crew/ops") == 1
        assert store.get_record("r2").content == "beta"  # type: ignore[union-attr]
        assert store.get_record("nope") is None
        assert [r.id for r, _ in asyncio.run(store.asearch([0.0, 1.0], limit=1))] == ["r3"]
        assert store.delete(older_than=now + timedelta(days=1)) == 1
        assert store.delete(record_ids=["r2"]) == 1
        asyncio.run(store.asave([MemoryRecord(id="r4", content="delta", scope="/x")]))
        assert asyncio.run(store.adelete(scope_prefix="/x")) == 1
        store.reset()
        assert store.count() == 0


def test_stale_update_is_refused_between_two_members(seg: Segment) -> None:
    with seg.attach("a") as a_handle, seg.attach("b") as b_handle:
        a, b = ShmMemoryStorage(Artifacts(a_handle)), ShmMemoryStorage(Artifacts(b_handle))
        a.save([MemoryRecord(id="spec", content=V1, scope="/task", embedding=[1.0])])
        seen = b.get_record("spec")
        assert seen is not None and seen.content == V1
        a.update(seen.model_copy(update={"content": V2}))  # a wrote v1: its view is current
        with pytest.raises(Conflict):
            b.update(seen.model_copy(update={"content": "b's edit of v1"}))
        current = b.get_record("spec")
        assert current is not None and current.content == V2
        b.update(current.model_copy(update={"content": "b's edit of v2"}))
        assert a.get_record("spec").content == "b's edit of v2"  # type: ignore[union-attr]

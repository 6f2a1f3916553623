"""The same scenarios on ShmStore and on ccs.adapters.CCSStore (PyPI `agent-coherence`).

Each scenario returns a short outcome; EXPECTED records it for both stores, and docs/python.md
shows the same table. `same` rows are parity; the others are deliberate differences."""

from __future__ import annotations

import warnings
from typing import Any, Callable

import pytest
from langgraph.store.base import BaseStore

import agent_coherence_shm as ccs_shm

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from ccs.adapters import CCSStore

from agent_coherence_shm.langgraph import ShmStore

from conftest import SMALL

P, E = ("planner", "task"), ("executor", "task")


def outcome(f: Callable[[], Any]) -> str:
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = f()
        warned = [w for w in caught if issubclass(w.category, UserWarning)]
        text = repr(result)
        return f"{text} + warning" if warned else text
    except Exception as error:  # noqa: BLE001 - the outcome is the exception's type
        return type(error).__name__


def peer_sees_write(s: BaseStore) -> Any:
    s.put(P, "spec", {"v": 1})
    return s.get(E, "spec").value


def peer_sees_update(s: BaseStore) -> Any:
    s.put(P, "spec", {"v": 1})
    s.get(E, "spec")
    s.put(P, "spec", {"v": 2})
    return s.get(E, "spec").value


def stale_put(s: BaseStore) -> Any:
    s.put(P, "spec", {"v": 1})
    s.get(E, "spec")
    s.put(P, "spec", {"v": 2})
    s.put(E, "spec", {"v": "built on v1"})
    return s.get(P, "spec").value


def missing_get(s: BaseStore) -> Any:
    return s.get(E, "nothing")


def delete_then_get(s: BaseStore) -> Any:
    s.put(P, "spec", {"v": 1})
    s.delete(E, "spec")
    return s.get(P, "spec")


def delete_missing(s: BaseStore) -> Any:
    return s.delete(E, "nothing")


def short_namespace(s: BaseStore) -> Any:
    return s.put(("planner",), "k", {"v": 1})


def search_writer_namespace(s: BaseStore) -> Any:
    s.put(P, "spec", {"v": 1})
    return [(i.namespace, i.key) for i in s.search(("planner",))]


def search_peer_namespace(s: BaseStore) -> Any:
    s.put(P, "spec", {"v": 1})
    return [(i.namespace, i.key) for i in s.search(("executor",))]


def search_all(s: BaseStore) -> Any:
    s.put(P, "spec", {"v": 1})
    return [(i.namespace, i.key) for i in s.search(())]


def filter_eq_ne(s: BaseStore) -> Any:
    for i in range(4):
        s.put(P, f"d{i}", {"i": i, "odd": i % 2 == 1})
    return sorted(i.key for i in s.search(("planner",), filter={"odd": {"$ne": True}, "i": {"$eq": 2}}))


def filter_gt(s: BaseStore) -> Any:
    for i in range(4):
        s.put(P, f"d{i}", {"i": i})
    return sorted(i.key for i in s.search(("planner",), filter={"i": {"$gt": 1}}))


def search_query(s: BaseStore) -> Any:
    s.put(P, "spec", {"v": 1})
    return len(s.search(("planner",), query="rename"))


def pagination(s: BaseStore) -> Any:
    for i in range(5):
        s.put(P, f"d{i}", {"i": i})
    page = [i.key for i in s.search(("planner",), limit=2, offset=1)]
    # CCSStore's order is a set's (arbitrary per process); ShmStore's is InMemoryStore's
    # insertion order: test_store.py checks its exact contents.
    return len(page)


def list_namespaces_all(s: BaseStore) -> Any:
    s.put(P, "spec", {"v": 1})
    s.put(("planner", "task", "sub"), "x", {"v": 1})
    return sorted(s.list_namespaces())


def list_namespaces_wildcard(s: BaseStore) -> Any:
    s.put(P, "spec", {"v": 1})
    return s.list_namespaces(prefix=("*", "task"))


def list_namespaces_depth(s: BaseStore) -> Any:
    s.put(("planner", "task", "sub"), "x", {"v": 1})
    return s.list_namespaces(prefix=("planner",), max_depth=2)


def timestamps_real(s: BaseStore) -> Any:
    s.put(P, "spec", {"v": 1})
    first = s.get(E, "spec").created_at
    s.put(P, "spec", {"v": 2})
    return s.get(E, "spec").created_at == first


def ttl(s: BaseStore) -> Any:
    from langgraph.store.base import PutOp

    return s.batch([PutOp(P, "k", {"v": 1}, ttl=1.0)])


SAME = "same"
#: scenario -> (CCSStore's outcome, ShmStore's outcome or SAME)
EXPECTED: dict[Callable[[BaseStore], Any], tuple[str, str]] = {
    peer_sees_write: ("{'v': 1}", SAME),
    peer_sees_update: ("{'v': 2}", SAME),
    stale_put: ("{'v': 'built on v1'}", "Conflict"),
    missing_get: ("None", SAME),
    delete_then_get: ("None", SAME),
    delete_missing: ("None", SAME),
    short_namespace: ("ValueError", SAME),
    search_writer_namespace: ("[(('planner', 'task'), 'spec')]", SAME),
    search_peer_namespace: ("[]", "[(('executor', 'task'), 'spec')]"),
    search_all: ("[(('planner', 'task'), 'spec')]", SAME),
    filter_eq_ne: ("['d2']", SAME),
    filter_gt: ("NotImplementedError", "['d2', 'd3']"),
    search_query: ("1 + warning", "1"),  # no index: the query is ignored, as InMemoryStore
    pagination: ("2", SAME),
    list_namespaces_all: ("[('planner', 'task'), ('planner', 'task', 'sub')]", SAME),
    list_namespaces_wildcard: ("NotImplementedError", "[('planner', 'task')]"),
    list_namespaces_depth: ("[('planner', 'task')]", SAME),
    timestamps_real: ("False", "True"),
    ttl: ("[None] + warning", SAME),
}


@pytest.mark.parametrize("scenario", list(EXPECTED), ids=lambda f: f.__name__)
def test_parity(scenario: Callable[[BaseStore], Any], name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = CCSStore()
    ours = ShmStore(name, agent_from_namespace=True, **SMALL)
    try:
        theirs_outcome = outcome(lambda: scenario(reference))
        ours_outcome = outcome(lambda: scenario(ours))
    finally:
        ours.close(destroy=True)
    expected_theirs, expected_ours = EXPECTED[scenario]
    if expected_ours == SAME:
        expected_ours = expected_theirs
    assert (theirs_outcome, ours_outcome) == (expected_theirs, expected_ours)


def test_conflict_is_a_coherence_error() -> None:
    assert issubclass(ccs_shm.Conflict, ccs_shm.CoherenceError)

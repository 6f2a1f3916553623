"""Store-level conflicts: the core's ``Conflict`` restated with the item's namespace and key."""

from __future__ import annotations

from agent_coherence_shm._native import Conflict


def restated(error: Conflict, namespace: tuple[str, ...], key: str, agent: str) -> Conflict:
    """The core's ``Conflict`` restated for the store: it names the namespace and key."""
    current, yours = getattr(error, "current", None), getattr(error, "yours", None)
    conflict = Conflict(
        f"item {key!r} in namespace {namespace!r} was written by another agent (now version "
        f"{current}) since agent {agent!r} read version {yours}; nothing was written. Read the "
        "item again (get) and write on what it holds now."
    )
    conflict.key = getattr(error, "key", None)  # type: ignore[attr-defined]
    conflict.current = current  # type: ignore[attr-defined]
    conflict.yours = yours  # type: ignore[attr-defined]
    conflict.namespace = namespace  # type: ignore[attr-defined]
    conflict.item_key = key  # type: ignore[attr-defined]
    return conflict

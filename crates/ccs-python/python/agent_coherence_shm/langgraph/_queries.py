"""``ShmStore``'s searches and namespace listings, as ``InMemoryStore`` does them.

A search lists the directory under the namespace prefix's key prefix (``_keys``: the items of
every namespace under a given one share it; hashed keys are listed by their kept labels),
reads each candidate as the acting agent, filters with ``InMemoryStore``'s rules
(``_filters``) and pages in insertion order, or ranks by similarity (``_index``). In
``agent_from_namespace`` mode, searches and listings that name no agent read through the
observer agent (``_agents.observed``), each item under the agent that wrote it.

A mixin of ``ShmStore`` (``store``): it uses the store's reads (``_read``), views and agents
(``_view``, ``_address``, ``_acting``), insertion stamps (``_ns_order``), codec and index.
"""

from __future__ import annotations

from typing import Any, Sequence

from langgraph.store.base import Item, ListNamespacesOp, SearchItem, SearchOp

from agent_coherence_shm._native import NotFound
from agent_coherence_shm.langgraph import _agents
from agent_coherence_shm.langgraph._codec import ITEM_ORDER, KEY, NAMESPACE, NS_ORDER, VECTORS, WRITER, Doc
from agent_coherence_shm.langgraph._filters import matches, namespace_matches
from agent_coherence_shm.langgraph._index import rank
from agent_coherence_shm.langgraph._items import stored_item
from agent_coherence_shm.langgraph._keys import HASHED_BUDGET, decode, kept_labels, scope_text


class Queries:
    """Search and ``list_namespaces`` of ``ShmStore`` (see the module doc)."""

    def _candidates(self, scope: tuple[str, ...]) -> list[str]:
        """Artifact keys that may hold items of namespaces starting with ``scope``."""
        text = scope_text(self.prefix, scope)
        keys = self.segment.list(text)
        if len(text.encode()) > HASHED_BUDGET:
            hashed = self.segment.list(kept_labels(self.prefix, scope) + "#")
            keys = sorted(set(keys) | set(hashed))
        return keys

    def _search(self, op: SearchOp, query: Sequence[float] | None) -> list[SearchItem]:
        prefix = tuple(op.namespace_prefix)
        if self.agent_from_namespace and not prefix:
            return self._search_observed(op)
        if self.agent_from_namespace:  # (agent,) alone searches every scope as that agent
            view, scope = self._view(prefix[0]), prefix[1:]
        else:
            view, scope = self._address(prefix)
        found: list[tuple[Doc, Item]] = []
        for akey in self._candidates(scope):
            snap = self._read(view, akey)
            if snap is None:
                continue
            doc = snap[1]
            if doc[NAMESPACE][: len(scope)] != scope or not matches(snap[2].value, op.filter):
                continue
            found.append((doc, snap[2]))
        return self._page(found, op, query)

    def _search_observed(self, op: SearchOp) -> list[SearchItem]:
        """A search of every namespace in ``agent_from_namespace`` mode: read by the observer,
        each item under the agent that wrote it."""
        found: list[tuple[Doc, Item]] = []
        with _agents.observed(self.segment, self.observer, self.strategy) as observer:
            for akey in self._candidates(()):
                try:
                    doc = self._codec.decode(observer.get(akey).bytes)
                except NotFound:
                    continue
                item = stored_item(doc, (doc[WRITER],) + doc[NAMESPACE], self._codec)
                if matches(item.value, op.filter):
                    found.append((doc, item))
        return self._page(found, op, None)

    def _page(
        self, found: list[tuple[Doc, Item]], op: SearchOp, query: Sequence[float] | None
    ) -> list[SearchItem]:
        """One page of the matches, in insertion order (namespaces in the order they were
        first written, items in the order they were created, as ``InMemoryStore``), or ranked
        by similarity to ``query``."""
        ns_order = self._ns_order
        found.sort(
            key=lambda pair: (
                ns_order.get(pair[0][NAMESPACE], pair[0][NS_ORDER]),
                pair[0][NAMESPACE],
                pair[0][ITEM_ORDER],
                pair[0][KEY],
            )
        )
        items = [
            SearchItem(i.namespace, i.key, i.value, i.created_at, i.updated_at) for _, i in found
        ]
        if query is not None and self._index is not None:
            return rank(
                query, list(zip(items, (doc[VECTORS] for doc, _ in found))), op.offset, op.limit
            )
        return items[op.offset : op.offset + op.limit]

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        conditions = tuple(op.match_conditions or ())
        namespaces: set[tuple[str, ...]] = set()
        if self.agent_from_namespace:
            namespaces = self._namespaces_by_agent(conditions)
        else:
            view = self._view(self._acting())
            for akey in self.segment.list(self.prefix):
                decoded = decode(self.prefix, akey)
                if decoded is not None:
                    namespaces.add(decoded[0])
                else:
                    snap = self._read(view, akey)
                    if snap is not None:
                        namespaces.add(snap[1][NAMESPACE])
        selected = [ns for ns in namespaces if all(namespace_matches(c, ns) for c in conditions)]
        if op.max_depth is not None:
            selected = sorted({ns[: op.max_depth] for ns in selected})
        else:
            selected = sorted(selected)
        return selected[op.offset : op.offset + op.limit]

    def _namespaces_by_agent(self, conditions: tuple[Any, ...]) -> set[tuple[str, ...]]:
        """``agent_from_namespace`` listings: every namespace as the agent the prefix names
        sees it, or, when none is named, under the agent that wrote it."""
        agent = next(
            (
                c.path[0]
                for c in conditions
                if c.match_type == "prefix" and len(c.path) > 0 and c.path[0] != "*"
            ),
            None,
        )
        keys = self.segment.list(self.prefix)
        namespaces: set[tuple[str, ...]] = set()
        if agent is not None:
            view = self._view(agent)
            for akey in keys:
                decoded = decode(self.prefix, akey)
                if decoded is not None:
                    namespaces.add((agent,) + decoded[0])
                elif (snap := self._read(view, akey)) is not None:
                    namespaces.add((agent,) + snap[1][NAMESPACE])
            return namespaces
        with _agents.observed(self.segment, self.observer, self.strategy) as observer:
            for akey in keys:
                try:
                    doc = self._codec.decode(observer.get(akey).bytes)
                except NotFound:
                    continue
                namespaces.add((doc[WRITER],) + doc[NAMESPACE])
        return namespaces

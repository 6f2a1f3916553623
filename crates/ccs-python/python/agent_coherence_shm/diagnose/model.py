"""What `diagnose --graph` knows about a graph and what it reports: plain dataclasses.

An *artifact* is named by a string: ``state:<channel>`` for a channel of the graph's state, and
``store:<ns>/<...>/<key>`` for an item of the LangGraph store (``*`` stands for a namespace
element or key the source computes at run time, and matches anything). The JSON form of a
`Report` is documented in ``docs/python.md`` ("diagnose --graph").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: The ``schema`` field of the JSON report; bumped when a field changes meaning.
SCHEMA = "agent-coherence-shm/diagnose-graph/1"

#: A read in one branch of a fan-out (or a parallel node) while a peer in the same superstep
#: writes the artifact: the reader acts on the version the write replaces.
PARALLEL_READ_WRITE = "parallel-read-write"
#: A value read in one step and carried in another artifact (``via``) that a later node uses
#: after a peer rewrote the original: the later node acts on a decision made from a stale read.
STALE_USE = "stale-use"
#: Two writers of an artifact that merges nothing (no reducer), the later one never reading the
#: earlier one's version: the earlier write is lost unseen.
BLIND_OVERWRITE = "blind-overwrite"

KINDS = (PARALLEL_READ_WRITE, STALE_USE, BLIND_OVERWRITE)


def artifacts_match(a: str, b: str) -> bool:
    """Whether two artifact names can denote the same artifact: ``*`` matches one element of a
    store namespace or key, ``**`` one or more."""
    if a == b:
        return True
    if not a.startswith("store:") or not b.startswith("store:"):
        return False
    return _parts_match(a[len("store:") :].split("/"), b[len("store:") :].split("/"))


def _parts_match(p: list[str], q: list[str]) -> bool:
    if not p or not q:
        return not p and not q
    if p[0] == "**":
        return any(_parts_match(p[1:], q[i:]) for i in range(1, len(q) + 1))
    if q[0] == "**":
        return _parts_match(q, p)
    return (p[0] == q[0] or "*" in (p[0], q[0])) and _parts_match(p[1:], q[1:])


def specificity(artifact: str) -> tuple[int, int]:
    """How precisely a name denotes its artifact: literal elements, then length."""
    parts = artifact.split("/")
    return (sum(p not in ("*", "**", "store:*", "store:**") for p in parts), len(parts))


@dataclass(frozen=True, order=True)
class Site:
    """Where in the code a node reads or writes: the node, the file and the line."""

    node: str
    file: str
    line: int

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "file": self.file, "line": self.line}

    def __str__(self) -> str:
        return f"{self.node} ({self.file}:{self.line})"


@dataclass
class Node:
    """A node of the graph and what its code reads and writes (artifact name → first site)."""

    name: str
    file: str | None = None
    line: int | None = None
    reads: dict[str, Site] = field(default_factory=dict)
    writes: dict[str, Site] = field(default_factory=dict)
    #: Why the node's accesses are unknown or partial (opaque runnable, source unavailable).
    notes: list[str] = field(default_factory=list)
    #: For a subgraph node: the compiled subgraph's nodes (its accesses are merged here).
    subgraph: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "file": self.file,
            "line": self.line,
            "reads": {a: s.to_json() for a, s in sorted(self.reads.items())},
            "writes": {a: s.to_json() for a, s in sorted(self.writes.items())},
            "subgraph": self.subgraph,
            "notes": self.notes,
        }


@dataclass(frozen=True, order=True)
class Edge:
    """An edge: ``conditional`` if chosen at run time by a path function or a ``Command``;
    ``fanout`` if that choice can start several targets at once (a list, or ``Send``)."""

    source: str
    target: str
    conditional: bool = False
    fanout: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "conditional": self.conditional,
            "fanout": self.fanout,
        }


@dataclass(frozen=True, order=True)
class Risk:
    """One stale-read risk. ``reader`` is ``None`` for a blind overwrite, whose earlier writer
    is ``earlier_writer``; a stale use names the artifact that carried the stale read (``via``)
    and the node that used it (``consumer``)."""

    kind: str
    artifact: str
    writer: Site
    reader: Site | None = None
    earlier_writer: Site | None = None
    via: str | None = None
    consumer: Site | None = None
    #: ``static`` (found in the source and topology), ``dynamic`` (seen in the recorded run).
    found_by: tuple[str, ...] = ("static",)

    def key(self) -> tuple[Any, ...]:
        def node(s: Site | None) -> str | None:
            return s.node if s else None

        return (
            self.kind,
            self.artifact,
            node(self.reader),
            node(self.writer),
            node(self.earlier_writer),
            self.via,
            node(self.consumer),
        )

    def describe(self) -> str:
        if self.kind == PARALLEL_READ_WRITE:
            return (
                f"{self.reader} reads {self.artifact} in the superstep where "
                f"{self.writer} writes it: the read gets the version the write replaces"
            )
        if self.kind == STALE_USE:
            return (
                f"{self.reader} reads {self.artifact} and passes it on in {self.via}; "
                f"{self.writer} then rewrites {self.artifact}, and {self.consumer} uses "
                f"{self.via} without re-reading it"
            )
        return (
            f"{self.writer} overwrites {self.artifact} written by {self.earlier_writer} "
            f"without reading that version: the earlier write is lost unseen"
        )

    def to_json(self) -> dict[str, Any]:
        def site(s: Site | None) -> dict[str, Any] | None:
            return s.to_json() if s else None

        return {
            "kind": self.kind,
            "artifact": self.artifact,
            "reader": site(self.reader),
            "writer": site(self.writer),
            "earlier_writer": site(self.earlier_writer),
            "via": self.via,
            "consumer": site(self.consumer),
            "found_by": list(self.found_by),
            "message": self.describe(),
        }


@dataclass
class Report:
    """The analysis of one graph: its nodes and edges, the node pairs that can share a
    superstep, and the risks."""

    target: str
    nodes: dict[str, Node]
    edges: list[Edge]
    reducers: dict[str, str]
    parallel: set[tuple[str, str]]
    risks: list[Risk]
    dynamic: bool = False
    #: Whether the exploration of runs was cut at its bound (then some paths were not seen).
    truncated: bool = False
    notes: list[str] = field(default_factory=list)
    #: Each node's first superstep over the runs explored (for drawing).
    layers: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "target": self.target,
            "dynamic": self.dynamic,
            "truncated": self.truncated,
            "graph": {
                "nodes": [n.to_json() for n in self.nodes.values()],
                "edges": [e.to_json() for e in self.edges],
                "reducers": dict(sorted(self.reducers.items())),
                "parallel": [list(p) for p in sorted(self.parallel)],
            },
            "risks": [r.to_json() for r in self.risks],
            "notes": self.notes,
        }

"""Finding stale-read risks along runs of a graph.

Each run is replayed superstep by superstep over versions of the artifacts, the way MESI
coherence would see it: a write makes a new version; a node's read holds the version current at
the start of its superstep (LangGraph hands every node of a superstep the same snapshot). Three
kinds of risk (see `model`):

- parallel-read-write: in one superstep a node reads an artifact a peer writes (or, for a node
  started several times by ``Send``, that its own other instance writes);
- stale-use: a node reads X and writes a derived artifact D (a channel without reducer or a
  store item); a peer then writes X; a later node reads D without reading X in its step;
- blind-overwrite: a node writes an artifact without reducer whose current version another node
  wrote and this one never read (or two nodes write it in the same superstep).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from agent_coherence_shm.diagnose.model import (
    BLIND_OVERWRITE,
    PARALLEL_READ_WRITE,
    STALE_USE,
    Node,
    Risk,
    Site,
    artifacts_match,
    specificity,
)


@dataclass
class StepAccess:
    """What one node did in one superstep (static: what its source shows; dynamic: what the
    recorded run saw)."""

    reads: dict[str, Site]
    writes: dict[str, Site]
    instances: bool = False


@dataclass
class _Versions:
    version: dict[str, int] = field(default_factory=dict)
    writer: dict[str, Site] = field(default_factory=dict)

    def current(self, artifact: str) -> int:
        return max((v for a, v in self.version.items() if artifacts_match(a, artifact)), default=0)

    def last_writer(self, artifact: str) -> Site | None:
        best, best_v = None, 0
        for a, v in self.version.items():
            if artifacts_match(a, artifact) and v > best_v and a in self.writer:
                best, best_v = self.writer[a], v
        return best


def _pick(a: str, b: str) -> str:
    """Of two matching names, the more specific one."""
    return a if specificity(a) >= specificity(b) else b


def replay(
    run: Iterable[dict[str, StepAccess]],
    reducers: dict[str, str],
    found_by: str,
) -> set[Risk]:
    """The risks along one run (a list of supersteps, each node → what it did)."""
    risks: set[Risk] = set()
    versions = _Versions()
    seen: dict[tuple[str, str], int] = {}  # (node, artifact) → version it last read
    basis: dict[str, list[tuple[str, int, Site]]] = {}  # derived artifact → (source, version, read)

    def merges(artifact: str) -> bool:
        return artifact.startswith("state:") and artifact[len("state:") :] in reducers

    def add(**kw: object) -> None:
        risks.add(Risk(found_by=(found_by,), **kw))  # type: ignore[arg-type]

    for step in run:
        before = _Versions(dict(versions.version), dict(versions.writer))
        # Reads see the snapshot at the step's start.
        for node, acc in step.items():
            for d, used in acc.reads.items():
                carriers = [
                    (b, entry) for b in basis if artifacts_match(b, d) for entry in basis[b]
                ]
                for carrier, (x, v, read) in carriers:
                    if before.current(x) <= v or any(artifacts_match(x, r) for r in acc.reads):
                        continue
                    writer = before.last_writer(x)
                    if writer is None or writer.node in (node, read.node):
                        continue
                    add(
                        kind=STALE_USE,
                        artifact=x,
                        reader=read,
                        writer=writer,
                        via=_pick(carrier, d),
                        consumer=used,
                    )
            for x in acc.reads:
                seen[(node, x)] = before.current(x)
        # Peers in the same superstep.
        items = sorted(step.items())
        for r, racc in items:
            for w, wacc in items:
                if r == w and not racc.instances:
                    continue
                for x, rsite in racc.reads.items():
                    for y, wsite in wacc.writes.items():
                        if artifacts_match(x, y):
                            add(
                                kind=PARALLEL_READ_WRITE,
                                artifact=_pick(x, y),
                                reader=rsite,
                                writer=wsite,
                            )
        for i, (w1, acc1) in enumerate(items):
            for w2, acc2 in items[i:]:
                if w1 == w2 and not acc1.instances:
                    continue
                for x, s1 in acc1.writes.items():
                    for y, s2 in acc2.writes.items():
                        if artifacts_match(x, y) and not merges(x):
                            add(
                                kind=BLIND_OVERWRITE,
                                artifact=_pick(x, y),
                                writer=s2,
                                earlier_writer=s1,
                            )
        # Writes over a version the writer never read.
        for node, acc in items:
            for y, site in acc.writes.items():
                if merges(y):
                    continue
                earlier = before.last_writer(y)
                if earlier is None or earlier.node == node:
                    continue
                held = max(
                    (v for (n, a), v in seen.items() if n == node and artifacts_match(a, y)),
                    default=0,
                )
                if held < before.current(y):
                    add(kind=BLIND_OVERWRITE, artifact=y, writer=site, earlier_writer=earlier)
        # Apply the step's writes.
        for _node, acc in items:
            for y, site in acc.writes.items():
                versions.version[y] = versions.version.get(y, 0) + 1
                versions.writer[y] = site
                if not merges(y):
                    basis[y] = [
                        (x, before.current(x), rsite)
                        for x, rsite in acc.reads.items()
                        if not artifacts_match(x, y)
                    ]
    return risks


def static_step(nodes: dict[str, Node], step: dict[str, bool]) -> dict[str, StepAccess]:
    """A superstep of a static run: each node's accesses as its source shows them."""
    return {n: StepAccess(nodes[n].reads, nodes[n].writes, multi) for n, multi in step.items()}


def merge(risks: Iterable[Risk]) -> list[Risk]:
    """One risk per (kind, nodes, artifact) with every way it was found, sorted: risks that
    differ only in how precisely they name the artifact (``store:**/spec`` from the source,
    ``store:task/spec`` from the run) are one, named precisely."""
    groups: dict[tuple[object, ...], list[Risk]] = {}
    for risk in risks:
        key = risk.key()
        same = groups.setdefault(key[:1] + key[2:5] + key[6:], [])
        for i, other in enumerate(same):
            if artifacts_match(other.artifact, risk.artifact) and (
                other.via is None or risk.via is None or artifacts_match(other.via, risk.via)
            ):
                best = max((other, risk), key=lambda r: specificity(r.artifact))
                found = tuple(sorted(set(other.found_by) | set(risk.found_by)))
                same[i] = Risk(**{**best.__dict__, "found_by": found})
                break
        else:
            same.append(risk)
    merged = [risk for same in groups.values() for risk in same]
    return sorted(merged, key=lambda r: tuple(str(k) for k in r.key()))

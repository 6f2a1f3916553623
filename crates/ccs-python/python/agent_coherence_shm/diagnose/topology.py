"""The shape of a compiled LangGraph graph and the runs it allows.

`model` reads the graph builder behind a compiled graph (nodes, fixed edges, joins, conditional
edges with their path functions, ``Command(goto=...)`` destinations, subgraphs) and the source
of every node (`source.analyse`). `runs` enumerates the sequences of supersteps a run can take,
following LangGraph's Pregel model (Malewicz et al., "Pregel", SIGMOD 2010, as LangGraph
implements it): the nodes triggered by one superstep's writes run together in the next, see the
state as it was at the step's start, and their writes are applied when all have finished. A
conditional edge chooses one target (each choice is a separate run) unless it can fan out (it
returns a list or ``Send``s), in which case all its targets run together, a ``Send`` target
possibly as several instances. Runs are cut at a depth that lets every cycle turn twice and at
a total count; `Runs.truncated` says when the count cut some off.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Iterator

from agent_coherence_shm.diagnose.model import Edge, Node, Site
from agent_coherence_shm.diagnose.source import analyse

START, END = "__start__", "__end__"
MAX_RUNS = 4000


@dataclass
class Branch:
    """A conditional choice out of a node: its possible targets; ``fanout`` if several at once,
    ``instances`` if a target can run as several instances (``Send``)."""

    targets: list[str]
    fanout: bool = False
    instances: bool = False


@dataclass
class Topology:
    """Where control can go after each node."""

    fixed: dict[str, set[str]] = field(default_factory=dict)
    branches: dict[str, list[Branch]] = field(default_factory=dict)
    joins: list[tuple[frozenset[str], str]] = field(default_factory=list)


@dataclass
class GraphModel:
    nodes: dict[str, Node]
    edges: list[Edge]
    topology: Topology
    reducers: dict[str, str]
    notes: list[str]
    subgraphs: dict[str, Any]


def _reducers(builder: Any) -> dict[str, str]:
    """The channels whose concurrent writes merge (a reducer), by channel → channel type."""
    out = {}
    for name, channel in getattr(builder, "channels", {}).items():
        kind = type(channel).__name__
        if kind not in ("LastValue", "LastValueAfterFinish", "EphemeralValue", "UntrackedValue"):
            out[name] = kind
    return out


def model(compiled: Any) -> GraphModel:
    """The model of a compiled graph (a ``CompiledStateGraph``)."""
    builder = getattr(compiled, "builder", None)
    if builder is None or not hasattr(builder, "nodes"):
        raise TypeError(
            f"{type(compiled).__name__} is not a compiled StateGraph (it has no builder): "
            "return StateGraph(...).compile() or the StateGraph itself from the factory"
        )
    names = [n for n in builder.nodes]
    nodes: dict[str, Node] = {}
    notes: list[str] = []
    topo = Topology()
    subgraphs: dict[str, Any] = {}
    gotos: dict[str, list[str]] = {}
    for name, spec in builder.nodes.items():
        runnable = spec.runnable
        node = Node(name)
        if hasattr(runnable, "builder") and hasattr(runnable, "get_graph"):
            subgraphs[name] = runnable
            inner = model(runnable)
            node.subgraph = list(inner.nodes)
            for sub in inner.nodes.values():
                for a, s in sub.reads.items():
                    node.reads.setdefault(a, Site(name, s.file, s.line))
                for a, s in sub.writes.items():
                    node.writes.setdefault(a, Site(name, s.file, s.line))
                if node.file is None:
                    node.file, node.line = sub.file, sub.line
        else:
            func = getattr(runnable, "func", None) or getattr(runnable, "afunc", None)
            if func is None:
                node.notes.append(
                    f"a {type(runnable).__name__}, not a function: its reads and writes are unknown"
                )
            else:
                acc = analyse(name, func)
                node.reads, node.writes = acc.reads, acc.writes
                node.file, node.line, node.notes = acc.file, acc.line, acc.notes
                if acc.gotos:
                    gotos[name] = acc.gotos
        ends = tuple(getattr(spec, "ends", ()) or ())
        if ends or name in gotos:
            targets = list(dict.fromkeys(list(ends) + gotos.get(name, [])))
            topo.branches.setdefault(name, []).append(Branch(targets))
        nodes[name] = node
        notes.extend(f"{name}: {n}" for n in node.notes)

    for start, end in builder.edges:
        topo.fixed.setdefault(start, set()).add(end)
    for starts, end in getattr(builder, "waiting_edges", set()):
        topo.joins.append((frozenset(starts), end))
    for source, specs in builder.branches.items():
        for bname, spec in specs.items():
            path = getattr(spec.path, "func", None) or getattr(spec.path, "afunc", None)
            acc = analyse(f"{source}→{bname}", path) if path is not None else None
            if spec.ends:
                targets = list(dict.fromkeys(spec.ends.values()))
            elif acc is not None and acc.targets:
                targets = acc.targets
            else:
                targets = names + [END]
                notes.append(
                    f"the conditional edge {bname!r} out of {source} names no targets the "
                    "source shows: assumed to reach every node"
                )
            fanout = bool(acc and acc.fanout)
            instances = bool(acc and acc.sends)
            topo.branches.setdefault(source, []).append(Branch(targets, fanout, instances))

    edges: set[Edge] = set()
    for start, ends_ in topo.fixed.items():
        for end in ends_:
            edges.add(Edge(start, end))
    for starts, end in topo.joins:
        for start in starts:
            edges.add(Edge(start, end))
    for source, branches in topo.branches.items():
        for branch in branches:
            for target in branch.targets:
                edges.add(Edge(source, target, conditional=True, fanout=branch.fanout))
    return GraphModel(nodes, sorted(edges), topo, _reducers(builder), notes, subgraphs)


# A superstep: the nodes that run in it, each with whether it may run as several instances.
Step = dict[str, bool]


@dataclass
class Runs:
    runs: list[list[Step]]
    truncated: bool


def _choices(topo: Topology, node: str, multi: bool) -> list[dict[str, bool]]:
    """The alternative sets of nodes that ``node`` can trigger for the next superstep."""
    fixed = {t: False for t in topo.fixed.get(node, ())}
    per_branch: list[list[dict[str, bool]]] = []
    for branch in topo.branches.get(node, []):
        if branch.fanout:
            per_branch.append([{t: branch.instances for t in branch.targets}])
        else:
            per_branch.append([{t: False} for t in branch.targets])
    out = []
    for combo in itertools.product(*per_branch):
        triggered = dict(fixed)
        for part in combo:
            for t, inst in part.items():
                triggered[t] = triggered.get(t, False) or inst or (multi and t in fixed)
        out.append(triggered)
    return out


def runs(m: GraphModel, max_runs: int = MAX_RUNS) -> Runs:
    """The runs of the graph (each a list of supersteps), cut as the module says."""
    topo = m.topology
    depth = 2 * len(m.nodes) + 2
    found: list[list[Step]] = []
    truncated = False

    def successors(
        step: Step, joined: frozenset[tuple[int, str]]
    ) -> Iterator[tuple[Step, frozenset[tuple[int, str]]]]:
        options = [_choices(topo, n, multi) for n, multi in sorted(step.items())]
        done = set(joined)
        for i, (starts, _) in enumerate(topo.joins):
            done |= {(i, n) for n in step if n in starts}
        fired = []
        for i, (starts, end) in enumerate(topo.joins):
            if all((i, s) in done for s in starts):
                fired.append(end)
                done -= {(i, s) for s in starts}
        for combo in itertools.product(*options):
            nxt: Step = {}
            for part in combo:
                for t, inst in part.items():
                    nxt[t] = nxt.get(t, False) or inst
            for end in fired:
                nxt.setdefault(end, False)
            nxt.pop(END, None)
            yield {n: nxt[n] for n in nxt if n in m.nodes}, frozenset(done)

    def walk(path: list[Step], joined: frozenset[tuple[int, str]]) -> None:
        nonlocal truncated
        if len(found) >= max_runs:
            truncated = True
            return
        if len(path) >= depth:
            found.append(list(path))
            return
        ended = False
        for nxt, j in successors(path[-1], joined):
            if nxt:
                walk(path + [nxt], j)
            elif not ended:
                ended = True
                found.append(list(path))

    for first, j in successors({START: False}, frozenset()):
        if first:
            walk([first], j)
    seen, unique = set(), []
    for run in found:
        key = tuple(tuple(sorted(s.items())) for s in run)
        if key not in seen:
            seen.add(key)
            unique.append(run)
    return Runs(unique, truncated)

"""``diagnose --graph``: find the stale-read risks of an existing LangGraph graph, unchanged.

    python -m agent_coherence_shm diagnose --graph path/to/graph.py:build_graph \\
        [--input JSON] [--json FILE] [--html FILE]

imports ``build_graph`` from the file, calls it (it returns a compiled graph, or a
``StateGraph``, which is compiled) and analyses the graph statically (`topology`, `source`:
nodes, edges, conditional edges, ``Send`` fan-out, subgraphs, and what each node's source reads
and writes) and, with ``--input``, dynamically (`dynamic`: one run with a recording store).
The risks (`risks`) are printed, and written as JSON (`model.SCHEMA`, documented in
docs/python.md) and as an HTML page (`render`). Exit status: 0 no risk, 1 risks found, 2 the
graph could not be loaded or run (the reason is printed).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import traceback
from dataclasses import replace
from itertools import combinations
from typing import Any, Sequence

from agent_coherence_shm.diagnose.model import KINDS, SCHEMA, Report, Risk
from agent_coherence_shm.diagnose.render import layers_of, page, text

__all__ = ["KINDS", "SCHEMA", "GraphLoadError", "Report", "Risk", "diagnose", "load", "main"]


class GraphLoadError(Exception):
    """The graph could not be loaded (bad target, import error, factory failed, not a graph)."""


def load(target: str) -> Any:
    """The compiled graph that ``path/to/file.py:factory`` builds."""
    path, sep, factory = target.rpartition(":")
    if not sep or not path or not factory:
        raise GraphLoadError(f"{target!r} is not PATH.py:FACTORY (e.g. graph.py:build_graph)")
    if not os.path.isfile(path):
        raise GraphLoadError(f"{path}: no such file")
    directory = os.path.dirname(os.path.abspath(path))
    if directory not in sys.path:
        sys.path.insert(0, directory)  # the graph's own imports of its siblings
    name = "_ccs_diagnosed_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise GraphLoadError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise GraphLoadError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    build = getattr(module, factory, None)
    if build is None:
        raise GraphLoadError(f"{path} defines no {factory!r}")
    try:
        graph = build() if callable(build) else build
    except Exception as exc:
        raise GraphLoadError(f"{factory}() failed: {type(exc).__name__}: {exc}") from exc
    if hasattr(graph, "compile") and not hasattr(graph, "stream"):
        try:
            graph = graph.compile()
        except Exception as exc:
            raise GraphLoadError(f"compiling the StateGraph failed: {exc}") from exc
    if not hasattr(graph, "builder") or not hasattr(graph, "stream"):
        raise GraphLoadError(
            f"{factory}() returned a {type(graph).__name__}, not a compiled LangGraph StateGraph"
        )
    return graph


def diagnose(target: str, graph_input: Any = None, *, run: bool = False) -> Report:
    """Analyse the graph ``target`` builds; with ``run``, also run it once on ``graph_input``."""
    from agent_coherence_shm.diagnose import risks, topology

    graph = load(target)
    try:
        m = topology.model(graph)
    except TypeError as exc:
        raise GraphLoadError(str(exc)) from exc
    explored = topology.runs(m)
    found = _static_risks(m, explored.runs)
    parallel: set[tuple[str, str]] = set()
    for path in explored.runs:
        for step in path:
            parallel |= {tuple(sorted(p)) for p in combinations(step, 2)}  # type: ignore[misc]
            parallel |= {(n, n) for n, multi in step.items() if multi}
    notes = list(m.notes)
    if run:
        from agent_coherence_shm.diagnose import dynamic

        try:
            trace = dynamic.run(graph, m.nodes, graph_input)
        except Exception as exc:  # the user's graph failed: say so, keep the static findings
            first = str(exc).splitlines()[0] if str(exc) else ""
            notes.append(
                f"the run on the input failed ({type(exc).__name__}: {first}): "
                "only the static analysis is reported"
            )
            run = False
        else:
            found.extend(risks.replay(trace, m.reducers, "dynamic"))
    report = Report(
        target=target,
        nodes=m.nodes,
        edges=m.edges,
        reducers=m.reducers,
        parallel=parallel,  # type: ignore[arg-type]
        risks=risks.merge(found),
        dynamic=run,
        truncated=explored.truncated,
        notes=notes,
        layers=layers_of(explored.runs),
    )
    return report


def _static_risks(m: Any, runs: list[Any]) -> list[Risk]:
    """The risks along ``runs`` of model ``m``, and inside its subgraphs (at any depth), with
    their nodes named ``parent/child``."""
    from agent_coherence_shm.diagnose import risks, topology

    found: list[Risk] = []
    for path in runs:
        steps = [risks.static_step(m.nodes, s) for s in path]
        found.extend(risks.replay(steps, m.reducers, "static"))
    for name, sub in m.subgraphs.items():
        inner = topology.model(sub)
        found.extend(_prefixed(r, name) for r in _static_risks(inner, topology.runs(inner).runs))
    return found


def _prefixed(risk: Risk, parent: str) -> Risk:
    """A subgraph's risk with its nodes named ``parent/node``."""

    def p(site: Any) -> Any:
        return replace(site, node=f"{parent}/{site.node}") if site else None

    return replace(
        risk,
        reader=p(risk.reader),
        writer=p(risk.writer),
        earlier_writer=p(risk.earlier_writer),
        consumer=p(risk.consumer),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (0 no risk, 1 risks, 2 not loaded)."""
    parser = argparse.ArgumentParser(
        prog="python -m agent_coherence_shm diagnose",
        description="Find the stale-read risks of a LangGraph graph, without changing it.",
    )
    parser.add_argument(
        "--graph",
        required=True,
        metavar="FILE.py:FACTORY",
        help="the file and the function that builds the graph",
    )
    parser.add_argument(
        "--input",
        metavar="JSON",
        help="run the graph once on this input (JSON, or @FILE) and record it",
    )
    parser.add_argument(
        "--json", metavar="FILE", help="write the report as JSON here ('-': stdout)"
    )
    parser.add_argument("--html", metavar="FILE", help="write the report as an HTML page here")
    args = parser.parse_args(argv)
    graph_input = None
    if args.input is not None:
        try:
            raw = open(args.input[1:]).read() if args.input.startswith("@") else args.input
            graph_input = json.loads(raw)
        except (OSError, ValueError) as exc:
            print(f"diagnose: --input is not JSON: {exc}", file=sys.stderr)
            return 2
    try:
        report = diagnose(args.graph, graph_input, run=args.input is not None)
    except GraphLoadError as exc:
        print(f"diagnose: cannot load {args.graph}: {exc}", file=sys.stderr)
        if os.environ.get("CCS_DIAGNOSE_TRACEBACK"):
            traceback.print_exc()
        return 2
    if args.json == "-":
        json.dump(report.to_json(), sys.stdout, indent=2)
        print()
    else:
        sys.stdout.write(text(report))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(report.to_json(), f, indent=2)
    if args.html:
        with open(args.html, "w") as f:
            f.write(page(report))
    return 1 if report.risks else 0

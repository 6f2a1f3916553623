"""`python -m agent_coherence_shm diagnose --graph`: the exact findings on small graphs with
known hazards and on known-safe ones (tests/python/graphs/), the exit codes, the JSON schema and
the HTML page (parsed, and rendered by headless Chromium when scripts/deps installed it)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from agent_coherence_shm.diagnose import main

GRAPHS = Path(__file__).resolve().parent / "graphs"


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


def diagnose(*args: str, in_process: bool = True) -> Done:
    """Run the command from the graphs' directory (so sites are relative): in this process
    (`diagnose.main`, what ``python -m`` calls) or, with ``in_process=False``, as a user would."""
    if not in_process:
        done = subprocess.run(
            [sys.executable, "-m", "agent_coherence_shm", "diagnose", *args],
            cwd=GRAPHS,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return Done(done.returncode, done.stdout, done.stderr)
    out, err, cwd, path = io.StringIO(), io.StringIO(), os.getcwd(), list(sys.path)
    os.chdir(GRAPHS)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(list(args))
    finally:
        os.chdir(cwd)
        sys.path[:] = path  # loading a graph puts its directory on the path
    return Done(status, out.getvalue(), err.getvalue())


def test_python_m_runs_it_with_the_exit_codes() -> None:
    assert diagnose("--graph", "refactor_safe.py:build_graph", in_process=False).returncode == 0
    done = diagnose("--graph", "blind_summary.py:build_graph", in_process=False)
    assert done.returncode == 1 and "1 stale-read risk:" in done.stdout
    done = diagnose("--graph", "broken.py:build_graph", in_process=False)
    assert done.returncode == 2 and "the model client needs an API key" in done.stderr


def line_of(file: str, text: str) -> int:
    """The line of ``file`` holding ``text`` (exactly one must)."""
    lines = [
        i for i, line in enumerate((GRAPHS / file).read_text().splitlines(), 1) if text in line
    ]
    assert len(lines) == 1, f"{text!r} is on lines {lines} of {file}"
    return lines[0]


def site(node: str, file: str, text: str) -> str:
    return f"{node}@{file}:{line_of(file, text)}"


def findings(report: dict[str, Any]) -> set[tuple[Any, ...]]:
    def s(x: dict[str, Any] | None) -> str | None:
        return f"{x['node']}@{x['file']}:{x['line']}" if x else None

    return {
        (
            r["kind"],
            r["artifact"],
            s(r["reader"]),
            s(r["writer"]),
            s(r["earlier_writer"]),
            r["via"],
            s(r["consumer"]),
            tuple(r["found_by"]),
        )
        for r in report["risks"]
    }


def run_json(tmp_path: Path, target: str, *extra: str) -> tuple[int, dict[str, Any], str]:
    out = tmp_path / "report.json"
    done = diagnose("--graph", target, "--json", str(out), *extra)
    assert done.returncode in (0, 1) and done.stdout.startswith("diagnose "), done.stderr
    return done.returncode, json.loads(out.read_text()), done.stdout


F = "fanout_read_write.py"
S = "send_counter.py"
T = "stale_spec.py"
B = "blind_summary.py"
SUB = "subgraph.py"
H = "hidden_store.py"
C = "command_lambda.py"
HE = "helpers.py"
FN = "factory_nodes.py"

def risk(
    kind: str,
    artifact: str,
    *,
    writer: str,
    reader: str | None = None,
    earlier: str | None = None,
    via: str | None = None,
    consumer: str | None = None,
    found_by: tuple[str, ...] = ("static",),
) -> tuple[Any, ...]:
    """One expected finding, in the shape `findings` gives."""
    return (kind, artifact, reader, writer, earlier, via, consumer, found_by)


PRW, STALE, BLIND = "parallel-read-write", "stale-use", "blind-overwrite"
COUNT = 'return {"count": state["count"]'  # the worker's read and write of the count
FIRST, LAM, SECOND = "return Command(update=", "lambda s: {", 'return {"b": state["a"]}'

EXPECTED: dict[str, set[tuple[Any, ...]]] = {
    "refactor_safe.py": set(),
    "router_safe.py": set(),
    F: {
        risk(PRW, "state:draft", reader=site("reviewer", F, "reviewed {state['draft']}"),
             writer=site("editor", F, 'return {"draft": state["draft"] + ", edited"}')),
    },
    S: {
        risk(PRW, "state:count", reader=site("worker", S, COUNT), writer=site("worker", S, COUNT)),
        risk(BLIND, "state:count", writer=site("worker", S, COUNT),
             earlier=site("worker", S, COUNT)),
    },
    T: {
        risk(STALE, "store:task/spec", reader=site("read_spec", T, 'get_store().get(TASK, "spec")'),
             writer=site("revise", T, "get_store().put(TASK"), via="state:plan",
             consumer=site("commit", T, "committed {state['plan']}")),
    },
    B: {
        risk(BLIND, "state:summary", writer=site("polish", B, "a polished note"),
             earlier=site("draft", B, 'return {"summary": f"about')),
    },
    SUB: {
        risk(PRW, "state:brief", reader=site("research", SUB, "facts for {state['brief']}"),
             writer=site("rewrite", SUB, 'return {"brief"')),
        # Inside the subgraph, its nodes named parent/child.
        risk(BLIND, "state:facts", writer=site("research/tally", SUB, '"facts": "counted"'),
             earlier=site("research/gather", SUB, "facts for {state['brief']}")),
    },
    C: {
        risk(PRW, "state:a", reader=site("lam", C, LAM), writer=site("first", C, FIRST)),
        risk(PRW, "state:b", reader=site("first", C, FIRST), writer=site("lam", C, LAM)),
        risk(BLIND, "state:b", writer=site("second", C, SECOND), earlier=site("lam", C, LAM)),
        risk(STALE, "state:b", reader=site("first", C, FIRST), writer=site("lam", C, LAM),
             via="state:a", consumer=site("second", C, SECOND)),
    },
    HE: {
        risk(PRW, "state:draft", reader=site("scout", HE, "draft: {s['draft']}"),
             writer=site("editor", HE, 'return {"draft"')),
        risk(PRW, "store:specs/core/current", reader=site("scout", HE, "get_store().get(ns"),
             writer=site("editor", HE, "get_store().put(")),
    },
    FN: {
        risk(PRW, "state:plan", reader=site("review", FN, "return {target:"),
             writer=site("draft", FN, "return {target:")),
    },
    H: set(),  # the reads go through methods, which the source analysis does not follow
}


@pytest.mark.parametrize("graph", sorted(EXPECTED))
def test_static_findings_are_exactly_the_known_ones(graph: str, tmp_path: Path) -> None:
    status, report, stdout = run_json(tmp_path, f"{graph}:build_graph")
    assert findings(report) == EXPECTED[graph]
    assert status == (1 if EXPECTED[graph] else 0)
    assert report["schema"] == "agent-coherence-shm/diagnose-graph/1"
    # The terminal summary leads with the verdict and names every finding's file:line.
    first, verdict = stdout.splitlines()[:2]
    assert first.startswith(f"diagnose {graph}:build_graph: ")
    if EXPECTED[graph]:
        assert (
            verdict
            == f"{len(EXPECTED[graph])} stale-read risk{'s' if len(EXPECTED[graph]) > 1 else ''}:"
        )
        for finding in EXPECTED[graph]:
            for s in (finding[2], finding[3], finding[4], finding[6]):
                if s:
                    assert s.split("@")[1] in stdout
    else:
        assert verdict == "no stale-read risk found"


def test_the_run_sees_what_the_source_hides(tmp_path: Path) -> None:
    status, report, _ = run_json(tmp_path, f"{H}:build_graph", "--input", '{"team": "core"}')
    assert status == 1 and report["dynamic"] is True
    assert findings(report) == {
        risk(PRW, "store:specs/core/current",
             reader=site("scout", H, 'return store.get(ns, "current")'),
             writer=site("planner", H, "get_store().put("), found_by=("dynamic",)),
        risk(PRW, "state:notes", reader=site("scout", H, 'return state.get("notes", "")'),
             writer=site("planner", H, 'return {"notes"'), found_by=("dynamic",)),
    }


def test_artifact_names_match_with_wildcards() -> None:
    from agent_coherence_shm.diagnose.model import artifacts_match

    assert artifacts_match("store:task/spec", "store:task/spec")
    assert artifacts_match("store:task/*", "store:task/spec")
    assert artifacts_match("store:**/spec", "store:a/b/spec")
    assert artifacts_match("store:a/b/spec", "store:**/spec")
    assert artifacts_match("store:**/*", "store:a/spec")
    assert not artifacts_match("store:**/spec", "store:spec")  # a namespace has an element
    assert not artifacts_match("store:task/spec", "store:task/plan")
    assert not artifacts_match("store:*/spec", "store:a/b/spec")
    assert not artifacts_match("state:spec", "store:spec")
    assert not artifacts_match("state:*", "state:spec")  # channels are always named


def test_the_run_confirms_a_static_finding(tmp_path: Path) -> None:
    status, report, _ = run_json(tmp_path, f"{T}:build_graph", "--input", "{}")
    assert status == 1
    assert [r["found_by"] for r in report["risks"]] == [["dynamic", "static"]]
    # The source names the store item only as store:**/current; the run names it exactly.
    status, report, _ = run_json(tmp_path, f"{HE}:build_graph", "--input", '{"draft": "d"}')
    assert status == 1
    assert findings(report) == {f[:-1] + (("dynamic", "static"),) for f in EXPECTED[HE]}
    status, report, _ = run_json(
        tmp_path, "refactor_safe.py:build_graph", "--input", '{"request": "r"}'
    )
    assert status == 0 and report["risks"] == [] and report["dynamic"] is True


def test_a_failing_run_keeps_the_static_findings_and_says_why(tmp_path: Path) -> None:
    # LangGraph itself refuses the two workers' concurrent writes of `count`.
    status, report, _ = run_json(tmp_path, f"{S}:build_graph", "--input", '{"items": ["a", "b"]}')
    assert status == 1 and report["dynamic"] is False
    assert findings(report) == EXPECTED[S]
    assert any("InvalidUpdateError" in n for n in report["notes"])


def test_the_json_describes_the_graph(tmp_path: Path) -> None:
    _, report, _ = run_json(tmp_path, f"{S}:build_graph")
    graph = report["graph"]
    assert [n["name"] for n in graph["nodes"]] == ["split", "worker"]
    assert {(e["source"], e["target"], e["conditional"], e["fanout"]) for e in graph["edges"]} == {
        ("__start__", "split", False, False),
        ("split", "worker", True, True),
        ("worker", "__end__", False, False),
    }
    assert graph["parallel"] == [["worker", "worker"]]
    worker = graph["nodes"][1]
    assert set(worker["reads"]) == {"state:count", "state:items"}
    assert set(worker["writes"]) == {"state:count"}
    _, report, _ = run_json(tmp_path, f"{F}:build_graph")
    assert report["graph"]["reducers"] == {"notes": "BinaryOperatorAggregate"}
    assert report["graph"]["parallel"] == [["editor", "reviewer"]]
    _, report, _ = run_json(tmp_path, f"{SUB}:build_graph")
    assert report["graph"]["nodes"][0]["subgraph"] == ["gather", "tally"]


@pytest.mark.parametrize(
    "target, reason",
    [
        (
            "broken.py:build_graph",
            "build_graph() failed: RuntimeError: the model client needs an API key",
        ),
        (
            "broken.py:not_a_graph",
            "not_a_graph() returned a dict, not a compiled LangGraph StateGraph",
        ),
        ("broken.py:nowhere", "broken.py defines no 'nowhere'"),
        ("missing.py:build_graph", "missing.py: no such file"),
        ("broken.py", "is not PATH.py:FACTORY"),
    ],
)
def test_a_graph_that_cannot_be_loaded_exits_2_with_the_reason(target: str, reason: str) -> None:
    done = diagnose("--graph", target)
    assert done.returncode == 2
    assert reason in done.stderr
    assert done.stdout == ""


def test_bad_input_json_exits_2() -> None:
    done = diagnose("--graph", "refactor_safe.py:build_graph", "--input", "{not json")
    assert done.returncode == 2 and "--input is not JSON" in done.stderr


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.nodes: list[str] = []
        self.risky: list[str] = []
        self.risk_edges: list[tuple[str, str]] = []
        self.external: list[str] = []
        self.risk_rows = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append(tag)
        for key in ("src", "href"):
            if a.get(key) and not str(a[key]).startswith("#"):
                self.external.append(str(a[key]))
        if tag == "g" and "node" in (a.get("class") or "").split():
            self.nodes.append(str(a["data-node"]))
            if "risky" in (a.get("class") or "").split():
                self.risky.append(str(a["data-node"]))
        if tag == "path" and a.get("class") == "risk-edge":
            self.risk_edges.append((str(a["data-kind"]), str(a["data-artifact"])))
        if tag == "tr" and a.get("class") == "risk":
            self.risk_rows += 1


def render(tmp_path: Path, graph: str) -> tuple[Path, _Page]:
    html = tmp_path / f"{graph}.html"
    done = diagnose("--graph", f"{graph}:build_graph", "--html", str(html))
    assert done.returncode in (0, 1) and done.stdout.startswith("diagnose "), done.stderr
    page = _Page()
    page.feed(html.read_text())
    return html, page


def test_the_html_page_draws_the_graph_and_marks_the_risky_edges(tmp_path: Path) -> None:
    _, page = render(tmp_path, F)
    assert "script" not in page.tags and page.external == []  # self-contained
    assert page.tags.count("svg") == 1
    assert sorted(page.nodes) == ["__end__", "__start__", "editor", "outline", "reviewer"]
    assert sorted(page.risky) == ["editor", "reviewer"]
    assert page.risk_edges == [("parallel-read-write", "state:draft")]
    assert page.risk_rows == 1
    _, page = render(tmp_path, "refactor_safe.py")
    assert page.risky == [] and page.risk_edges == [] and page.risk_rows == 0


def _png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """The rows of an 8-bit RGB/RGBA non-interlaced PNG (what Chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and color in (2, 6) and interlace == 0
    bpp = 3 if color == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        kind, line = (
            raw[y * (stride + 1)],
            bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]),
        )
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, ul = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - ul
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - ul)
                line[i] = (
                    line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else ul)
                ) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, bpp, rows


def _red_pixels(path: Path) -> int:
    width, bpp, rows = _png_pixels(path)
    red = 0
    for row in rows:
        for x in range(width):
            r, g, b = row[x * bpp], row[x * bpp + 1], row[x * bpp + 2]
            red += r > 180 and g < 80 and b < 80  # the risk colour, #d62728
    return red


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed: run scripts/deps")
def test_a_headless_browser_renders_the_risky_edges_in_red(tmp_path: Path) -> None:
    counts = {}
    for graph in (F, "refactor_safe.py"):
        html, _ = render(tmp_path, graph)
        png = tmp_path / f"{graph}.png"
        subprocess.run(
            [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--screenshot={png}",
                "--window-size=800,450",
                html.as_uri(),
            ],
            capture_output=True,
            timeout=120,
            check=True,
        )
        counts[graph] = _red_pixels(png)
    # The risky page shows the red arc, the red node borders and the verdict; the safe one none.
    assert counts[F] > 500, counts
    assert counts["refactor_safe.py"] == 0, counts


def test_the_recorded_run_sees_state_reads_and_restores_the_nodes() -> None:
    from agent_coherence_shm.diagnose import dynamic, load, topology

    path = list(sys.path)
    try:
        graph = load(f"{GRAPHS / T}:build_graph")
    finally:
        sys.path[:] = path
    before = {n: s.runnable.func for n, s in graph.builder.nodes.items()}
    trace = dynamic.run(graph, topology.model(graph).nodes, {})
    assert [
        {n: (sorted(a.reads), sorted(a.writes)) for n, a in step.items()} for step in trace
    ] == [
        {"read_spec": (["store:task/spec"], ["state:plan"])},
        {"revise": ([], ["store:task/spec"])},
        {"commit": (["state:plan"], ["state:done"])},
    ]
    assert {n: s.runnable.func for n, s in graph.builder.nodes.items()} == before

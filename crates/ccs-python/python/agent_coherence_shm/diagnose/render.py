"""The report of `diagnose --graph` for a person: the terminal summary and the HTML page.

The HTML page is self-contained (inline CSS and SVG, no script, nothing fetched): the graph is
drawn in layers (a node's layer is the first superstep it can run in), conditional edges
dashed, and each risk drawn as a red arc between the two nodes it involves, numbered as in the
table of risks that follows, with ``file:line`` of each read and write.
"""

from __future__ import annotations

import html
from typing import Any

from agent_coherence_shm.diagnose.model import BLIND_OVERWRITE, Report, Risk, Site

START, END = "__start__", "__end__"


def _where(site: Site | None) -> str:
    return f"{site.file}:{site.line}" if site else "-"


def text(report: Report) -> str:
    """The terminal summary: the verdict first, then one block per risk."""
    n_edges = len(report.edges)
    conditional = sum(e.conditional for e in report.edges)
    lines = [
        f"diagnose {report.target}: {len(report.nodes)} nodes, {n_edges} edges "
        f"({conditional} conditional), {len(report.parallel)} node pairs can share a superstep"
        + (", checked statically and by one run" if report.dynamic else ", checked statically"),
    ]
    if not report.risks:
        lines.append("no stale-read risk found")
    else:
        lines.append(f"{len(report.risks)} stale-read risk{'s' if len(report.risks) > 1 else ''}:")
        for i, risk in enumerate(report.risks, 1):
            lines.append(f"  {i}. {risk.kind}  {risk.artifact}  [{', '.join(risk.found_by)}]")
            lines.append(f"     {risk.describe()}")
            if risk.reader:
                lines.append(f"     read:  {risk.reader.node} at {_where(risk.reader)}")
            lines.append(f"     write: {risk.writer.node} at {_where(risk.writer)}")
            if risk.earlier_writer:
                lines.append(
                    f"     earlier write: {risk.earlier_writer.node} "
                    f"at {_where(risk.earlier_writer)}"
                )
            if risk.consumer:
                lines.append(f"     used:  {risk.consumer.node} at {_where(risk.consumer)}")
    if report.truncated:
        lines.append("note: the graph has more runs than were explored; some risks may be missing")
    for note in report.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines) + "\n"


def _pair(risk: Risk) -> tuple[str, str]:
    other = risk.earlier_writer if risk.kind == BLIND_OVERWRITE else risk.reader
    return (risk.writer.node, other.node if other else risk.writer.node)


def layout(report: Report, layers: dict[str, int]) -> dict[str, tuple[float, float]]:
    """Node → (x, y) centre: one column per layer, START first and END last."""
    last = max(layers.values(), default=0) + 1
    layer_of = {START: -1, END: last, **{n: layers.get(n, last - 1) for n in report.nodes}}
    columns: dict[int, list[str]] = {}
    for name in [START, *report.nodes, END]:
        columns.setdefault(layer_of[name], []).append(name)
    pos = {}
    for col, (_layer, names) in enumerate(sorted(columns.items())):
        for row, name in enumerate(names):
            pos[name] = (90 + col * 190, 70 + 16 * len(report.risks) + row * 90)
    return pos


def page(report: Report) -> str:
    """The self-contained HTML report."""
    pos = layout(report, report.layers)
    width = max(x for x, _ in pos.values()) + 110 + 60 + 18 * len(report.risks)
    height = max(y for _, y in pos.values()) + 70
    risky_nodes = {n for r in report.risks for n in _pair(r)}
    e = html.escape
    svg: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="graph" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
    ]
    for edge in report.edges:
        if edge.source not in pos or edge.target not in pos:
            continue
        (x1, y1), (x2, y2) = pos[edge.source], pos[edge.target]
        dash = ' stroke-dasharray="6 4"' if edge.conditional else ""
        cls = "edge conditional" if edge.conditional else "edge"
        svg.append(
            f'<line class="{cls}" data-source="{e(edge.source)}" data-target="{e(edge.target)}" '
            f'x1="{x1 + 60}" y1="{y1}" x2="{x2 - 60}" y2="{y2}" stroke="#555" stroke-width="1.5"'
            f'{dash} marker-end="url(#arrow)"/>'
        )
    # One arc per risk, under the nodes, between the centres of the two nodes it involves (the
    # arcs of one pair nest), numbered as in the table below.
    nth: dict[frozenset[str], int] = {}
    for i, risk in enumerate(report.risks, 1):
        a, b = _pair(risk)
        pair = frozenset((a, b))
        k = nth[pair] = nth.get(pair, -1) + 1
        bend = 36 + 16 * k
        (x1, y1), (x2, y2) = pos[a], pos[b]
        if a == b:  # a node against its own other instance: a loop above it
            top = y1 - 22 - bend
            path = f"M{x1 - 30},{y1} C{x1 - 70},{top} {x1 + 70},{top} {x1 + 30},{y1}"
            lx, ly = x1, top + 6
        else:
            dx, dy = x2 - x1, y2 - y1
            length = (dx * dx + dy * dy) ** 0.5
            nx, ny = -dy / length, dx / length
            if ny > 0 or (ny == 0 and nx < 0):  # bulge upwards (or to the right)
                nx, ny = -nx, -ny
            mx, my = (x1 + x2) / 2, (y1 + y2) / 2
            path = f"M{x1},{y1} Q{mx + 2 * bend * nx:.1f},{my + 2 * bend * ny:.1f} {x2},{y2}"
            lx, ly = mx + (bend + 10) * nx, my + (bend + 10) * ny
        svg.append(
            f'<path class="risk-edge" data-kind="{e(risk.kind)}" '
            f'data-artifact="{e(risk.artifact)}" '
            f'd="{path}" fill="none" stroke="#d62728" stroke-width="2.5"/>'
        )
        svg.append(
            f'<text class="risk-label" x="{lx:.1f}" y="{ly + 4:.1f}" text-anchor="middle" '
            f'fill="#d62728" font-size="12" font-weight="bold" style="paint-order: stroke" '
            f'stroke="#fff" stroke-width="4">{i}</text>'
        )
    for name, (x, y) in pos.items():
        special = name in (START, END)
        fill = "#eee" if special else ("#fde0dc" if name in risky_nodes else "#e3f0fb")
        stroke = "#d62728" if name in risky_nodes else "#336"
        label = {START: "START", END: "END"}.get(name, name)
        svg.append(
            f'<g class="node{" risky" if name in risky_nodes else ""}" data-node="{e(name)}">'
            f'<rect x="{x - 60}" y="{y - 22}" width="120" height="44" rx="{22 if special else 6}" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="2"/>'
            f'<text x="{x}" y="{y + 5}" text-anchor="middle" font-size="13">{e(label)}</text></g>'
        )
    svg.append("</svg>")

    rows = []
    for i, risk in enumerate(report.risks, 1):
        rows.append(
            '<tr class="risk">'
            f"<td>{i}</td><td>{e(risk.kind)}</td><td><code>{e(risk.artifact)}</code></td>"
            f"<td>{_cell(risk.reader)}</td><td>{_cell(risk.writer)}</td>"
            f"<td>{_cell(risk.earlier_writer)}</td>"
            f"<td>{e(risk.via or '')} {_cell(risk.consumer)}</td>"
            f"<td>{e(', '.join(risk.found_by))}</td></tr>"
            f'<tr><td></td><td colspan="7" class="msg">{e(risk.describe())}</td></tr>'
        )
    node_rows = []
    for node in report.nodes.values():
        node_rows.append(
            f"<tr><td>{e(node.name)}</td><td>{e(', '.join(sorted(node.reads)))}</td>"
            f"<td>{e(', '.join(sorted(node.writes)))}</td>"
            f"<td>{e(f'{node.file}:{node.line}' if node.file else '')}</td></tr>"
        )
    verdict = (
        f"{len(report.risks)} stale-read risk{'s' if len(report.risks) != 1 else ''}"
        if report.risks
        else "no stale-read risk found"
    )
    notes = "".join(f"<li>{e(n)}</li>" for n in report.notes)
    verdict_colour = "#d62728" if report.risks else "#2a7d2a"
    checked = (
        "Checked statically and by one recorded run." if report.dynamic else "Checked statically."
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>diagnose {e(report.target)}</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; margin: 12px 0; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; font-size: 13px; }}
th {{ text-align: left; }}
.msg {{ color: #555; font-style: italic; }}
#verdict {{ font-size: 18px; font-weight: bold; color: {verdict_colour}; }}
</style></head>
<body>
<h1>diagnose <code>{e(report.target)}</code></h1>
<p id="verdict">{e(verdict)}</p>
<p>{len(report.nodes)} nodes, {len(report.edges)} edges; dashed: conditional; red arcs: the risks,
each between the two nodes it involves, numbered as in the table. {checked}</p>
{"".join(svg)}
<h2>Risks</h2>
<table id="risks"><tr><th>#</th><th>kind</th><th>artifact</th><th>read</th><th>write</th>
<th>earlier write</th><th>via / used</th><th>found by</th></tr>
{"".join(rows)}</table>
<h2>Nodes</h2>
<table id="nodes"><tr><th>node</th><th>reads</th><th>writes</th><th>defined at</th></tr>
{"".join(node_rows)}</table>
{f"<h2>Notes</h2><ul>{notes}</ul>" if notes else ""}
</body></html>
"""


def _cell(site: Site | None) -> str:
    if site is None:
        return ""
    return f"{html.escape(site.node)}<br><code>{html.escape(site.file)}:{site.line}</code>"


def layers_of(runs: list[list[dict[str, Any]]]) -> dict[str, int]:
    """Each node's first superstep over all runs."""
    out: dict[str, int] = {}
    for run in runs:
        for i, step in enumerate(run):
            for node in step:
                out[node] = min(out.get(node, i), i)
    return out

#!/usr/bin/env python3
"""Draw how operation cost grows with payload, peers and artifacts, from criterion's output.

Usage: python3 benches/plot.py [--criterion target/criterion] [--out docs/benchmarks]

Reads target/criterion/<op>/<dimension>/<N>/new/estimates.json (`median.point_estimate`, ns),
as written by `cargo bench --bench ops`, and writes one SVG per dimension (payload.svg,
peers.svg, artifacts.svg): a line per operation, log-scale axes. Plain Python, no
dependencies. Missing measurements are skipped; a chart with none is not written.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

CHARTS = {
    "payload": ("Cost against payload size (bytes)", "bytes"),
    "peers": ("Cost against agents holding a copy", "peers"),
    "artifacts": ("Cost against artifacts in the segment", "artifacts"),
}
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"]
W, H = 640, 400
LEFT, RIGHT, TOP, BOTTOM = 78, 170, 40, 56


def collect(root: Path) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """dimension -> op -> [(param, median ns)]"""
    data: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for est in sorted(root.glob("*/*/*/new/estimates.json")):
        param_dir = est.parent.parent
        dim, op = param_dir.parent.name, param_dir.parent.parent.name
        if dim not in CHARTS:
            continue
        try:
            param = float(param_dir.name)
            median = float(json.loads(est.read_text())["median"]["point_estimate"])
        except (ValueError, KeyError, OSError):
            continue
        data.setdefault(dim, {}).setdefault(op, []).append((param, median))
    for ops in data.values():
        for points in ops.values():
            points.sort()
    return data


def fmt_ns(ns: float) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:g} {unit}"
    return f"{ns:g} ns"


def fmt_param(value: float, dim: str) -> str:
    v = int(value)
    if dim == "payload":
        for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
            if v >= scale and v % scale == 0:
                return f"{v // scale} {unit}"
        return f"{v} B"
    return f"{v:,}"


def esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg_chart(dim: str, ops: dict[str, list[tuple[float, float]]]) -> str:
    title, _ = CHARTS[dim]
    xs = sorted({x for pts in ops.values() for x, _ in pts})
    ys = [y for pts in ops.values() for _, y in pts]
    x0, x1 = math.log10(xs[0]), math.log10(xs[-1])
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    y0 = math.floor(math.log10(min(ys)))
    y1 = math.ceil(math.log10(max(ys)))
    if y1 == y0:
        y1 += 1
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (math.log10(x) - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return TOP + ph - (math.log10(y) - y0) / (y1 - y0) * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{LEFT + pw / 2}" y="22" text-anchor="middle" font-size="15">{esc(title)}</text>',
    ]
    for e in range(y0, y1 + 1):
        y = py(10**e)
        out.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{esc(fmt_ns(10**e))}</text>'
        )
    for x in xs:
        X = px(x)
        out.append(f'<line x1="{X:.1f}" x2="{X:.1f}" y1="{TOP}" y2="{TOP + ph}" stroke="#eee"/>')
        out.append(
            f'<text x="{X:.1f}" y="{TOP + ph + 18}" text-anchor="middle">{esc(fmt_param(x, dim))}</text>'
        )
    out.append(
        f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>'
    )
    out.append(
        f'<text x="{LEFT + pw / 2}" y="{H - 14}" text-anchor="middle">{esc(dim)} (log scale)</text>'
    )
    out.append(
        f'<text transform="translate(18 {TOP + ph / 2}) rotate(-90)" text-anchor="middle">'
        f"median time per op (log scale)</text>"
    )
    for i, (op, pts) in enumerate(sorted(ops.items())):
        colour = COLOURS[i % len(COLOURS)]
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in pts:
            out.append(
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}">'
                f"<title>{esc(op)} {esc(fmt_param(x, dim))}: {esc(fmt_ns(round(y, 1)))}</title></circle>"
            )
        ly = TOP + 14 + i * 18
        lx = LEFT + pw + 12
        out.append(
            f'<line x1="{lx}" x2="{lx + 18}" y1="{ly - 4}" y2="{ly - 4}" stroke="{colour}" stroke-width="2"/>'
        )
        out.append(f'<text x="{lx + 24}" y="{ly}">{esc(op)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--criterion", type=Path, default=Path("target/criterion"))
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    args = ap.parse_args()
    data = collect(args.criterion)
    if not data:
        print(f"no criterion results under {args.criterion}; run `cargo bench --bench ops`", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for dim in CHARTS:
        ops = {op: pts for op, pts in data.get(dim, {}).items() if len(pts) >= 2}
        if not ops:
            print(f"{dim}: no results, skipped", file=sys.stderr)
            continue
        path = args.out / f"{dim}.svg"
        path.write_text(svg_chart(dim, ops))
        print(f"wrote {path} ({', '.join(sorted(ops))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

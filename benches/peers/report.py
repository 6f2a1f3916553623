#!/usr/bin/env python3
"""The table and the plot of benches/peers/run, from the JSON files of one run.

Usage: report.py --dir DIR [--commit REV] [--svg OUT.svg] [--doc docs/benchmarks.md]

DIR holds, per payload N: ours-inv-copy-N.json and ours-inv-zero-copy-N.json (`ccs bench
invalidation --json`), ours-ops-N.json (`ccs bench ops --json`), iceoryx2-N.json, redis-N.json and the floors
handoff-in-place|copy-1|64-N.json (benches/peers/native), and python.json (bench_peer.py) if
the Python package ran.
Prints the Markdown table (every value a median, every ratio from this one run); --doc replaces
the text between the markers `<!-- peers:begin -->` and `<!-- peers:end -->` in that file
with it; --svg writes the plot of delivery latency against payload size (standard library only).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import re
import sys
from pathlib import Path

BEGIN, END = "<!-- peers:begin -->", "<!-- peers:end -->"


def load(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class Run:
    def __init__(self, d: Path):
        self.payloads = sorted(
            {int(m.group(1)) for f in d.glob("iceoryx2-*.json") if (m := re.match(r"iceoryx2-(\d+)\.json", f.name))}
        )
        self.d = d
        self.python = load(d / "python.json") or []

    def inv(self, mode: str, p: int, phase: str):
        r = load(self.d / f"ours-inv-{mode}-{p}.json")
        return next((x["p50_ns"] for x in (r or {}).get("phases", []) if x["phase"] == phase), None)

    def ops(self, p: int, op: str):
        r = load(self.d / f"ours-ops-{p}.json")
        return next((x["median_ns"] for x in (r or {}).get("results", []) if x["op"] == op), None)

    def peer(self, name: str, p: int, phase: str):
        r = load(self.d / f"{name}-{p}.json")
        return next((x["p50_ns"] for x in (r or {}).get("phases", []) if x["phase"] == phase), None)

    def floor(self, read: str, p: int, phase: str = "hold", slots=(1, 64)):
        """The bare handoff's p50 (`ccs-peers handoff`): the best of the slot counts asked."""
        vs = [v for n in slots if (v := self.peer(f"handoff-{read}-{n}", p, phase)) is not None]
        return min(vs) if vs else None

    def py(self, p: int, op: str, variant: str = "CoherenceAdapterCore"):
        for x in self.python:
            if x.get("payload") == p and x.get("op") == op and x.get("variant", x.get("impl")) == variant:
                return x.get("median_ns")
        for x in self.python:  # any variant
            if x.get("payload") == p and x.get("op") == op and x.get("median_ns"):
                return x["median_ns"]
        return None


def ns(v) -> str:
    if v is None:
        return "–"
    if v >= 100_000:
        return f"{v / 1000:.0f} µs"
    if v >= 1000:
        return f"{v / 1000:.2f} µs"
    return f"{v:.1f} ns" if v < 100 else f"{v:.0f} ns"


def ratio(a, b, target=None) -> str:
    if a is None or b is None or b == 0:
        return "–"
    r = a / b
    text = f"{r:.2f}×" if r < 10 else f"{r:.0f}×"
    if target is not None:
        text = f"**{text}** {'✓' if r <= target else '✗'}"
    return text


def table(run: Run) -> str:
    ps = run.payloads
    head = "| | " + " | ".join(size(p) for p in ps) + " |\n|---|" + "---:|" * len(ps) + "\n"
    rows: list[str] = []

    def row(label, f):
        rows.append(f"| {label} | " + " | ".join(f(p) for p in ps) + " |")

    inv = run.inv
    ice = lambda p, ph: run.peer("iceoryx2", p, ph)  # noqa: E731
    red = lambda p, ph: run.peer("redis", p, ph)  # noqa: E731
    rows.append("| **delivery: writer's start → reader holds the new payload (p50)** |" + " |" * len(ps))
    row("ours, copy (`ccs bench invalidation --read copy`)", lambda p: ns(inv("copy", p, "hold_new")))
    row("ours, zero-copy (`--read zero-copy`: a pinned borrow)", lambda p: ns(inv("zero-copy", p, "hold_new")))
    row("iceoryx2: send start → `receive()` returns the sample", lambda p: ns(ice(p, "receive")))
    row("iceoryx2: send start → sample received and every byte validated", lambda p: ns(ice(p, "hold_validated")))
    row("Redis: SET start → tracking peer holds the new value (invalidate + GET)", lambda p: ns(red(p, "hold_new")))
    fl = run.floor
    row("floor, read in place: bare shared-memory handoff, 1 slot / 64 slots (`ccs-peers handoff`)",
        lambda p: f"{ns(fl('in-place', p, slots=(1,)))} / {ns(fl('in-place', p, slots=(64,)))}")
    row("floor, copied out: the same handoff, the reader copying the payload, 1 slot / 64 slots",
        lambda p: f"{ns(fl('copy', p, slots=(1,)))} / {ns(fl('copy', p, slots=(64,)))}")
    row("ours copy / iceoryx2 validated (target ≤ 1 at 4 KiB)",
        lambda p: ratio(inv("copy", p, "hold_new"), ice(p, "hold_validated"), 1.0 if p == 4096 else None))
    row("ours zero-copy / iceoryx2 validated (target ≤ 0.5 at 4 KiB)",
        lambda p: ratio(inv("zero-copy", p, "hold_new"), ice(p, "hold_validated"), 0.5 if p == 4096 else None))
    row("ours zero-copy / iceoryx2 received", lambda p: ratio(inv("zero-copy", p, "hold_new"), ice(p, "receive")))
    row("ours zero-copy / its floor (read in place, best of the slot counts)",
        lambda p: ratio(inv("zero-copy", p, "hold_new"), fl("in-place", p)))
    row("ours copy / its floor (copied out, best of the slot counts)",
        lambda p: ratio(inv("copy", p, "hold_new"), fl("copy", p)))
    row("iceoryx2 validated / the copied-out floor", lambda p: ratio(ice(p, "hold_validated"), fl("copy", p)))
    row("Redis / ours copy", lambda p: ratio(red(p, "hold_new"), inv("copy", p, "hold_new")))
    rows.append("| **invalidation seen (p50)** |" + " |" * len(ps))
    row("ours: put start → reader sees invalid (spin)", lambda p: ns(inv("copy", p, "observe_invalid")))
    row("same run's floor: a cache-line handoff", lambda p: ns(inv("copy", p, "floor")))
    row("ours / floor (target ≤ 2)", lambda p: ratio(inv("copy", p, "observe_invalid"), inv("copy", p, "floor"), 2.0))
    row("Redis: SET start → peer receives the `invalidate` push", lambda p: ns(red(p, "invalidation")))
    row("Redis / ours", lambda p: ratio(red(p, "invalidation"), inv("copy", p, "observe_invalid")))
    rows.append("| **writes** |" + " |" * len(ps))
    row("ours: put, 8 peers holding copies (`ccs bench ops`)", lambda p: ns(run.ops(p, "put_with_peers")))
    row("Redis: SET round trip, a peer tracking the key", lambda p: ns(red(p, "set_tracked")))
    row("Redis / ours", lambda p: ratio(red(p, "set_tracked"), run.ops(p, "put_with_peers")))
    rows.append("| **reads** |" + " |" * len(ps))
    row("ours: get HIT through a handle, copying (`get_into`)", lambda p: ns(run.ops(p, "get_hit_handle")))
    row("ours: get HIT by key string, copying", lambda p: ns(run.ops(p, "get_hit_key")))
    row("hash lookup + memcpy in private memory (same `ccs bench ops` run)", lambda p: ns(run.ops(p, "private_hash_memcpy")))
    row("ours handle HIT / hash + memcpy (target ≤ 1.2 at 4 KiB)",
        lambda p: ratio(run.ops(p, "get_hit_handle"), run.ops(p, "private_hash_memcpy"), 1.2 if p == 4096 else None))
    row("floor of a handle HIT: array index + memcpy in private memory (`hit_floor`, same run)",
        lambda p: ns(run.ops(p, "hit_floor")))
    row("ours handle HIT / its floor", lambda p: ratio(run.ops(p, "get_hit_handle"), run.ops(p, "hit_floor")))
    row("Redis client-side cache: local HIT (hash lookup + memcpy)", lambda p: ns(red(p, "local_hit")))
    row("ours: `refresh` HIT on a private copy (nothing copied)", lambda p: ns(run.ops(p, "get_hit_cached")))
    row("ours: zero-copy read (`read`: pin, borrow, unpin)", lambda p: ns(run.ops(p, "read_zero_copy")))
    row("ours: get MISS (a peer wrote since; copies)", lambda p: ns(run.ops(p, "get_miss")))
    row("Redis: GET round trip", lambda p: ns(red(p, "get_rtt")))
    row("Redis GET / ours MISS", lambda p: ratio(red(p, "get_rtt"), run.ops(p, "get_miss")))
    if run.python:
        rows.append("| **the Python package agent-coherence 0.15.0 (`CoherenceAdapterCore`, in process)** |" + " |" * len(ps))
        row("their get HIT", lambda p: ns(run.py(p, "get_hit")))
        row("their HIT / our `refresh` HIT", lambda p: ratio(run.py(p, "get_hit"), run.ops(p, "get_hit_cached")))
        row("their get MISS", lambda p: ns(run.py(p, "get_miss")))
        row("their MISS / our MISS", lambda p: ratio(run.py(p, "get_miss"), run.ops(p, "get_miss")))
        row("their put (one peer holding a copy)", lambda p: ns(run.py(p, "put")))
        row("their put / our put (8 peers)", lambda p: ratio(run.py(p, "put"), run.ops(p, "put_with_peers")))
    return head + "\n".join(rows) + "\n"


def size(p: int) -> str:
    return f"{p // 1024} KiB" if p >= 1024 and p % 1024 == 0 else f"{p} B"


def svg(run: Run) -> str:
    series = [
        ("ours, zero-copy", "#1f77b4", "8,0", lambda p: run.inv("zero-copy", p, "hold_new")),
        ("ours, copy", "#1f77b4", "6,3", lambda p: run.inv("copy", p, "hold_new")),
        ("iceoryx2, validated", "#2ca02c", "8,0", lambda p: run.peer("iceoryx2", p, "hold_validated")),
        ("iceoryx2, received", "#2ca02c", "6,3", lambda p: run.peer("iceoryx2", p, "receive")),
        ("Redis, invalidate + GET", "#d62728", "8,0", lambda p: run.peer("redis", p, "hold_new")),
        ("floor, in place", "#7f7f7f", "2,3", lambda p: run.floor("in-place", p)),
        ("floor, copied out", "#7f7f7f", "6,3", lambda p: run.floor("copy", p)),
    ]
    pts = {name: [(p, f(p)) for p in run.payloads if f(p)] for name, _, _, f in series}
    values = [v for s in pts.values() for _, v in s]
    if not values:
        return ""
    W, H, L, R, T, B = 660, 400, 70, 210, 30, 50
    lo = 10 ** math.floor(math.log10(min(values)))
    hi = 10 ** math.ceil(math.log10(max(values)))
    x0, x1 = math.log2(min(run.payloads)), math.log2(max(run.payloads))
    X = lambda p: L + (math.log2(p) - x0) / max(x1 - x0, 1) * (W - L - R)  # noqa: E731
    Y = lambda v: T + (1 - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))) * (H - T - B)  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{L}" y="18" font-size="14">Delivery: writer\'s start → reader holds the new payload (p50)</text>']
    d = lo
    while d <= hi * 1.001:
        y = Y(d)
        label = ns(d).replace(".00", "").replace(".0 ", " ")
        out.append(f'<line x1="{L}" x2="{W - R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{L - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
        d *= 10
    for p in run.payloads:
        out.append(f'<line x1="{X(p):.1f}" x2="{X(p):.1f}" y1="{T}" y2="{H - B}" stroke="#eee"/>')
        out.append(f'<text x="{X(p):.1f}" y="{H - B + 16}" text-anchor="middle">{size(p)}</text>')
    out.append(f'<text x="{(L + W - R) / 2:.0f}" y="{H - 12}" text-anchor="middle">payload (log scale)</text>')
    for i, (name, color, dash, _) in enumerate(series):
        s = pts[name]
        if not s:
            continue
        path = " ".join(f"{X(p):.1f},{Y(v):.1f}" for p, v in s)
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"/>')
        for p, v in s:
            out.append(f'<circle cx="{X(p):.1f}" cy="{Y(v):.1f}" r="3" fill="{color}"/>')
        ly = T + 10 + 20 * i
        out.append(f'<line x1="{W - R + 12}" x2="{W - R + 40}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"/>')
        out.append(f'<text x="{W - R + 46}" y="{ly + 4}">{name}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--commit", default="?")
    ap.add_argument("--svg", type=Path)
    ap.add_argument("--doc", type=Path)
    a = ap.parse_args()
    run = Run(a.dir)
    if not run.payloads:
        print(f"no results in {a.dir}", file=sys.stderr)
        return 1
    text = table(run)
    print(text)
    if a.svg:
        a.svg.parent.mkdir(parents=True, exist_ok=True)
        a.svg.write_text(svg(run))
        print(f"plot: {a.svg}", file=sys.stderr)
    if a.doc:
        doc = a.doc.read_text()
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        block = (
            f"{BEGIN}\nMeasured {datetime.date.today()} at `{a.commit}` by `benches/peers/run --doc`"
            f" (load average at the end: {load}):\n\n{text}{END}"
        )
        if BEGIN in doc and END in doc:
            doc = doc[: doc.index(BEGIN)] + block + doc[doc.index(END) + len(END):]
        else:
            doc += "\n" + block + "\n"
        a.doc.write_text(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())

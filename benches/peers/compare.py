#!/usr/bin/env python3
"""Print our numbers and the Python package's side by side, with the ratio theirs / ours.

Usage: compare.py --peer PEER.json --ours OURS.json [--ours OURS2.json ...] [--criterion DIR]

- PEER.json: the list written by bench_peer.py ({impl, variant, op, payload, median_ns, ...}).
- OURS.json: the stdout of `ccs bench ops --payload N --json`. Any object in it (at any depth)
  with the fields `op` and `median_ns` is one measurement; its payload is its own `payload`
  field, else the enclosing object's `payload`, else N parsed from the file name `ops-N.json`.
  Op names read: get_hit_handle, get_hit_key, get_miss, put_peers (else put).
- --criterion DIR (default target/criterion): used for any (op, payload) that no OURS.json
  supplies, from DIR/<op>/payload/<N>/new/estimates.json (`median.point_estimate`, ns), as
  written by `cargo bench --bench ops`.

Targets: at least 1000x on get HIT, at least 100x on put.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

# (row label, our op names in order of preference, their op, target ratio or None)
ROWS = [
    # Like for like: their HIT returns the agent's cached value; `refresh` on a private copy
    # (`Cached`) checks it is still current and copies nothing.
    ("get HIT (private copy)", ["get_hit_cached"], "get_hit", 1000.0),
    ("get HIT (handle)", ["get_hit_handle"], "get_hit", 1000.0),
    ("get HIT (by key)", ["get_hit_key"], "get_hit", 1000.0),
    # Their HIT hands back a reference to a cached immutable str (no copy): compare with ours
    # that copies nothing either.
    ("get HIT (zero-copy)", ["read_zero_copy"], "get_hit", 1000.0),
    ("get MISS", ["get_miss"], "get_miss", None),
    ("put", ["put_peers", "put"], "put", 100.0),
]


def walk(node, inherited_payload=None):
    """Yield (op, payload, median_ns) from every object with `op` and `median_ns`."""
    if isinstance(node, dict):
        payload = node.get("payload", inherited_payload)
        if "op" in node and "median_ns" in node:
            yield node["op"], payload, float(node["median_ns"])
        for value in node.values():
            yield from walk(value, payload)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value, inherited_payload)


def parse_size(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value)
    m = re.fullmatch(r"\s*(\d+)\s*([KMG]i?B?|B)?\s*", str(value), re.I)
    if not m:
        return None
    unit = (m.group(2) or "").upper().rstrip("B").rstrip("I")
    return int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[unit]


def load_ours(paths: list[Path]) -> dict[tuple[str, int], tuple[float, str]]:
    ours: dict[tuple[str, int], tuple[float, str]] = {}
    for path in paths:
        text = path.read_text().strip()
        if not text:
            continue
        m = re.search(r"(\d+)\.json$", path.name)
        file_payload = int(m.group(1)) if m else None
        for op, payload, median in walk(json.loads(text)):
            size = parse_size(payload) or file_payload
            if size is not None:
                ours[(op, size)] = (median, "ccs bench ops")
    return ours


def from_criterion(directory: Path, op: str, size: int) -> float | None:
    path = directory / op / "payload" / str(size) / "new" / "estimates.json"
    try:
        return float(json.loads(path.read_text())["median"]["point_estimate"])
    except (OSError, KeyError, ValueError):
        return None


def fmt_ns(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:,.2f} ms"
    if ns >= 1e4:
        return f"{ns / 1e3:,.1f} µs"
    return f"{ns:,.0f} ns" if ns >= 100 else f"{ns:,.1f} ns"


def fmt_size(size: int) -> str:
    if size >= 1 << 20 and size % (1 << 20) == 0:
        return f"{size >> 20} MiB"
    if size >= 1 << 10 and size % (1 << 10) == 0:
        return f"{size >> 10} KiB"
    return f"{size} B"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--peer", type=Path, required=True)
    ap.add_argument("--ours", type=Path, action="append", default=[])
    ap.add_argument("--criterion", type=Path, default=Path("target/criterion"))
    args = ap.parse_args()

    peer = json.loads(args.peer.read_text())
    ours = load_ours(args.ours)
    theirs: dict[tuple[str, str, int], float] = {}
    for rec in peer:
        if "median_ns" in rec:
            theirs[(rec.get("variant", ""), rec["op"], int(rec["payload"]))] = float(rec["median_ns"])
    variants = sorted({v for v, _, _ in theirs if not v.startswith("coordinator")})
    sizes = sorted({p for _, op, p in theirs if op in ("get_hit", "get_miss", "put")})

    header = f"{'operation':<24} {'ours':>11}  {'source':<14}"
    for v in variants:
        header += f" {v:>22} {'ratio':>9}"
    print(header)
    print("-" * len(header))
    verdicts = []
    for size in sizes:
        for label, our_ops, their_op, target in ROWS:
            mine, source = None, ""
            for op in our_ops:
                if (op, size) in ours:
                    mine, source = ours[(op, size)]
                    break
                crit = from_criterion(args.criterion, op, size)
                if crit is not None:
                    mine, source = crit, "criterion"
                    break
            line = f"{label + ' ' + fmt_size(size):<24} "
            line += f"{fmt_ns(mine) if mine else 'n/a':>11}  {source:<14}"
            for v in variants:
                t = theirs.get((v, their_op, size))
                ratio = t / mine if (t and mine) else None
                line += f" {fmt_ns(t) if t else 'n/a':>22} {f'{ratio:,.0f}×' if ratio else '-':>9}"
                if ratio and target:
                    ok = "meets" if ratio >= target else "BELOW"
                    verdicts.append(
                        f"{label} {fmt_size(size)} vs {v}: {ratio:,.0f}× ({ok} target {target:,.0f}×)"
                    )
            print(line)
    floor = [r for r in peer if r.get("op") == "http_roundtrip_floor"]
    for rec in floor:
        if "median_ns" in rec:
            print(
                f"\ncross-process, agent-coherence-py coordinator (HTTP + SQLite on 127.0.0.1): "
                f"one authenticated round trip = {fmt_ns(rec['median_ns'])}, a lower bound for "
                f"each of its cross-process gets and puts"
            )
            hit = ours.get(("get_hit_handle", 64), (None,))[0] or from_criterion(
                args.criterion, "get_hit_handle", 64
            )
            if hit:
                print(
                    f"  vs our in-shared-memory get HIT 64 B ({fmt_ns(hit)}, already cross-process "
                    f"capable): {rec['median_ns'] / hit:,.0f}×"
                )
        else:
            print(f"\ncross-process coordinator not measured: {rec.get('note')}")
    if verdicts:
        print("\ntargets (get HIT ≥ 1000×, put ≥ 100×):")
        for v in verdicts:
            print("  " + v)
    return 0


if __name__ == "__main__":
    sys.exit(main())

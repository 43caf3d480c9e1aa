#!/usr/bin/env python3
"""Time per kernel name from an Nsight Compute CSV (the GPU machine has ncu but no nsys).

On the GPU machine:
    ncu --clock-control none --metrics gpu__time_duration.sum --csv --log-file run.csv <program ...>
    python3 tools/gpu/kernel_time_split.py run.csv [--skip N] [--top K]

Prints, per kernel name (templates cut at the first '<' or '('), the launches, the total time and
its share, largest first. --skip drops the first N launches (warm-up, weight initialisation).
ncu serializes kernels, so the sum is the GPU's busy time without overlap, not a wall-clock time.
"""
import argparse
import csv
import re
import sys
from collections import defaultdict


def short(name):
    """The kernel's name without its return type, namespaces' anonymity, template arguments or
    parameters: 'void mii::kernels::(anonymous namespace)::f<8>(int)' -> 'mii::kernels::f'."""
    name = name.replace("(anonymous namespace)::", "").replace("<unnamed>::", "")
    name = re.sub(r"^void ", "", name)
    return re.split(r"[<(]", name, maxsplit=1)[0].strip() or name


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--skip", type=int, default=0)
    ap.add_argument("--top", type=int, default=20)
    a = ap.parse_args()
    rows = []
    with open(a.csv, newline="") as f:
        lines = [line for line in f if line.startswith('"')]  # ncu prints its own lines before the CSV
    for r in csv.DictReader(lines):
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        unit = r.get("Metric Unit", "nsecond")
        v = float(r["Metric Value"].replace(",", ""))
        scale = {"nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3, "second": 1e6}.get(unit, 1e-3)
        rows.append((int(r["ID"]), r["Kernel Name"], v * scale))
    rows.sort()
    rows = rows[a.skip:]
    if not rows:
        sys.exit("kernel_time_split.py: no gpu__time_duration.sum rows")
    total = sum(t for _, _, t in rows)
    by = defaultdict(lambda: [0, 0.0])
    for _, name, t in rows:
        by[short(name)][0] += 1
        by[short(name)][1] += t
    print(f"{len(rows)} launches, {total / 1e3:.3f} ms of kernel time")
    print(f"{'kernel':60s} {'launches':>8s} {'ms':>9s} {'share':>6s}")
    for name, (n, t) in sorted(by.items(), key=lambda kv: -kv[1][1])[: a.top]:
        print(f"{name[:60]:60s} {n:8d} {t / 1e3:9.3f} {100 * t / total:5.1f}%")


if __name__ == "__main__":
    main()

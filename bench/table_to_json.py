#!/usr/bin/env python3
"""Rebuilds per-runner JSON results from the table bench/compare.py printed on the GPU machine.

The device tool returns at most 8 files per call; when a run's JSON files did not come back, its
table (which every run prints last, and saves as table.txt) holds the same figures. Closed-loop
load points appear in the order of mii-bench's --clients list (default 4,16,32).

  python3 bench/table_to_json.py TABLE.txt OUT_DIR [--clients 4,16,32]
"""
import json
import os
import re
import sys


def main(table, out, clients):
    docs = {}
    model = gpu = commit = None
    peers = []
    load_seen = {}
    for line in open(table, encoding="utf-8"):
        m = re.match(r"== (\S+)\s+\(GPU: (.*), mii commit (\S+)\)", line)
        if m:
            model, gpu, commit = m.groups()
            peers, load_seen = [], {}
            continue
        if line.startswith("scenario"):
            peers = re.findall(r"(transformers-\S+)", line)
            continue
        parts = line.split()
        if not model or len(parts) < 5 or parts[0] not in ("latency", "prefill", "throughput", "load", "cold"):
            continue
        scenario, name = parts[0], parts[1]
        values = parts[2:]
        key = (model, "mii")
        d = docs.setdefault(key, {"runner": "mii", "model": model, "gpu": gpu, "commit": commit, "results": [],
                                  "source": os.path.basename(table)})
        config = {}
        if scenario == "load":
            n = load_seen.get(name, 0)
            load_seen[name] = n + 1
            config = {"clients": str(clients[n]) if n < len(clients) else str(n)}
        res = next((r for r in d["results"] if r["scenario"] == scenario and r["config"] == config), None)
        if not res:
            res = {"scenario": scenario, "config": config, "figures": {}}
            d["results"].append(res)
        res["figures"][name] = {"value": float(values[0]), "floor": float(values[1])}
        for i, peer in enumerate(peers):
            idx = 3 + 2 * i
            if idx < len(values) and values[idx] != "-":
                pd = docs.setdefault((model, peer), {"runner": peer, "model": model, "gpu": gpu, "results": [],
                                                     "source": os.path.basename(table)})
                pres = next((r for r in pd["results"] if r["scenario"] == scenario), None)
                if not pres:
                    pres = {"scenario": scenario, "config": {}, "figures": {}}
                    pd["results"].append(pres)
                pres["figures"][name] = {"value": float(values[idx])}
    os.makedirs(out, exist_ok=True)
    for (model, runner), d in docs.items():
        path = os.path.join(out, f"{runner}-{model}.json")
        with open(path, "w") as f:
            json.dump(d, f, indent=1)
        print("wrote", path)


if __name__ == "__main__":
    clients = [4, 16, 32]
    if "--clients" in sys.argv:
        clients = [int(x) for x in sys.argv[sys.argv.index("--clients") + 1].split(",")]
    main(sys.argv[1], sys.argv[2], clients)

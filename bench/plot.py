#!/usr/bin/env python3
"""Turns bench JSON results into PNG plots: output tokens/s by scenario and runner, and load
latency vs clients, mii and peers on the same axes.

  python3 bench/plot.py RESULTS_DIR OUT.png      (needs matplotlib: apt-get install python3-matplotlib)
"""
import glob
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def tick_label(docs, scenario):
    """The scenario with its sizes (batch x prompt, generated), from the first run that has it."""
    c = next((r["config"] for d in docs for r in d["results"] if r["scenario"] == scenario), {})
    if scenario == "latency":
        return f"decode, batch {c.get('batch', '?')}"
    if scenario == "prefill":
        return f"prefill {c.get('batch', '?')} x {c.get('prompt', '?')}"
    return f"{scenario} {c.get('batch', '?')} x ({c.get('prompt', '?')}, {c.get('gen', '?')})"


def main(folder, out):
    docs = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(folder, "*.json")))]
    speed = {"latency", "prefill", "throughput"}
    models = sorted({os.path.basename(d["model"].rstrip("/")) for d in docs
                     if any(r["scenario"] in speed for r in d["results"])})
    fig, axes = plt.subplots(len(models), 2, figsize=(13, 4.5 * len(models)), squeeze=False)
    for row, model in enumerate(models):
        ds = [d for d in docs if os.path.basename(d["model"].rstrip("/")) == model]
        ax = axes[row][0]
        figures = [("latency", "decode_tokens_per_s"), ("prefill", "prefill_tokens_per_s"),
                   ("throughput", "output_tokens_per_s")]
        width = 0.8 / max(1, len(ds))
        for i, d in enumerate(ds):
            vals = []
            for sc, name in figures:
                v = next((r["figures"][name]["value"] for r in d["results"] if r["scenario"] == sc and name in r["figures"]), 0)
                vals.append(v)
            ax.bar([x + i * width for x in range(len(figures))], vals, width, label=d["runner"])
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(figures))])
        ax.set_xticklabels([tick_label(ds, sc) for sc, _ in figures], fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("tokens/s (log)")
        ax.set_title(f"{model}: speed by scenario")
        ax.legend(fontsize=8)
        ax = axes[row][1]
        if not any(r["scenario"] == "load" for d in ds for r in d["results"]):
            ax.axis("off")
            ax.text(0.5, 0.5, "no load scenario in this run", ha="center", va="center")
            continue
        for d in ds:
            pts = [(int(r["config"]["clients"]), r["figures"]["latency_p50"]["value"], r["figures"]["latency_p99"]["value"],
                    r["figures"]["output_tokens_per_s"]["value"]) for r in d["results"] if r["scenario"] == "load"]
            if not pts:
                continue
            pts.sort()
            ax.plot([p[3] for p in pts], [p[1] for p in pts], "o-", label=f"{d['runner']} p50")
            ax.plot([p[3] for p in pts], [p[2] for p in pts], "x--", label=f"{d['runner']} p99")
            for p in pts:
                ax.annotate(f"{p[0]} clients", (p[3], p[1]), fontsize=7)
        ax.set_xlabel("output tokens/s under load")
        ax.set_ylabel("request latency (s)")
        ax.set_title(f"{model}: latency vs load (closed loop)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print("wrote", out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

#!/usr/bin/env python3
"""Writes every figure of bench/RESULTS.md from the committed result JSON (stdlib only).

  python3 bench/results_md.py            rewrites the generated blocks of bench/RESULTS.md
  python3 bench/results_md.py --check    exits 1, with a diff, when RESULTS.md differs from them
  (--file PATH and --results DIR: another RESULTS.md / results folder, for tests)

A generated block is
    <!-- generated: KIND key=value ... -->
    ...
    <!-- end generated -->
and its body is replaced by what KIND renders from bench/results/<run>/ (run=...). Text outside
the blocks is prose and must hold no measured figure: a figure without a JSON file behind it
cannot be in RESULTS.md. tests/bench/bench_scripts_test.py runs --check in CTest.

Kinds: run-header, shape-title, main-table, load-table, cold-table, same-call, goals, tokenizer,
serve-load, serve-overhead, serve-paired, prefix-cache, grid-table, fp8-table, kv-fp8-table, moe-routing-table, pdl-table (see the render_*
functions). Shapes: the bench/configs/<shape>
names (mistral-7b, llama3-8b, mixtral-8x7b).
"""
import argparse
import difflib
import glob
import json
import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BLOCK = re.compile(r"(<!-- generated: (?P<spec>[^>]*?) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)

SHAPE_NAMES = {"mistral-7b": "Mistral-7B", "llama3-8b": "Llama-3-8B", "mixtral-8x7b": "Mixtral-8x7B"}
PEERS = [("transformers-eager", "transformers eager"), ("transformers-compile", "transformers static + compile"),
         ("llama.cpp", "llama.cpp")]
LOWER_IS_BETTER = {"time_to_first_token", "decode_step", "wall"}
# The rows of the main table: (scenario, figure, label shown).
MAIN_ROWS = [("latency", "time_to_first_token", "time to first token"), ("latency", "decode_step", "decode step"),
             ("latency", "decode_tokens_per_s", "decode tokens/s"), ("prefill", "prefill_tokens_per_s", "tokens/s"),
             ("throughput", "output_tokens_per_s", "output tokens/s"),
             ("throughput", "total_tokens_per_s", "total tokens/s")]
UNITS = {"time_to_first_token": "ms", "decode_step": "ms"}

# TensorRT-LLM's published offline throughput (output tokens/s, trtllm-bench, one GPU) for
# Llama-3.1-8B with FP8 weights (nvidia/Llama-3.1-8B-Instruct-FP8) on an H200, by (input, output)
# length: NVIDIA/TensorRT-LLM docs/source/performance/perf-overview.md (read at commit 00f3768).
# Published figures, cited beside ours; not run here.
TRTLLM_SOURCE = ("TensorRT-LLM's `docs/source/performance/perf-overview.md` (NVIDIA/TensorRT-LLM at 00f3768): "
                 "Llama-3.1-8B-Instruct-FP8 on one H200, trtllm-bench")
TRTLLM_H200_FP8_LLAMA31_8B = {(128, 128): 27911, (128, 2048): 26221, (2048, 128): 3538, (500, 2000): 20770,
                              (2048, 2048): 12194}


class MissingData(Exception):
    pass


# ---- reading ----------------------------------------------------------------------------------

def load(path):
    with open(path) as f:
        return json.load(f)


class Run:
    """One folder of result JSON (bench/results/<run>/)."""

    def __init__(self, results_dir, run):
        self.name = run
        self.dir = os.path.join(results_dir, run)
        if not os.path.isdir(self.dir):
            raise MissingData(f"no results folder {self.dir}")

    def doc(self, rel, required=True):
        path = os.path.join(self.dir, rel)
        if not os.path.exists(path):
            if required:
                raise MissingData(f"{path} is missing")
            return None
        return load(path)

    def mii(self, shape):
        return self.doc(f"mii-{shape}.json")

    def peer(self, runner, shape):
        for p in sorted(glob.glob(os.path.join(self.dir, "*.json"))):
            d = load(p)
            if d.get("runner") == runner and os.path.basename(d.get("model", "").rstrip("/")) == shape:
                return d
        return None


def figure(doc, scenario, name, config=None):
    """The figure dict of `scenario` (whose config includes `config`), or None."""
    for r in doc.get("results", []):
        if r["scenario"] != scenario:
            continue
        if config and any(r.get("config", {}).get(k) != v for k, v in config.items()):
            continue
        if name in r["figures"]:
            return r["figures"][name]
    return None


def value(doc, scenario, name, config=None):
    f = figure(doc, scenario, name, config) if doc else None
    return None if f is None else f["value"]


# ---- formatting -------------------------------------------------------------------------------

def num(v, unit=""):
    """A figure as RESULTS.md writes it: ms and s with two decimals, rates by size."""
    if unit in ("ms", "s"):
        return f"{v:.2f} {unit}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.1f}"
    return f"{v:.2f}"


def times(r):
    return f"{r:.2f}×"


def commit_of(doc):
    c = doc.get("commit", "unknown")
    return "not recorded" if c in ("", "unknown") else c


# ---- renderers --------------------------------------------------------------------------------

def render_run_header(run, args):
    """Machine, peers' versions, ceilings and commit of each shape's run."""
    shapes = args["shapes"].split(",")
    lines = []
    first = run.mii(shapes[0])
    lines.append(f"GPU: {first['gpu']}. mii commit: " +
                 ", ".join(f"{commit_of(run.mii(s))} ({SHAPE_NAMES[s]})" for s in shapes) + ".")
    hf = next((d for d in (run.peer("transformers-eager", s) for s in shapes) if d), None)
    lc = next((d for d in (run.peer("llama.cpp", s) for s in shapes) if d), None)
    if hf:
        lines.append(f"Peers: transformers {hf.get('transformers', '?')} with torch {hf.get('torch', '?')}" +
                     (f"; llama.cpp {lc['llama_cpp'].split()[0][:7]} ({lc.get('settings', '')})" if lc else "") + ".")
    for s in shapes:
        r = run.mii(s)["roofline"]
        lines.append(f"Ceilings measured by `mii-bench --roofline` in the {SHAPE_NAMES[s]} run: copy "
                     f"{r['copy_bytes_per_s'] / 1e12:.2f} TB/s, bf16 GEMM {r['bf16_flops_per_s'] / 1e12:.0f} TFLOP/s.")
    return "\n".join(lines)


def render_shape_title(run, args):
    shape = args["shape"]
    d = run.mii(shape)
    cfg = load(os.path.join(ROOT, "bench", "configs", shape, "config.json"))
    params = d["weight_bytes"] / 2  # bf16
    return (f"### {SHAPE_NAMES[shape]} shape ({params / 1e9:.2f} B parameters, {d['weight_bytes'] / 1e9:.2f} GB of "
            f"bf16 weights, vocabulary {cfg['vocab_size']:,})")


def render_main_table(run, args):
    shape = args["shape"]
    mii = run.mii(shape)
    peers = [(label, run.peer(runner, shape)) for runner, label in PEERS]
    gemm = mii["roofline"]["bf16_flops_per_s"]
    head = ["scenario", "figure", "mii", "floor", "mii ÷ floor"] + [label for label, _ in peers] + ["mii vs best peer"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    last_scenario = None
    for scenario, name, label in MAIN_ROWS:
        f = figure(mii, scenario, name)
        if f is None:
            continue
        r = next(x for x in mii["results"] if x["scenario"] == scenario)
        c = r.get("config", {})
        if scenario == last_scenario:
            title = ""
        elif scenario == "latency":
            title = f"latency ({c['batch']} × {c['prompt']} in, {c['gen']} out)"
        elif scenario == "prefill":
            title = f"prefill ({c['batch']} × {c['prompt']})"
        else:
            title = f"offline throughput ({c['batch']} × ({c['prompt']} in, {c['gen']} out))"
        last_scenario = scenario
        unit = UNITS.get(name, "")
        v, fl = f["value"], f.get("floor", 0)
        low = name in LOWER_IS_BETTER
        if not fl:
            floor, vs_floor = "", ""
        elif name == "prefill_tokens_per_s":
            tflops = value(mii, "prefill", "model_tflops")
            floor, vs_floor = num(fl, unit), f"{100 * tflops * 1e12 / gemm:.0f} % of GEMM"
        else:
            floor, vs_floor = num(fl, unit), times(v / fl if low else fl / v)
        cells = [title, label, num(v, unit), floor, vs_floor]
        peer_values = []
        for _, p in peers:
            pv = value(p, scenario, name)
            cells.append(num(pv, unit) if pv else "–")
            if pv:
                peer_values.append(pv)
        if peer_values:
            best = min(peer_values) if low else max(peer_values)
            cells.append(times(best / v if low else v / best))
        else:
            cells.append("")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def render_load_table(run, args):
    shape = args["shape"]
    mii = run.mii(shape)
    loads = [r for r in mii["results"] if r["scenario"] == "load"]
    if not loads:
        raise MissingData(f"mii-{shape}.json has no load scenario")
    c = loads[0]["config"]
    plo, phi = c["prompt"].split(":")
    glo, ghi = c["gen"].split(":")
    sla = dict(kv.split("<=") if "<=" in kv else kv.split(">=") for kv in c["sla"].split(","))
    lines = [f"Closed loop, prompts uniform in {plo}–{phi} tokens, {glo}–{ghi} generated, {c['requests']} requests "
             f"per point; SLA: time to first token ≤ {float(sla['ttft'].rstrip('s')):g} s and ≥ "
             f"{float(sla['tps']):g} tokens/s per request.", "",
             "| clients | requests/s | output tokens/s | latency p50 / p90 / p99 | TTFT p50 / p99 | effective requests/s (SLA) |",
             "|---|---|---|---|---|---|"]
    for r in loads:
        f = {k: x["value"] for k, x in r["figures"].items()}
        lines.append(f"| {r['config']['clients']} | {f['requests_per_s']:.2f} | {num(f['output_tokens_per_s'])} | "
                     f"{f['latency_p50']:.2f} / {f['latency_p90']:.2f} / {f['latency_p99']:.2f} s | "
                     f"{f['ttft_p50']:.2f} / {f['ttft_p99']:.2f} s | {f['effective_requests_per_s']:.2f} |")
    return "\n".join(lines)


def render_cold_table(run, args):
    """Process start to first token from a real checkpoint file (mii-cold-<shape>.json)."""
    lines = ["| shape | checkpoint | exec → main | weights → device | first token | process start → first token |",
             "|---|---|---|---|---|---|"]
    split = []
    for shape in args["shapes"].split(","):
        d = run.doc(f"mii-cold-{shape}.json", required=False)
        if d is None:
            lines.append(f"| {SHAPE_NAMES[shape]} | not measured in this run | | | | |")
            continue
        f = {k: x["value"] for k, x in d["results"][0]["figures"].items()}
        lines.append(f"| {SHAPE_NAMES[shape]} | {d['weight_bytes'] / 1e9:.2f} GB, in the page cache | "
                     f"{f['exec_to_main']:.2f} s | {f['load_weights']:.2f} s | {f['first_token']:.2f} s | "
                     f"{f['process_start_to_first_token']:.2f} s |")
        if "open_plan" in f:  # mii-bench since issue 19 splits the load
            split.append(f"| {SHAPE_NAMES[shape]} | {f['cuda_init']:.2f} s | {f['open_plan']:.3f} s | "
                         f"{f['weights_to_device']:.2f} s ({f['weights_gb_per_s']:.1f} GB/s) | {f['kv_cache']:.2f} s | "
                         f"{f['load_weights'] - f['open_plan'] - f['weights_to_device'] - f['kv_cache']:.2f} s |")
    if split:
        lines += ["", "Where the load's time went (weights → device above is the whole pipeline construction):", "",
                  "| shape | CUDA init | open + plan | weights read, copied, converted | KV cache | other (tokenizer, "
                  "engine thread) |", "|---|---|---|---|---|---|"] + split
    return "\n".join(lines)


def render_same_call(run, args):
    """mii re-measured in the call that ran the compile peer, against the main run."""
    parts, worst, commits = [], 0.0, set()
    for shape in args["shapes"].split(","):
        d = run.doc(os.path.join("same-call", f"mii-{shape}-with-compile-peer.json"))
        main = run.mii(shape)
        commits.add(commit_of(d))
        step, tps = value(d, "latency", "decode_step"), value(d, "throughput", "output_tokens_per_s")
        parts.append(f"{step:.2f} ms / {num(tps)} tok/s ({SHAPE_NAMES[shape]})")
        for sc, name in (("latency", "decode_step"), ("throughput", "output_tokens_per_s")):
            worst = max(worst, abs(value(d, sc, name) / value(main, sc, name) - 1))
    return (f"In the call that ran the compile peer, mii gave {' and '.join(parts)} (decode step / output tokens/s), within "
            f"{100 * worst:.1f} % of the main run, so the ratios use the main run (commit of that call: "
            f"{', '.join(sorted(commits))}).")


def render_goals(run, args):
    """Issue 7's goals, each result and verdict computed from the JSON."""
    shapes = args["shapes"].split(",")
    rows = ["| goal | result |", "|---|---|"]

    def verdict(ok):
        return "met" if ok else "not met"

    parts = []
    for s in shapes:
        d = run.mii(s)
        f = figure(d, "latency", "decode_step")
        tps = value(d, "latency", "decode_tokens_per_s")
        ratio = f["value"] / f["floor"]
        parts.append(f"{SHAPE_NAMES[s]}: {f['value']:.2f} ms = {ratio:.2f}× the floor ({verdict(ratio <= 1.15)}; "
                     f"1.15× is {1.15 * f['floor']:.2f} ms), {tps:.0f} tokens/s ({verdict(tps >= 180)})")
    rows.append("| batch-1 decode ≤ 1.15× floor, ≥ 180 tokens/s | " + "; ".join(parts) + " |")

    parts = []
    for s in shapes:
        d = run.mii(s)
        pct = 100 * value(d, "prefill", "model_tflops") * 1e12 / d["roofline"]["bf16_flops_per_s"]
        eager = value(run.peer("transformers-eager", s), "prefill", "prefill_tokens_per_s")
        ahead = value(d, "prefill", "prefill_tokens_per_s") / eager
        parts.append(f"{SHAPE_NAMES[s]}: {pct:.0f} % of the GEMM rate ({value(d, 'prefill', 'model_tflops'):.0f} "
                     f"TFLOP/s of model FLOPs), {ahead:.2f}× transformers eager ({verdict(pct >= 60 and ahead > 1)})")
    rows.append("| prefill 8 × 2048 ≥ 60 % of the GEMM rate, ahead of transformers | " + "; ".join(parts) + " |")

    parts = []
    for s in shapes:
        d = run.mii(s)
        f = figure(d, "throughput", "output_tokens_per_s")
        compile_ = value(run.peer("transformers-compile", s), "throughput", "output_tokens_per_s")
        need = 3 * compile_
        parts.append(f"{SHAPE_NAMES[s]}: {num(f['value'])} tok/s = {f['value'] / compile_:.2f}× the static-cache + "
                     f"compile peer ({num(compile_)} tok/s; {verdict(f['value'] >= need)}). 3× that is {num(need)} "
                     f"tok/s, {100 * need / f['floor']:.0f} % of this shape's floor ({num(f['floor'])} tok/s: the "
                     f"prompts' FLOPs at the measured GEMM rate + every step reading weights and KV at the measured "
                     f"copy rate); mii is at {f['floor'] / f['value']:.2f}× the floor")
    rows.append("| throughput 64 × (512, 128) ≥ 3× transformers static cache + compile | " + "; ".join(parts) + " |")

    parts = []
    for s in shapes:
        d = run.doc(f"mii-cold-{s}.json", required=False)
        if d is None:
            parts.append(f"{SHAPE_NAMES[s]}: not measured in this run")
            continue
        t = value(d, "cold", "process_start_to_first_token")
        parts.append(f"{SHAPE_NAMES[s]}: {t:.2f} s ({verdict(t <= 10)})")
    rows.append("| cold start ≤ 10 s | " + "; ".join(parts) + " |")

    parts = []
    for s in shapes:
        d = run.mii(s)
        other = d["gpu_used_after_load"] - d["gpu_used_before"] - d["weight_bytes"] - d["kv_cache_bytes"]
        free_after_weights = d["gpu_memory_total"] - d["gpu_used_before"] - d["weight_bytes"]
        parts.append(f"{SHAPE_NAMES[s]}: weights {d['weight_bytes'] / 1e9:.2f} GB + KV cache "
                     f"{d['kv_cache_bytes'] / 1e9:.2f} GB ({100 * d['kv_cache_bytes'] / free_after_weights:.0f} % of the "
                     f"memory free after the weights) + {other / 1e9:.2f} GB of other device memory after loading: CUDA "
                     f"context, cuBLASLt workspace, step buffers ({verdict(other < 2e9)})")
    rows.append("| peak memory: weights + KV + < 2 GB workspace | " + "; ".join(parts) + " |")
    return "\n".join(rows)


def render_tokenizer(run, args):
    d = run.doc("tokenizer-bench.json", required=False)
    if d is None:
        return ("No committed measurement in this run: the figures an earlier version of this page gave had no "
                "JSON behind them and were dropped. To measure (GPU machine's CPU, `.cache/tokenizers` carried): "
                "`bash tools/gpu/build.sh tokenizer-bench && RESULTS=$OUT bash bench/run_tokenizer_bench.sh build-gpu 3`; "
                "commit `$OUT/tokenizer-bench.json` into that machine's run folder `bench/results/<date>-<machine>/` "
                "and point a `tokenizer` block at it.")
    hf = {r["tokenizer"]: r for r in d.get("hf", [])}
    any_row = d["mii"][0]
    lines = [f"CPU: {d.get('cpu', '?')}, one core; {any_row['text_bytes'] / 1e6:.2f} MB of text in "
             f"{any_row['chunks']:,} paragraphs; HF tokenizers {next(iter(hf.values())).get('version', '?') if hf else '(not run)'} "
             f"with parallelism off; mii commit {commit_of(d)}.", "",
             "| tokenizer | mii MB/s | HF tokenizers MB/s | ratio | mii load | HF load | tokens |", "|---|---|---|---|---|---|---|"]
    for m in d["mii"]:
        h = hf.get(m["tokenizer"])
        same = "" if not h else (" (same)" if h["tokens"] == m["tokens"] else f" (HF: {h['tokens']:,})")
        lines.append(f"| {m['tokenizer']} | {m['encode_mb_s']:.1f} | {h['encode_mb_s']:.2f} | "
                     f"{m['encode_mb_s'] / h['encode_mb_s']:.2f}× | {m['load_ms']:.1f} ms | {h['load_ms']:.0f} ms | "
                     f"{m['tokens']:,}{same} |" if h else
                     f"| {m['tokenizer']} | {m['encode_mb_s']:.1f} | – | | {m['load_ms']:.1f} ms | | {m['tokens']:,} |")
    return "\n".join(lines)


def render_serve_load(run, args):
    """The load scenario in-process (mii-bench) and through HTTP (mii-serve + mii-serve-load)."""
    inproc = run.doc(args["inproc"])
    http = run.doc(args["http"])
    r = next(x for x in inproc["results"] if x["scenario"] == "load")
    f = {k: x["value"] for k, x in r["figures"].items()}
    c = r["config"]
    lines = [f"{c['clients']} closed-loop clients, {c['requests']} requests, prompts uniform in {c['prompt']} tokens, "
             f"{c['gen']} generated (the same distributions, not the same draws); mii commit {commit_of(inproc)}.", "",
             "| path | requests/s | output tokens/s | effective requests/s (SLA) | latency p50 / p90 / p99 | TTFT p50 / p99 |",
             "|---|---|---|---|---|---|",
             f"| in-process (`mii-bench --scenario load`) | {f['requests_per_s']:.2f} | {num(f['output_tokens_per_s'])} | "
             f"{f['effective_requests_per_s']:.2f} | {f['latency_p50']:.2f} / {f['latency_p90']:.2f} / {f['latency_p99']:.2f} s | "
             f"{f['ttft_p50']:.2f} / {f['ttft_p99']:.2f} s |",
             f"| HTTP, streamed (`mii-serve` + `mii-serve-load`) | {http['requests_per_s']:.2f} | "
             f"{num(http['output_tokens_per_s'])} | {http['effective_requests_per_s']:.2f} | "
             f"{http['latency_p50']:.2f} / {http['latency_p90']:.2f} / {http['latency_p99']:.2f} s | "
             f"{http['ttft_p50']:.2f} / {http['ttft_p99']:.2f} s |", "",
             f"HTTP's effective throughput is {100 * http['effective_requests_per_s'] / f['effective_requests_per_s']:.1f} % "
             f"of in-process; its median latency differs by {1000 * (http['latency_p50'] - f['latency_p50']):+.0f} ms "
             f"(the draws differ, so this is within the runs' spread, not the cost of HTTP itself)."]
    return "\n".join(lines)


def render_serve_overhead(run, args):
    """What HTTP adds to one request: one client, requests one after another, fixed lengths, in-process
    (mii-bench --scenario load --clients 1) against streamed HTTP (mii-serve + mii-serve-load --clients 1)."""
    inproc = run.doc(args["inproc"])
    http = run.doc(args["http"])
    r = next(x for x in inproc["results"] if x["scenario"] == "load")
    f = {k: x["value"] for k, x in r["figures"].items()}
    c = r["config"]
    if c["clients"] != "1" or int(http["clients"]) != 1 or c["prompt"] != http["prompt"] or c["gen"] != http["gen"]:
        raise MissingData(f"serve-overhead needs one client and the same lengths on both paths: in-process "
                          f"{c['clients']} clients {c['prompt']}/{c['gen']}, HTTP {http['clients']} clients "
                          f"{http['prompt']}/{http['gen']}")
    plen, glen = c["prompt"].split(":")[0], c["gen"].split(":")[0]
    row = "| {} | {:.1f} / {:.1f} ms | {:.1f} / {:.1f} ms | {} |"
    return "\n".join([
        f"One client, {c['requests']} requests one after another, each {plen} prompt tokens and {glen} generated "
        f"(greedy, EOS ignored); mii commit of the in-process run {commit_of(inproc)}.", "",
        "| path | latency p50 / p99 | time to first token p50 / p99 | output tokens/s |", "|---|---|---|---|",
        row.format("in-process (`mii-bench --scenario load --clients 1`)", 1000 * f["latency_p50"], 1000 * f["latency_p99"],
                   1000 * f["ttft_p50"], 1000 * f["ttft_p99"], num(f["output_tokens_per_s"])),
        row.format("HTTP, streamed (`mii-serve` + `mii-serve-load --clients 1`)", 1000 * http["latency_p50"],
                   1000 * http["latency_p99"], 1000 * http["ttft_p50"], 1000 * http["ttft_p99"],
                   num(http["output_tokens_per_s"])), "",
        f"HTTP adds {1000 * (http['latency_p50'] - f['latency_p50']):+.1f} ms to the median request and "
        f"{1000 * (http['ttft_p50'] - f['ttft_p50']):+.1f} ms to its median time to first token."])


def render_prefix_cache(run, args):
    """Prefix caching on and off, through mii-serve: shared system prompt, and nothing shared."""
    shape = args["shape"]
    d = {(w, c): run.doc(f"prefix-{w}-{c}-{shape}.json") for w in ("shared", "distinct") for c in ("on", "off")}
    s = d[("shared", "on")]
    lines = [f"{SHAPE_NAMES[shape]} shape; {s['requests']} requests sent at once ({s['clients']} clients), "
             f"{s['gen'].split(':')[0]} tokens out each. *shared*: a {s['shared_prefix']:,}-token system prompt common "
             f"to all, then {s['prompt'].split(':')[0]} distinct tokens; *distinct*: "
             f"{d[('distinct', 'on')]['prompt'].split(':')[0]} distinct tokens each.", "",
             "| workload | prefix caching | output tokens/s | wall | TTFT p50 / p99 | latency p50 |", "|---|---|---|---|---|---|"]
    for w in ("shared", "distinct"):
        for c in ("on", "off"):
            x = d[(w, c)]
            lines.append(f"| {w} | {c} | {num(x['output_tokens_per_s'])} | {x['wall_s']:.2f} s | "
                         f"{x['ttft_p50']:.2f} / {x['ttft_p99']:.2f} s | {x['latency_p50']:.2f} s |")
    on, off = d[("shared", "on")], d[("shared", "off")]
    don, doff = d[("distinct", "on")], d[("distinct", "off")]
    lines += ["", f"Shared prompt: {on['output_tokens_per_s'] / off['output_tokens_per_s']:.2f}× the throughput and "
                  f"{off['ttft_p50'] / on['ttft_p50']:.1f}× faster median time to first token with caching (goals: ≥ 3× "
                  f"and ≥ 5×); nothing shared: caching on runs at "
                  f"{100 * don['output_tokens_per_s'] / doff['output_tokens_per_s']:.1f} % of caching off (goal: cost ≤ 2 %)."]
    return "\n".join(lines)


# ---- the throughput grid ----------------------------------------------------------------------

def experts_touched(cost, batch):
    """Distinct experts a layer runs for `batch` tokens under uniform top-k routing: E(1 - (1 - k/E)^B)."""
    e, k = cost.get("experts", 0), cost.get("top_k", 0)
    if e <= 0:
        return 0.0
    return e * (1.0 - (1.0 - min(k, e) / e) ** max(batch, 1.0))


def step_weight_bytes(cost, batch):
    """Weight bytes a decode step of `batch` tokens reads (bench/cost_model.hpp, cost_model::step_weight_bytes)."""
    b = max(batch, 1.0)
    return (cost["weight_bytes"] - cost.get("table_bytes", 0) + b * cost.get("table_row_bytes", 0) -
            cost.get("sparse_layers", 0) * (cost.get("experts", 0) - experts_touched(cost, b)) *
            cost.get("expert_bytes", 0))


def grid_floor(cost, roofline, prompt, output, requests, concurrency):
    """bench/cost_model.hpp's throughput_floor(): every prompt at the GEMM rate, then
    requests * (output - 1) / B decode steps, each the longer of its bytes (the weights it reads + B
    sequences' KV at prompt + output/2 tokens) at the copy rate and its FLOPs (B tokens' layers,
    lm_head and attention) at the GEMM rate. Returns (seconds, decode step seconds, memory bound)."""
    bw, gemm = roofline["copy_bytes_per_s"], roofline["bf16_flops_per_s"]
    if not bw or not gemm or requests <= 0:
        return 0.0, 0.0, False
    fp8_rate = roofline.get("e4m3_flops_per_s") or 0.0
    fp8 = cost.get("fp8_matmul_params", 0.0) if fp8_rate else 0.0

    def compute_s(tokens, other_flops):  # cost_model.hpp's compute_s(): FP8 linear layers at the e4m3 rate
        s = (tokens * 2.0 * (cost["matmul_params"] - fp8) + other_flops) / gemm
        return s + tokens * 2.0 * fp8 / fp8_rate if fp8 > 0 else s

    b = max(1.0, min(concurrency, requests))
    ctx = prompt + output / 2.0
    prompt_s = compute_s(prompt, 2.0 * cost["head_params"] + cost["attn_flops_per_pair"] * prompt * prompt / 2.0)
    steps = requests * max(output - 1.0, 0.0) / b
    bytes_s = (step_weight_bytes(cost, b) + b * ctx * cost["kv_bytes_per_token"]) / bw
    flops_s = compute_s(b, b * (2.0 * cost["head_params"] + cost["attn_flops_per_pair"] * ctx))
    step = max(bytes_s, flops_s)
    return requests * prompt_s + steps * step, step, bytes_s >= flops_s


def render_grid_table(run, args):
    """mii-bench --scenario grid (mii-grid-<shape>.json) beside TensorRT-LLM's published FP8 H200 figures.
    Each floor is recomputed from the JSON's cost model and ceilings: a floor that bench/cost_model.hpp
    and grid_floor() disagree on stops the page."""
    shape = args["shape"]
    d = run.doc(args.get("file", f"mii-grid-{shape}.json"))
    cells = [r for r in d["results"] if r["scenario"] == "grid"]
    if not cells:
        raise MissingData(f"mii-grid-{shape}.json has no grid scenario")
    cost, roof = d["cost_model"], d["roofline"]
    c0 = cells[0]["config"]
    fp8 = d.get("quantization") == "fp8"
    weights = "FP8 linear layers (e4m3 weights per channel, activations per token; random values)" if fp8 else \
        "bf16 weights (random values)"
    lines = [f"{SHAPE_NAMES[shape]} shape, {weights}, {d['gpu']}, mii commit {commit_of(d)}. Engine "
             f"budgets per forward: {int(c0['max_batch_tokens']):,} tokens and {int(c0['max_seqs']):,} sequences; KV "
             f"cache {int(c0['kv_blocks']):,} blocks of {c0['kv_block_size']} tokens. Requests in flight: up to the "
             f"sequence budget and what the KV cache holds at full length (*kv*), lowered where one wave's floor would "
             f"pass the cell's time budget (*time*).", "",
             "| input / output | requests | in flight (cap) | mii output tokens/s | floor | mii ÷ floor | decode step "
             "bound | TensorRT-LLM (published, FP8, not run here) | mii ÷ published |",
             "|---|---|---|---|---|---|---|---|---|"]
    preempted = []
    for r in cells:
        c, f = r["config"], r["figures"]["output_tokens_per_s"]
        p, o, n, b = int(c["prompt"]), int(c["gen"]), int(c["requests"]), int(c["concurrency"])
        floor_s, _, memory_bound = grid_floor(cost, roof, p, o, n, b)
        want = n * o / floor_s if floor_s else 0.0
        if abs(want - f["floor"]) > 5e-3 * max(want, 1.0):
            raise MissingData(f"grid {p}/{o}: the JSON's floor {f['floor']:.1f} tok/s is not the cost model's "
                              f"{want:.1f} tok/s (bench/cost_model.hpp and grid_floor() disagree)")
        ref = TRTLLM_H200_FP8_LLAMA31_8B.get((p, o)) if shape == "llama3-8b" else None
        if int(c.get("preemptions", "0")):
            preempted.append(f"{p}/{o}: {int(c['preemptions']):,}")
        lines.append(f"| {p} / {o} | {n:,} | {b:,} ({c['concurrency_cap']}) | {num(f['value'])} | {num(f['floor'])} | "
                     f"{times(f['floor'] / f['value'] if f['value'] else 0)} | "
                     f"{'memory' if memory_bound else 'compute'} | {num(ref) if ref else '–'} | "
                     f"{times(f['value'] / ref) if ref else ''} |")
    rates = ("the measured GEMM rates (the FP8 linear layers' FLOPs at the e4m3 rate, lm_head and attention at "
             "bf16's)" if fp8 else "the measured GEMM rate")
    lines += ["", f"Floor: every prompt at {rates}, then requests × (output − 1) / in-flight decode "
                  "steps, each the longer of its bytes (the weights it reads and each sequence's KV) at the measured copy "
                  f"rate and its FLOPs at {'the same rates' if fp8 else 'the GEMM rate'} (`bench/cost_model.hpp`). "
                  "Published column: " + TRTLLM_SOURCE +
                  ("; FP8 weights as here, a different engine." if fp8 else
                   "; FP8 weights and a different engine, so the last column compares engines and precisions together.")]
    if preempted:
        lines.append(f"Sequences preempted for KV blocks (recomputed): {', '.join(preempted)}.")
    return "\n".join(lines)


def render_fp8_table(run, args):
    """bf16 against FP8 linear layers (model_config.quantization = "fp8") on one shape, run one after
    the other in one call: mii-bf16-SHAPE / mii-fp8-SHAPE (latency, prefill; --roofline; and
    throughput, or that in mii-tp-bf16-SHAPE / mii-tp-fp8-SHAPE)."""
    shape = args["shape"]
    docs = {q: run.doc(f"mii-{q}-{shape}.json") for q in ("bf16", "fp8")}
    # The throughput scenario: in the same run (bench/run_gpu_bench.sh fp8) or a run of its own.
    tput = {q: docs[q] if figure(docs[q], "throughput", "output_tokens_per_s") else run.doc(f"mii-tp-{q}-{shape}.json")
            for q in docs}
    if docs["fp8"].get("quantization") != "fp8" or docs["bf16"].get("quantization") not in (None, "none"):
        raise MissingData("fp8-table: mii-fp8 must record quantization fp8 and mii-bf16 none")
    roof = docs["fp8"]["roofline"]
    lines = [f"{SHAPE_NAMES.get(shape, shape)} shape, random weights; one call, bf16 run then FP8 run; ceilings measured "
             f"in the FP8 run: copy {roof['copy_bytes_per_s'] / 1e12:.2f} TB/s, bf16 GEMM "
             f"{roof['bf16_flops_per_s'] / 1e12:.0f} TFLOP/s, e4m3 GEMM {roof['e4m3_flops_per_s'] / 1e12:.0f} TFLOP/s; "
             f"mii built from {commit_of(docs['fp8'])}.", "",
             "| figure | bf16 | FP8 | FP8 ÷ bf16 | issue 18's goal |", "|---|---|---|---|---|"]

    def fig(q, scenario, name, source=None):
        return figure((source or docs)[q], scenario, name)

    wb = {q: docs[q]["weight_bytes"] for q in docs}
    lines.append(f"| weights on the GPU | {wb['bf16'] / 1e9:.2f} GB | {wb['fp8'] / 1e9:.2f} GB | "
                 f"{wb['fp8'] / wb['bf16']:.2f}× | about half |")
    d = {q: fig(q, "latency", "decode_step") for q in docs}
    c = next(x for x in docs["fp8"]["results"] if x["scenario"] == "latency")["config"]
    cell = lambda f: f"{f['value']:.2f} ms ({f['value'] / f['floor']:.2f}× its floor {f['floor']:.2f} ms)"
    lines.append(f"| batch-1 decode step ({c['prompt']} in, {c['gen']} out) | {cell(d['bf16'])} | {cell(d['fp8'])} | "
                 f"{d['fp8']['value'] / d['bf16']['value']:.2f}× | ≤ 0.55× bf16 and ≤ 1.15× its floor |")
    t = {q: fig(q, "latency", "time_to_first_token")["value"] for q in docs}
    lines.append(f"| time to first token ({c['prompt']} tokens) | {t['bf16']:.2f} ms | {t['fp8']:.2f} ms | "
                 f"{t['fp8'] / t['bf16']:.2f}× | – |")
    p = {q: fig(q, "prefill", "prefill_tokens_per_s")["value"] for q in docs}
    pc = next(x for x in docs["fp8"]["results"] if x["scenario"] == "prefill")["config"]
    lines.append(f"| prefill ({pc['batch']} × {pc['prompt']}) | {num(p['bf16'])} tokens/s | {num(p['fp8'])} tokens/s | "
                 f"{p['fp8'] / p['bf16']:.2f}× | ≥ 1.6× bf16 |")
    o = {q: fig(q, "throughput", "output_tokens_per_s", tput)["value"] for q in docs}
    tc = next(x for x in tput["fp8"]["results"] if x["scenario"] == "throughput")["config"]
    lines.append(f"| offline throughput ({tc['batch']} × ({tc['prompt']} in, {tc['gen']} out)) | {num(o['bf16'])} "
                 f"output tokens/s | {num(o['fp8'])} output tokens/s | {o['fp8'] / o['bf16']:.2f}× | – |")
    lines += ["", "Floors: the bytes a decode step reads (FP8 weights, bf16 embedding row, lm_head and KV) at the "
              "copy rate (`bench/cost_model.hpp`)."]
    return "\n".join(lines)


def render_kv_fp8_table(run, args):
    """The KV cache in bf16 against FP8 (model_config.kv_cache_dtype = "fp8_e4m3") on one shape, one
    after the other in one call (bench/run_gpu_bench.sh kvfp8): batch-1 decode at a long context
    (mii-kv{bf16,fp8}-long-SHAPE) and a grid cell whose KV budget limits concurrency
    (mii-kv{bf16,fp8}-grid-SHAPE)."""
    shape = args["shape"]
    kinds = ("bf16", "fp8")
    long = {k: run.doc(f"mii-kv{k}-long-{shape}.json") for k in kinds}
    grid = {k: run.doc(f"mii-kv{k}-grid-{shape}.json") for k in kinds}
    for k, want in (("bf16", "auto"), ("fp8", "fp8_e4m3")):
        for d in (long[k], grid[k]):
            if d.get("kv_cache_dtype") != want:
                raise MissingData(f"kv-fp8-table: the {k} runs must record kv_cache_dtype {want}")
    roof = long["fp8"]["roofline"]
    lines = [f"{SHAPE_NAMES.get(shape, shape)} shape, bf16 weights (random values); one call, bf16 cache then FP8 "
             f"cache; copy {roof['copy_bytes_per_s'] / 1e12:.2f} TB/s measured in the FP8 run; mii built from "
             f"{commit_of(long['fp8'])}.", "",
             "| figure | bf16 KV cache | FP8 KV cache | FP8 ÷ bf16 |", "|---|---|---|---|"]
    gc = {k: next(r for r in grid[k]["results"] if r["scenario"] == "grid")["config"] for k in kinds}
    tokens = {k: int(gc[k]["kv_blocks"]) * int(gc[k]["kv_block_size"]) for k in kinds}
    kvb = {k: grid[k]["kv_cache_bytes"] for k in kinds}
    lines.append(f"| KV cache of the grid run | {kvb['bf16'] / 1e9:.2f} GB, {tokens['bf16']:,} tokens | "
                 f"{kvb['fp8'] / 1e9:.2f} GB, {tokens['fp8']:,} tokens | {tokens['fp8'] / tokens['bf16']:.2f}× tokens |")
    d = {k: figure(long[k], "latency", "decode_step") for k in kinds}
    c = next(x for x in long["fp8"]["results"] if x["scenario"] == "latency")["config"]
    cell = lambda f: f"{f['value']:.2f} ms ({f['value'] / f['floor']:.2f}× its floor {f['floor']:.2f} ms)"
    lines.append(f"| batch-1 decode step at {c['prompt']} tokens of context | {cell(d['bf16'])} | {cell(d['fp8'])} | "
                 f"{d['fp8']['value'] / d['bf16']['value']:.2f}× |")
    t = {k: figure(long[k], "latency", "time_to_first_token")["value"] for k in kinds}
    lines.append(f"| time to first token ({c['prompt']} tokens) | {t['bf16']:.2f} ms | {t['fp8']:.2f} ms | "
                 f"{t['fp8'] / t['bf16']:.2f}× |")
    g = {k: next(r for r in grid[k]["results"] if r["scenario"] == "grid") for k in kinds}
    o = {k: g[k]["figures"]["output_tokens_per_s"]["value"] for k in kinds}
    p, n = gc["fp8"]["prompt"], gc["fp8"]["gen"]
    flight = lambda k: (f"{int(gc[k]['concurrency']):,} in flight, cap {gc[k]['concurrency_cap']}; the cache holds "
                        f"{int(gc[k]['kv_sequences']):,}")
    lines.append(f"| offline throughput, {p} in / {n} out | {num(o['bf16'])} output tokens/s ({flight('bf16')}) | "
                 f"{num(o['fp8'])} output tokens/s ({flight('fp8')}) | {o['fp8'] / o['bf16']:.2f}× |")
    lines += ["", "Decode floors: the bytes a step reads (weights and the sequence's KV, FP8 bytes and scales for the FP8 "
              "cache) at the copy rate (`bench/cost_model.hpp`). The grid run gives the KV cache a small share of the "
              "memory (`--kv-fraction`) so that it, not the scheduler's budgets, limits the requests in flight (cap *kv*; "
              "cap *time*: fewer, so that one wave's floor fits the cell's `--grid-seconds`)."]
    return "\n".join(lines)


def render_fp8_kernels_table(run, args):
    """linear_fp8 alone (gpu-kernels-bench --what fp8): bf16, FP8 with per-row scales and FP8 with
    128 x 128 block scales on the same weight shapes, from 1 to 8192 rows."""
    d = run.doc(args.get("file", "gpu-kernels.json"))
    cells = {}
    for r in d["rows"]:
        if r["bench"] != "fp8":
            continue
        m = re.match(r"\[(\d+), (\d+)\] x (\d+) rows, (.+)$", r["name"])
        if not m:
            raise MissingData(f"fp8-kernels-table: unexpected row name {r['name']!r}")
        cells[(int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4))] = r
    if not cells:
        raise MissingData("fp8-kernels-table: no fp8 rows in the file")
    lines = [f"{d['gpu']}, gpu-kernels-bench built from {d['commit']}; µs per call (quantization of the input "
             "included), weight bytes read per µs at 1 and 8 rows, TFLOP/s from 64 rows on.", "",
             "| weight [out, in] | rows | bf16 | FP8, a scale per row | FP8, 128 × 128 blocks | blocks ÷ per row |",
             "|---|---|---|---|---|---|"]
    shapes = sorted({(o, i) for o, i, _, _ in cells}, key=lambda s: -s[0])
    for o, i in shapes:
        for n in sorted({n for oo, ii, n, _ in cells if (oo, ii) == (o, i)}):
            c = {k: cells[(o, i, n, k)] for k in ("bf16", "fp8 row", "fp8 block")}
            rate = (lambda r: f"{r['gb_s'] / 1e3:.2f} TB/s") if n <= 8 else (lambda r: f"{r['tflops']:,.0f} TFLOP/s")
            fmt = lambda r: f"{r['us']:.1f} µs ({rate(r)})"
            lines.append(f"| [{o}, {i}] | {n} | {fmt(c['bf16'])} | {fmt(c['fp8 row'])} | {fmt(c['fp8 block'])} | "
                         f"{c['fp8 block']['us'] / c['fp8 row']['us']:.2f}× |")
    return "\n".join(lines)


def render_moe_routing_table(run, args):
    """Batch-1 latency of one MoE shape with the layers routed through the host
    (MII_CUDA_MOE_DEVICE_ROWS=0: mii-{bf16,fp8}-hostrouted-SHAPE), on the device without CUDA graphs
    (MII_CUDA_GRAPHS=0: mii-bf16-nographs-SHAPE) and on the device with graphs (mii-{bf16,fp8}-SHAPE),
    all in one call."""
    shape = args["shape"]
    rows = [("bf16", "host-routed (ids to the host, a GEMV per expert)", "mii-bf16-hostrouted"),
            ("bf16", "routed on the GPU, no CUDA graphs", "mii-bf16-nographs"),
            ("bf16", "routed on the GPU, decode from CUDA graphs", "mii-bf16"),
            ("FP8", "host-routed", "mii-fp8-hostrouted"),
            ("FP8", "routed on the GPU, decode from CUDA graphs", "mii-fp8")]
    docs = {label: run.doc(f"{label}-{shape}.json") for _, _, label in rows}
    for weights, _, label in rows:
        want = "fp8" if weights == "FP8" else "none"
        if docs[label].get("quantization", "none") != want:
            raise MissingData(f"moe-routing-table: {label} must record quantization {want}")
    commits = sorted({commit_of(d) for d in docs.values()})
    lines = [f"{SHAPE_NAMES.get(shape, shape)} shape, random weights, batch 1 (one call, mii built from "
             f"{', '.join(commits)}); floors: the bytes a decode step reads (the routed experts', attention's, "
             "lm_head's) and, for the first token, the longer of the prompt's FLOPs and the weight bytes its "
             "tokens read (`bench/cost_model.hpp`).", "",
             "| weights | MoE layers | decode step | ÷ floor | ÷ host-routed | time to first token (512) |",
             "|---|---|---|---|---|---|"]
    for weights, how, label in rows:
        step = figure(docs[label], "latency", "decode_step")
        base = figure(docs[f"mii-{weights.lower()}-hostrouted"], "latency", "decode_step")
        ttft = figure(docs[label], "latency", "time_to_first_token")
        lines.append(f"| {weights} | {how} | {step['value']:.2f} ms | {step['value'] / step['floor']:.2f}× "
                     f"(floor {step['floor']:.2f} ms) | {step['value'] / base['value']:.2f}× | "
                     f"{ttft['value']:.2f} ms ({ttft['value'] / ttft['floor']:.2f}× floor) |")
    return "\n".join(lines)


def render_pdl_table(run, args):
    """Batch-1 latency with the GEMVs launched in the usual order (MII_CUDA_PDL=0: mii-pdl0-SHAPE,
    mii-fp8-pdl0-SHAPE) and as programmatic dependents (mii-pdl1-SHAPE, mii-fp8-pdl1-SHAPE), one call."""
    rows = ["| shape | weights | decode step, usual order | programmatic | ÷ | floor | "
            "time to first token (512), usual order / programmatic |", "|---|---|---|---|---|---|---|"]
    commits = set()
    for key in args["rows"].split(","):
        shape, weights = key.split(":")
        prefix = "mii-" if weights == "bf16" else f"mii-{weights}-"
        off, on = (run.doc(f"{prefix}pdl{p}-{shape}.json") for p in (0, 1))
        for d in (off, on):
            want = "fp8" if weights == "fp8" else "none"
            if d.get("quantization", "none") != want:
                raise MissingData(f"pdl-table: {prefix}pdl*-{shape} must record quantization {want}")
            commits.add(commit_of(d))
        a, b = figure(off, "latency", "decode_step"), figure(on, "latency", "decode_step")
        ta, tb = (value(d, "latency", "time_to_first_token") for d in (off, on))
        rows.append(f"| {SHAPE_NAMES.get(shape, shape)} | {weights} | {a['value']:.2f} ms | {b['value']:.2f} ms | "
                    f"{b['value'] / a['value']:.2f}× | {b['floor']:.2f} ms ({b['value'] / b['floor']:.2f}×) | "
                    f"{ta:.2f} / {tb:.2f} ms |")
    return "\n".join([f"Random weights, batch 1, 512-token prompt, medians of 5 (mii built from "
                       f"{', '.join(sorted(commits))}); floor: the bytes a decode step reads at the copy rate.", ""]
                      + rows)


def render_serve_paired(run, args):
    """mii-serve-overhead: the same engine called in-process and through HTTP, request by request in pairs."""
    d = run.doc(args["file"])
    lat, ttft = d["difference"]["latency_ms"], d["difference"]["ttft_ms"]
    row = "| {} | {:.2f} / {:.2f} / {:.2f} ms | {:.2f} / {:.2f} / {:.2f} ms |"
    path = lambda label, p: row.format(label, p["latency_ms"]["p50"], p["latency_ms"]["p90"], p["latency_ms"]["p99"],
                                       p["ttft_ms"]["p50"], p["ttft_ms"]["p90"], p["ttft_ms"]["p99"])
    diff = "| {} | {:+.2f} ms | [{:+.2f}, {:+.2f}] ms | {:+.2f} / {:+.2f} ms | {:+.2f} ms |"
    return "\n".join([
        f"{SHAPE_NAMES.get(os.path.basename(d['model'].rstrip('/')), d['model'])} shape on {d['backend']}, "
        f"{d['requests_per_path']} pairs ({d['failed_pairs']} failed), each {d['prompt_tokens']} prompt tokens and "
        f"{d['gen_tokens']} generated (greedy, EOS ignored), prefix caching off; {d['method'].split(':')[0]}.", "",
        "| path | latency p50 / p90 / p99 | time to first token p50 / p90 / p99 |", "|---|---|---|",
        path("in-process (`pipeline.submit_ids`, stream callback)", d["in_process"]),
        path("HTTP, streamed `/v1/completions` (same engine)", d["http"]), "",
        "| HTTP minus in-process, per pair | median | 95 % interval of the median | p10 / p90 | mean |",
        "|---|---|---|---|---|",
        diff.format("latency", lat["median"], *lat["ci95_median"], lat["p10"], lat["p90"], lat["mean"]),
        diff.format("time to first token", ttft["median"], *ttft["ci95_median"], ttft["p10"], ttft["p90"], ttft["mean"]),
        "", f"Goal (under {d['goal']['median_latency_added_below_ms']} ms added to the median request): "
        f"**{d['goal']['verdict']}** — {d['goal']['rule']}; interval: {d['difference']['ci95_median']}."])


RENDERERS = {"run-header": render_run_header, "shape-title": render_shape_title, "main-table": render_main_table,
             "load-table": render_load_table, "cold-table": render_cold_table, "same-call": render_same_call,
             "goals": render_goals, "tokenizer": render_tokenizer, "serve-load": render_serve_load,
             "prefix-cache": render_prefix_cache, "grid-table": render_grid_table,
             "serve-overhead": render_serve_overhead, "fp8-table": render_fp8_table, "serve-paired": render_serve_paired,
             "kv-fp8-table": render_kv_fp8_table, "fp8-kernels-table": render_fp8_kernels_table,
             "moe-routing-table": render_moe_routing_table, "pdl-table": render_pdl_table}


# ---- the file ---------------------------------------------------------------------------------

def generate(text, results_dir):
    def replace(m):
        words = m.group("spec").split()
        kind, args = words[0], dict(w.split("=", 1) for w in words[1:])
        if kind not in RENDERERS:
            raise SystemExit(f"results_md.py: unknown block kind '{kind}' (known: {', '.join(RENDERERS)})")
        try:
            body = RENDERERS[kind](Run(results_dir, args["run"]), args)
        except (MissingData, KeyError, TypeError, ZeroDivisionError) as e:
            raise SystemExit(f"results_md.py: block '{m.group('spec')}': {type(e).__name__}: {e}")
        return m.group(1) + body.rstrip("\n") + "\n" + m.group(4)
    return BLOCK.sub(replace, text)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="compare instead of rewriting; exit 1 on a difference")
    ap.add_argument("--file", default=os.path.join(ROOT, "bench", "RESULTS.md"))
    ap.add_argument("--results", default=os.path.join(ROOT, "bench", "results"))
    a = ap.parse_args(argv)
    with open(a.file) as f:
        text = f.read()
    if not BLOCK.search(text):
        raise SystemExit(f"results_md.py: {a.file} has no generated block")
    new = generate(text, a.results)
    if a.check:
        if new != text:
            sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), new.splitlines(True), a.file,
                                                       "generated from the JSON"))
            print(f"\n{a.file} differs from what bench/results_md.py generates: run `python3 bench/results_md.py` "
                  "(and change the JSON or the script, never the figures by hand)")
            return 1
        return 0
    if new != text:
        with open(a.file, "w") as f:
            f.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

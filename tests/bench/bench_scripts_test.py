#!/usr/bin/env python3
"""Host checks of the bench's Python side (stdlib only): the ratio table that RESULTS.md quotes,
and the llama.cpp peer's conversion of llama-batched-bench output into mii-bench's schema."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
COMPARE = os.path.join(ROOT, "bench", "compare.py")
LLAMACPP = os.path.join(ROOT, "bench", "peers", "llamacpp_peer.py")


def run(*args):
    return subprocess.run([sys.executable, *args], check=True, capture_output=True, text=True).stdout


def doc(runner, model, results, **extra):
    return dict(runner=runner, label=runner, gpu="test", model=model, results=results, **extra)


def fig(value, floor=None):
    f = {"value": value, "unit": "x"}
    if floor is not None:
        f["floor"] = floor
    return f


class CompareTable(unittest.TestCase):
    def test_ratios_against_floor_and_peer(self):
        with tempfile.TemporaryDirectory() as d:
            mii = doc("mii", "configs/shape", [
                {"scenario": "latency", "config": {}, "figures": {"decode_step": fig(6.0, 4.8)}},
                {"scenario": "throughput", "config": {}, "figures": {"output_tokens_per_s": fig(4000.0, 5000.0)}},
                {"scenario": "load", "config": {"clients": "16"}, "figures": {"requests_per_s": fig(10.0, 0)}},
            ], commit="abc")
            peer = doc("peer-x", "configs/shape/", [
                {"scenario": "latency", "config": {}, "figures": {"decode_step": fig(12.0)}},
                {"scenario": "throughput", "config": {}, "figures": {"output_tokens_per_s": fig(1000.0)}},
            ])
            for name, d_ in (("mii.json", mii), ("peer.json", peer)):
                with open(os.path.join(d, name), "w") as f:
                    json.dump(d_, f)
            rows = {tuple(line.split()[:2]): line.split() for line in run(COMPARE, d).splitlines() if line.strip()}
            # Lower is better for a step time: floor/mii = 4.8/6 and the peer's 12 ms is 2x slower.
            self.assertEqual(rows[("latency", "decode_step")][2:], ["6.00", "4.80", "0.80", "12.00", "2.00x"])
            # Higher is better for tokens/s: 4000/5000 of the floor, 4x the peer.
            self.assertEqual(rows[("throughput", "output_tokens_per_s")][2:], ["4000.00", "5000.00", "0.80", "1000.00", "4.00x"])
            # A figure without a floor prints dashes, and load rows name their client count.
            self.assertEqual(rows[("load", "c=16")][2:5], ["requests_per_s", "10.00", "-"])

    def test_committed_results_hold_every_runner_for_both_shapes(self):
        folder = os.path.join(ROOT, "bench", "results", "2026-11-25-h100")
        out = run(COMPARE, folder)
        for shape in ("== llama3-8b", "== mistral-7b"):
            block = out.split(shape, 1)[1].split("\n==", 1)[0]
            header = block.splitlines()[2]
            for runner in ("transformers-compile", "transformers-eager", "llama.cpp"):
                self.assertIn(runner, header, shape)


class LlamaCppReport(unittest.TestCase):
    def test_batched_bench_lines_become_mii_figures_keeping_the_warm_run(self):
        lines = [  # -npl N,N: each shape twice, the second warm
            {"pp": 512, "tg": 128, "pl": 1, "t_pp": 0.080, "speed_pp": 6400.0, "t_tg": 0.96, "speed_tg": 133.3, "t": 1.04},
            {"pp": 512, "tg": 128, "pl": 1, "t_pp": 0.028, "speed_pp": 18285.7, "t_tg": 0.896, "speed_tg": 142.9, "t": 0.924},
            {"pp": 2048, "tg": 1, "pl": 8, "t_pp": 1.6, "speed_pp": 10240.0, "t_tg": 0.01, "speed_tg": 800.0, "t": 1.61},
            {"pp": 512, "tg": 128, "pl": 64, "t_pp": 4.6, "speed_pp": 7123.5, "t_tg": 5.64, "speed_tg": 1452.5, "t": 10.24},
        ]
        with tempfile.TemporaryDirectory() as d:
            jsonl, out = os.path.join(d, "x.jsonl"), os.path.join(d, "llamacpp-x.json")
            with open(jsonl, "w") as f:
                f.write("llama.cpp log noise\n" + "".join(json.dumps(x) + "\n" for x in lines))
            run(LLAMACPP, "report", "bench/configs/x", jsonl, out)
            with open(out) as f:
                rep = json.load(f)
        self.assertEqual(rep["runner"], "llama.cpp")
        self.assertEqual(rep["model"], "bench/configs/x")
        self.assertEqual(len(rep["results"]), 3)  # the cold first run of the repeated shape is dropped
        by = {r["scenario"]: r["figures"] for r in rep["results"]}
        self.assertEqual(sorted(by), ["latency", "prefill", "throughput"])
        self.assertAlmostEqual(by["latency"]["time_to_first_token"]["value"], 28.0, places=6)
        self.assertAlmostEqual(by["latency"]["decode_step"]["value"], 0.896 / 128 * 1e3, places=6)
        self.assertAlmostEqual(by["prefill"]["prefill_tokens_per_s"]["value"], 10240.0)
        self.assertAlmostEqual(by["throughput"]["output_tokens_per_s"]["value"], 64 * 128 / 10.24, places=6)
        self.assertAlmostEqual(by["throughput"]["total_tokens_per_s"]["value"], 64 * 640 / 10.24, places=6)

    def test_bad_arguments_print_usage(self):
        p = subprocess.run([sys.executable, LLAMACPP, "report"], capture_output=True, text=True)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("llamacpp_peer.py gguf CONFIG_DIR", p.stderr)


if __name__ == "__main__":
    unittest.main()

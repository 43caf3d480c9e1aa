#!/usr/bin/env python3
"""Host checks of the bench's and the test scripts' logic (stdlib only, plus bash, cmake and git
where a test says so): the ratio table, RESULTS.md generated from the committed JSON, the commit
the benchmarks record, the llama.cpp peer's conversion of llama-batched-bench output, the last
line of tools/test.sh, and the exit status of the GPU machine's scripts (tools/gpu/check.sh,
make-oracles.sh) run against stub builds."""
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
COMPARE = os.path.join(ROOT, "bench", "compare.py")
LLAMACPP = os.path.join(ROOT, "bench", "peers", "llamacpp_peer.py")
RESULTS_MD = os.path.join(ROOT, "bench", "results_md.py")
COMMIT_CMAKE = os.path.join(ROOT, "bench", "commit.cmake")


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


class ResultsPage(unittest.TestCase):
    """bench/RESULTS.md: every figure is generated from the committed JSON."""

    def check(self, *args):
        return subprocess.run([sys.executable, RESULTS_MD, "--check", *args], capture_output=True, text=True)

    def test_committed_page_equals_what_the_script_generates(self):
        p = self.check()
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_a_figure_typed_by_hand_is_caught(self):
        with tempfile.TemporaryDirectory() as d:
            page = os.path.join(d, "RESULTS.md")
            with open(os.path.join(ROOT, "bench", "RESULTS.md")) as f:
                text = f.read()
            # Issue 17's example: the 16-client TTFT p99 is 0.7645 s in the JSON, 0.77 was typed.
            self.assertIn("| 16 | 10.82 | 1,006 | 1.41 / 1.78 / 2.22 s | 0.09 / 0.76 s |", text)
            with open(page, "w") as f:
                f.write(text.replace("0.09 / 0.76 s", "0.09 / 0.77 s", 1))
            p = self.check("--file", page)
            self.assertEqual(p.returncode, 1)
            self.assertIn("-| 16 | 10.82 | 1,006 | 1.41 / 1.78 / 2.22 s | 0.09 / 0.77 s |", p.stdout)

    def test_figures_follow_the_json(self):
        with tempfile.TemporaryDirectory() as d:
            results = os.path.join(d, "results")
            shutil.copytree(os.path.join(ROOT, "bench", "results"), results)
            path = os.path.join(results, "2026-11-25-h100", "mii-mistral-7b.json")
            with open(path) as f:
                doc = json.load(f)
            for r in doc["results"]:
                if r["scenario"] == "latency":
                    r["figures"]["decode_step"]["value"] = 4.5
            with open(path, "w") as f:
                json.dump(doc, f)
            page = os.path.join(d, "RESULTS.md")
            shutil.copy(os.path.join(ROOT, "bench", "RESULTS.md"), page)
            run(RESULTS_MD, "--file", page, "--results", results)
            with open(page) as f:
                text = f.read()
            self.assertIn("| decode step | 4.50 ms | 4.84 ms | 0.93× |", text)
            self.assertIn("Mistral-7B: 4.50 ms = 0.93× the floor (met;", text)

    def test_moe_routing_table_refuses_a_run_of_the_wrong_weights(self):
        # A host-routed "FP8" run that ran bf16 (the quantization option lost on the way) must not
        # become an FP8 row.
        with tempfile.TemporaryDirectory() as d:
            results = os.path.join(d, "results")
            shutil.copytree(os.path.join(ROOT, "bench", "results", "2026-12-03-h200-moedevice"),
                            os.path.join(results, "2026-12-03-h200-moedevice"))
            path = os.path.join(results, "2026-12-03-h200-moedevice", "mii-fp8-hostrouted-mixtral-8x7b.json")
            with open(path) as f:
                doc = json.load(f)
            doc["quantization"] = "none"
            with open(path, "w") as f:
                json.dump(doc, f)
            page = os.path.join(d, "RESULTS.md")
            with open(page, "w") as f:
                f.write("<!-- generated: moe-routing-table run=2026-12-03-h200-moedevice shape=mixtral-8x7b -->\n"
                        "<!-- end generated -->\n")
            p = subprocess.run([sys.executable, RESULTS_MD, "--file", page, "--results", results], capture_output=True,
                               text=True)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("mii-fp8-hostrouted must record quantization fp8", p.stderr)

    def test_a_block_without_its_json_is_an_error(self):
        with tempfile.TemporaryDirectory() as d:
            page = os.path.join(d, "RESULTS.md")
            with open(page, "w") as f:
                f.write("<!-- generated: main-table run=2026-11-25-h100 shape=mistral-7b -->\n<!-- end generated -->\n")
            p = subprocess.run([sys.executable, RESULTS_MD, "--file", page, "--results", d], capture_output=True, text=True)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("2026-11-25-h100", p.stderr)


def results_md_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location("results_md", RESULTS_MD)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# The synthetic model of tests/model/bench_cost_test.cpp's throughput floor case, worked out by hand there.
SYNTHETIC_COST = {"weight_bytes": 2e9, "table_bytes": 0, "table_row_bytes": 0, "expert_bytes": 0, "sparse_layers": 0,
                  "experts": 0, "top_k": 0, "matmul_params": 1e9, "head_params": 1e8, "kv_bytes_per_token": 1e5,
                  "attn_flops_per_pair": 1e6}
SYNTHETIC_ROOF = {"copy_bytes_per_s": 1e12, "bf16_flops_per_s": 1e14}


class GridFloor(unittest.TestCase):
    """bench/results_md.py's copy of bench/cost_model.hpp's throughput floor, on numbers worked out by hand."""

    def test_memory_bound_and_compute_bound_steps(self):
        m = results_md_module()
        # 40 requests of (100, 11), 20 in flight: prompts 40 x 2.052e11 FLOPs at 1e14 FLOP/s = 0.08208 s; then
        # 40 x 10 / 20 = 20 steps, each max((2e9 + 20 x 105.5 x 1e5) / 1e12, 20 x 2.3055e9 / 1e14) = 2.211e-3 s.
        total, step, memory_bound = m.grid_floor(SYNTHETIC_COST, SYNTHETIC_ROOF, 100, 11, 40, 20)
        self.assertAlmostEqual(step, 2.211e-3, places=12)
        self.assertTrue(memory_bound)
        self.assertAlmostEqual(total, 0.08208 + 20 * 2.211e-3, places=10)
        # 2000 in flight: the step's 4.611e-2 s of FLOPs outweigh its 2.31e-2 s of bytes.
        total, step, memory_bound = m.grid_floor(SYNTHETIC_COST, SYNTHETIC_ROOF, 100, 11, 4000, 2000)
        self.assertFalse(memory_bound)
        self.assertAlmostEqual(step, 0.04611, places=10)
        self.assertAlmostEqual(total, 8.208 + 20 * 0.04611, places=8)
        # Concurrency above the request count runs them all at once; no ceilings, no floor.
        self.assertEqual(m.grid_floor(SYNTHETIC_COST, SYNTHETIC_ROOF, 100, 11, 20, 500),
                         m.grid_floor(SYNTHETIC_COST, SYNTHETIC_ROOF, 100, 11, 20, 20))
        self.assertEqual(m.grid_floor(SYNTHETIC_COST, {"copy_bytes_per_s": 0, "bf16_flops_per_s": 0}, 100, 11, 40, 20)[0], 0)

    def test_fp8_linear_layers_count_at_the_e4m3_rate(self):
        m = results_md_module()
        # Half of the layers' multiply-adds in FP8 at twice the GEMM rate: 2000 in flight, compute bound, the
        # step's FLOPs 2000 x (2 x 0.5e9 / 1e14 + (2 x 0.5e9 + 2 x 1e8 + 1e6 x 105.5) / 1e14)... worked out as
        # 2000 x (1e9 / 2e14 + 1.3055e9 / 1e14) = 0.03611 s; a prompt of 100: 100 x 1e9 / 2e14 +
        # (100 x 1e9 + 2e8 + 1e6 x 5000) / 1e14 = 1.552e-3 s.
        cost = dict(SYNTHETIC_COST, fp8_matmul_params=0.5e9)
        roof = dict(SYNTHETIC_ROOF, e4m3_flops_per_s=2e14)
        total, step, memory_bound = m.grid_floor(cost, roof, 100, 11, 4000, 2000)
        self.assertFalse(memory_bound)
        self.assertAlmostEqual(step, 0.03611, places=10)
        self.assertAlmostEqual(total, 4000 * 1.552e-3 + 20 * 0.03611, places=8)
        # No e4m3 rate measured (older runs): every FLOP at the bf16 rate, as before.
        self.assertEqual(m.grid_floor(cost, SYNTHETIC_ROOF, 100, 11, 4000, 2000),
                         m.grid_floor(SYNTHETIC_COST, SYNTHETIC_ROOF, 100, 11, 4000, 2000))

    def test_moe_step_reads_the_experts_its_tokens_touch(self):
        m = results_md_module()
        cost = dict(SYNTHETIC_COST, experts=8, top_k=2, sparse_layers=32, expert_bytes=1e6, weight_bytes=300e6)
        self.assertAlmostEqual(m.experts_touched(cost, 1), 2.0)
        self.assertAlmostEqual(m.experts_touched(cost, 2), 3.5)  # 8 (1 - (3/4)^2)
        self.assertAlmostEqual(m.step_weight_bytes(cost, 1), 300e6 - 32 * 6 * 1e6)
        self.assertAlmostEqual(m.step_weight_bytes(cost, 64), 300e6, delta=10)  # (3/4)^64: 3 bytes short


class GridTable(unittest.TestCase):
    """The grid-table block: our cells beside TensorRT-LLM's published FP8 figures, floors checked."""

    def grid_doc(self, value=10000.0, floor_scale=1.0):
        m = results_md_module()
        results = []
        for (p, o), n, b in (((128, 128), 2048, 512), ((2048, 2048), 97, 97)):
            total, _, _ = m.grid_floor(SYNTHETIC_COST, SYNTHETIC_ROOF, p, o, n, b)
            results.append({"scenario": "grid",
                            "config": {"prompt": str(p), "gen": str(o), "requests": str(n), "concurrency": str(b),
                                       "concurrency_cap": "sequences" if b == 512 else "time", "max_seqs": "512",
                                       "max_batch_tokens": "2048", "kv_blocks": "6000", "kv_block_size": "64",
                                       "preemptions": "0" if b == 512 else "3"},
                            "figures": {"output_tokens_per_s": {"value": value, "unit": "tok/s",
                                                                "floor": floor_scale * n * o / total}}})
        return doc("mii", "bench/configs/llama3-8b", results, commit="abc1234", roofline=SYNTHETIC_ROOF,
                   cost_model=SYNTHETIC_COST)

    def render(self, grid):
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "results", "run"))
            with open(os.path.join(d, "results", "run", "mii-grid-llama3-8b.json"), "w") as f:
                json.dump(grid, f)
            page = os.path.join(d, "RESULTS.md")
            with open(page, "w") as f:
                f.write("<!-- generated: grid-table run=run shape=llama3-8b -->\n<!-- end generated -->\n")
            p = subprocess.run([sys.executable, RESULTS_MD, "--file", page, "--results", os.path.join(d, "results")],
                               capture_output=True, text=True)
            with open(page) as f:
                return p, f.read()

    def test_cells_beside_the_published_figures(self):
        p, text = self.render(self.grid_doc())
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("TensorRT-LLM (published, FP8, not run here)", text)
        self.assertIn("perf-overview.md", text)
        rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
                for line in text.splitlines() if line.startswith("| 128 / 128") or line.startswith("| 2048 / 2048")}
        # 128/128: published 27,911 tok/s, mii 10,000: 0.36x of it.
        self.assertEqual(rows["128 / 128"][0:2], ["2,048", "512 (sequences)"])
        self.assertEqual(rows["128 / 128"][-2:], ["27,911", "0.36×"])
        self.assertEqual(rows["2048 / 2048"][-2:], ["12,194", "0.82×"])
        self.assertEqual(rows["2048 / 2048"][1], "97 (time)")
        self.assertIn("2048/2048: 3", text)  # preemptions are reported

    def test_a_floor_the_cost_model_does_not_give_stops_the_page(self):
        p, _ = self.render(self.grid_doc(floor_scale=1.02))
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("disagree", p.stderr)


@unittest.skipUnless(shutil.which("cmake") and shutil.which("git"), "needs cmake and git")
class BenchCommit(unittest.TestCase):
    """bench/commit.cmake: what the result JSON records as the commit."""

    def commit(self, src, env_commit=None, var=None):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "mii_commit.hpp")
            env = {k: v for k, v in os.environ.items() if k != "MII_COMMIT"}
            if env_commit is not None:
                env["MII_COMMIT"] = env_commit
            args = ["cmake", f"-DSRC={src}", f"-DOUT={out}"] + ([f"-DCOMMIT={var}"] if var else []) + ["-P", COMMIT_CMAKE]
            subprocess.run(args, check=True, env=env, capture_output=True)
            with open(out) as f:
                return f.read().split('MII_BENCH_COMMIT "')[1].split('"')[0]

    def git(self, repo, *args):
        return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True, text=True,
                              env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                                   "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}).stdout.strip()

    def test_own_checkout_enclosing_checkout_and_overrides(self):
        with tempfile.TemporaryDirectory() as outer:
            self.git(outer, "init", "-q")
            with open(os.path.join(outer, "a.txt"), "w") as f:
                f.write("a\n")
            self.git(outer, "add", "a.txt")
            self.git(outer, "-c", "commit.gpgsign=false", "commit", "-qm", "a")
            head = self.git(outer, "rev-parse", "--short=7", "HEAD")
            self.assertEqual(self.commit(outer), head)
            with open(os.path.join(outer, "a.txt"), "w") as f:
                f.write("changed\n")
            self.assertEqual(self.commit(outer), head + "-dirty")
            # A copy of a tree without .git inside another checkout: not that checkout's commit.
            inner = os.path.join(outer, "copy-of-mii")
            os.makedirs(inner)
            self.assertEqual(self.commit(inner), "unknown")
            self.assertEqual(self.commit(inner, env_commit="abc1234"), "abc1234")
            self.assertEqual(self.commit(inner, env_commit="abc1234", var="def5678"), "def5678")


class TestShLastLine(unittest.TestCase):
    """tools/test.sh's last line: passes, skips with their reason, failures, an unbuilt GPU suite."""

    CTEST = """Test project /b
1/4 Test #1: io ...............................   Passed    0.01 sec
2/4 Test #2: model ............................***Failed    0.01 sec
3/4 Test #3: gpu ..............................***Skipped   0.01 sec
4/4 Test #4: nccl .............................***Skipped   0.01 sec

75% tests passed, 1 tests failed out of 4

Total Test time (real) =   0.06 sec

The following tests did not run:
\t  3 - gpu (Skipped)
\t  4 - nccl (Skipped)

The following tests FAILED:
\t  2 - model (Failed)
"""
    LAST = """3/4 Test: gpu
Command: "/b/tests/mii_test_gpu" "skipped: not this"
Output:
----------------------------------------------------------
GPU suite skipped: no usable CUDA GPU (cudaGetDeviceCount: 0 devices)
<end of output>
"""

    def summary(self, ctest, last, gpu_tests):
        with tempfile.TemporaryDirectory() as d:
            a, b = os.path.join(d, "ctest.log"), os.path.join(d, "LastTest.log")
            with open(a, "w") as f:
                f.write(ctest)
            with open(b, "w") as f:
                f.write(last)
            return subprocess.run(["bash", os.path.join(ROOT, "tools", "test.sh"), "--summary", a, b, str(gpu_tests)],
                                  check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]

    def test_skips_are_named_with_their_reason(self):
        self.assertEqual(self.summary(self.CTEST, self.LAST, 2),
                         "tests: 1 passed, 2 skipped (no usable CUDA GPU (cudaGetDeviceCount: 0 devices)): gpu, nccl, "
                         "1 FAILED: model")

    def test_all_passed_with_the_gpu_suite_run_or_not_built(self):
        ok = "100% tests passed, 0 tests failed out of 3\n"
        self.assertEqual(self.summary(ok, "", 1), "tests: 3 passed, 0 skipped, 0 failed; GPU suite ran")
        self.assertIn("the GPU suite was not built", self.summary(ok, "", 0))


@unittest.skipUnless(shutil.which("bash"), "needs bash")
class GpuScriptsExitStatus(unittest.TestCase):
    """tools/gpu/check.sh and make-oracles.sh exit non-zero when any step fails (they used to end
    with an echo, exit 0). Run in a scratch tree where the build and the suites are stubs."""

    def stub(self, path, rc, text=""):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(f"#!/usr/bin/env bash\necho '{text}'\nexit {rc}\n")
        os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)

    def run_check(self, gpu=0, host=0, smoke=0):
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "tools", "gpu"))
            shutil.copy(os.path.join(ROOT, "tools", "gpu", "check.sh"), os.path.join(d, "tools", "gpu"))
            self.stub(os.path.join(d, "tools", "gpu", "build.sh"), 0)
            self.stub(os.path.join(d, "build-gpu", "tests", "mii_test_gpu"), gpu, "test cases: 3 | 3 passed")
            self.stub(os.path.join(d, "build-gpu", "bench", "mii-bench"), smoke)
            self.stub(os.path.join(d, "bin", "ctest"), host)
            env = {**os.environ, "OUT": os.path.join(d, "out"), "PATH": os.path.join(d, "bin") + ":" + os.environ["PATH"]}
            p = subprocess.run(["bash", os.path.join(d, "tools", "gpu", "check.sh")], capture_output=True, text=True, env=env)
            return p.returncode, p.stdout.strip().splitlines()[-1]

    def test_check_sh(self):
        self.assertEqual(self.run_check(), (0, "== check: PASS"))
        for kwargs, what in (({"gpu": 1}, "gpu suite"), ({"gpu": 77}, "gpu suite"), ({"host": 8}, "host suites"),
                             ({"smoke": 1}, "bench smoke")):
            rc, last = self.run_check(**kwargs)
            self.assertNotEqual(rc, 0, kwargs)
            self.assertEqual(last, f"== check: FAIL: {what}", kwargs)

    def run_oracles(self, fixtures_rc, tokenizer_rc):
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "tools", "gpu"))
            shutil.copy(os.path.join(ROOT, "tools", "gpu", "make-oracles.sh"), os.path.join(d, "tools", "gpu"))
            for script, rc in (("tests/fixtures/make_fixtures.py", fixtures_rc),
                               ("tests/fixtures/tokenizer/make_expected.py", tokenizer_rc)):
                os.makedirs(os.path.dirname(os.path.join(d, script)), exist_ok=True)
                with open(os.path.join(d, script), "w") as f:
                    f.write("import os, sys\nout = [a for a in sys.argv[1:] if not a.endswith('.jsonl')][0]\n"
                            f"os.makedirs(out, exist_ok=True)\nopen(os.path.join(out, 'x'), 'w').close()\nsys.exit({rc})\n")
            out = os.path.join(d, "out")
            p = subprocess.run(["bash", os.path.join(d, "tools", "gpu", "make-oracles.sh")], capture_output=True,
                               text=True, env={**os.environ, "OUT": out})
            return p.returncode, sorted(f for f in os.listdir(out) if f.endswith(".tar.gz"))

    def test_make_oracles_sh(self):
        self.assertEqual(self.run_oracles(0, 0), (0, ["fixtures.tar.gz", "tokenizer-expected.tar.gz"]))
        rc, archives = self.run_oracles(1, 0)
        self.assertNotEqual(rc, 0)
        self.assertEqual(archives, ["tokenizer-expected.tar.gz"])  # no partial fixtures to unpack
        self.assertNotEqual(self.run_oracles(0, 3)[0], 0)


if __name__ == "__main__":
    unittest.main()

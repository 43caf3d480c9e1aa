#!/usr/bin/env bash
# mii-serve-overhead (the program) on the demo model, host backend, tiny sizes: its JSON has both
# paths with every pair counted, each request generated exactly --gen tokens, the paired
# differences are there; bad arguments exit 2 with the usage.
#   bash tests/serve/overhead_test.sh MII_SERVE_OVERHEAD
set -euo pipefail
BIN=$1
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MODEL=$ROOT/tests/fixtures/models/demo-llama
# Debian's python3 when there is one: a pyenv shim first on PATH costs a second per start.
PYTHON=$(command -v /usr/bin/python3 || command -v python3)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mii-serve-overhead.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

ENGINE=(--backend host --host-threads 1 --kv-block-size 16 --kv-cache-blocks 512)
"$BIN" "$MODEL" "${ENGINE[@]}" --requests 6 --warmup 1 --prompt 8 --gen 4 --seed 7 --out "$WORK/run.json" \
  2>"$WORK/stderr.txt" || { cat "$WORK/stderr.txt" >&2; fail "mii-serve-overhead exited $?"; }
cat "$WORK/stderr.txt"
grep -q 'HTTP minus in-process' "$WORK/stderr.txt" || fail "no table on stderr"
"$PYTHON" - "$WORK/run.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
def need(cond, what):
    if not cond:
        sys.exit(f"FAIL: {what}\n{json.dumps(d, indent=1)[:3000]}")
need(d["scenario"] == "serve_overhead" and d["backend"] == "host", "scenario and backend")
need(d["requests_per_path"] == 6 and d["prompt_tokens"] == 8 and d["gen_tokens"] == 4, "settings")
need(d["prefix_caching"] is False, "prefix caching is said to be off")
need(d["failed_pairs"] == 0, "no failed pairs")
for path in ("in_process", "http"):
    p = d[path]
    need(p["requests"] == 6 and p["failures"] == 0, f"{path}: 6 requests, none failed")
    need(p["generated_tokens_exact"] == 6 and p["generated_tokens_min"] == 4 and p["generated_tokens_max"] == 4,
         f"{path}: exactly 4 tokens each")
    for fig in ("latency_ms", "ttft_ms"):
        q = p[fig]
        need(0 < q["p50"] <= q["p90"] <= q["p99"], f"{path} {fig}: ordered positive quantiles")
need(len(d["samples"]) == 6, "one sample per pair")
for s in d["samples"]:
    for path in ("in_process", "http"):
        r = s[path]
        need(r["generated"] == 4 and 0 < r["ttft_ms"] <= r["latency_ms"] and "error" not in r, f"sample {s}")
for fig in ("latency_ms", "ttft_ms"):
    q = d["difference"][fig]
    need(q["pairs"] == 6, f"difference {fig}: 6 pairs")
    need(q["p10"] <= q["median"] <= q["p90"], f"difference {fig}: p10 <= median <= p90")
    lo, hi = q["ci95_median"]
    need(lo <= q["median"] <= hi, f"difference {fig}: the interval holds the median")
    diffs = sorted(s["http"][fig] - s["in_process"][fig] for s in d["samples"])
    need(abs((diffs[2] + diffs[3]) / 2 - q["median"]) < 1e-6, f"difference {fig}: the median of the pairs' differences")
need(d["goal"]["verdict"] == "undecided", "no verdict from 6 pairs")
need(0 < d["pairs_http_first"] < 6, "both orders occur (seed 7)")
EOF

# Usage errors: exit 2 and the usage, before or after loading the model.
expect_usage() {
  local code=0
  "$BIN" "$@" >"$WORK/out.txt" 2>&1 || code=$?
  [[ $code == 2 ]] || { cat "$WORK/out.txt" >&2; fail "exit $code, not 2, for: $*"; }
  grep -q '^usage: mii-serve-overhead' "$WORK/out.txt" || fail "no usage for: $*"
}
expect_usage
expect_usage "$MODEL" --requests 0
expect_usage "$MODEL" --gen many
expect_usage "$MODEL" --port 8000
expect_usage "$MODEL" --backend gpu
expect_usage "$MODEL" --no-such-option
expect_usage "$MODEL" "${ENGINE[@]}" --prompt 2040 --gen 16  # more than the demo model's 2048-token context
echo "mii-serve-overhead: ok"

#!/usr/bin/env bash
# What HTTP adds to one request, on the GPU machine (carry .deps):
#   bash bench/run_serve_overhead.sh [MODEL_CONFIG_DIR]      (default bench/configs/mistral-7b)
# mii-serve-overhead (docs/serving.md): one process, one pipeline with random weights, and a
# mii-serve server on that same pipeline; REQUESTS pairs, each the same random 512-token prompt
# in-process (submit_ids + stream callback) and as a streamed /v1/completions over one
# keep-alive connection, in a seeded random order, one request at a time, 128 tokens generated
# (greedy, EOS ignored), prefix caching off. The engine settings are run_serve_bench.sh's
# (8192-token context, 768 tokens per step, 90 % of the free memory for the KV cache).
# About 2 x 200 x 0.57 s ~ 4 minutes of requests on an H200 (Mistral-7B shape), after the build;
# on a fresh machine build first in a call of its own (bash tools/gpu/build.sh mii-serve-overhead)
# if the per-call limit is tight: this script's build is then a no-op.
# Writes $OUT/serve-overhead/{overhead-<config>.json,run.log,build.log} and prints the table last.
# Env: REQUESTS (200), PROMPT (512), GEN (128), WARMUP (4), SEED (1).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}
model=${1:-bench/configs/mistral-7b}
name=$(basename "$model")
dir=$OUT/serve-overhead
mkdir -p "$dir"
bash tools/gpu/build.sh mii-serve-overhead > "$dir/build.log" 2>&1 || { tail -40 "$dir/build.log"; exit 1; }
status=0
./build-gpu/src/serve/mii-serve-overhead "$model" --random-weights --backend cuda \
  --requests "${REQUESTS:-200}" --prompt "${PROMPT:-512}" --gen "${GEN:-128}" --warmup "${WARMUP:-4}" --seed "${SEED:-1}" \
  --max-model-len 8192 --max-batch-tokens 768 --kv-cache-memory-fraction 0.9 \
  --out "$dir/overhead-$name.json" 2> "$dir/run.log" || status=$?
if ((status)); then
  echo "mii-serve-overhead exited $status"
  tail -20 "$dir/run.log"
  exit 1
fi
echo "== $dir/overhead-$name.json"
# The table: from its title line (" pairs (N failed)") to the end of the log.
sed -n '/ pairs ([0-9]* failed)/,$p' "$dir/run.log"

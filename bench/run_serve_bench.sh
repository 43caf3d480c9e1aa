#!/usr/bin/env bash
# The load scenario through HTTP against the same load in-process, on the GPU machine (carry .deps):
#   bash bench/run_serve_bench.sh [MODEL_CONFIG_DIR]      (default bench/configs/mistral-7b)
# 32 closed-loop clients, 256 requests of 1200-2600 prompt tokens and 60-128 generated tokens,
# random weights, the same engine settings (8192-token context, 768 tokens per step, 90 % of the
# free memory for the KV cache) in mii-bench (in-process) and in mii-serve + mii-serve-load
# (HTTP, streamed /v1/completions). Writes $OUT/serve-bench/{inproc-load.json,http-load.json}
# and prints both lines last. Env: CLIENTS, REQUESTS, MII_COMMIT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}
model=${1:-bench/configs/mistral-7b}
clients=${CLIENTS:-32} requests=${REQUESTS:-256}
dir=$OUT/serve-bench
mkdir -p "$dir"
[[ -n ${MII_COMMIT:-} ]] && export MII_COMMIT
bash tools/gpu/build.sh mii-bench mii-serve mii-serve-load > "$dir/build.log" 2>&1 || { tail -40 "$dir/build.log"; exit 1; }
status=0
./build-gpu/bench/mii-bench --model "$model" --random-weights --scenario load --clients "$clients" \
  --load-requests "$requests" --load-prompt 1200:2600 --load-gen 60:128 --label mii-inproc --out "$dir" \
  > "$dir/inproc.log" 2>&1 || { echo "in-process load failed"; tail -20 "$dir/inproc.log"; status=1; }
port=18000
./build-gpu/tools/mii-serve "$model" --random-weights --quiet --port $port --max-model-len 8192 \
  --max-batch-tokens 768 --kv-cache-memory-fraction 0.9 > "$dir/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 300); do
  python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=2)" \
    >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || break
  sleep 1
done
if ./build-gpu/src/serve/mii-serve-load --url "http://127.0.0.1:$port" --clients "$clients" --requests "$requests" \
  --prompt 1200:2600 --gen 60:128 --vocab 32000 > "$dir/http-load.json" 2> "$dir/http-load.log"; then
  :
else
  echo "HTTP load failed"; tail -20 "$dir/http-load.log" "$dir/serve.log"; status=1
fi
python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$port/metrics').read().decode())" \
  > "$dir/metrics.txt" 2>/dev/null
kill -TERM $server 2>/dev/null
wait $server 2>/dev/null
echo "== in-process (mii-bench load, $clients clients):"
grep -h -o '"scenario":"load"[^}]*' "$dir"/*.json 2>/dev/null | head -3
tail -3 "$dir/inproc.log"
echo "== HTTP (mii-serve-load, $clients clients):"
cat "$dir/http-load.json"
exit $status

#!/usr/bin/env bash
# Prefix caching's speed on the GPU machine (carry .deps), through mii-serve:
#   bash bench/run_prefix_bench.sh [MODEL_CONFIG_DIR]      (default bench/configs/llama3-8b)
# Workload "shared": 64 requests at once, each a 2,000-token system prompt shared by all and a
# distinct 100-token question, 128 tokens out; workload "distinct": the same lengths with nothing
# shared (2,100 distinct tokens), for the cost of caching when it cannot help. Each workload runs
# with prefix caching on and off (--no-prefix-caching), random weights. Writes
# $OUT/prefix-bench/{shared,distinct}-{on,off}.json (mii-serve-load's lines) and prints them.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}
model=${1:-bench/configs/llama3-8b}
vocab=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1] + '/config.json'))['vocab_size'])" "$model")
dir=$OUT/prefix-bench
mkdir -p "$dir"
[[ -n ${MII_COMMIT:-} ]] && export MII_COMMIT
bash tools/gpu/build.sh mii-serve mii-serve-load > "$dir/build.log" 2>&1 || { tail -40 "$dir/build.log"; exit 1; }
status=0
port=18100
run() {  # run NAME CACHING(on|off) SHARED_PREFIX PROMPT_RANGE
  local name=$1 caching=$2 shared=$3 prompt=$4 flags=()
  [[ $caching == off ]] && flags=(--no-prefix-caching)
  ./build-gpu/tools/mii-serve "$model" --random-weights --quiet --port $port --max-model-len 8192 "${flags[@]}" \
    > "$dir/serve-$name-$caching.log" 2>&1 &
  local server=$!
  for _ in $(seq 1 300); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=2)" \
      >/dev/null 2>&1 && break
    kill -0 $server 2>/dev/null || break
    sleep 1
  done
  # A warm-up request first (CUDA graphs, GEMM plans), on other tokens than the workload's.
  ./build-gpu/src/serve/mii-serve-load --url "http://127.0.0.1:$port" --clients 1 --requests 2 --prompt 64:64 \
    --gen 8:8 --vocab "$vocab" --seed 99 > /dev/null 2>&1
  ./build-gpu/src/serve/mii-serve-load --url "http://127.0.0.1:$port" --clients 64 --requests 64 --prompt "$prompt" \
    --gen 128:128 --shared-prefix "$shared" --vocab "$vocab" --sla-ttft-ms 100000 > "$dir/$name-$caching.json" \
    2> "$dir/$name-$caching.log" || { echo "$name $caching failed"; tail -5 "$dir/$name-$caching.log"; status=1; }
  kill -TERM $server 2>/dev/null
  wait $server 2>/dev/null
  echo "$name caching $caching: $(cat "$dir/$name-$caching.json")"
}
run shared on 2000 100:100
run shared off 2000 100:100
run distinct on 0 2100:2100
run distinct off 0 2100:2100
exit $status

#!/usr/bin/env bash
# The benchmark, in one command on the GPU machine (carry .deps):
#   bash bench/run_gpu_bench.sh [mistral-7b] [llama3-8b]
#   bash bench/run_gpu_bench.sh grid [llama3-8b]         the throughput grid (mii-bench --scenario grid)
#   bash bench/run_gpu_bench.sh coldstart [mistral-7b] [llama3-8b]   cold start from a checkpoint file
#   bash bench/run_gpu_bench.sh mixtral                  Mixtral-8x7B shape: batch-1 latency vs its floor
#   bash bench/run_gpu_bench.sh issue19                  upload tests, mixtral, coldstart (both shapes),
#                                                        grid (llama3-8b)
#   bash bench/run_gpu_bench.sh fp8 [llama3-8b]          bf16 and FP8 weights side by side (latency,
#                                                        prefill, throughput; FP8_SCENARIOS, FP8_REPEATS), then the
#                                                        grid with FP8 weights when FP8_GRID=1
#   bash bench/run_gpu_bench.sh kvfp8 [llama3-8b]        bf16 and FP8 KV cache side by side: decode at a
#                                                        long context (KV_PROMPT, 8000) and a grid cell
#                                                        whose KV budget limits concurrency
#                                                        (KV_GRID_CELLS 2048:2048, KV_FRACTION 0.1)
# Modes' env: GRID_SECONDS (30: each grid cell's floor-time budget), GRID_CELLS (P:O,...),
# COLD_THREADS (extra cold starts with MII_LOAD_THREADS set to each, e.g. "4 16"),
# MIXTRAL_SCENARIOS (latency), MIXTRAL_LABEL (mii-mixtral-8x7b: the results' label),
# MIXTRAL_ARGS (more mii-bench options, e.g. "--repeats 5 --quantization fp8"), UPLOAD_TESTS=0 (issue19: skip building and running the GPU suite's
# weight-upload tests, which check the loader bit for bit against the host before it is timed).
# Builds mii-bench, measures the machine's ceilings, runs every scenario for mii and the peers
# (transformers eager; static cache + torch.compile; llama.cpp) on the same random-weight shapes,
# then the cold start from a real checkpoint file, and prints the ratio table last.
# Env: PEERS (default "eager compile", the transformers modes, plus llamacpp when LLAMACPP_SRC
# names a llama.cpp snapshot: bench/peers/llamacpp_peer.sh), SCENARIOS (mii), PEER_SCENARIOS,
# MAIN=0 (skip the speed runs above), COLD=0 (skip the cold start, which runs for every model
# named), QUICK=1 (small sizes for mii and transformers; llama.cpp always runs the full ones),
# MII_COMMIT (the commit the JSON records: pass it on a machine whose copy of the tree has no
# .git, e.g. MII_COMMIT=$(git rev-parse --short=7 HEAD) computed where the checkout is).
# Results: $OUT/results.tgz (JSON per runner) and $OUT/table.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=main
case ${1:-} in grid | coldstart | mixtral | issue19 | fp8 | kvfp8) mode=$1; shift ;; esac
OUT=${OUT:-/tmp/out}
res=/tmp/bench-results log=/tmp/bench-logs
mkdir -p "$res" "$log" "$OUT"  # results of earlier invocations on this machine stay
models=("$@")
if ((${#models[@]} == 0)); then
  case $mode in grid | fp8 | kvfp8) models=(llama3-8b) ;; mixtral) models=(mixtral-8x7b) ;; *) models=(mistral-7b llama3-8b) ;; esac
fi
# The commit is embedded when mii-bench is built (bench/commit.cmake reads MII_COMMIT, else asks
# git only when this tree is itself a checkout): `git rev-parse` here would find whatever
# repository encloses a copy of the tree.
[[ -n ${MII_COMMIT:-} ]] && export MII_COMMIT
export PYTHONUNBUFFERED=1
SECONDS=0
failed=0  # the exit status: non-zero when a mii run failed (peers' failures are reported, not fatal)
bash tools/gpu/build.sh mii-bench > "$log/build.log" 2>&1 || { tail -40 "$log/build.log"; exit 1; }
echo "build: ${SECONDS}s"
nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm,clocks.mem --format=csv,noheader | tee "$log/gpu.txt"

# Cold start of each model from a real checkpoint file in the page cache; one on disk at a time
# (15-16 GB each). COLD_THREADS adds runs with MII_LOAD_THREADS set.
run_cold() {
  for m; do
    ./build-gpu/bench/mii-bench --model "bench/configs/$m" --write-checkpoint /tmp/ckpt-$m 2>&1 | tail -1
    cat /tmp/ckpt-$m/model.safetensors > /dev/null  # in the page cache, as the goal states
    ./build-gpu/bench/mii-bench --model /tmp/ckpt-$m --scenario cold --label "mii-cold-$m" --out "$res" 2>&1 \
      | tee "$log/mii-cold-$m.log" | grep -E "cold start|process_start|error" || { echo "cold start $m failed"; failed=1; }
    for t in ${COLD_THREADS:-}; do
      MII_LOAD_THREADS=$t ./build-gpu/bench/mii-bench --model /tmp/ckpt-$m --scenario cold --label "mii-cold-$m-t$t" \
        --out "$res" 2>&1 | grep "cold start" || { echo "cold start $m, $t threads, failed"; failed=1; }
    done
    rm -rf /tmp/ckpt-$m
    echo "cold start $m done: ${SECONDS}s"
  done
}
# The throughput grid: TensorRT-LLM's (input, output) cells, random weights (GRID_QUANTIZATION=fp8:
# FP8 linear layers).
run_grid() {
  local q=${GRID_QUANTIZATION:-} tag=${GRID_QUANTIZATION:+-$GRID_QUANTIZATION}
  for m; do
    ./build-gpu/bench/mii-bench --model "bench/configs/$m" --random-weights --roofline --scenario grid \
      --grid-seconds "${GRID_SECONDS:-30}" ${GRID_CELLS:+--grid-cells "$GRID_CELLS"} ${q:+--quantization $q} \
      --label "mii-grid$tag-$m" --out "$res" \
      2>&1 | tee "$log/mii-grid$tag-$m.log" | grep -E "roofline|loaded|grid|error" || { echo "grid $m failed"; failed=1; }
    echo "grid$tag $m done: ${SECONDS}s"
  done
}
# bf16 and FP8 linear layers (model_config.quantization = "fp8") on the same shape, one after the
# other in this call: the ratios issue 18 states its goals in.
run_fp8() {
  for m; do
    for q in bf16 fp8; do
      ./build-gpu/bench/mii-bench --model "bench/configs/$m" --random-weights --roofline \
        --scenario "${FP8_SCENARIOS:-latency,prefill,throughput}" $([[ $q == fp8 ]] && echo --quantization fp8) \
        ${FP8_REPEATS:+--repeats $FP8_REPEATS} \
        --label "mii-$q-$m" --out "$res" 2>&1 | tee "$log/mii-$q-$m.log" | tail -12 || { echo "$q $m failed"; failed=1; }
      echo "$q $m done: ${SECONDS}s"
    done
    [[ ${FP8_GRID:-0} == 1 ]] && GRID_QUANTIZATION=fp8 run_grid "$m"
  done
}
# The KV cache in bf16 and in FP8 (model_config.kv_cache_dtype) on the same shape: batch-1 decode
# at a long context, where the step reads the cache besides the weights, and one grid cell with a
# KV budget small enough that it limits how many sequences run at once (the FP8 cache holds 1.94x
# the tokens of bf16 at head_dim 128).
run_kvfp8() {
  for m; do
    for kv in auto fp8_e4m3; do
      local tag=$([[ $kv == auto ]] && echo bf16 || echo fp8)
      ./build-gpu/bench/mii-bench --model "bench/configs/$m" --random-weights --roofline --scenario latency \
        --prompt-len "${KV_PROMPT:-8000}" --gen-len 64 --kv-cache-dtype $kv --label "mii-kv$tag-long-$m" --out "$res" \
        2>&1 | tee "$log/mii-kv$tag-long-$m.log" | tail -6 || { echo "kv $tag long $m failed"; failed=1; }
      ./build-gpu/bench/mii-bench --model "bench/configs/$m" --random-weights --roofline --scenario grid \
        --grid-cells "${KV_GRID_CELLS:-2048:2048}" --grid-seconds "${GRID_SECONDS:-30}" --kv-fraction "${KV_FRACTION:-0.1}" \
        --kv-cache-dtype $kv --label "mii-kv$tag-grid-$m" --out "$res" 2>&1 | tee "$log/mii-kv$tag-grid-$m.log" \
        | grep -E "grid|kv|error" || { echo "kv $tag grid $m failed"; failed=1; }
      echo "kv $tag $m done: ${SECONDS}s"
    done
  done
}
# Mixtral-8x7B shape (93 GB of random bf16 weights): batch-1 latency against the floor of the
# bytes a step reads (attention, the routed experts, lm_head).
run_mixtral() {
  ./build-gpu/bench/mii-bench --model bench/configs/mixtral-8x7b --random-weights --roofline \
    --scenario "${MIXTRAL_SCENARIOS:-latency}" --label "${MIXTRAL_LABEL:-mii-mixtral-8x7b}" ${MIXTRAL_ARGS:-} --out "$res" \
    2>&1 | tee "$log/${MIXTRAL_LABEL:-mii-mixtral-8x7b}.log" \
    | tail -8 || { echo "mixtral failed"; failed=1; }
  echo "mixtral done: ${SECONDS}s"
}
# The loader's GPU tests (tests/gpu/weight_upload_test.cpp, context_test.cpp's load case).
run_upload_tests() {
  bash tools/gpu/build.sh mii_test_gpu > "$log/build-tests.log" 2>&1 || { tail -30 "$log/build-tests.log"; failed=1; return; }
  echo "test build: ${SECONDS}s"
  ./build-gpu/tests/mii_test_gpu "cuda weight uploads*,cuda load materializes*" 2>&1 | tee "$log/upload-tests.log" | tail -4
  ((PIPESTATUS[0] == 0)) || { echo "upload tests failed"; failed=1; }
}
finish() {
  echo "total: ${SECONDS}s"
  tar -czf "$OUT/results.tgz" -C "$res" .
  tar -czf "$OUT/logs.tgz" -C "$log" .
  python3 bench/compare.py "$res" | tee "$OUT/table.txt"
  exit $failed
}
case $mode in
  grid) run_grid "${models[@]}"; finish ;;
  coldstart) run_cold "${models[@]}"; finish ;;
  mixtral) run_mixtral; finish ;;
  fp8) run_fp8 "${models[@]}"; finish ;;
  kvfp8) run_kvfp8 "${models[@]}"; finish ;;
  issue19)
    [[ ${UPLOAD_TESTS:-1} == 1 ]] && run_upload_tests
    run_mixtral; run_cold mistral-7b llama3-8b; run_grid llama3-8b; finish ;;
esac

sizes=()
[[ ${QUICK:-0} == 1 ]] && sizes=(--gen-len 32 --prefill-batch 2 --batch 16 --tp-gen 32 --load-requests 16 --clients 4,16 --repeats 1)
for m in "${models[@]}"; do
  [[ ${MAIN:-1} == 1 ]] || break
  cfg=bench/configs/$m
  ./build-gpu/bench/mii-bench --model "$cfg" --random-weights --roofline \
    --scenario "${SCENARIOS:-latency,prefill,throughput,load}" --label "mii-$m" --out "$res" "${sizes[@]}" \
    2>&1 | tee "$log/mii-$m.log" | tail -30 || { echo "mii-bench $m failed"; failed=1; }
  echo "mii $m done: ${SECONDS}s"
  for mode in ${PEERS-eager compile${LLAMACPP_SRC:+ llamacpp}}; do
    if [[ $mode == llamacpp ]]; then  # needs LLAMACPP_SRC (a llama.cpp snapshot in .peer/, carried)
      lcpp=bench/peers/llamacpp_peer.sh
      { [[ -x /tmp/lcpp/bin/llama-batched-bench ]] || bash $lcpp build; } > "$log/llamacpp-build.log" 2>&1 \
        && { [[ -f /tmp/lcpp-$m.gguf ]] || bash $lcpp gguf "$cfg" > "$log/llamacpp-gguf-$m.log" 2>&1; } \
        && LOGS=$log bash $lcpp run "$cfg" "$res/llamacpp-$m.json" 2>&1 | tee "$log/llamacpp-$m.log" | tail -8 \
        || { echo "llama.cpp peer failed: see logs.tgz"; tail -5 "$log"/llamacpp-*.log; }
      rm -f "/tmp/lcpp-$m.gguf"  # 15 GB each: the disk holds one at a time
      echo "llama.cpp $m done: ${SECONDS}s"
      continue
    fi
    peer_sizes=()
    [[ ${QUICK:-0} == 1 ]] && peer_sizes=(--gen-len 32 --prefill-batch 2 --batch 16 --tp-gen 32 --repeats 1)
    timeout 420 python3 bench/peers/transformers_peer.py --config "$cfg" --mode "$mode" --out "$res/hf-$mode-$m.json" \
      --scenarios "${PEER_SCENARIOS:-latency,prefill,throughput}" "${peer_sizes[@]}" 2>&1 | grep -v Warning | tee "$log/hf-$mode-$m.log" | tail -8
    echo "transformers $mode $m done: ${SECONDS}s"
  done
done
[[ ${COLD:-1} == 1 ]] && run_cold "${models[@]}"
finish  # results.tgz, logs.tgz, table.txt: few files (the device tool returns at most 8)

#!/usr/bin/env bash
# The benchmark, in one command on the GPU machine (carry .deps):
#   bash bench/run_gpu_bench.sh [mistral-7b] [llama3-8b]
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
OUT=${OUT:-/tmp/out}
res=/tmp/bench-results log=/tmp/bench-logs
mkdir -p "$res" "$log" "$OUT"  # results of earlier invocations on this machine stay
models=("$@")
((${#models[@]})) || models=(mistral-7b llama3-8b)
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
if [[ ${COLD:-1} == 1 ]]; then
  for m in "${models[@]}"; do  # one checkpoint on disk at a time (15-16 GB each)
    ./build-gpu/bench/mii-bench --model "bench/configs/$m" --write-checkpoint /tmp/ckpt-$m 2>&1 | tail -1
    cat /tmp/ckpt-$m/model.safetensors > /dev/null  # in the page cache, as the goal states
    ./build-gpu/bench/mii-bench --model /tmp/ckpt-$m --scenario cold --label "mii-cold-$m" --out "$res" 2>&1 | tail -6 \
      || { echo "cold start $m failed"; failed=1; }
    rm -rf /tmp/ckpt-$m
  done
fi
echo "total: ${SECONDS}s"
tar -czf "$OUT/results.tgz" -C "$res" .  # few files: the device tool returns at most 8
tar -czf "$OUT/logs.tgz" -C "$log" .
python3 bench/compare.py "$res" | tee "$OUT/table.txt"
exit $failed

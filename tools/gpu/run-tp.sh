#!/usr/bin/env bash
# On a GPU machine: tensor parallelism over NCCL, end to end.
#   bash tools/gpu/run-tp.sh            (builds build-gpu/ with tools/gpu/build.sh; logs into $OUT;
#                                       MII_TP_BUILD_DIR=DIR uses a carried CUDA build instead)
# Steps (each prints "== NAME: PASS|FAIL (rc, seconds)"; the last line sums them up):
#   nccl-world1        mii_test_parallel "[nccl]" alone: collectives at world size 1, and an engine
#                      (and mii::pipeline_tp) with the nccl communicator vs the single one
#   nccl-collectives-N the same collectives under mii-launch --num_gpus N (N = 2, 4); the
#                      world-size-1 comparison ([nccl-world1]) is left out there
#   tp-N               every fixture at tp = N vs tp = 1 (logits, teacher-forced greedy tokens,
#                      identical ranks) and pipeline_tp's rank-0-only vs all_rank_output responses
#   kill-one-rank      rank 1 exits while rank 0 waits in an all-reduce: the job must end with a
#                      non-zero status within 60 s and leave no process behind
# Steps needing more GPUs than the machine has are reported as SKIP.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0  # NVLink multicast stays off on these machines (mii-launch sets it too)
export MII_CONNECT_TIMEOUT=${MII_CONNECT_TIMEOUT:-120}

# MII_TP_BUILD_DIR: a build tree made elsewhere with the CUDA backend (e.g. CI's, built for
# sm_90a on the developers' machine and carried) instead of building here: on a short lease the
# build is most of the time.
bin=${MII_TP_BUILD_DIR:-}
if [[ -z $bin ]]; then
  bash tools/gpu/build.sh mii_test_parallel mii-launch > "$OUT/tp-build.log" 2>&1 \
    || { tail -40 "$OUT/tp-build.log"; echo "run-tp: build failed"; exit 1; }
  bin=$PWD/build-gpu
fi
test_bin=$(cd "$bin" && pwd)/tests/mii_test_parallel
launch=$(cd "$bin" && pwd)/tools/mii-launch
gpus=$(nvidia-smi -L | wc -l)
echo "run-tp: $gpus GPU(s)"; nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader

summary=()
failed=0
step() {  # step NAME GPUS_NEEDED COMMAND...
  local name=$1 need=$2
  shift 2
  if ((need > gpus)); then
    echo "== $name: SKIP (needs $need GPUs)"
    summary+=("$name SKIP")
    return
  fi
  echo "== $name: $*"
  local start=$SECONDS
  timeout 600 "$@" > "$OUT/$name.log" 2>&1
  local rc=$? took=$((SECONDS - start))
  grep -E "^  tp=|^tp worker|passed|failed|FAILED|REAL DIVERGENCE|skipped" "$OUT/$name.log" | head -80
  if ((rc == 0)); then
    echo "== $name: PASS (${took}s)"
    summary+=("$name PASS")
  else
    tail -30 "$OUT/$name.log"
    echo "== $name: FAIL (rc=$rc, ${took}s)"
    summary+=("$name FAIL")
    failed=1
  fi
}

step nccl-world1 1 "$test_bin" "[nccl]"
for n in 2 4; do
  step "nccl-collectives-$n" "$n" "$launch" --num_gpus "$n" "$test_bin" "[nccl]~[nccl-world1]"
  step "tp-$n" "$n" env MII_TEST_WORKER=tp "$launch" --num_gpus "$n" "$test_bin" "[tp-worker]"
done

# Kill one rank: the launcher must stop the survivor (SIGTERM, SIGKILL after 5 s) and report it.
if ((gpus >= 2)); then
  echo "== kill-one-rank"
  pids_dir=$(mktemp -d)
  start=$SECONDS
  MII_TEST_WORKER=tp-fail MII_TP_FAIL_RANK=1 MII_TEST_OUT=$pids_dir timeout 120 "$launch" --num_gpus 2 --grace 5 \
    "$test_bin" "[tp-fail-worker]" > "$OUT/kill-one-rank.log" 2>&1
  rc=$?
  took=$((SECONDS - start))
  sleep 1
  ranks=0 left=()
  for f in "$pids_dir"/pid.*; do
    [[ -f $f ]] || continue
    ranks=$((ranks + 1))
    pid=$(cat "$f")
    kill -0 "$pid" 2>/dev/null && [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]] && left+=("$pid")
  done
  grep -E "tp fail worker|mii-launch" "$OUT/kill-one-rank.log" | head -20
  if ((rc != 0 && rc != 124 && took < 60 && ranks == 2 && ${#left[@]} == 0)); then
    echo "== kill-one-rank: PASS (rc=$rc, ${took}s, both ranks started, none left)"
    summary+=("kill-one-rank PASS")
  else
    echo "== kill-one-rank: FAIL (rc=$rc, ${took}s, $ranks rank(s) started, left running: ${left[*]:-none})"
    for pid in "${left[@]}"; do kill -KILL "$pid"; done
    summary+=("kill-one-rank FAIL")
    failed=1
  fi
  rm -rf "$pids_dir"
else
  echo "== kill-one-rank: SKIP (needs 2 GPUs)"
  summary+=("kill-one-rank SKIP")
fi

echo "== run-tp summary: ${summary[*]}"
exit $failed

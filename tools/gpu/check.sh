#!/usr/bin/env bash
# On the GPU machine, in one call: build everything for sm_90a, run the GPU suite (and the host
# suites), a bench smoke, optionally compute-sanitizer, and print a short summary last. Carry .deps (and
# .cache/tokenizers for the tokenizer suite).
#   bash tools/gpu/check.sh            MII_SANITIZE_GPU=1 adds memcheck + racecheck runs,
#                                      MII_HOST_SUITES=0 skips the host suites,
#                                      MII_GPU_TESTS="[model]" filters the GPU suite,
#                                      MII_COMMIT=<id> is the commit the bench smoke records
#                                      (this copy of the tree has no .git)
# Exit status: 0 only when every step that ran passed. The GPU suite exiting 77 (no usable GPU)
# is a failure here: this script exists to run it.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
SECONDS=0
bash tools/gpu/build.sh > "$OUT/build.log" 2>&1 || { tail -60 "$OUT/build.log"; echo "== check: FAIL (build)"; exit 1; }
build_s=$SECONDS
# A step's status for the summary: "ok" or "FAIL (rc=N)".
status() {  # status RC
  if (($1 == 0)); then echo ok; else echo "FAIL (rc=$1)"; fi
}
./build-gpu/tests/mii_test_gpu ${MII_GPU_TESTS:-} 2>&1 | tee "$OUT/gpu-tests.log" | tail -25
gpu_rc=${PIPESTATUS[0]}
gpu=$(status "$gpu_rc")
((gpu_rc == 77)) && gpu="FAIL (skipped: no usable GPU on the GPU machine)"
gpu_s=$((SECONDS - build_s))
host="not run (MII_HOST_SUITES=0)"  # CI runs them on every landing; here only when asked
if [[ ${MII_HOST_SUITES:-1} == 1 ]]; then
  (cd build-gpu && ctest -L host -j 8 --timeout 600 2>&1 | tee "$OUT/host-tests.log" | tail -5)
  host_rc=${PIPESTATUS[0]}
  host=$(status "$host_rc")
fi
# Bench smoke: the engine end to end on the GPU through mii-bench (small sizes, a fixture model).
./build-gpu/bench/mii-bench --model tests/fixtures/models/llama2 --scenario latency,throughput --prompt-len 32 \
  --gen-len 16 --batch 8 --tp-prompt 32 --tp-gen 8 --repeats 1 --out /tmp/bench-smoke > "$OUT/bench-smoke.log" 2>&1
smoke_rc=$?
smoke=$(status $smoke_rc)
tail -8 "$OUT/bench-smoke.log"
san="sanitizers not run"
if [[ ${MII_SANITIZE_GPU:-0} == 1 ]]; then
  export MII_TEST_QUICK=1
  compute-sanitizer --tool memcheck --error-exitcode 9 ./build-gpu/tests/mii_test_gpu "~[oom]" > "$OUT/memcheck.log" 2>&1
  mem_rc=$?
  mem=$(status $mem_rc)
  compute-sanitizer --tool racecheck --error-exitcode 9 ./build-gpu/tests/mii_test_gpu "[attention],[graphs]" > "$OUT/racecheck.log" 2>&1
  race_rc=$?
  race=$(status $race_rc)
  san="memcheck $mem ($(grep -c 'Invalid' "$OUT/memcheck.log") invalid), racecheck $race ($(grep -c 'hazard' "$OUT/racecheck.log") hazard lines)"
fi
failed=()
[[ $gpu == ok ]] || failed+=("gpu suite")
[[ $host == FAIL* ]] && failed+=("host suites")
[[ $smoke == ok ]] || failed+=("bench smoke")
[[ $san == *FAIL* ]] && failed+=("sanitizers")
echo "== check: build ${build_s}s, gpu suite $gpu (${gpu_s}s) [$(grep -E 'test cases' "$OUT/gpu-tests.log" | tail -1)], host suites $host, bench smoke $smoke, $san, total ${SECONDS}s"
if ((${#failed[@]})); then
  echo "== check: FAIL: ${failed[*]}"
  exit 1
fi
echo "== check: PASS"

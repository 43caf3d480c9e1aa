#!/usr/bin/env bash
# README's second command: builds everything (the CUDA backend too when nvcc is present) and runs
# the test suites. GPU suites report "skipped" on machines without a usable GPU, and the last
# line says so: how many tests passed, which were skipped and why, which failed, and whether the
# GPU suite was built at all. Exit status: ctest's (non-zero when a test failed).
#   bash tools/test.sh            (build dir: build/, override with MII_BUILD_DIR)
#   bash tools/test.sh --summary CTEST_OUTPUT LAST_TEST_LOG GPU_TESTS
#                                 (only the last line, from a ctest run's output, its
#                                 Testing/Temporary/LastTest.log and the number of gpu-labelled
#                                 tests: what the test of this script feeds it)
set -euo pipefail

# The last line. CTest counts a skipped test as "not failed", so its own "100% tests passed"
# reads the same whether the GPU suite ran or not; this line does not.
summary() {
  local out=$1 last=$2 gpu_tests=$3
  local total failed skipped reason line
  total=$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' "$out" | tail -1)
  failed=$(awk '/The following tests FAILED:/ {f = 1; next} f && /^[[:space:]]+[0-9]+ - / {sub(/^[[:space:]]+[0-9]+ - /, ""); sub(/ \(.*$/, ""); printf "%s%s", s, $0; s = ", "; next} f && !/^[[:space:]]+[0-9]+ - / {f = 0}' "$out")
  skipped=$(awk '/The following tests did not run:/ {f = 1; next} f && /^[[:space:]]+[0-9]+ - / {sub(/^[[:space:]]+[0-9]+ - /, ""); sub(/ \(.*$/, ""); printf "%s%s", s, $0; s = ", "; next} f && !/^[[:space:]]+[0-9]+ - / {f = 0}' "$out")
  local n_failed=0 n_skipped=0
  [[ -n $failed ]] && n_failed=$(awk -F', ' '{print NF}' <<< "$failed")
  [[ -n $skipped ]] && n_skipped=$(awk -F', ' '{print NF}' <<< "$skipped")
  total=${total:-0}
  line="tests: $((total - n_failed - n_skipped)) passed"
  if ((n_skipped)); then
    # The suites print why they skipped ("GPU suite skipped: ...", "skipped: N test case(s) need a GPU: ...").
    reason=$(grep -m1 -E '^(GPU suite )?skipped: ' "$last" 2>/dev/null |
             sed 's/^GPU suite skipped: //; s/^skipped: [0-9]* test case(s) need a GPU: //' || true)
    line+=", $n_skipped skipped (${reason:-see $last}): $skipped"
  else
    line+=", 0 skipped"
  fi
  if ((n_failed)); then line+=", $n_failed FAILED: $failed"; else line+=", 0 failed"; fi
  if [[ ${gpu_tests:-0} == 0 ]]; then
    line+="; the GPU suite was not built (no CUDA toolkit: nvcc not found, or -DMII_WITH_CUDA=OFF)"
  elif ! grep -qw gpu <<< "$skipped $failed"; then
    line+="; GPU suite ran"
  fi
  echo "$line"
}

if [[ ${1:-} == --summary ]]; then
  summary "$2" "$3" "$4"
  exit 0
fi

cd "$(dirname "$0")/.."
bash tools/install-deps.sh
build=${MII_BUILD_DIR:-build}
jobs=${MII_JOBS:-$(nproc)}
cmake -S . -B "$build" -G "$(command -v ninja >/dev/null && echo Ninja || echo 'Unix Makefiles')" \
  -DCMAKE_BUILD_TYPE=Release -DMII_BUILD_BENCH=ON ${MII_CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j "$jobs"
cd "$build"
gpu_tests=$(ctest -N -L gpu | sed -n 's/^Total Tests: //p')  # before the run: -N rewrites LastTest.log
rc=0
ctest --output-on-failure -j "$jobs" --timeout 1200 | tee ctest.log || rc=$?
summary ctest.log Testing/Temporary/LastTest.log "$gpu_tests"
exit "$rc"

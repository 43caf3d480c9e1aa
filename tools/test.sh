#!/usr/bin/env bash
# README's second command: builds everything (the CUDA backend too when nvcc is present) and runs
# the test suites. GPU suites report "skipped" on machines without a usable GPU.
#   bash tools/test.sh            (build dir: build/, override with MII_BUILD_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
build=${MII_BUILD_DIR:-build}
jobs=${MII_JOBS:-$(nproc)}
cmake -S . -B "$build" -G "$(command -v ninja >/dev/null && echo Ninja || echo 'Unix Makefiles')" \
  -DCMAKE_BUILD_TYPE=Release -DMII_BUILD_BENCH=ON ${MII_CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j "$jobs"
cd "$build"
ctest --output-on-failure -j "$jobs" --timeout 1200 | tee ctest.log
grep -E "tests passed|tests failed" ctest.log | tail -1

#!/usr/bin/env bash
# README's first command: builds mii-generate and completes a few prompts with the bundled tiny
# Llama (tests/fixtures/models/demo-llama, trained on tests/fixtures/demo_text.txt), on the GPU
# when one is usable, else on the host backend.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
build=${MII_BUILD_DIR:-build}
cmake -S . -B "$build" -G "$(command -v ninja >/dev/null && echo Ninja || echo 'Unix Makefiles')" \
  -DCMAKE_BUILD_TYPE=Release ${MII_CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j "${MII_JOBS:-$(nproc)}" --target mii-generate
"$build"/tools/mii-generate tests/fixtures/models/demo-llama --greedy --max-new-tokens 24 \
  --prompt "DeepSpeed is" --prompt "Seattle is" --prompt "The quick brown" --prompt "Once upon a time" "$@"

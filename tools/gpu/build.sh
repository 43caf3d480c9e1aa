#!/usr/bin/env bash
# On the GPU machine: configure and build mii with the CUDA backend for Hopper (sm_90a), using
# the Debian packages carried in .deps/ (tools/gpu/stage-deps.sh). Usage:
#   bash tools/gpu/build.sh [targets...]        (default: everything)
# Build tree: build-gpu/ (kept between calls while the machine stays warm).
set -euo pipefail
cd "$(dirname "$0")/../.."
[[ -f .deps/.complete ]] || { echo "build.sh: .deps/ missing: run tools/gpu/stage-deps.sh here and carry .deps" >&2; exit 2; }
export CMAKE_PREFIX_PATH=$PWD/.deps/usr
jobs=${MII_JOBS:-$(nproc)}
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DMII_WITH_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=${MII_CUDA_ARCH:-90a} -DMII_BUILD_BENCH=ON > build-gpu.configure.log 2>&1 \
  || { tail -40 build-gpu.configure.log; exit 1; }
if (($#)); then
  cmake --build build-gpu -j "$jobs" --target "$@"
else
  cmake --build build-gpu -j "$jobs"
fi

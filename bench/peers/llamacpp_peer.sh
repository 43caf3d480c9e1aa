#!/usr/bin/env bash
# The llama.cpp peer (its CUDA backend, the engine people embed in C++), on the GPU machine:
#   LLAMACPP_SRC=.peer/llama.cpp bash bench/peers/llamacpp_peer.sh build
#   LLAMACPP_SRC=.peer/llama.cpp bash bench/peers/llamacpp_peer.sh gguf CONFIG_DIR
#   LLAMACPP_SRC=.peer/llama.cpp bash bench/peers/llamacpp_peer.sh run CONFIG_DIR OUT.json
# The source is never committed: bring a snapshot of github.com/ggerganov/llama.cpp into the
# ignored .peer/ folder and carry it (bench/RESULTS.md names the commit measured). `build`
# builds llama-batched-bench for sm_90 into /tmp/lcpp; `gguf` writes a random f16 GGUF of the
# config's shape to /tmp/lcpp-<name>.gguf; `run` measures mii-bench's scenarios on it
# (latency 1 x (512, 128), prefill 8 x 2048, throughput 64 x (512, 128); flash attention on)
# and writes the results in mii-bench's JSON schema.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "${LLAMACPP_SRC:?set LLAMACPP_SRC to a llama.cpp source tree}" && pwd)
export LLAMACPP_SRC=$src
build=/tmp/lcpp
case ${1:-} in
  build)
    cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
      -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF > /tmp/lcpp-configure.log 2>&1 \
      || { tail -30 /tmp/lcpp-configure.log; exit 1; }
    cmake --build "$build" --target llama-batched-bench -j "${LLAMACPP_JOBS:-$(nproc)}"
    ;;
  gguf)
    cfg=${2:?config dir}
    python3 "$here/llamacpp_peer.py" gguf "$cfg" "/tmp/lcpp-$(basename "$cfg").gguf"
    ;;
  run)
    cfg=${2:?config dir} out=${3:?output json}
    gguf=/tmp/lcpp-$(basename "$cfg").gguf
    [[ -x $build/bin/llama-batched-bench ]] || { echo "llamacpp_peer: run 'build' first" >&2; exit 2; }
    [[ -f $gguf ]] || { echo "llamacpp_peer: $gguf missing: run 'gguf $cfg' first" >&2; exit 2; }
    jsonl=${out%.json}.jsonl
    : > "$jsonl"
    # $1 prompt, $2 generated, $3 parallel requests; context sized to fit them all. Each shape runs
    # twice (-npl N,N) and the report keeps the second: batched-bench warms up on 16 tokens only,
    # so its first long prompt still pays for first-use kernel loading.
    bench() {
      local ctx=$(($3 * ($1 + $2) + 256))
      timeout 300 "$build/bin/llama-batched-bench" -m "$gguf" -ngl 99 -fa -c "$ctx" -b 2048 -ub 512 \
        -npp "$1" -ntg "$2" -npl "$3,$3" --output-format jsonl 2> "${LOGS:-/tmp}/llamacpp-$(basename "$cfg")-$1-$2-$3.log" | grep '^{' >> "$jsonl"
    }
    bench 512 128 1
    bench 2048 1 8
    bench 512 128 64
    LLAMACPP_VERSION=$(cat "$src/.snapshot" 2>/dev/null || echo unknown) python3 "$here/llamacpp_peer.py" report "$cfg" "$jsonl" "$out"
    ;;
  *)
    sed -n 2,11p "$0" >&2
    exit 2
    ;;
esac

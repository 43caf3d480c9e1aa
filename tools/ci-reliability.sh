#!/usr/bin/env bash
# Reliability checks (docs/reliability.md), run by CI after the main tests. Host only, clang 14:
#   1. asan  AddressSanitizer + UndefinedBehaviorSanitizer (+ LeakSanitizer) build of the host test
#            suites, run with a smaller soak (build-asan/)
#   2. tsan  ThreadSanitizer build of the suites that use threads: the host backend's worker pool
#            (model fixtures, soak), the shared tokenizer, the threads communicator, a pipeline
#            shared by many threads (build-tsan/)
#   3. fuzz  every libFuzzer target in tests/fuzz for MII_FUZZ_SECONDS each, from the seed corpus
#            and the saved crash inputs; any crash, sanitizer report, leak, timeout or OOM fails
#            (build-fuzz/, findings in build-fuzz/findings/)
# The soak test itself runs in the main build's ctest (Release); steps 1 and 2 run it again, smaller.
#
#   bash tools/ci-reliability.sh                 # all steps
#   MII_RELIABILITY_STEPS="fuzz" MII_FUZZ_SECONDS=600 bash tools/ci-reliability.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh

steps=${MII_RELIABILITY_STEPS:-asan tsan fuzz}
njobs=${MII_JOBS:-$(nproc)}
fuzz_seconds=${MII_FUZZ_SECONDS:-60}
asan_soak_requests=${MII_ASAN_SOAK_REQUESTS:-150}
tsan_soak_requests=${MII_TSAN_SOAK_REQUESTS:-40}
export CC=${MII_CLANG:-clang-14} CXX=${MII_CLANGXX:-clang++-14}
export ASAN_SYMBOLIZER_PATH=${ASAN_SYMBOLIZER_PATH:-$(command -v llvm-symbolizer-14 || command -v llvm-symbolizer || true)}
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
# Host builds: -O1 keeps sanitizer builds quick to compile and stack traces exact; no NDEBUG.
# (MII_FUZZ adds -gline-tables-only itself.)
# Tools stay configured: the parallel suite runs the mii-launch it depends on.
common=(-G Ninja -DMII_WITH_CUDA=OFF -DMII_BUILD_TOOLS=ON -DMII_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo)
lines="-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only"

timer() { echo "== reliability: $1 took $((SECONDS - $2)) s"; }

# The suites of a build dir that exist (a suite folder without sources has no target).
suites_in() {
  local dir=$1; shift
  local have
  have=$(cmake --build "$dir" --target help | sed -n 's/^\(mii_test_[a-z_]*\):.*/\1/p')
  for s in "$@"; do grep -qx "mii_test_$s" <<<"$have" && echo "$s"; done
  return 0
}

run_suites() {  # build dir, then "suite[:catch filter]"...
  local dir=$1; shift
  local failed=0
  for spec in "$@"; do
    local suite=${spec%%:*} filter="~[gpu]"
    [[ $spec == *:* ]] && filter=${spec#*:}
    echo "-- $suite ($filter)"
    local t=$SECONDS
    if ! "$dir/tests/mii_test_$suite" "$filter"; then
      echo "!! $suite FAILED under $(basename "$dir")"
      failed=1
    fi
    echo "   $suite: $((SECONDS - t)) s"
  done
  return $failed
}

status=0

if [[ " $steps " == *" asan "* ]]; then
  t0=$SECONDS
  echo "== reliability 1/3: ASan + UBSan host test suites (build-asan)"
  cmake -S . -B build-asan "${common[@]}" "$lines" -DMII_SANITIZE=ON >/dev/null
  mapfile -t suites < <(suites_in build-asan io hub tokenizer model runtime parallel soak pipeline chat serve)
  cmake --build build-asan -j "$njobs" --target "${suites[@]/#/mii_test_}"
  timer "asan build" "$t0"
  t1=$SECONDS
  bash tools/fetch-tokenizers.sh
  specs=()
  for s in "${suites[@]}"; do
    case $s in
      # The shared pipeline and its limits; the long-prompt comparisons are the Release run's.
      pipeline) specs+=("pipeline:[concurrency],[limits]") ;;
      *) specs+=("$s") ;;
    esac
  done
  MII_SOAK_REQUESTS=$asan_soak_requests run_suites build-asan "${specs[@]}" || status=1
  # Chat templates against Python jinja2, under the sanitizers (the runner comes with the suite).
  if [[ -x build-asan/tests/mii_chat_oracle_runner ]]; then
    /usr/bin/python3 tests/chat/oracle_test.py --runner build-asan/tests/mii_chat_oracle_runner --random 1000 || status=1
  fi
  timer "asan run" "$t1"
fi

if [[ " $steps " == *" tsan "* ]]; then
  t0=$SECONDS
  echo "== reliability 2/3: ThreadSanitizer, threaded suites (build-tsan)"
  cmake -S . -B build-tsan "${common[@]}" "$lines" -DMII_TSAN=ON >/dev/null
  # The suites that run host code on several threads; the model suite's fixtures run on the
  # worker pool with 2 threads, the soak on all cores.
  mapfile -t suites < <(suites_in build-tsan parallel hub tokenizer model soak pipeline chat serve)
  cmake --build build-tsan -j "$njobs" --target "${suites[@]/#/mii_test_}"
  timer "tsan build" "$t0"
  t1=$SECONDS
  bash tools/fetch-tokenizers.sh
  specs=()
  for s in "${suites[@]}"; do
    case $s in
      tokenizer) specs+=("tokenizer:[threads]") ;;
      # One pipeline shared by many threads: callers, the engine thread, cancellations.
      pipeline) specs+=("pipeline:[concurrency]") ;;
      chat) specs+=("chat:[threads]") ;;
      # Threads resolving one Hub repo into one cache at once (the blob lock, libcurl per thread).
      hub) specs+=("hub:[threads]") ;;
      # mii-launch is one thread managing processes through signals; TSan has nothing to check
      # there and delays signal delivery, which its tests time.
      parallel) specs+=("parallel:~[launch]~[gpu]") ;;
      *) specs+=("$s") ;;
    esac
  done
  MII_SERVE_TEST_CLIENTS=16 MII_SOAK_REQUESTS=$tsan_soak_requests run_suites build-tsan "${specs[@]}" || status=1
  timer "tsan run" "$t1"
fi

if [[ " $steps " == *" fuzz "* ]]; then
  t0=$SECONDS
  echo "== reliability 3/3: libFuzzer targets, ${fuzz_seconds} s each (build-fuzz)"
  cmake -S . -B build-fuzz "${common[@]}" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -DMII_FUZZ=ON >/dev/null
  cmake --build build-fuzz -j "$njobs" --target mii_fuzzers
  timer "fuzz build" "$t0"
  t1=$SECONDS
  bash tools/fetch-tokenizers.sh || true  # the codec fuzzer adds the real tokenizers when cached
  rm -rf build-fuzz/findings build-fuzz/logs  # only this run's findings get printed
  mkdir -p build-fuzz/findings build-fuzz/logs
  targets=$(cd tests/fuzz && ls fuzz_*.cpp | sed 's/\.cpp$//')
  # Two at a time on a 2-core machine: each fuzzer is one process.
  pids=() names=()
  fuzz_one() {
    local name=$1 target=${1#fuzz_}
    local work=build-fuzz/corpus/$target
    mkdir -p "$work"
    local dirs=("$work" "tests/fuzz/corpus/$target")
    [[ -d tests/fuzz/regressions/$target ]] && dirs+=("tests/fuzz/regressions/$target")
    # -timeout: one input running 10 s is a hang; -rss_limit_mb: memory a bad input makes us take.
    "build-fuzz/tests/fuzz/$name" -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 \
      -max_len=65536 -print_final_stats=1 -artifact_prefix="build-fuzz/findings/$target-" "${dirs[@]}" \
      >"build-fuzz/logs/$target.log" 2>&1
  }
  for name in $targets; do
    while (( $(jobs -rp | wc -l) >= njobs )); do sleep 1; done
    fuzz_one "$name" &
    pids+=($!) names+=("$name")
  done
  for i in "${!pids[@]}"; do
    name=${names[$i]} target=${names[$i]#fuzz_}
    if wait "${pids[$i]}"; then
      echo "-- $name: ok: $(grep -E '^#[0-9]+.*(DONE|pulse)' "build-fuzz/logs/$target.log" | tail -1)"
      grep -E 'stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' \
        "build-fuzz/logs/$target.log" | sed 's/^/   /'
    else
      status=1
      echo "!! $name: FINDING (log build-fuzz/logs/$target.log)"
      tail -n 60 "build-fuzz/logs/$target.log"
      for f in build-fuzz/findings/"$target"-*; do
        [[ -e $f ]] || continue
        echo "-- input $f ($(stat -c %s "$f") bytes; replay: build-fuzz/tests/fuzz/$name $f):"
        head -c 2048 "$f" | od -A d -c | head -n 40
      done
    fi
  done
  timer "fuzz run" "$t1"
fi

if ((status)); then
  echo "== reliability: FAILED"
  exit 1
fi
echo "== reliability: all green"

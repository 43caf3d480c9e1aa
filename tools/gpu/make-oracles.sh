#!/usr/bin/env bash
# On the GPU machine: produce the oracle data that CI tests against, with the real reference
# libraries (transformers + torch for models, tokenizers for the tokenizer corpus).
#   bash tools/gpu/make-oracles.sh        (needs .cache/tokenizers carried; writes into $OUT)
#   FIXTURES="qwen3 gemma2" TOKENIZERS="gemma3" bash tools/gpu/make-oracles.sh   (only those; FIXTURES=none
#   or TOKENIZERS=none skips that generator). A tokenizer may travel gzipped as .cache/tokgz/NAME.json.gz.
# Results come back as $OUT/fixtures.tar.gz and $OUT/tokenizer-expected.tar.gz; unpack them into
# tests/fixtures/models/ and tests/fixtures/tokenizer/ respectively.
# Exit status: non-zero when either generator failed (its archive is then not written: a partial
# set of oracles must not be unpacked over the committed ones).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}
{
  echo "== machine"; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  nvcc --version | tail -1; cmake --version | head -1; g++ --version | head -1
  ls /usr/include/boost/hana.hpp /usr/include/boost/version.hpp 2>&1; grep "define BOOST_LIB_VERSION" /usr/include/boost/version.hpp
  python3 -c "import torch, transformers, tokenizers, safetensors; print('torch', torch.__version__, 'transformers', transformers.__version__, 'tokenizers', tokenizers.__version__, 'safetensors', safetensors.__version__)"
} 2>&1 | tee "$OUT/env.txt"

SECONDS=0
fix_rc=0
if [[ ${FIXTURES:-} != none ]]; then
  # shellcheck disable=SC2086  # FIXTURES is a list of names
  python3 tests/fixtures/make_fixtures.py "$work/fixtures" ${FIXTURES:-} 2>&1 | tee "$OUT/fixtures.log"
  fix_rc=${PIPESTATUS[0]}
  echo "fixtures: rc=$fix_rc in ${SECONDS}s"
  ((fix_rc == 0)) && tar -czf "$OUT/fixtures.tar.gz" -C "$work/fixtures" .
fi

tok_rc=0
if [[ ${TOKENIZERS:-} != none ]]; then
  args=()
  for n in ${TOKENIZERS:-llama2 llama3 qwen3 gemma3}; do
    json=.cache/tokenizers/$n/tokenizer.json
    if [[ ! -s $json && -s .cache/tokgz/$n.json.gz ]]; then
      mkdir -p "$(dirname "$json")" && gunzip -c ".cache/tokgz/$n.json.gz" >"$json"
    fi
    args+=("$n=$json")
  done
  python3 tests/fixtures/tokenizer/make_expected.py tests/fixtures/tokenizer/corpus.jsonl "$work/tokexp" "${args[@]}" 2>&1 | tee "$OUT/tokenizer.log"
  tok_rc=${PIPESTATUS[0]}
  ((tok_rc == 0)) && tar -czf "$OUT/tokenizer-expected.tar.gz" -C "$work/tokexp" .
fi
ls -la "$OUT"
echo "== summary: fixtures rc=$fix_rc tokenizer rc=$tok_rc total ${SECONDS}s"
if ((fix_rc || tok_rc)); then
  echo "== make-oracles: FAIL"
  exit 1
fi
echo "== make-oracles: PASS"

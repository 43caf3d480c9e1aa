#!/usr/bin/env bash
# Runs the tokenizer benchmark for mii (tokenizer-bench, already built in BUILD_DIR) and for the
# Hugging Face `tokenizers` library (bench/tokenizer_peer.py) on the same text, tokenizers and
# split, one after the other on the same CPU core, and prints a table. Builds nothing.
#
#   bench/run_tokenizer_bench.sh BUILD_DIR [RUNS]
#
# Needs: BUILD_DIR/bench/tokenizer-bench, the tokenizer.json files (tools/fetch-tokenizers.sh),
# python3 (for the text and the table) and, for the peer column, `import tokenizers`.
# RESULTS=DIR also writes DIR/tokenizer-bench.json (both sides' rows, the CPU, the commit), the
# file bench/results_md.py builds RESULTS.md's tokenizer table from.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:?usage: run_tokenizer_bench.sh BUILD_DIR [RUNS]}
runs=${2:-5}
bench=$build/bench/tokenizer-bench
[[ -x $bench ]] || { echo "run_tokenizer_bench: $bench not found (build the tokenizer-bench target)" >&2; exit 1; }
out=$root/.cache/bench
mkdir -p "$out"
text=$out/tokenizer_text.txt
[[ -s $text ]] || python3 "$root/bench/make_tokenizer_text.py" "$text" >&2

# One core for both, so that neither can use a second one.
pin=()
if command -v taskset >/dev/null; then
  cpu=${MII_BENCH_CPU:-$(( $(nproc) - 1 ))}
  pin=(taskset -c "$cpu")
fi

"${pin[@]}" "$bench" --text "$text" --runs "$runs" > "$out/tokenizer_mii.jsonl"
if python3 -c "import tokenizers" 2>/dev/null; then
  "${pin[@]}" python3 "$root/bench/tokenizer_peer.py" --text "$text" --runs "$runs" > "$out/tokenizer_hf.jsonl"
else
  echo "run_tokenizer_bench: python3 cannot import tokenizers; the HF column stays empty" >&2
  : > "$out/tokenizer_hf.jsonl"
fi

python3 - "$out/tokenizer_mii.jsonl" "$out/tokenizer_hf.jsonl" "${RESULTS:-}" <<'PY'
import json, os, platform, sys
def rows(path):
    return {r["tokenizer"]: r for r in (json.loads(l) for l in open(path) if l.strip())}
mii, hf = rows(sys.argv[1]), rows(sys.argv[2])
if sys.argv[3]:
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
    doc = {"runner": "tokenizer-bench", "cpu": cpu, "machine": platform.node(),
           "commit": next(iter(mii.values())).get("commit", "unknown"),
           "mii": list(mii.values()), "hf": list(hf.values())}
    os.makedirs(sys.argv[3], exist_ok=True)
    with open(os.path.join(sys.argv[3], "tokenizer-bench.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
any_row = next(iter(mii.values()))
print(f"text: {any_row['text_bytes'] / 1e6:.2f} MB in {any_row['chunks']} paragraphs, one thread, encode without special tokens")
if hf:
    print(f"HF tokenizers {next(iter(hf.values())).get('version', '?')} (encode_batch, parallelism off)")
print("MB/s from wall time (in brackets: from the encoding thread's CPU time)")
print(f"{'tokenizer':<10} {'mii MB/s':>17} {'HF MB/s':>17} {'ratio':>7} {'mii load ms':>12} {'HF load ms':>11}  tokens")
for name, m in mii.items():
    h = hf.get(name)
    ratio = f"{m['encode_mb_s'] / h['encode_mb_s']:.2f}x" if h else "-"
    same = "" if not h else ("same" if h["tokens"] == m["tokens"] else f"DIFFER: mii {m['tokens']} HF {h['tokens']}")
    mm = f"{m['encode_mb_s']:.2f} [{m.get('encode_cpu_mb_s', float('nan')):.2f}]"
    hh = f"{h['encode_mb_s']:.2f} [{h.get('encode_cpu_mb_s', float('nan')):.2f}]" if h else "-"
    print(f"{name:<10} {mm:>17} {hh:>17} {ratio:>7} "
          f"{m['load_ms']:>12.1f} {h['load_ms'] if h else float('nan'):>11.1f}  {m['tokens']} {same}")
PY

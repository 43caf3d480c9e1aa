#!/usr/bin/env python3
"""The Hugging Face `tokenizers` library (Rust, through its Python binding) on the same text, the
same tokenizer.json files and the same split as bench/tokenizer_bench.cpp, on one thread.

  tokenizer_peer.py [--text FILE] [--runs N] [--load-runs N] [NAME=PATH ...]

The text is encoded paragraph by paragraph (split after each "\\n\\n", the paragraph keeping it),
without special tokens. Timed: Tokenizer.encode_batch(paragraphs) with parallelism off
(TOKENIZERS_PARALLELISM=false, RAYON_NUM_THREADS=1), which keeps Python's per-call overhead out of
the Rust library's number; a plain loop of Tokenizer.encode is reported too, and encode_cpu_mb_s
from the thread's CPU time (if the library used another thread despite the settings, that work
would be missing from it, so compare it only when it agrees with encode_mb_s). Prints one JSON line
per tokenizer in tokenizer-bench's format (MB = 10^6 bytes, medians).
"""
import os

os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["RAYON_RS_NUM_CPUS"] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import tokenizers  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def paragraphs(text):
    chunks, pos = [], 0
    while pos < len(text):
        end = text.find("\n\n", pos)
        end = len(text) if end < 0 else end + 2
        chunks.append(text[pos:end])
        pos = end
    return chunks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--text", default=os.path.join(ROOT, ".cache/bench/tokenizer_text.txt"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--load-runs", type=int, default=5)
    ap.add_argument("tokenizers", nargs="*")
    args = ap.parse_args()
    specs = [s.split("=", 1) for s in args.tokenizers] or [
        (n, os.path.join(ROOT, ".cache/tokenizers", n, "tokenizer.json")) for n in ("llama2", "llama3", "qwen3")]
    with open(args.text, "rb") as f:
        raw = f.read()
    text = raw.decode("utf-8")
    chunks = paragraphs(text)
    for name, path in specs:
        load_ms = []
        for _ in range(args.load_runs):
            t0 = time.perf_counter()
            tokenizers.Tokenizer.from_file(path)
            load_ms.append((time.perf_counter() - t0) * 1e3)
        tok = tokenizers.Tokenizer.from_file(path)
        tokens = sum(len(e.ids) for e in tok.encode_batch(chunks, add_special_tokens=False))  # warm-up
        batch_mb_s, cpu_mb_s, loop_mb_s = [], [], []
        for _ in range(args.runs):
            t0, c0 = time.perf_counter(), time.thread_time()
            count = sum(len(e.ids) for e in tok.encode_batch(chunks, add_special_tokens=False))
            batch_mb_s.append(len(raw) / 1e6 / (time.perf_counter() - t0))
            cpu_mb_s.append(len(raw) / 1e6 / (time.thread_time() - c0))
            assert count == tokens
            t0 = time.perf_counter()
            for c in chunks:
                tok.encode(c, add_special_tokens=False)
            loop_mb_s.append(len(raw) / 1e6 / (time.perf_counter() - t0))
        print(json.dumps({
            "bench": "tokenizer", "impl": "hf-tokenizers", "version": tokenizers.__version__, "tokenizer": name,
            "text_bytes": len(raw), "chunks": len(chunks), "split": "paragraph", "threads": 1, "tokens": tokens,
            "load_ms": round(statistics.median(load_ms), 2), "encode_mb_s": round(statistics.median(batch_mb_s), 3),
            "encode_loop_mb_s": round(statistics.median(loop_mb_s), 3),
            "encode_cpu_mb_s": round(statistics.median(cpu_mb_s), 3),
            "load_ms_runs": [round(x, 3) for x in load_ms], "encode_mb_s_runs": [round(x, 3) for x in batch_mb_s]}),
            flush=True)


if __name__ == "__main__":
    main()

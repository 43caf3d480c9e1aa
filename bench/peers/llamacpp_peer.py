#!/usr/bin/env python3
"""Helpers for the llama.cpp peer (bench/peers/llamacpp_peer.sh), two subcommands:

  llamacpp_peer.py gguf CONFIG_DIR OUT.gguf
      writes a llama-arch GGUF with random f16 weights of the shape in CONFIG_DIR/config.json
      (speed only: a dummy vocabulary with byte tokens; needs numpy and llama.cpp's gguf-py,
      found through $LLAMACPP_SRC).
  llamacpp_peer.py report CONFIG_DIR RESULTS.jsonl OUT.json
      turns llama-batched-bench's jsonl lines into mii-bench's JSON schema so that
      bench/compare.py puts llama.cpp beside mii and transformers.

llama.cpp has no Mistral/Llama-3 specifics that matter at these lengths (the sliding window is
4096 and no prompt here reaches it), so both shapes run as its "llama" architecture.
"""
import json
import os
import subprocess
import sys


def write_gguf(config_dir, out):
    import numpy as np
    sys.path.insert(0, os.path.join(os.environ["LLAMACPP_SRC"], "gguf-py"))
    import gguf

    c = json.load(open(os.path.join(config_dir, "config.json")))
    hidden, layers, heads = c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"]
    kv_heads, ffn, vocab = c.get("num_key_value_heads", heads), c["intermediate_size"], c["vocab_size"]
    head_dim = c.get("head_dim") or hidden // heads

    w = gguf.GGUFWriter(out, "llama")
    w.add_context_length(c.get("max_position_embeddings", 8192))
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(float(c.get("rope_theta", 10000.0)))
    w.add_layer_norm_rms_eps(float(c.get("rms_norm_eps", 1e-5)))
    w.add_file_type(1)  # all f16
    w.add_vocab_size(vocab)
    special, byte_tokens = ["<unk>", "<s>", "</s>"], [f"<0x{i:02X}>" for i in range(256)]
    tokens = special + byte_tokens + [f"t{i}" for i in range(vocab - 259)]
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * vocab)
    w.add_token_types([2, 3, 3] + [6] * 256 + [1] * (vocab - 259))  # unknown, control, byte, normal
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)

    # Values only need to be finite and small: tile one random pool instead of drawing 7 B numbers.
    pool = (np.random.default_rng(0).standard_normal(1 << 26, dtype=np.float32) * 0.02).astype(np.float16)

    def rand(rows, cols):
        n = rows * cols
        return np.resize(pool, n).reshape(rows, cols) if n > pool.size else pool[:n].reshape(rows, cols).copy()

    ones = lambda n: np.ones(n, dtype=np.float32)
    w.add_tensor("token_embd.weight", rand(vocab, hidden))
    w.add_tensor("output_norm.weight", ones(hidden))
    w.add_tensor("output.weight", rand(vocab, hidden))
    for i in range(layers):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", ones(hidden))
        w.add_tensor(p + "ffn_norm.weight", ones(hidden))
        w.add_tensor(p + "attn_q.weight", rand(heads * head_dim, hidden))
        w.add_tensor(p + "attn_k.weight", rand(kv_heads * head_dim, hidden))
        w.add_tensor(p + "attn_v.weight", rand(kv_heads * head_dim, hidden))
        w.add_tensor(p + "attn_output.weight", rand(hidden, heads * head_dim))
        w.add_tensor(p + "ffn_gate.weight", rand(ffn, hidden))
        w.add_tensor(p + "ffn_up.weight", rand(ffn, hidden))
        w.add_tensor(p + "ffn_down.weight", rand(hidden, ffn))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file(progress=False)
    w.close()
    print(f"llamacpp_peer: wrote {out} ({os.path.getsize(out) / 1e9:.2f} GB)")


def report(config_dir, jsonl, out):
    runs = {}
    for line in open(jsonl):  # a repeated shape keeps its last (warm) run
        if line.startswith("{"):
            r = json.loads(line)
            runs[(r["pp"], r["tg"], r["pl"])] = r
    results = []
    for r in runs.values():
        pp, tg, pl = r["pp"], r["tg"], r["pl"]
        cfg = {"batch": str(pl), "prompt": str(pp), "gen": str(tg)}
        if pl == 1 and tg > 1:  # one request: prompt, then tg decode steps
            step = r["t_tg"] / tg
            results.append({"scenario": "latency", "config": cfg, "figures": {
                "time_to_first_token": {"value": r["t_pp"] * 1e3, "unit": "ms"},
                "decode_step": {"value": step * 1e3, "unit": "ms"},
                "decode_tokens_per_s": {"value": 1.0 / step, "unit": "tok/s"}}})
        elif tg <= 1:  # prompts only
            results.append({"scenario": "prefill", "config": {"batch": str(pl), "prompt": str(pp)}, "figures": {
                "prefill_tokens_per_s": {"value": r["speed_pp"], "unit": "tok/s"}}})
        else:  # pl requests at once, as mii-bench's offline throughput
            results.append({"scenario": "throughput", "config": cfg, "figures": {
                "output_tokens_per_s": {"value": pl * tg / r["t"], "unit": "tok/s"},
                "total_tokens_per_s": {"value": pl * (pp + tg) / r["t"], "unit": "tok/s"},
                "wall": {"value": r["t"], "unit": "s"}}})
    try:
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        gpu = "unknown"
    doc = {"runner": "llama.cpp", "label": os.path.basename(out).rsplit(".", 1)[0], "gpu": gpu,
           "model": config_dir, "llama_cpp": os.environ.get("LLAMACPP_VERSION", "unknown"),
           "settings": "f16 weights, flash attention, n_batch 2048, n_ubatch 512", "results": results}
    with open(out, "w") as f:
        json.dump(doc, f)
    for r in results:
        for k, v in r["figures"].items():
            print(f"llama.cpp                {r['scenario']:10} {k:26} {v['value']:12.2f} {v['unit']}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "gguf":
        write_gguf(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 5 and sys.argv[1] == "report":
        report(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)

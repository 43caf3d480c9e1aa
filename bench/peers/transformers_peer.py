#!/usr/bin/env python3
"""The Hugging Face transformers peer for mii-bench: the same scenarios on the same shapes, random
bf16 weights on the GPU, writing the same JSON schema.

  python3 bench/peers/transformers_peer.py --config DIR --mode eager|compile --out FILE
      [--scenarios latency,prefill,throughput] [--prompt-len 512 --gen-len 128]
      [--prefill-batch 8 --prefill-len 2048] [--batch 64 --tp-prompt 512 --tp-gen 128]

eager: dynamic KV cache, sdpa attention. compile: static KV cache, with which generate() compiles the decoding
forward (torch.compile, reduce-overhead: CUDA graphs), as transformers documents for fast generation. Generation runs
with min_new_tokens = max_new_tokens so that EOS never ends it early (random weights).
"""
import argparse
import json
import os
import statistics
import time

import torch
import transformers


def timed(fn, repeats):
    out = []
    for i in range(repeats + 1):  # the first call warms up (and compiles)
        torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        dt = time.perf_counter() - t
        print(f"  {'warm-up' if i == 0 else 'timed'} call: {dt:.3f} s", flush=True)  # a killed run still tells
        if i:
            out.append(dt)
    return statistics.median(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--mode", choices=["eager", "compile"], default="eager")
    ap.add_argument("--out", required=True)
    ap.add_argument("--scenarios", default="latency,prefill,throughput")
    ap.add_argument("--prompt-len", type=int, default=512)
    ap.add_argument("--gen-len", type=int, default=128)
    ap.add_argument("--prefill-batch", type=int, default=8)
    ap.add_argument("--prefill-len", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--tp-prompt", type=int, default=512)
    ap.add_argument("--tp-gen", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()

    torch.manual_seed(0)
    config = transformers.AutoConfig.from_pretrained(a.config)
    t0 = time.perf_counter()
    with torch.device("cuda"):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16,
                                                              attn_implementation="sdpa").eval()
    load_s = time.perf_counter() - t0
    vocab = config.vocab_size
    gen_kw = {}
    if a.mode == "compile":
        # A static cache makes generate() compile its decoding forward by itself (CompileConfig
        # defaults: inductor, mode "reduce-overhead", i.e. CUDA graphs); the prompt's forward stays
        # eager. Each new (batch, cache length) compiles once, in the untimed warm-up call.
        model.generation_config.cache_implementation = "static"

    def prompts(b, n):
        return torch.randint(3, vocab, (b, n), device="cuda")

    def generate(ids, n):
        with torch.no_grad():
            return model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                                  do_sample=False, pad_token_id=0, **gen_kw)

    results = []
    for sc in a.scenarios.split(","):
        if sc == "latency":
            ids = prompts(1, a.prompt_len)
            t1 = timed(lambda: generate(ids, 1), a.repeats)
            tn = timed(lambda: generate(ids, a.gen_len), a.repeats)
            step = (tn - t1) / (a.gen_len - 1)
            results.append({"scenario": "latency", "config": {"batch": "1", "prompt": str(a.prompt_len), "gen": str(a.gen_len)},
                            "figures": {"time_to_first_token": {"value": t1 * 1e3, "unit": "ms"},
                                        "decode_step": {"value": step * 1e3, "unit": "ms"},
                                        "decode_tokens_per_s": {"value": 1.0 / step, "unit": "tok/s"}}})
        elif sc == "prefill":
            if a.mode == "compile":
                continue  # compile mode targets decode; prefill is one eager forward either way
            ids = prompts(a.prefill_batch, a.prefill_len)

            def fwd():
                with torch.no_grad():
                    model(ids, logits_to_keep=1)
            s = timed(fwd, a.repeats)
            results.append({"scenario": "prefill", "config": {"batch": str(a.prefill_batch), "prompt": str(a.prefill_len)},
                            "figures": {"prefill_tokens_per_s": {"value": a.prefill_batch * a.prefill_len / s, "unit": "tok/s"}}})
        elif sc == "throughput":
            ids = prompts(a.batch, a.tp_prompt)
            s = timed(lambda: generate(ids, a.tp_gen), max(1, a.repeats // 2))
            results.append({"scenario": "throughput", "config": {"batch": str(a.batch), "prompt": str(a.tp_prompt), "gen": str(a.tp_gen)},
                            "figures": {"output_tokens_per_s": {"value": a.batch * a.tp_gen / s, "unit": "tok/s"},
                                        "total_tokens_per_s": {"value": a.batch * (a.tp_prompt + a.tp_gen) / s, "unit": "tok/s"},
                                        "wall": {"value": s, "unit": "s"}}})
    doc = {"runner": f"transformers-{a.mode}", "label": os.path.basename(a.out).rsplit(".", 1)[0],
           "gpu": torch.cuda.get_device_name(), "transformers": transformers.__version__, "torch": torch.__version__,
           "model": a.config, "load_s": load_s, "results": results}
    if a.mode == "compile":  # proof that generate() really compiled: dynamo's count of graphs
        doc["compiled_graphs"] = int(torch._dynamo.utils.counters["stats"]["unique_graphs"])
        print(f"transformers-compile: {doc['compiled_graphs']} compiled graphs")
        if not doc["compiled_graphs"]:
            print("transformers-compile: WARNING: nothing was compiled; these are eager figures")
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(doc, f)
    for r in results:
        for k, v in r["figures"].items():
            print(f"{doc['runner']:24} {r['scenario']:10} {k:26} {v['value']:12.2f} {v['unit']}")


if __name__ == "__main__":
    main()

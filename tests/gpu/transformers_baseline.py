#!/usr/bin/env python3
"""How far transformers itself lands from its own fp32 reference when run in bf16 / fp16 on the
GPU: the yardstick for mii's CUDA end-to-end errors (tests/gpu/fixtures_gpu_test.cpp).

For every fixture in tests/fixtures/models with reference logits: relative L2 error of the
prompts' logits, and the greedy steps (teacher-forced on the reference tokens, as the C++ test
does) whose argmax differs. Run on the GPU machine: python3 tests/gpu/transformers_baseline.py [FIXTURE...]
(default: all of them)
"""
import json
import os
import sys
import warnings

import torch
import transformers
from safetensors.torch import load_file

warnings.filterwarnings("ignore")
transformers.logging.set_verbosity_error()
HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "..", "fixtures", "models")
FIXTURES = [("llama2", "llama2"), ("llama3", "llama3"), ("mistral", "mistral"), ("qwen2", "qwen2"),
            ("mixtral", "mixtral"), ("mixtral_v5layout", "mixtral"), ("phi3", "phi3"), ("falcon_new", "falcon_new"),
            ("falcon_old", "falcon_old"), ("falcon_rw", "falcon_rw"), ("opt", "opt"), ("opt_postln", "opt_postln"),
            ("phi2", "phi2"), ("gemma2", "gemma2"), ("gemma3", "gemma3"), ("qwen3", "qwen3"),
            ("qwen3_moe", "qwen3_moe"), ("qwen3_moe_v5layout", "qwen3_moe"), ("qwen2_moe", "qwen2_moe")]


def main():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, {device}")
    print(f"{'fixture':18} {'dtype':5} {'worst rel L2':>12}  greedy mismatches (teacher-forced)")
    only = set(sys.argv[1:])
    for fixture, reference in FIXTURES:
        if only and fixture not in only:
            continue
        ref_dir = os.path.join(MODELS, reference)
        ref = json.load(open(os.path.join(ref_dir, "reference.json")))
        ref_logits = load_file(os.path.join(ref_dir, "reference.safetensors"))
        for dtype in (torch.bfloat16, torch.float16, torch.float32):
            try:
                model = transformers.AutoModelForCausalLM.from_pretrained(os.path.join(MODELS, fixture), dtype=dtype,
                                                             attn_implementation="eager")
            except TypeError:
                model = transformers.AutoModelForCausalLM.from_pretrained(os.path.join(MODELS, fixture), torch_dtype=dtype,
                                                             attn_implementation="eager")
            model = model.to(device).eval()
            worst, mismatches, steps = 0.0, 0, 0
            with torch.no_grad():
                for i, prompt in enumerate(ref["prompts"]):
                    got = model(torch.tensor([prompt], device=device)).logits[0].float().cpu()
                    want = ref_logits[f"logits.{i}"]
                    worst = max(worst, float((got - want).norm() / want.norm()))
                    greedy = ref["greedy"][i]
                    seq = torch.tensor([prompt + greedy[:-1]], device=device)
                    picks = model(seq).logits[0, len(prompt) - 1:].argmax(-1).cpu().tolist()
                    mismatches += sum(int(a != b) for a, b in zip(picks, greedy))
                    steps += len(greedy)
            name = str(dtype).replace("torch.", "").replace("bfloat16", "bf16").replace("float16", "fp16").replace("float32", "fp32")
            print(f"{fixture:18} {name:5} {worst:12.2e}  {mismatches}/{steps}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()

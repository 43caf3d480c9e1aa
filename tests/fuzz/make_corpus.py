#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora (tests/fuzz/corpus/<target>/) from real files in the repo.

    python3 tests/fuzz/make_corpus.py

Sources: the fixture checkpoints, configs and tokenizer (tests/fixtures/models/), config.json
files as the Hugging Face hub ships them (transformers 4.x spellings, written out below), the
tokenizer test corpus (tests/fixtures/tokenizer/corpus.jsonl) and, when tools/fetch-tokenizers.sh
has cached them, the real Llama-2 / Llama-3 / Qwen3 tokenizer.json files cut down to a few hundred
merges (their normalizers, pre-tokenizers, post-processors and decoders kept as they are).
Deterministic: running it twice writes the same files. Keep the total under 2 MB.
"""
import json
import random
import shutil
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests/fixtures/models"
OUT = ROOT / "tests/fuzz/corpus"
CACHE = ROOT / ".cache/tokenizers"
rng = random.Random(20240611)


def write(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)


# ---- safetensors -------------------------------------------------------------------------------
DTYPE_SIZE = {"F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "I64": 8, "U8": 1}


def safetensors_bytes(tensors, metadata=None, pad=True, data_fill=None):
    """tensors: [(name, dtype, shape)]; returns a valid file (data from the rng)."""
    header, blobs, offset = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape in tensors:
        n = 1
        for d in shape:
            n *= d
        size = n * DTYPE_SIZE[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        blobs.append(bytes(rng.getrandbits(8) for _ in range(size)) if data_fill is None else data_fill * size)
        offset += size
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def fixture_header(model):
    raw = (FIXTURES / model / "model.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n])


def make_safetensors():
    # Real tensor names and dtypes of the fixture checkpoints, shapes shrunk so that files stay tiny.
    for model in ["llama2", "phi3", "mixtral", "falcon_new", "opt", "qwen2"]:
        h = fixture_header(model)
        meta = h.pop("__metadata__", None)
        tensors = [(k, v["dtype"], [min(d, 3) for d in v["shape"]]) for k, v in sorted(h.items())][:24]
        write("safetensors", f"{model}_shrunk.safetensors", safetensors_bytes(tensors, meta))
    # The real header of a fixture with its data cut off: valid JSON, offsets past the end.
    raw = (FIXTURES / "llama2" / "model.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    write("safetensors", "llama2_truncated.safetensors", raw[: 8 + n + 64])
    write("safetensors", "empty_header.safetensors", safetensors_bytes([]))
    write("safetensors", "scalar_f32.safetensors", safetensors_bytes([("x", "F32", [])]))
    write("safetensors", "zero_sized.safetensors", safetensors_bytes([("a", "F16", [0, 4]), ("b", "BF16", [2])]))
    write("safetensors", "unpadded_mixed.safetensors",
          safetensors_bytes([("w", "BF16", [3]), ("v", "F16", [1, 3]), ("u", "F32", [2, 1])], {"format": "pt"}, pad=False))
    write("safetensors", "unsupported_dtype.safetensors", safetensors_bytes([("ids", "I64", [2])]))
    write("safetensors", "nan_inf.safetensors", safetensors_bytes([("f", "F32", [4])], data_fill=b"\xff"))


# ---- config.json / generation_config.json ------------------------------------------------------
HUB_CONFIGS = {
    # transformers 4.x spellings as published on the hub (values of the real models).
    "mistral-7b-v0.1": {"architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
                        "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
                        "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mistral",
                        "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
                        "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096,
                        "tie_word_embeddings": False, "torch_dtype": "bfloat16", "use_cache": True,
                        "vocab_size": 32000},
    "llama-3.1-8b": {"architectures": ["LlamaForCausalLM"], "attention_bias": False, "bos_token_id": 128000,
                     "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu", "hidden_size": 4096,
                     "intermediate_size": 14336, "max_position_embeddings": 131072, "mlp_bias": False,
                     "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32,
                     "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
                     "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                      "original_max_position_embeddings": 8192, "rope_type": "llama3"},
                     "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
                     "vocab_size": 128256},
    "phi-3-mini-128k": {"architectures": ["Phi3ForCausalLM"], "bos_token_id": 1, "eos_token_id": 32000,
                        "hidden_act": "silu", "hidden_size": 3072, "intermediate_size": 8192,
                        "max_position_embeddings": 131072, "model_type": "phi3", "num_attention_heads": 32,
                        "num_hidden_layers": 32, "num_key_value_heads": 32, "original_max_position_embeddings": 4096,
                        "rms_norm_eps": 1e-05,
                        "rope_scaling": {"long_factor": [1.0 + i / 8 for i in range(48)],
                                         "short_factor": [1.0 + i / 64 for i in range(48)], "type": "su"},
                        "rope_theta": 10000.0, "sliding_window": 262144, "tie_word_embeddings": False,
                        "torch_dtype": "bfloat16", "vocab_size": 32064},
    "qwen2-7b": {"architectures": ["Qwen2ForCausalLM"], "bos_token_id": 151643, "eos_token_id": 151643,
                 "hidden_act": "silu", "hidden_size": 3584, "intermediate_size": 18944,
                 "max_position_embeddings": 131072, "max_window_layers": 28, "model_type": "qwen2",
                 "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4,
                 "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 131072,
                 "tie_word_embeddings": False, "torch_dtype": "bfloat16", "use_sliding_window": False,
                 "vocab_size": 152064},
    "mixtral-8x7b": {"architectures": ["MixtralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
                     "hidden_act": "silu", "hidden_size": 4096, "intermediate_size": 14336,
                     "max_position_embeddings": 32768, "model_type": "mixtral", "num_attention_heads": 32,
                     "num_experts_per_tok": 2, "num_hidden_layers": 32, "num_key_value_heads": 8,
                     "num_local_experts": 8, "rms_norm_eps": 1e-05, "rope_theta": 1000000.0,
                     "sliding_window": None, "torch_dtype": "bfloat16", "vocab_size": 32000},
    "falcon-7b": {"architectures": ["FalconForCausalLM"], "alibi": False, "bias": False, "bos_token_id": 11,
                  "eos_token_id": 11, "hidden_size": 4544, "model_type": "falcon", "multi_query": True,
                  "new_decoder_architecture": False, "num_attention_heads": 71, "num_hidden_layers": 32,
                  "parallel_attn": True, "torch_dtype": "bfloat16", "vocab_size": 65024},
    "opt-125m": {"_remove_final_layer_norm": False, "activation_function": "relu",
                 "architectures": ["OPTForCausalLM"], "bos_token_id": 2, "do_layer_norm_before": True,
                 "enable_bias": True, "eos_token_id": 2, "ffn_dim": 3072, "hidden_size": 768,
                 "layer_norm_elementwise_affine": True, "max_position_embeddings": 2048, "model_type": "opt",
                 "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 1, "torch_dtype": "float16",
                 "vocab_size": 50272, "word_embed_proj_dim": 768},
    "phi-2": {"architectures": ["PhiForCausalLM"], "bos_token_id": 50256, "eos_token_id": 50256,
              "hidden_act": "gelu_new", "hidden_size": 2560, "intermediate_size": 10240,
              "layer_norm_eps": 1e-05, "max_position_embeddings": 2048, "model_type": "phi",
              "num_attention_heads": 32, "num_hidden_layers": 32, "partial_rotary_factor": 0.4,
              "qk_layernorm": False, "rope_theta": 10000.0, "tie_word_embeddings": False,
              "torch_dtype": "float16", "vocab_size": 51200},
    "llama-dynamic-ntk": {"architectures": ["LlamaForCausalLM"], "hidden_size": 256, "intermediate_size": 512,
                          "num_attention_heads": 4, "num_hidden_layers": 2, "max_position_embeddings": 4096,
                          "rope_scaling": {"type": "dynamic", "factor": 2.0}, "model_type": "llama",
                          "vocab_size": 1000},
    "llama-linear": {"architectures": ["LlamaForCausalLM"], "hidden_size": 256, "intermediate_size": 512,
                     "num_attention_heads": 4, "num_hidden_layers": 2, "max_position_embeddings": 4096,
                     "rope_scaling": {"type": "linear", "factor": 4.0}, "model_type": "llama", "vocab_size": 1000},
    "gemma-2-9b": {"architectures": ["Gemma2ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
                   "attn_logit_softcapping": 50.0, "bos_token_id": 2, "cache_implementation": "hybrid",
                   "eos_token_id": 1, "final_logit_softcapping": 30.0, "head_dim": 256,
                   "hidden_act": "gelu_pytorch_tanh", "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 3584,
                   "intermediate_size": 14336, "max_position_embeddings": 8192, "model_type": "gemma2",
                   "num_attention_heads": 16, "num_hidden_layers": 42, "num_key_value_heads": 8, "pad_token_id": 0,
                   "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06, "rope_theta": 10000.0,
                   "sliding_window": 4096, "torch_dtype": "float32", "vocab_size": 256000},
    "gemma-3-1b": {"architectures": ["Gemma3ForCausalLM"], "attention_bias": False, "attn_logit_softcapping": None,
                   "bos_token_id": 2, "cache_implementation": "hybrid", "eos_token_id": [1, 106],
                   "final_logit_softcapping": None, "head_dim": 256, "hidden_activation": "gelu_pytorch_tanh",
                   "hidden_size": 1152, "intermediate_size": 6912, "max_position_embeddings": 32768,
                   "model_type": "gemma3_text", "num_attention_heads": 4, "num_hidden_layers": 26,
                   "num_key_value_heads": 1, "pad_token_id": 0, "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06,
                   "rope_local_base_freq": 10000, "rope_scaling": None, "rope_theta": 1000000,
                   "sliding_window": 512, "sliding_window_pattern": 6, "torch_dtype": "bfloat16",
                   "vocab_size": 262144},
}


def make_configs():
    for d in sorted(FIXTURES.iterdir()):
        if (d / "config.json").exists():
            shutil.copy(d / "config.json", OUT / "hf_config" / f"{d.name}.json")
    shutil.copy(FIXTURES / "llama2" / "generation_config.json", OUT / "hf_config" / "generation_config.json")
    for name, cfg in HUB_CONFIGS.items():
        write("hf_config", f"hub_{name}.json", json.dumps(cfg, indent=2))
    # Values at the edges of what the types hold: integers written as huge doubles, negative and
    # zero sizes, a float-overflowing eps.
    base = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
            "intermediate_size": 128, "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 512}
    edges = {"edge_huge_double_int": {"vocab_size": 1e300}, "edge_negative_head_dim": {"head_dim": -16},
             "edge_huge_head_dim": {"head_dim": 4611686018427387904}, "edge_eps_overflow": {"rms_norm_eps": 1e300},
             "edge_zero_theta": {"rope_theta": 0}, "edge_int64_max_layers": {"num_hidden_layers": 9223372036854775807},
             "edge_llama3_equal_freq_factors": {"rope_scaling": {"rope_type": "llama3", "factor": 8.0,
                                                                 "low_freq_factor": 4.0, "high_freq_factor": 4.0,
                                                                 "original_max_position_embeddings": 8192}}}
    for name, change in edges.items():
        write("hf_config", f"{name}.json", json.dumps({**base, **change}))
    write("hf_config", "generation_full.json",
          json.dumps({"bos_token_id": 1, "eos_token_id": [2, 32000], "pad_token_id": 0, "do_sample": True,
                      "temperature": 0.6, "top_p": 0.9, "top_k": 50, "max_new_tokens": 256, "max_length": 4096}))


# ---- tokenizer.json ----------------------------------------------------------------------------
def shrink_tokenizer(path, keep_base, n_merges, n_added):
    """The real file's pipeline with a vocabulary of the base tokens plus the first merges."""
    j = json.loads(path.read_text())
    model = j["model"]
    vocab = model["vocab"]
    by_id = sorted(vocab.items(), key=lambda kv: kv[1])
    # Base: the byte tokens, plus (SentencePiece-style vocabularies) the Latin single characters
    # and U+2581, which their merges start from.
    kept = [tok for tok, i in by_id if i < keep_base or (len(tok) == 1 and (ord(tok) < 0x250 or tok == "\u2581"))]
    kept_set = set(kept)
    merges = []
    for m in model["merges"]:
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        if a in kept_set and b in kept_set and (a + b) in vocab:
            merges.append(m)
            if a + b not in kept_set:
                kept.append(a + b)
                kept_set.add(a + b)
            if len(merges) == n_merges:
                break
    new_ids = {tok: i for i, tok in enumerate(kept)}
    model["vocab"] = new_ids
    model["merges"] = merges
    added = []
    for a in j["added_tokens"][:n_added]:
        a = dict(a)
        a["id"] = new_ids.get(a["content"], len(new_ids) + len(added))
        added.append(a)
    j["added_tokens"] = added
    remap = {a["content"]: a["id"] for a in added}
    pp = j.get("post_processor")
    if pp and pp.get("type") == "TemplateProcessing":
        for name, st in pp["special_tokens"].items():
            st["ids"] = [remap.get(name, new_ids.get(name, 0))]
    return json.dumps(j, ensure_ascii=False, separators=(",", ":"))


def make_tokenizers():
    fixture = (FIXTURES / "tokenizer.json").read_text()
    write("tokenizer_load", "fixture_byte_level_bpe.json", fixture)
    j = json.loads(fixture)
    variants = {
        "variant_normalizers.json": {"normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFKC"}, {"type": "Lowercase"}, {"type": "Strip", "strip_left": True, "strip_right": False},
            {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "}]}},
        "variant_metaspace.json": {"pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581",
                                                     "prepend_scheme": "first", "split": True},
                                   "decoder": {"type": "Metaspace", "replacement": "\u2581",
                                               "prepend_scheme": "first", "split": True}},
        "variant_digits_whitespace.json": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "WhitespaceSplit"}, {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": False}]},
            "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 1],
                               "trim_offsets": True, "add_prefix_space": True}},
        "variant_split_behaviors.json": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithNext", "invert": False},
            {"type": "Split", "pattern": {"Regex": "\\p{N}+"}, "behavior": "Removed", "invert": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
            "decoder": {"type": "Sequence", "decoders": [{"type": "ByteLevel"}, {"type": "BPEDecoder", "suffix": "</w>"}]}},
    }
    for name, changes in variants.items():
        v = dict(j)
        v.update(changes)
        write("tokenizer_load", name, json.dumps(v, ensure_ascii=False, indent=1))
    if CACHE.exists():
        for name, base, merges, added in [("llama2", 259, 400, 3), ("llama3", 256, 400, 12), ("qwen3", 256, 400, 12)]:
            p = CACHE / name / "tokenizer.json"
            if p.exists():
                write("tokenizer_load", f"{name}_shrunk.json", shrink_tokenizer(p, base, merges, added))


# ---- text for encode/decode --------------------------------------------------------------------
def make_texts():
    items = [json.loads(l) for l in (ROOT / "tests/fixtures/tokenizer/corpus.jsonl").read_text(encoding="utf-8").split("\n") if l]
    by_kind = {}
    for it in items:
        by_kind.setdefault(it["kind"], []).append(it["text"])
    n = 0
    for kind in sorted(by_kind):
        for text in by_kind[kind][:3]:
            # First byte: tokenizer (low bits) and flags (add_special 0x10, skip_special 0x20, wide ids 0x40).
            flags = (n % 4) | (0x10 if n % 2 else 0) | (0x20 if n % 3 == 0 else 0) | (0x40 if n % 5 == 0 else 0)
            write("tokenizer_codec", f"{kind}_{n}.txt", bytes([flags]) + text.encode("utf-8")[:512])
            n += 1
    demo = (ROOT / "tests/fixtures/demo_text.txt").read_text()
    write("tokenizer_codec", "demo_text.txt", b"\x00" + demo[:2000].encode())
    write("tokenizer_codec", "invalid_utf8.txt", b"\x01abc\xff\xfe def \xc3\x28 \xe2\x82 \xf0\x9f\x98")
    write("tokenizer_codec", "special_tokens.txt", b"\x10<s>Hello</s><unk> world")
    write("tokenizer_codec", "ids_out_of_range.txt", b"\x40" + struct.pack("<8i", -1, 0, 1, 2, 511, 512, 2**31 - 1, -2**31))


# ---- generate_params ---------------------------------------------------------------------------
def params_input(mode, set_bits, max_length, min_new, top_p, prompt, max_new=None, top_k=None, temperature=None,
                 seed=None, stops=()):
    """Encodes one input the way fuzz_generate_params.cpp reads it (raw values, tag byte 0xC0)."""
    out = bytes([mode, set_bits])
    i64 = lambda v: b"\xc0" + struct.pack("<q", v)
    f64 = lambda v: b"\xc0" + struct.pack("<d", v)
    out += i64(max_length)
    if set_bits & 1:
        out += i64(max_new)
    out += i64(min_new) + f64(top_p)
    if set_bits & 16:
        out += i64(top_k)
    if set_bits & 32:
        out += f64(temperature)
    if set_bits & 64:
        out += struct.pack("<Q", seed)
    out += bytes([len(stops)])
    for s in stops:
        b = s.encode()
        out += bytes([len(b)]) + b
    return out + prompt.encode()


def make_params():
    P = "DeepSpeed is"
    write("generate_params", "greedy.bin", params_input(0, 1, 1024, 0, 1.0, P, max_new=8))
    write("generate_params", "sample_seeded.bin",
          params_input(0, 1 | 8 | 16 | 32 | 64, 1024, 2, 0.9, P, max_new=12, top_k=40, temperature=0.8, seed=42))
    write("generate_params", "stops_stream.bin",
          params_input(0, 1 | 8 | 64 | 128, 1024, 0, 0.95, "The quick brown", max_new=16, seed=7, stops=["the", " ", "."]))
    write("generate_params", "full_text.bin", params_input(0, 4, 12, 0, 1.0, "Seattle is"))
    write("generate_params", "ids.bin", params_input(1, 1, 1024, 0, 1.0, "\x00\x05\x00\x40\x01\x10", max_new=6))
    write("generate_params", "serve.bin", params_input(2, 1 | 8 | 64, 1024, 0, 0.9, P, max_new=10, seed=3))
    write("generate_params", "serve_too_long.bin", params_input(2, 1, 1024, 0, 1.0, "word " * 40, max_new=4))
    write("generate_params", "too_long.bin", params_input(0, 1, 1024, 0, 1.0, "word " * 40, max_new=4))
    write("generate_params", "bad_top_p.bin", params_input(0, 0, 1024, 0, 1.5, P))
    write("generate_params", "min_gt_max.bin", params_input(0, 1, 1024, 9, 1.0, P, max_new=3))
    write("generate_params", "tiny_temperature.bin",
          params_input(0, 1 | 8 | 32 | 64, 1024, 0, 0.5, P, max_new=6, temperature=1e-30, seed=9))
    write("generate_params", "huge_temperature.bin",
          params_input(0, 1 | 8 | 32 | 64, 1024, 0, 1.0, P, max_new=6, temperature=1e300, seed=9))
    write("generate_params", "huge_top_k.bin", params_input(0, 1 | 8 | 16 | 64, 1024, 0, 1.0, P, max_new=6, top_k=2**32 + 1, seed=5))
    write("generate_params", "invalid_utf8.bin", params_input(0, 1, 1024, 0, 1.0, "", max_new=4) + b"\xff\xfe")


if __name__ == "__main__":
    if OUT.exists():
        shutil.rmtree(OUT)
    for t in ["safetensors", "hf_config", "tokenizer_load", "tokenizer_codec", "generate_params"]:
        (OUT / t).mkdir(parents=True)
    make_safetensors()
    make_configs()
    make_tokenizers()
    make_texts()
    make_params()
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"corpus: {sum(1 for f in OUT.rglob('*') if f.is_file())} files, {total / 1024:.0f} KiB in {OUT}")

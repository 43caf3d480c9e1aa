// config.json and generation_config.json of a Hugging Face checkpoint, as typed values.
//
// Both the transformers 4.x form found on the hub (rope_theta + rope_scaling, torch_dtype) and the
// 5.x form (rope_parameters, dtype) are accepted. Fields an architecture does not write get the
// default transformers gives that model_type, so downstream code never guesses.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mii::io {

struct rope_config {
  // "default", "linear", "dynamic", "llama3", "longrope" ("su" is read as longrope), or "none"
  // for architectures without rotary embeddings (OPT).
  std::string type = "default";
  double theta = 10000.0;
  double factor = 1.0;                      // linear, dynamic, llama3, longrope
  bool factor_given = false;                // longrope: "factor" was given (it sets the default attention_factor)
  double low_freq_factor = 1.0;             // llama3
  double high_freq_factor = 4.0;            // llama3
  std::int64_t original_max_position_embeddings = 0;  // llama3, longrope, dynamic (0: unset)
  std::vector<double> short_factor, long_factor;      // longrope, one per rotary frequency
  std::optional<double> attention_factor;   // longrope: cos/sin scale (derived when absent)
  double partial_rotary_factor = 1.0;       // fraction of head_dim that rotates (Phi-2: 0.4)
};

// A pre-quantized checkpoint, from config.json's quantization_config (src/io/quantization_config.cpp).
struct checkpoint_quantization {
  bool fp8 = false;                 // FP8 weights: compressed-tensors (weight_scale) or block-wise (weight_scale_inv)
  // Block-wise FP8 (transformers' "quant_method": "fp8"): weight_block_size [rows, cols] of one
  // weight_scale_inv value; inputs quantized per group of block_cols. 0: not block-wise.
  std::int64_t block_rows = 0, block_cols = 0;
  bool static_input_scales = false; // activations quantized with the checkpoint's input_scale (else per token)
  // compressed-tensors' kv_cache_scheme (8-bit float, static, per tensor): a k_scale and a v_scale
  // per attention layer, used when the KV cache is FP8 (backend/kv_fp8.hpp).
  bool kv_cache_scales = false;
  std::vector<std::string> ignore;  // module names left unquantized ("lm_head", "re:.*mlp.gate$")
};

struct hf_config {
  std::filesystem::path file;               // where it came from, for messages
  std::vector<std::string> architectures;   // e.g. {"MistralForCausalLM"}
  std::string model_type;                   // e.g. "mistral"
  checkpoint_quantization quantization;    // quantization_config (none: unquantized weights)

  std::int64_t vocab_size = 0;
  std::int64_t hidden_size = 0;
  std::int64_t intermediate_size = 0;       // MLP inner size (ffn_dim / ffn_hidden_size / 4h mapped here)
  std::int64_t num_hidden_layers = 0;
  std::int64_t num_attention_heads = 0;
  std::int64_t num_key_value_heads = 0;     // MHA: = heads; MQA: 1
  std::int64_t head_dim = 0;
  std::int64_t max_position_embeddings = 0;
  double norm_eps = 1e-5;                   // rms_norm_eps / layer_norm_eps / layer_norm_epsilon
  std::string hidden_act;                   // silu, gelu, gelu_new, gelu_pytorch_tanh, relu
  bool tie_word_embeddings = false;
  std::optional<std::int64_t> sliding_window;  // absent or null: full attention
  rope_config rope;

  bool qkv_bias = false;                    // q/k/v projections carry a bias
  bool o_bias = false;                      // output projection carries a bias
  bool mlp_bias = false;                    // MLP projections carry biases
  bool lm_head_bias = false;                // Phi-2

  // Mixture of experts (Mixtral; Qwen2-MoE and Qwen3-MoE spell the count 'num_experts')
  std::int64_t num_local_experts = 0;
  std::int64_t num_experts_per_tok = 0;
  std::int64_t moe_intermediate_size = 0;   // one expert's inner size; 0: intermediate_size (Mixtral)
  std::int64_t shared_expert_intermediate_size = 0;  // Qwen2-MoE's shared expert (0: none)
  bool norm_topk_prob = false;              // Qwen MoE: renormalise the top-k router weights
  // Which layers are sparse, as transformers decides: layer L routes to experts when L is not in
  // mlp_only_layers and (L + 1) % decoder_sparse_step == 0; the others are dense MLPs of
  // intermediate_size. Mixtral: every layer (step 1, no exceptions).
  std::int64_t decoder_sparse_step = 1;
  std::vector<std::int64_t> mlp_only_layers;

  // Falcon
  bool new_decoder_architecture = false;
  bool multi_query = false;
  bool parallel_attn = false;
  bool alibi = false;
  std::int64_t num_ln_in_parallel_attn = 1;  // 2: separate ln_attn / ln_mlp

  // OPT
  bool do_layer_norm_before = true;
  std::int64_t word_embed_proj_dim = 0;     // != hidden_size: project_in/project_out exist
  bool final_layer_norm = true;             // false for OPT with _remove_final_layer_norm or post-LN

  // Phi
  bool qk_layernorm = false;

  // Per-layer attention: transformers 5's `layer_types`, one of "full_attention" or
  // "sliding_attention" per layer (Gemma 2/3 configs without it get transformers' alternation:
  // layer i slides unless (i + 1) % sliding_window_pattern == 0). Empty: every layer alike.
  std::vector<std::string> layer_types;
  // Layer types with a rope of their own (Gemma 3: transformers 5's rope_parameters keyed by layer
  // type, or 4.x's rope_local_base_freq for the sliding layers); other layers use `rope`.
  std::vector<std::pair<std::string, rope_config>> layer_type_ropes;

  // Gemma 2/3
  std::optional<double> query_pre_attn_scalar;   // softmax scale query_pre_attn_scalar^-0.5 (else head_dim^-0.5)
  std::optional<double> attn_logit_softcapping;  // attention scores become cap * tanh(score / cap)
  std::optional<double> final_logit_softcapping; // logits become cap * tanh(logit / cap)

  std::optional<std::int64_t> bos_token_id;
  std::vector<std::int64_t> eos_token_ids;
  std::optional<std::int64_t> pad_token_id;
  std::string dtype;                        // "bfloat16", "float16", "float32" or "" when unset
};

// `path`: config.json or the directory holding it. Throws mii::error naming the file and field.
hf_config load_hf_config(const std::filesystem::path& path);
hf_config parse_hf_config(std::string_view json, const std::filesystem::path& origin);

struct generation_config {
  std::vector<std::int64_t> eos_token_ids;
  std::optional<std::int64_t> bos_token_id, pad_token_id;
  std::optional<bool> do_sample;
  std::optional<double> temperature, top_p;
  std::optional<std::int64_t> top_k, max_new_tokens, max_length;
};

// Missing file -> empty config (it is optional in checkpoints); malformed -> mii::error.
generation_config load_generation_config(const std::filesystem::path& dir_or_file);

// A short human-readable summary (architecture, sizes, parameters), for tools and logs.
std::string summarize(const hf_config& c);

}  // namespace mii::io

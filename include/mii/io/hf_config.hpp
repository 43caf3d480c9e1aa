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
#include <vector>

namespace mii::io {

struct rope_config {
  // "default", "linear", "dynamic", "llama3", "longrope" ("su" is read as longrope), or "none"
  // for architectures without rotary embeddings (OPT).
  std::string type = "default";
  double theta = 10000.0;
  double factor = 1.0;                      // linear, dynamic, llama3, longrope
  double low_freq_factor = 1.0;             // llama3
  double high_freq_factor = 4.0;            // llama3
  std::int64_t original_max_position_embeddings = 0;  // llama3, longrope, dynamic (0: unset)
  std::vector<double> short_factor, long_factor;      // longrope, one per rotary frequency
  std::optional<double> attention_factor;   // longrope: cos/sin scale (derived when absent)
  double partial_rotary_factor = 1.0;       // fraction of head_dim that rotates (Phi-2: 0.4)
};

struct hf_config {
  std::filesystem::path file;               // where it came from, for messages
  std::vector<std::string> architectures;   // e.g. {"MistralForCausalLM"}
  std::string model_type;                   // e.g. "mistral"

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

  // Mixture of experts (Mixtral)
  std::int64_t num_local_experts = 0;
  std::int64_t num_experts_per_tok = 0;

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

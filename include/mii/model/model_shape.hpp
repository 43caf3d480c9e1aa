// model_shape: an architecture's compile-time description and a config.json, checked against
// each other and resolved into the run-time values the transformer needs, for one
// tensor-parallel rank. Every mismatch is a mii::error naming the field and both values.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <mii/io/hf_config.hpp>
#include <mii/layers/policies.hpp>
#include <mii/model/architecture.hpp>

namespace mii::model {

// Rotary frequencies for every rope variant the policies know. Frequencies may depend on the
// sequence's length (longrope switches tables past original_max_position_embeddings, dynamic NTK
// grows its base); `inv_freq_for(len)` gives the table a step uses for a sequence whose
// positions this step reach `len - 1`, mirroring transformers' per-forward rule.
struct rope_frequencies {
  layers::rotary_style style = layers::rotary_style::none;
  std::string type = "none";
  int rot_dim = 0;                  // rotated dimensions per head (even, <= head_dim)
  std::vector<float> inv_freq;      // [rot_dim / 2]: default / linear / llama3 / longrope short
  std::vector<float> long_inv_freq; // longrope: [rot_dim / 2] past `switch_length`
  float attention_factor = 1.0f;    // longrope: cos and sin are scaled by this
  std::int64_t switch_length = 0;   // longrope / dynamic: original_max_position_embeddings
  double theta = 10000.0;
  double dynamic_factor = 1.0;

  // Which table a sequence of this length uses: 0 = inv_freq, 1 = long_inv_freq, >= 2: dynamic
  // (computed by dynamic_inv_freq).
  bool uses_long(std::int64_t len) const { return !long_inv_freq.empty() && len > switch_length; }
  bool is_dynamic() const { return type == "dynamic"; }
  std::vector<float> dynamic_inv_freq(std::int64_t len) const;
};

struct model_shape {
  std::string arch;                 // e.g. "mii::models::mistral"
  std::filesystem::path config_file;
  std::int64_t vocab = 0, hidden = 0, ffn = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0;
  std::int64_t max_positions = 0;
  std::int64_t embed_dim = 0;       // token-embedding width (OPT's word_embed_proj_dim, else hidden)
  float eps = 1e-5f;
  layers::wiring wiring = layers::wiring::sequential;
  bool qkv_bias = false, o_bias = false, mlp_bias = false, lm_head_bias = false;
  bool tied_embeddings = false;
  bool final_norm = true;
  bool project_in_out = false;
  bool learned_positions = false;
  int position_offset = 0;
  std::optional<std::int64_t> window;  // sliding-window length (keys with pos > p - window)
  std::int64_t experts = 0, top_k = 0;
  bool grouped_fused_qkv = false;   // Falcon's new_decoder_architecture: [q of group | k | v] per kv group
  rope_frequencies rope;

  // This rank's slice under tensor parallelism (Megatron-style; docs/parallel.md).
  int tp = 1, rank = 0;
  std::int64_t local_heads = 0, local_kv_heads = 0, kv_head_begin = 0, local_ffn = 0;
  std::int64_t local_vocab = 0, vocab_begin = 0;

  std::int64_t q_dim() const { return local_heads * head_dim; }
  std::int64_t kv_dim() const { return local_kv_heads * head_dim; }
  std::int64_t qkv_dim() const { return q_dim() + 2 * kv_dim(); }
  float attention_scale() const;
};

model_shape resolve_shape(const arch_description& arch, const io::hf_config& config, int tp = 1, int rank = 0);

}  // namespace mii::model

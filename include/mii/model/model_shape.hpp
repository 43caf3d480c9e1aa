// model_shape: an architecture's compile-time description and a config.json, checked against
// each other and resolved into the run-time values the transformer needs, for one
// tensor-parallel rank. Every mismatch is a mii::error naming the field and both values.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <mii/backend/rope_table.hpp>
#include <mii/io/hf_config.hpp>
#include <mii/layers/policies.hpp>
#include <mii/model/architecture.hpp>

namespace mii::model {

// Rotary frequencies for every rope variant the policies know. Frequencies may depend on the
// length of the forward that computes a token (longrope switches tables past
// original_max_position_embeddings, dynamic NTK grows its base past max_position_embeddings);
// backend/rope_table.hpp holds the per-token rule the backends apply, `inv_freq_for(len)` the
// same on the host.
struct rope_frequencies {
  layers::rotary_style style = layers::rotary_style::none;
  std::string type = "none";
  int rot_dim = 0;                  // rotated dimensions per head (even, <= head_dim)
  std::vector<float> inv_freq;      // [rot_dim / 2]: default / linear / llama3 / dynamic's own / longrope short
  std::vector<float> long_inv_freq; // longrope: [rot_dim / 2] past `switch_length`
  float attention_factor = 1.0f;    // longrope: cos and sin are scaled by this
  std::int64_t switch_length = 0;   // longrope: original_max_position_embeddings; dynamic: the length it grows past
  double theta = 10000.0;
  double dynamic_factor = 1.0;

  backend::rope_length_rule rule() const;
  // The frequencies a forward of `len` tokens uses (host reference of the backends' rule).
  std::vector<float> inv_freq_for(std::int64_t len) const;
  // Sequences whose cached keys differ for the same tokens get different values: the prefix
  // cache shares blocks only between sequences of one variant. `rope_len` is the sequence's
  // (step_chunk::rope_len).
  std::uint64_t kv_variant(std::int64_t rope_len) const;
};

// What one layer does its own way: Gemma 2/3 alternate sliding-window (local) layers and global
// ones, and Gemma 3 rotates them with different ropes.
struct layer_attributes {
  std::int64_t window = 0;   // sliding-window length (keys with pos > p - window); 0: full causal
  int rope = 0;              // 0: model_shape::rope; i > 0: model_shape::layer_ropes[i - 1]
  float attn_softcap = 0;    // attention scores become cap * tanh(score / cap) before the mask; 0: off
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
  // Mixture of experts (MoE architectures only). sparse_mlp[L]: layer L routes to experts of
  // expert_ffn; else it is a dense MLP of `ffn` (Qwen's decoder_sparse_step / mlp_only_layers).
  std::vector<bool> sparse_mlp;
  std::int64_t expert_ffn = 0;
  bool renormalise_topk = true;     // top-k weights divided by their sum (the router policy decides)
  std::int64_t shared_ffn = 0;      // the shared expert's inner size; 0: none (Qwen2-MoE has one)
  bool shared_expert_gated = false; // its output scaled by sigmoid(x . shared_expert_gate)
  // Per-head q/k RMSNorm (layers::qk_norm): weights times (qk_norm_offset + w).
  bool qk_norm = false;
  float qk_norm_offset = 0;
  bool grouped_fused_qkv = false;   // Falcon's new_decoder_architecture: [q of group | k | v] per kv group
  rope_frequencies rope;
  std::vector<rope_frequencies> layer_ropes;  // ropes of layer types that have their own (Gemma 3's local layers)
  std::vector<layer_attributes> per_layer;   // [layers]; empty (a hand-made shape): `window` everywhere
  float attn_scale = 0;      // softmax scale; 0: 1 / sqrt(head_dim) (Gemma: query_pre_attn_scalar^-0.5)
  float final_softcap = 0;   // logits become cap * tanh(logit / cap); 0: off

  // This rank's slice under tensor parallelism (Megatron-style; docs/parallel.md).
  int tp = 1, rank = 0;
  std::int64_t local_heads = 0, local_kv_heads = 0, kv_head_begin = 0, local_ffn = 0;
  std::int64_t local_expert_ffn = 0, local_shared_ffn = 0;
  std::int64_t local_vocab = 0, vocab_begin = 0;

  std::int64_t q_dim() const { return local_heads * head_dim; }
  std::int64_t kv_dim() const { return local_kv_heads * head_dim; }
  std::int64_t qkv_dim() const { return q_dim() + 2 * kv_dim(); }
  float attention_scale() const;
  bool sparse(std::int64_t L) const { return L < std::int64_t(sparse_mlp.size()) && sparse_mlp[std::size_t(L)]; }
  bool has_dense_mlp() const;     // some layer runs the dense MLP of `ffn`
  layer_attributes layer(std::int64_t L) const;
  const rope_frequencies& rope_of(std::int64_t L) const;
};

model_shape resolve_shape(const arch_description& arch, const io::hf_config& config, int tp = 1, int rank = 0);

}  // namespace mii::model

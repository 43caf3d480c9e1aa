// The model's cost per token, for mii-bench's floors: weight bytes a decode step reads, matmul
// multiply-adds per token, KV bytes per cached token, attention FLOPs per (query, key) pair.
// Header-only so that tests/model/bench_cost_test.cpp checks the counts without the benchmark.
#pragma once
#include <cstddef>
#include <cstdint>

#include <mii/config.hpp>
#include <mii/layers/policies.hpp>
#include <mii/model/model_shape.hpp>

namespace mii::bench {

struct cost_model {
  double weight_bytes = 0;     // what one decode step reads (all weights)
  double matmul_params = 0;    // multiply-adds per token through the layers (no embedding lookup)
  double head_params = 0;      // lm_head multiply-adds per sampled row
  double kv_bytes_per_token = 0;
  double attn_flops_per_pair = 0;  // q·k and p·v FLOPs per (query, key) pair, all layers and heads
};

// Hidden x ffn matrices per MLP: gated MLPs (Llama, Mistral, Qwen2, Phi-3) have gate, up and
// down; plain ones (OPT, Falcon, Phi-2) fc1 and fc2; an MoE token runs top_k gated experts.
// (Until issue 17 every dense MLP was counted as three matrices, overstating OPT, Falcon and
// Phi-2's FLOPs by half of their MLP.)
inline double mlp_matrices(layers::mlp_kind mlp, std::int64_t top_k) {
  switch (mlp) {
    case layers::mlp_kind::gated: return 3.0;
    case layers::mlp_kind::plain: return 2.0;
    case layers::mlp_kind::moe: return double(top_k) * 3.0;
  }
  return 0.0;
}

// `mlp`: the architecture's MLP kind (arch_description::mlp); `elem`: bytes per KV element.
inline cost_model cost_of(const model::model_shape& s, layers::mlp_kind mlp, const memory_report& m, std::size_t elem) {
  cost_model c;
  c.weight_bytes = double(m.weight_bytes);
  const double H = double(s.hidden), F = double(s.ffn), L = double(s.layers);
  const double qkv = H * double((s.heads + 2 * s.kv_heads) * s.head_dim), o = double(s.heads * s.head_dim) * H;
  c.matmul_params = L * (qkv + o + mlp_matrices(mlp, s.top_k) * H * F);
  c.head_params = double(s.vocab) * double(s.embed_dim);
  c.kv_bytes_per_token = L * 2.0 * double(s.kv_heads * s.head_dim) * double(elem);
  c.attn_flops_per_pair = L * double(s.heads) * 4.0 * double(s.head_dim);
  return c;
}

}  // namespace mii::bench

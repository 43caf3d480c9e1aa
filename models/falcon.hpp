// Falcon (FalconForCausalLM): LayerNorm, rotary, multi-query or grouped attention through one
// fused query_key_value tensor, GELU MLP. One type serves the three decoder layouts, chosen by
// config: new_decoder_architecture (40B/180B: two parallel norms, grouped kv), the 7B layout
// (parallel attention+MLP sharing one norm, MQA) and the sequential RW layout (parallel_attn
// false). `bias` in config.json decides whether the linear layers carry biases.
#pragma once
#include <mii/model/vocabulary.hpp>

namespace mii::models {
struct falcon_naming {
  static constexpr weight_names value{
      .embed = "transformer.word_embeddings",
      .final_norm = "transformer.ln_f",
      .lm_head = "lm_head",
      .layer = "transformer.h.",
      .attn_norm = "input_layernorm",
      .mlp_norm = "post_attention_layernorm",
      .alt_attn_norm = "ln_attn",
      .alt_mlp_norm = "ln_mlp",
      .qkv = qkv_layout::falcon,
      .fused_qkv = "self_attention.query_key_value",
      .o = "self_attention.dense",
      .up = "mlp.dense_h_to_4h",
      .down = "mlp.dense_4h_to_h",
  };
};

struct falcon : architecture<hf_name<"FalconForCausalLM", "RWForCausalLM">,
                             hf_model_type<"falcon">,
                             norm<layer_norm>,
                             rotary<rope::neox>,
                             attention<gqa, window::none, bias::per_config>,
                             mlp<plain<gelu>>,
                             block<falcon_wiring>,
                             weights<falcon_naming>> {
  static constexpr std::string_view name = "mii::models::falcon";
};
}  // namespace mii::models

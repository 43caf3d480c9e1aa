// Phi-3 / Phi-3.5 (Phi3ForCausalLM): Llama-like blocks with fused q|k|v and gate|up projections,
// longrope ("su") scaling for the 128k variants and an optional sliding window.
#pragma once
#include <mii/model/vocabulary.hpp>

namespace mii::models {
struct phi3_naming {
  static constexpr weight_names value{
      .embed = "model.embed_tokens",
      .final_norm = "model.norm",
      .lm_head = "lm_head",
      .layer = "model.layers.",
      .attn_norm = "input_layernorm",
      .mlp_norm = "post_attention_layernorm",
      .qkv = qkv_layout::fused,
      .fused_qkv = "self_attn.qkv_proj",
      .o = "self_attn.o_proj",
      .gate_up = gate_up_layout::fused,
      .fused_gate_up = "mlp.gate_up_proj",
      .down = "mlp.down_proj",
  };
};

struct phi3 : architecture<hf_name<"Phi3ForCausalLM">,
                           hf_model_type<"phi3">,
                           norm<rms_norm>,
                           rotary<rope::neox>,
                           attention<gqa, window::sliding>,
                           mlp<gated<silu>>,
                           block<pre_norm_sequential>,
                           weights<phi3_naming>> {
  static constexpr std::string_view name = "mii::models::phi3";
};
}  // namespace mii::models

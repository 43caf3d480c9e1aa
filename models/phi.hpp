// Phi-1/1.5/2 (PhiForCausalLM): LayerNorm, partial rotary (config.partial_rotary_factor of each
// head), attention and MLP in parallel from one norm, gelu_new MLP, biases everywhere including
// lm_head.
#pragma once
#include <mii/model/vocabulary.hpp>

namespace mii::models {
struct phi_naming {
  static constexpr weight_names value{
      .embed = "model.embed_tokens",
      .final_norm = "model.final_layernorm",
      .lm_head = "lm_head",
      .layer = "model.layers.",
      .attn_norm = "input_layernorm",
      .q = "self_attn.q_proj",
      .k = "self_attn.k_proj",
      .v = "self_attn.v_proj",
      .o = "self_attn.dense",
      .up = "mlp.fc1",
      .down = "mlp.fc2",
  };
};

struct phi : architecture<hf_name<"PhiForCausalLM">,
                          hf_model_type<"phi">,
                          norm<layer_norm>,
                          rotary<rope::neox>,
                          attention<gqa, window::none, bias::all>,
                          mlp<plain<gelu_tanh>>,
                          block<parallel_shared_norm>,
                          weights<phi_naming>> {
  static constexpr std::string_view name = "mii::models::phi";
};
}  // namespace mii::models

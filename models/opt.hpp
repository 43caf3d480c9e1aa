// OPT (OPTForCausalLM): learned positions (offset 2), LayerNorm, multi-head attention and ReLU
// MLP with biases everywhere; pre-norm, or post-norm when do_layer_norm_before is false (350m),
// with project_in/project_out when word_embed_proj_dim differs from hidden_size.
#pragma once
#include <mii/model/vocabulary.hpp>

namespace mii::models {
struct opt_naming {
  static constexpr weight_names value{
      .embed = "model.decoder.embed_tokens",
      .positions = "model.decoder.embed_positions",
      .project_in = "model.decoder.project_in",
      .project_out = "model.decoder.project_out",
      .final_norm = "model.decoder.final_layer_norm",
      .lm_head = "lm_head",
      .layer = "model.decoder.layers.",
      .attn_norm = "self_attn_layer_norm",
      .mlp_norm = "final_layer_norm",
      .q = "self_attn.q_proj",
      .k = "self_attn.k_proj",
      .v = "self_attn.v_proj",
      .o = "self_attn.out_proj",
      .up = "fc1",
      .down = "fc2",
  };
};

struct opt : architecture<hf_name<"OPTForCausalLM">,
                          hf_model_type<"opt">,
                          norm<layer_norm>,
                          rotary<rope::none>,
                          attention<gqa, window::none, bias::all>,
                          mlp<plain<relu>>,
                          block<opt_wiring>,
                          embeddings<learned_positions<2>>,
                          weights<opt_naming>> {
  static constexpr std::string_view name = "mii::models::opt";
};
}  // namespace mii::models

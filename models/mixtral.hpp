// Mixtral (MixtralForCausalLM): Mistral's attention with a sparse mixture of SwiGLU experts
// (softmax router, top-k of config.num_local_experts, weights renormalised over the k chosen).
// Loads both the hub layout (per-expert w1/w2/w3) and transformers 5's stacked expert tensors.
#pragma once
#include <mii/model/vocabulary.hpp>

namespace mii::models {
struct mixtral : architecture<hf_name<"MixtralForCausalLM">,
                              hf_model_type<"mixtral">,
                              norm<rms_norm>,
                              rotary<rope::neox>,
                              attention<gqa, window::sliding>,
                              mlp<moe<gated<silu>>>,
                              block<pre_norm_sequential>,
                              weights<llama_naming>> {
  static constexpr std::string_view name = "mii::models::mixtral";
};
}  // namespace mii::models

// Mistral (MistralForCausalLM): Llama's layers with sliding-window attention (window from
// config.sliding_window; null means full attention, as in Mistral-7B-v0.2 and later).
#pragma once
#include <mii/model/vocabulary.hpp>

namespace mii::models {
struct mistral : architecture<hf_name<"MistralForCausalLM">,
                              hf_model_type<"mistral">,
                              norm<rms_norm>,
                              rotary<rope::neox>,
                              attention<gqa, window::sliding>,
                              mlp<gated<silu>>,
                              block<pre_norm_sequential>,
                              weights<llama_naming>> {
  static constexpr std::string_view name = "mii::models::mistral";
};
}  // namespace mii::models

// Qwen2 / Qwen2.5 (Qwen2ForCausalLM): Llama's layers with biases on the q, k and v projections.
#pragma once
#include <mii/model/vocabulary.hpp>

namespace mii::models {
struct qwen2 : architecture<hf_name<"Qwen2ForCausalLM">,
                            hf_model_type<"qwen2">,
                            norm<rms_norm>,
                            rotary<rope::neox>,
                            attention<gqa, window::none, bias::qkv>,
                            mlp<gated<silu>>,
                            block<pre_norm_sequential>,
                            weights<llama_naming>> {
  static constexpr std::string_view name = "mii::models::qwen2";
};
}  // namespace mii::models

// Llama 1/2/3/3.1/3.2 (LlamaForCausalLM): RMSNorm, rotary (default, linear, dynamic, llama3
// scaling from config), grouped-query attention, SwiGLU MLP, pre-norm blocks. Tied embeddings
// (Llama-3.2 1B/3B) come from config.tie_word_embeddings.
#pragma once
#include <mii/model/vocabulary.hpp>

namespace mii::models {
struct llama : architecture<hf_name<"LlamaForCausalLM">,
                            hf_model_type<"llama">,
                            norm<rms_norm>,
                            rotary<rope::neox>,
                            attention<gqa, window::none, bias::none>,
                            mlp<gated<silu>>,
                            block<pre_norm_sequential>,
                            weights<llama_naming>> {
  static constexpr std::string_view name = "mii::models::llama";
};
}  // namespace mii::models

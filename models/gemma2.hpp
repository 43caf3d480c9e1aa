// Gemma 2 (Gemma2ForCausalLM): embeddings times sqrt(hidden), (1 + w) RMSNorms (in fp32), a norm
// before and after both attention and MLP (sandwich), GeGLU with tanh-GELU, softmax scale
// query_pre_attn_scalar^-0.5, soft-capped attention scores and logits, sliding-window attention
// on the layers config.layer_types marks "sliding_attention" (every other layer, from the first,
// in configs without layer_types), tied embeddings.
#pragma once
#include <mii/model/vocabulary.hpp>

namespace mii::models {
struct gemma2 : architecture<hf_name<"Gemma2ForCausalLM">,
                             hf_model_type<"gemma2">,
                             norm<rms_norm_plus_one>,
                             rotary<rope::neox>,
                             attention<gqa, window::sliding, bias::none>,
                             mlp<gated<gelu_tanh>>,
                             block<sandwich_norms>,
                             embeddings<sqrt_hidden_scaled_embedding>,
                             soft_capping<softcap::scores_and_logits>,
                             weights<gemma_naming>> {
  static constexpr std::string_view name = "mii::models::gemma2";
};
}  // namespace mii::models

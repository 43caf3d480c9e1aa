// Gemma 3 text (Gemma3ForCausalLM, model_type gemma3_text; the 1B checkpoint, and the language
// model of the larger ones): Gemma 2's layers (models/gemma2.hpp) plus a per-head (1 + w) RMSNorm
// on q and k before rope, local (sliding-window) and global layers from config.layer_types
// (5 local : 1 global in configs without it), each layer type with its own rope
// (rope_parameters keyed by layer type; older configs: rope_local_base_freq for the local
// layers, rope_theta and rope_scaling for the global ones). Logits soft-capped only when config
// sets final_logit_softcapping; attn_logit_softcapping, which transformers' Gemma 3 ignores, is
// refused.
#pragma once
#include <mii/model/vocabulary.hpp>

namespace mii::models {
struct gemma3 : architecture<hf_name<"Gemma3ForCausalLM">,
                             hf_model_type<"gemma3_text">,
                             norm<rms_norm_plus_one>,
                             rotary<rope::neox>,
                             attention<gqa, window::sliding, bias::none, qk_norm::per_head_rms<1>>,
                             mlp<gated<gelu_tanh>>,
                             block<sandwich_norms>,
                             embeddings<sqrt_hidden_scaled_embedding>,
                             soft_capping<softcap::logits_only>,
                             weights<gemma_naming>> {
  static constexpr std::string_view name = "mii::models::gemma3";
};
}  // namespace mii::models

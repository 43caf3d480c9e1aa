// Qwen3 (Qwen3ForCausalLM): Llama's layers with a per-head RMSNorm on q and k (after the
// projections, before rope), an explicit head_dim (heads x head_dim need not equal hidden) and
// no q/k/v biases. Tied embeddings follow config.tie_word_embeddings.
#pragma once
#include <mii/model/vocabulary.hpp>

namespace mii::models {
struct qwen3 : architecture<hf_name<"Qwen3ForCausalLM">,
                            hf_model_type<"qwen3">,
                            norm<rms_norm>,
                            rotary<rope::neox>,
                            attention<gqa, window::none, bias::none, qk_norm::per_head_rms<>>,
                            mlp<gated<silu>>,
                            block<pre_norm_sequential>,
                            weights<llama_naming>> {
  static constexpr std::string_view name = "mii::models::qwen3";
};
}  // namespace mii::models

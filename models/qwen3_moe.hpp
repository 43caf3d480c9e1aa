// Qwen3-MoE (Qwen3MoeForCausalLM): Qwen3's attention (per-head q/k RMSNorm) with sparse
// mixture-of-experts layers: softmax router, top-k of config.num_experts, the k weights
// renormalised only when config.norm_topk_prob is true, SwiGLU experts of moe_intermediate_size.
// Layers in mlp_only_layers or off the decoder_sparse_step are dense SwiGLU MLPs of
// intermediate_size. Loads the hub's per-expert tensors and transformers 5's stacked ones.
#pragma once
#include <mii/model/vocabulary.hpp>

namespace mii::models {
struct qwen3_moe : architecture<hf_name<"Qwen3MoeForCausalLM">,
                                hf_model_type<"qwen3_moe">,
                                norm<rms_norm>,
                                rotary<rope::neox>,
                                attention<gqa, window::none, bias::none, qk_norm::per_head_rms<>>,
                                mlp<moe<gated<silu>, router::softmax_topk_norm_prob>>,
                                block<pre_norm_sequential>,
                                weights<qwen_moe_naming>> {
  static constexpr std::string_view name = "mii::models::qwen3_moe";
};
}  // namespace mii::models

// Qwen1.5-MoE / Qwen2-MoE (Qwen2MoeForCausalLM): Qwen2's attention (q/k/v biases) with sparse
// mixture-of-experts layers: softmax router, top-k of config.num_experts, renormalised only when
// config.norm_topk_prob is true (false in the released checkpoints), SwiGLU experts of
// moe_intermediate_size, plus a shared SwiGLU expert of shared_expert_intermediate_size whose
// output is scaled by sigmoid(x . shared_expert_gate) and added. Layers in mlp_only_layers or
// off the decoder_sparse_step are dense SwiGLU MLPs of intermediate_size.
#pragma once
#include <mii/model/vocabulary.hpp>

namespace mii::models {
struct qwen2_moe : architecture<hf_name<"Qwen2MoeForCausalLM">,
                                hf_model_type<"qwen2_moe">,
                                norm<rms_norm>,
                                rotary<rope::neox>,
                                attention<gqa, window::none, bias::qkv>,
                                mlp<moe<gated<silu>, router::softmax_topk_norm_prob, shared_expert::sigmoid_gated>>,
                                block<pre_norm_sequential>,
                                weights<qwen_moe_naming>> {
  static constexpr std::string_view name = "mii::models::qwen2_moe";
};
}  // namespace mii::models

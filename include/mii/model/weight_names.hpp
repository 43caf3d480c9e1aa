// How an architecture's checkpoint names its tensors. A model file fills one `weight_names`;
// the loader turns it, the config and the tensor-parallel rank into the canonical weights the
// transformer runs on (fused q|k|v rows, fused gate|up rows; see docs/architecture.md).
#pragma once
#include <string_view>

namespace mii::model {

enum class qkv_layout {
  separate,  // q, k, v: three tensors
  fused,     // qkv: one tensor, rows [q heads | k heads | v heads] (Phi-3)
  falcon,    // qkv: one tensor whose row order depends on the Falcon variant (grouped, MQA, per-head)
};
enum class gate_up_layout {
  separate,  // gate and up: two tensors (or a single `up` for plain MLPs)
  fused,     // gate_up: one tensor, rows [gate | up] (Phi-3)
};

// Names are relative: a layer tensor is `layer` + index + "." + name + ".weight" (or ".bias").
// Empty means "this architecture has no such tensor".
struct weight_names {
  std::string_view embed;                 // token embedding table
  std::string_view positions = {};        // learned position table (OPT)
  std::string_view project_in = {};       // OPT: word_embed_proj_dim -> hidden
  std::string_view project_out = {};      // OPT: hidden -> word_embed_proj_dim
  std::string_view final_norm;
  std::string_view lm_head;
  std::string_view layer;                 // e.g. "model.layers."
  std::string_view attn_norm;             // norm before attention (or the only one)
  std::string_view mlp_norm = {};         // norm before the MLP (sequential) / second parallel norm
  std::string_view post_attn_norm = {};   // sandwich norms (Gemma): norm of the attention output
  std::string_view post_mlp_norm = {};    // sandwich norms (Gemma): norm of the MLP output
  std::string_view alt_attn_norm = {};    // Falcon: the name the two-norm variant uses (ln_attn)
  std::string_view alt_mlp_norm = {};     // Falcon: ln_mlp
  qkv_layout qkv = qkv_layout::separate;
  std::string_view q = {}, k = {}, v = {};
  std::string_view fused_qkv = {};
  std::string_view o;
  std::string_view q_norm = {}, k_norm = {};  // per-head q/k norm weights [head_dim] (layers::qk_norm)
  gate_up_layout gate_up = gate_up_layout::separate;
  std::string_view gate = {};             // gated MLPs only
  std::string_view up;                    // gated: up; plain: the first projection (fc1)
  std::string_view fused_gate_up = {};
  std::string_view down;                  // the last projection (down / fc2)
  // Mixture of experts, as hub checkpoints store them: per-expert tensors ...
  std::string_view router = {};           // "block_sparse_moe.gate"
  std::string_view expert = {};           // "block_sparse_moe.experts." + e + "." + {gate,up,down}
  std::string_view expert_gate = {}, expert_up = {}, expert_down = {};
  // ... and as transformers 5 re-saves them: stacked [experts, rows, cols] tensors, no ".weight".
  std::string_view router_v5 = {};        // "mlp.gate"
  std::string_view experts_gate_up_v5 = {};  // [E, 2*ffn, hidden], gate rows first
  std::string_view experts_down_v5 = {};     // [E, hidden, ffn]
  // A shared expert (Qwen2-MoE): a gated MLP and the [1, hidden] gate of its output.
  std::string_view shared_gate = {}, shared_up = {}, shared_down = {};
  std::string_view shared_expert_gate = {};
};

// The Llama family's names (Llama, Mistral, Qwen2, Qwen3, Mixtral): shared by several model files.
struct llama_naming {
  static constexpr weight_names value{
      .embed = "model.embed_tokens",
      .final_norm = "model.norm",
      .lm_head = "lm_head",
      .layer = "model.layers.",
      .attn_norm = "input_layernorm",
      .mlp_norm = "post_attention_layernorm",
      .q = "self_attn.q_proj",
      .k = "self_attn.k_proj",
      .v = "self_attn.v_proj",
      .o = "self_attn.o_proj",
      .q_norm = "self_attn.q_norm",
      .k_norm = "self_attn.k_norm",
      .gate = "mlp.gate_proj",
      .up = "mlp.up_proj",
      .down = "mlp.down_proj",
      .router = "block_sparse_moe.gate",
      .expert = "block_sparse_moe.experts.",
      .expert_gate = "w1",
      .expert_up = "w3",
      .expert_down = "w2",
      .router_v5 = "mlp.gate",
      .experts_gate_up_v5 = "mlp.experts.gate_up_proj",
      .experts_down_v5 = "mlp.experts.down_proj",
  };
};

// Qwen2-MoE and Qwen3-MoE: Llama's names (+ q/k norms) except the experts, which sit under
// "mlp.": a router ("gate"), per-expert gate_proj / up_proj / down_proj (transformers 5: stacked,
// as Mixtral's), and Qwen2-MoE's shared expert. Dense layers keep Llama's mlp.*_proj.
struct qwen_moe_naming {
  static constexpr weight_names value = [] {
    weight_names n = llama_naming::value;
    n.router = "mlp.gate";
    n.expert = "mlp.experts.";
    n.expert_gate = "gate_proj";
    n.expert_up = "up_proj";
    n.expert_down = "down_proj";
    n.shared_gate = "mlp.shared_expert.gate_proj";
    n.shared_up = "mlp.shared_expert.up_proj";
    n.shared_down = "mlp.shared_expert.down_proj";
    n.shared_expert_gate = "mlp.shared_expert_gate";
    return n;
  }();
};

// Gemma 2 and 3: Llama's projection names (+ q/k norms, Gemma 3) with four norms per layer
// (layers::sandwich_norms; Gemma's "post_attention_layernorm" normalises the attention output,
// not the MLP input) and no experts.
struct gemma_naming {
  static constexpr weight_names value = [] {
    weight_names n = llama_naming::value;
    n.mlp_norm = "pre_feedforward_layernorm";
    n.post_attn_norm = "post_attention_layernorm";
    n.post_mlp_norm = "post_feedforward_layernorm";
    n.router = n.expert = n.expert_gate = n.expert_up = n.expert_down = {};
    n.router_v5 = n.experts_gate_up_v5 = n.experts_down_v5 = {};
    return n;
  }();
};

}  // namespace mii::model

// Layer policies: the vocabulary an architecture is written in (see models/*.hpp).
//
// Each policy is a tag type. The transformer template reads them at compile time to pick
// kernels (norm kind, rotary style, activation) and to know which configuration values an
// architecture may take; values that only a config.json can tell (sizes, eps, rope theta, the
// window length) stay run-time and are checked against these tags when a model loads. A policy
// whose choice depends on the config carries the code that resolves it from io::hf_config (the
// MoE router's renormalisation, the shared expert's size), so src/model/ never tests model_type.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <mii/io/hf_config.hpp>

namespace mii::layers {

// ---- norms -------------------------------------------------------------------------------------
enum class norm_kind { rms, layer, rms_plus_one };
struct rms_norm { static constexpr norm_kind kind = norm_kind::rms; };
// Gemma: x / rms(x) * (1 + w), the (1 + w) and the product in fp32 (checkpoints store w - 1).
struct rms_norm_plus_one { static constexpr norm_kind kind = norm_kind::rms_plus_one; };
struct layer_norm { static constexpr norm_kind kind = norm_kind::layer; };  // weight + bias

// ---- rotary position embeddings ----------------------------------------------------------------
// The rotation pattern is compile time; the frequencies (theta, partial factor, scaling type:
// linear / dynamic / llama3 / longrope) are config values read by rope_frequencies.
enum class rotary_style { none, neox, gptj };
namespace rope {
struct none { static constexpr rotary_style style = rotary_style::none; };
// rotate_half: dimension i pairs with i + rot_dim/2 (Llama, Mistral, Qwen2, Phi, Falcon).
struct neox { static constexpr rotary_style style = rotary_style::neox; };
// interleaved: dimension 2i pairs with 2i+1 (GPT-J style).
struct gptj { static constexpr rotary_style style = rotary_style::gptj; };
}  // namespace rope

// ---- attention ---------------------------------------------------------------------------------
// Head grouping is described by the config (kv heads = heads: MHA, 1: MQA, else GQA); the tag
// says what the architecture allows.
struct gqa {};
namespace window {
struct none { static constexpr bool enabled = false; };
struct sliding { static constexpr bool enabled = true; };  // length from config.sliding_window (null: off)
}  // namespace window
namespace bias {
struct none { static constexpr bool on_qkv = false, on_o = false, from_config = false; };
struct qkv { static constexpr bool on_qkv = true, on_o = false, from_config = false; };   // Qwen2
struct all { static constexpr bool on_qkv = true, on_o = true, from_config = false; };    // OPT, Phi-2
struct per_config { static constexpr bool on_qkv = false, on_o = false, from_config = true; };  // Falcon's `bias`
}  // namespace bias

// ---- q/k norms (shared by several architectures: Qwen3, Qwen3-MoE, Gemma 3, ...) --------------
// An RMSNorm over each q head and each k head (head_dim wide; one weight vector for all q heads,
// one for all k heads; checkpoint names weight_names::q_norm / k_norm), after the q/k
// projections and their biases, before rope. List it as attention's fourth policy:
//   attention<gqa, window::none, bias::none, qk_norm::per_head_rms<>>
// The backend op is Backend::head_rms_norm (host: src/host/head_norm.cpp, CUDA:
// kernels/head_norm.cu); it multiplies by (WeightOffset + w): 0 for Qwen3's w, 1 for Gemma's
// (1 + w) RMSNorm. The weights are [head_dim], so tensor parallelism replicates them.
namespace qk_norm {
struct none { static constexpr bool enabled = false; static constexpr int weight_offset = 0; };
template <int WeightOffset = 0>
struct per_head_rms { static constexpr bool enabled = true; static constexpr int weight_offset = WeightOffset; };
}  // namespace qk_norm

// ---- activations and MLPs ----------------------------------------------------------------------
enum class activation { silu, gelu, gelu_tanh, relu };
struct silu { static constexpr activation kind = activation::silu; static constexpr std::string_view hf[] = {"silu", "swish"}; };
struct gelu { static constexpr activation kind = activation::gelu; static constexpr std::string_view hf[] = {"gelu"}; };
struct gelu_tanh {
  static constexpr activation kind = activation::gelu_tanh;
  static constexpr std::string_view hf[] = {"gelu_new", "gelu_pytorch_tanh", "gelu_fast"};
};
struct relu { static constexpr activation kind = activation::relu; static constexpr std::string_view hf[] = {"relu"}; };

enum class mlp_kind { gated, plain, moe };
// act(x W_gate^T) * (x W_up^T), then W_down (Llama family).
template <class Act> struct gated { using act = Act; static constexpr mlp_kind kind = mlp_kind::gated; };
// act(x W_1^T + b_1) W_2^T + b_2 (OPT, Falcon, Phi-2); biases per the attention bias policy's MLP flag.
template <class Act> struct plain { using act = Act; static constexpr mlp_kind kind = mlp_kind::plain; };

// Mixture of experts. Router: softmax over every expert (fp32), the top k (ties: the lower
// expert id). Whether the k weights are renormalised to sum to 1 is the router policy's call,
// made from the config when the model loads (model_shape::renormalise_topk).
namespace router {
// Mixtral: always renormalised.
struct softmax_topk { static bool renormalise(const io::hf_config&) { return true; } };
// Qwen2-MoE, Qwen3-MoE: renormalised only when config.json's norm_topk_prob is true.
struct softmax_topk_norm_prob { static bool renormalise(const io::hf_config& c) { return c.norm_topk_prob; } };
}  // namespace router
// A shared expert every token runs beside the routed ones (Qwen2-MoE): a gated MLP of
// config.shared_expert_intermediate_size whose output is scaled by sigmoid(x . shared_expert_gate)
// and added to the routed output. Its inner size splits under tensor parallelism like a dense
// MLP; the gate ([1, hidden]) is replicated.
namespace shared_expert {
struct none {
  static constexpr bool enabled = false, gated = false;
  static std::int64_t size(const io::hf_config&) { return 0; }
};
struct sigmoid_gated {
  static constexpr bool enabled = true, gated = true;
  static std::int64_t size(const io::hf_config& c) { return c.shared_expert_intermediate_size; }
};
}  // namespace shared_expert
// Each expert an Expert MLP (gated) of config's moe_intermediate_size. Layers that are dense
// (Qwen's decoder_sparse_step / mlp_only_layers; model_shape::sparse_mlp) run an Expert-kind MLP
// of intermediate_size instead.
template <class Expert, class Router = router::softmax_topk, class Shared = shared_expert::none>
struct moe {
  using expert = Expert;
  using act = typename Expert::act;
  using router_policy = Router;
  using shared_policy = Shared;
  static constexpr mlp_kind kind = mlp_kind::moe;
};

// ---- block wiring ------------------------------------------------------------------------------
enum class wiring { sequential, parallel_shared_norm, parallel_two_norms, post_norm, sandwich };
// x += attn(norm1(x)); x += mlp(norm2(x))
struct pre_norm_sequential { static constexpr bool from_config = false; static constexpr wiring kind = wiring::sequential; };
// x += attn(norm1(x)) + mlp(norm1(x))   (Phi-2, Falcon-7B)
struct parallel_shared_norm { static constexpr bool from_config = false; static constexpr wiring kind = wiring::parallel_shared_norm; };
// Falcon: parallel_attn / new_decoder_architecture / num_ln_in_parallel_attn pick one of
// sequential, parallel_shared_norm, parallel_two_norms.
struct falcon_wiring { static constexpr bool from_config = true; static constexpr wiring kind = wiring::parallel_shared_norm; };
// OPT: do_layer_norm_before picks pre-norm sequential or post-norm (x = norm(x + f(x))).
struct opt_wiring { static constexpr bool from_config = true; static constexpr wiring kind = wiring::sequential; };

// A wiring may carry its own forward over one layer, written against the transformer's view of
// the layer (model/transformer.hpp, layer_view): its norms by role, attention and MLP (each
// all-reduced under tensor parallelism), the residual stream x with `pending`, a sub-block
// output not yet added to x (the next norm adds it, fused), and scratch rows h, a, m.
enum class block_norm { attn, mlp, post_attn, post_mlp };
// Gemma 2/3: each sub-block's output is normalised before it joins the residual stream,
//   x += post_attn_norm(attn(attn_norm(x)));  x += post_mlp_norm(mlp(mlp_norm(x)))
struct sandwich_norms {
  static constexpr bool from_config = false;
  static constexpr wiring kind = wiring::sandwich;
  template <class Layer>
  static void forward(Layer& l) {
    l.norm(block_norm::attn, l.x, l.pending, l.h);        // x += pending; h = attn_norm(x)
    l.attention(l.h, l.a);
    l.norm(block_norm::post_attn, l.a, nullptr, l.a);     // a = post_attn_norm(a)
    l.norm(block_norm::mlp, l.x, l.a, l.h);               // x += a; h = mlp_norm(x)
    l.mlp(l.h, l.m);
    l.norm(block_norm::post_mlp, l.m, nullptr, l.m);      // m = post_mlp_norm(m), added by the next norm
    l.pending = l.m;
  }
};

// ---- embeddings --------------------------------------------------------------------------------
struct token_embedding { static constexpr bool has_positions = false; static constexpr int position_offset = 0; };
// OPT: a learned position table indexed by position + 2.
template <int Offset> struct learned_positions { static constexpr bool has_positions = true; static constexpr int position_offset = Offset; };
// Gemma: token embeddings times sqrt(hidden_size), the factor first rounded to the compute dtype
// (transformers multiplies by a tensor of the activations' dtype).
struct sqrt_hidden_scaled_embedding {
  static constexpr bool has_positions = false;
  static constexpr int position_offset = 0;
  static double scale(std::int64_t hidden) { return std::sqrt(double(hidden)); }
};

// ---- soft-capping ------------------------------------------------------------------------------
// x -> cap * tanh(x / cap), with the caps from config.json (Gemma 2: attn_logit_softcapping on
// the scaled attention scores before the mask, final_logit_softcapping on the logits). The
// policy says which caps the architecture honours; a config setting another one is refused.
namespace softcap {
struct none { static constexpr bool scores = false, logits = false; };
struct scores_and_logits { static constexpr bool scores = true, logits = true; };
// Gemma 3: transformers 5.17's Gemma3Attention never applies attn_logit_softcapping (it is not
// passed to the attention function), so a config setting it is refused rather than run otherwise.
struct logits_only { static constexpr bool scores = false, logits = true; };
}  // namespace softcap

}  // namespace mii::layers

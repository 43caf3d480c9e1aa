// Layer policies: the vocabulary an architecture is written in (see models/*.hpp).
//
// Each policy is an empty tag type. The transformer template reads them at compile time to pick
// kernels (norm kind, rotary style, activation) and to know which configuration values an
// architecture may take; values that only a config.json can tell (sizes, eps, rope theta, the
// window length) stay run-time and are checked against these tags when a model loads.
#pragma once
#include <cstddef>
#include <string_view>

namespace mii::layers {

// ---- norms -------------------------------------------------------------------------------------
enum class norm_kind { rms, layer };
struct rms_norm { static constexpr norm_kind kind = norm_kind::rms; };
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
// Mixtral: softmax router over experts, top-k, renormalised weights; each expert an Expert MLP.
template <class Expert> struct moe { using expert = Expert; using act = typename Expert::act; static constexpr mlp_kind kind = mlp_kind::moe; };

// ---- block wiring ------------------------------------------------------------------------------
enum class wiring { sequential, parallel_shared_norm, parallel_two_norms, post_norm };
// x += attn(norm1(x)); x += mlp(norm2(x))
struct pre_norm_sequential { static constexpr bool from_config = false; static constexpr wiring kind = wiring::sequential; };
// x += attn(norm1(x)) + mlp(norm1(x))   (Phi-2, Falcon-7B)
struct parallel_shared_norm { static constexpr bool from_config = false; static constexpr wiring kind = wiring::parallel_shared_norm; };
// Falcon: parallel_attn / new_decoder_architecture / num_ln_in_parallel_attn pick one of
// sequential, parallel_shared_norm, parallel_two_norms.
struct falcon_wiring { static constexpr bool from_config = true; static constexpr wiring kind = wiring::parallel_shared_norm; };
// OPT: do_layer_norm_before picks pre-norm sequential or post-norm (x = norm(x + f(x))).
struct opt_wiring { static constexpr bool from_config = true; static constexpr wiring kind = wiring::sequential; };

// ---- embeddings --------------------------------------------------------------------------------
struct token_embedding { static constexpr bool has_positions = false; static constexpr int position_offset = 0; };
// OPT: a learned position table indexed by position + 2.
template <int Offset> struct learned_positions { static constexpr bool has_positions = true; static constexpr int position_offset = Offset; };

}  // namespace mii::layers

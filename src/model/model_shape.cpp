#include <mii/model/model_shape.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <sstream>

#include <mii/error.hpp>

namespace mii::model {
namespace {

std::string quoted_list(std::span<const std::string_view> xs) {
  std::string s;
  for (auto x : xs) {  // appends only: GCC 12 misreads `"\"" + std::string(x)` as overlapping copies
    if (!s.empty()) s += ", ";
    s.append(1, '"').append(x).append(1, '"');
  }
  return s;
}
std::string quoted_list(const std::vector<std::string>& xs) {
  std::vector<std::string_view> v(xs.begin(), xs.end());
  return quoted_list(v);
}

// transformers' default inverse frequencies: 1 / theta^(2i / dim).
std::vector<float> default_inv_freq(double theta, int rot_dim) {
  std::vector<float> f(static_cast<std::size_t>(rot_dim / 2));
  for (int i = 0; i < rot_dim / 2; ++i) f[std::size_t(i)] = float(1.0 / std::pow(theta, double(2 * i) / rot_dim));
  return f;
}

// Llama 3.1: low frequencies divided by `factor`, high ones kept, a smooth blend between.
void apply_llama3(std::vector<float>& f, const io::rope_config& r) {
  const double orig = double(r.original_max_position_embeddings);
  const double low_wavelen = orig / r.low_freq_factor, high_wavelen = orig / r.high_freq_factor;
  for (auto& x : f) {
    const double inv = x, wavelen = 2 * std::numbers::pi / inv;
    double out = inv;
    if (wavelen > low_wavelen) {
      out = inv / r.factor;
    } else if (wavelen >= high_wavelen) {
      const double smooth = (orig / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
      out = (1 - smooth) * inv / r.factor + smooth * inv;
    }
    x = float(out);
  }
}

rope_frequencies make_rope(const io::hf_config& c, layers::rotary_style style, std::int64_t head_dim) {
  rope_frequencies r;
  r.style = style;
  r.type = c.rope.type;
  if (style == layers::rotary_style::none) return r;
  r.theta = c.rope.theta;
  r.rot_dim = int(double(head_dim) * c.rope.partial_rotary_factor);
  r.rot_dim -= r.rot_dim % 2;
  if (r.rot_dim <= 0) fail(c.file.string(), ": partial_rotary_factor ", c.rope.partial_rotary_factor, " leaves no rotary dimension of head_dim ", head_dim);
  r.inv_freq = default_inv_freq(r.theta, r.rot_dim);
  const auto& t = c.rope.type;
  if (t == "linear") {
    for (auto& x : r.inv_freq) x = float(double(x) / c.rope.factor);
  } else if (t == "llama3") {
    apply_llama3(r.inv_freq, c.rope);
  } else if (t == "dynamic") {
    // transformers 5.17 grows the base past max_position_embeddings (an original length in the
    // scaling object is not used).
    r.switch_length = c.max_position_embeddings;
    r.dynamic_factor = c.rope.factor;
    // The grown base's exponent is rot_dim / (rot_dim - 2).
    if (r.rot_dim <= 2)
      fail(c.file.string(), ": rope type \"dynamic\" needs more than 2 rotary dimensions, but head_dim ", head_dim,
           " and partial_rotary_factor ", c.rope.partial_rotary_factor, " leave ", r.rot_dim);
  } else if (t == "longrope") {
    r.switch_length = c.rope.original_max_position_embeddings;
    auto scaled = [&](const std::vector<double>& ext) {
      std::vector<float> f(static_cast<std::size_t>(r.rot_dim / 2));
      for (int i = 0; i < r.rot_dim / 2; ++i)
        f[std::size_t(i)] = float(1.0 / (ext[std::size_t(i)] * std::pow(r.theta, double(2 * i) / r.rot_dim)));
      return f;
    };
    r.inv_freq = scaled(c.rope.short_factor);
    r.long_inv_freq = scaled(c.rope.long_factor);
    if (c.rope.attention_factor) {
      r.attention_factor = float(*c.rope.attention_factor);
    } else {
      // transformers 5.17: the scaling object's factor, else max_position_embeddings / original.
      const double factor =
          c.rope.factor_given ? c.rope.factor : double(c.max_position_embeddings) / double(r.switch_length);
      r.attention_factor = factor <= 1.0 ? 1.0f : float(std::sqrt(1.0 + std::log(factor) / std::log(double(r.switch_length))));
    }
  }
  return r;
}

}  // namespace

backend::rope_length_rule rope_frequencies::rule() const {
  if (type == "dynamic") return backend::rope_length_rule::dynamic_ntk;
  if (!long_inv_freq.empty()) return backend::rope_length_rule::longrope;
  return backend::rope_length_rule::fixed;
}

std::vector<float> rope_frequencies::inv_freq_for(std::int64_t len) const {
  backend::rope_table t;
  t.rows = long_inv_freq.empty() ? 1 : 2;
  t.rot_dim = rot_dim;
  t.rule = rule();
  t.original_len = std::int32_t(switch_length);
  t.theta = theta;
  t.factor = dynamic_factor;
  const auto l = std::int32_t(std::min<std::int64_t>(len, std::numeric_limits<std::int32_t>::max()));
  if (backend::rope_grows_base(t, l)) {
    const double base = backend::dynamic_ntk_base(t, l);
    std::vector<float> f(static_cast<std::size_t>(rot_dim / 2));
    for (int i = 0; i < rot_dim / 2; ++i) f[std::size_t(i)] = backend::rope_inv_freq(base, i, rot_dim);
    return f;
  }
  return backend::rope_row(t, l) == 1 ? long_inv_freq : inv_freq;
}

std::uint64_t rope_frequencies::kv_variant(std::int64_t rope_len) const {
  // A token at position p is rotated for a forward of max(rope_len, p + 1) tokens. Every
  // rope_len up to switch_length gives the same rotation at every position (short / base
  // frequencies below it, the position's own length above it); past it, longrope rotates
  // everything with its long factors, and dynamic NTK with a base of that very length.
  if (rope_len <= switch_length) return 0;
  switch (rule()) {
    case backend::rope_length_rule::longrope: return 1;
    case backend::rope_length_rule::dynamic_ntk: return std::uint64_t(rope_len);
    case backend::rope_length_rule::fixed: break;
  }
  return 0;
}

bool model_shape::has_dense_mlp() const {
  return std::int64_t(sparse_mlp.size()) < layers || std::find(sparse_mlp.begin(), sparse_mlp.end(), false) != sparse_mlp.end();
}

float model_shape::attention_scale() const {
  return attn_scale > 0 ? attn_scale : float(1.0 / std::sqrt(double(head_dim)));
}

layer_attributes model_shape::layer(std::int64_t L) const {
  if (L >= 0 && L < std::int64_t(per_layer.size())) return per_layer[std::size_t(L)];
  return layer_attributes{window.value_or(0), 0, 0.0f};
}

const rope_frequencies& model_shape::rope_of(std::int64_t L) const {
  const int r = layer(L).rope;
  return r > 0 ? layer_ropes[std::size_t(r - 1)] : rope;
}

namespace {

// Per-layer attributes (model_shape::per_layer), the softmax scale and the soft-caps. layer_types
// gives each layer its window ("sliding_attention": config.sliding_window, "full_attention":
// none) and, where config gives that type a rope of its own (Gemma 3's local layers), its rope;
// without layer_types every layer has config.sliding_window.
void resolve_layers(const arch_description& a, const io::hf_config& c, model_shape& s) {
  const std::string where = c.file.string();
  if (!c.layer_type_ropes.empty() && c.layer_types.empty())
    fail(where, ": field 'rope_parameters' gives ropes per layer type but the config has no 'layer_types'");
  // Ropes of layer types that have their own, in config order (model_shape::layer_ropes).
  for (const auto& [type, rope] : c.layer_type_ropes) {
    io::hf_config one = c;
    one.rope = rope;
    s.layer_ropes.push_back(make_rope(one, a.rotary, s.head_dim));
    // Length-dependent ropes key the prefix cache and the Phi-3 restart by model_shape::rope
    // alone; a layer type with one of its own would need that per layer.
    if (s.layer_ropes.back().rule() != backend::rope_length_rule::fixed)
      fail(where, ": field 'rope_parameters.", type, ".rope_type' is \"", rope.type,
           "\"; a rope of its own per layer type may be default, linear or llama3");
  }
  float attn_softcap = 0;
  if (c.attn_logit_softcapping) {
    if (!a.attn_softcap_allowed)
      fail(where, ": field 'attn_logit_softcapping' is ", *c.attn_logit_softcapping, " but ", a.type_name,
           " was built without attention soft-capping");
    attn_softcap = float(*c.attn_logit_softcapping);
  }
  if (c.final_logit_softcapping) {
    if (!a.final_softcap_allowed)
      fail(where, ": field 'final_logit_softcapping' is ", *c.final_logit_softcapping, " but ", a.type_name,
           " was built without logit soft-capping");
    s.final_softcap = float(*c.final_logit_softcapping);
  }
  // transformers multiplies the fp32 scores by the Python float query_pre_attn_scalar ** -0.5.
  if (c.query_pre_attn_scalar) s.attn_scale = float(std::pow(*c.query_pre_attn_scalar, -0.5));

  s.per_layer.assign(std::size_t(s.layers), layer_attributes{s.window.value_or(0), 0, attn_softcap});
  if (c.layer_types.empty()) return;
  for (std::int64_t L = 0; L < s.layers; ++L) {
    layer_attributes& l = s.per_layer[std::size_t(L)];
    const std::string& kind = c.layer_types[std::size_t(L)];
    l.window = 0;
    if (kind == "sliding_attention") {
      if (!c.sliding_window)
        fail(where, ": field 'layer_types' marks layer ", L, " \"sliding_attention\" but field 'sliding_window' is null");
      if (!a.sliding_window_allowed)
        fail(where, ": field 'layer_types' marks layer ", L, " \"sliding_attention\" but ", a.type_name,
             " was built without sliding-window attention");
      if (*c.sliding_window < c.max_position_embeddings) l.window = *c.sliding_window;
    }
    for (std::size_t r = 0; r < c.layer_type_ropes.size(); ++r)
      if (c.layer_type_ropes[r].first == kind) l.rope = int(r + 1);
  }
}

}  // namespace

model_shape resolve_shape(const arch_description& a, const io::hf_config& c, int tp, int rank) {
  const std::string where = c.file.string();
  const std::string type(a.type_name);
  // Served when one of `architectures` is ours, or else (as transformers' Auto classes do) when
  // `model_type` is: configs without `architectures`, or naming a wrapper class, load too.
  const bool class_served = std::any_of(c.architectures.begin(), c.architectures.end(), [&](const std::string& n) {
    return std::find(a.hf_names.begin(), a.hf_names.end(), n) != a.hf_names.end();
  });
  const bool type_served = std::find(a.hf_model_types.begin(), a.hf_model_types.end(), c.model_type) != a.hf_model_types.end();
  if (!class_served && !type_served)
    fail(where, ": field 'architectures' is [", quoted_list(c.architectures), "] and field 'model_type' is \"",
         c.model_type, "\" but ", type, " serves architectures [", quoted_list(a.hf_names), "] and model_type [",
         quoted_list(a.hf_model_types), "]");
  if (std::find(a.act_hf_names.begin(), a.act_hf_names.end(), c.hidden_act) == a.act_hf_names.end())
    fail(where, ": field 'hidden_act' is \"", c.hidden_act, "\" but ", type, " was built with activation [",
         quoted_list(a.act_hf_names), "]");

  model_shape s;
  s.arch = type;
  s.config_file = c.file;
  s.vocab = c.vocab_size;
  s.hidden = c.hidden_size;
  s.ffn = c.intermediate_size;
  s.layers = c.num_hidden_layers;
  s.heads = c.num_attention_heads;
  s.kv_heads = c.num_key_value_heads;
  s.head_dim = c.head_dim;
  s.max_positions = c.max_position_embeddings;
  s.embed_dim = c.word_embed_proj_dim ? c.word_embed_proj_dim : c.hidden_size;
  s.eps = float(c.norm_eps);
  s.tied_embeddings = c.tie_word_embeddings;
  s.final_norm = c.final_layer_norm;
  s.project_in_out = s.embed_dim != s.hidden;
  s.learned_positions = a.learned_positions;
  s.position_offset = a.position_offset;
  s.lm_head_bias = c.lm_head_bias;
  s.grouped_fused_qkv = c.new_decoder_architecture;

  // Biases: fixed by the type unless the type reads them from config (Falcon's `bias`).
  if (a.bias_from_config) {
    s.qkv_bias = c.qkv_bias;
    s.o_bias = c.o_bias;
    s.mlp_bias = c.mlp_bias;
  } else {
    const bool mlp_bias = a.qkv_bias && a.o_bias;  // bias::all covers the MLP too
    if (c.qkv_bias != a.qkv_bias)
      fail(where, ": the config gives the q/k/v projections ", c.qkv_bias ? "biases" : "no biases",
           " (field 'attention_bias' / model_type \"", c.model_type, "\") but ", type, " was built with qkv bias ",
           a.qkv_bias ? "on" : "off");
    if (c.o_bias != a.o_bias)
      fail(where, ": the config gives the output projection ", c.o_bias ? "a bias" : "no bias", " but ", type,
           " was built with o bias ", a.o_bias ? "on" : "off");
    if (c.mlp_bias != mlp_bias)
      fail(where, ": field 'mlp_bias' (or 'enable_bias') is ", c.mlp_bias ? "true" : "false", " but ", type,
           " was built with MLP biases ", mlp_bias ? "on" : "off");
    s.qkv_bias = a.qkv_bias;
    s.o_bias = a.o_bias;
    s.mlp_bias = mlp_bias;
  }

  // Block wiring.
  if (!a.wiring_from_config) {
    s.wiring = a.wiring;
  } else if (c.model_type == "falcon") {
    s.wiring = !c.parallel_attn                      ? layers::wiring::sequential
               : c.num_ln_in_parallel_attn == 2      ? layers::wiring::parallel_two_norms
                                                     : layers::wiring::parallel_shared_norm;
  } else {
    s.wiring = c.do_layer_norm_before ? layers::wiring::sequential : layers::wiring::post_norm;
  }

  // Attention window.
  if (c.sliding_window) {
    if (!a.sliding_window_allowed)
      fail(where, ": field 'sliding_window' is ", *c.sliding_window, " but ", type,
           " was built without sliding-window attention");
    if (*c.sliding_window < c.max_position_embeddings) s.window = *c.sliding_window;
  }

  // Mixture of experts.
  const bool moe = a.mlp == layers::mlp_kind::moe;
  if (moe != (c.num_local_experts > 0))
    fail(where, ": field 'num_local_experts' is ", c.num_local_experts, " but ", type, " was built ",
         moe ? "with" : "without", " a mixture-of-experts MLP");
  s.experts = c.num_local_experts;
  s.top_k = c.num_experts_per_tok;
  if (moe && (s.top_k < 1 || s.top_k > s.experts))
    fail(where, ": field 'num_experts_per_tok' is ", s.top_k, "; it must be in [1, num_local_experts = ", s.experts, "]");
  const char* expert_field = c.moe_intermediate_size > 0 ? "moe_intermediate_size" : "intermediate_size";
  if (moe) {
    s.expert_ffn = c.moe_intermediate_size > 0 ? c.moe_intermediate_size : c.intermediate_size;
    s.renormalise_topk = a.renormalise_topk(c);
    if (c.decoder_sparse_step < 1)
      fail(where, ": field 'decoder_sparse_step' is ", c.decoder_sparse_step, "; it must be >= 1");
    s.sparse_mlp.assign(std::size_t(s.layers), false);
    for (std::int64_t L = 0; L < s.layers; ++L)  // transformers' rule (Qwen2MoeDecoderLayer)
      s.sparse_mlp[std::size_t(L)] = (L + 1) % c.decoder_sparse_step == 0 &&
                                     std::find(c.mlp_only_layers.begin(), c.mlp_only_layers.end(), L) == c.mlp_only_layers.end();
    if (a.shared_expert) {
      s.shared_ffn = a.shared_expert_size(c);
      s.shared_expert_gated = a.shared_expert_gated;
      if (s.shared_ffn <= 0)
        fail(where, ": field 'shared_expert_intermediate_size' is ", s.shared_ffn, " but ", type,
             " was built with a shared expert; it must be a positive integer");
    }
  }
  s.qk_norm = a.qk_norm;
  s.qk_norm_offset = float(a.qk_norm_offset);

  // Rotary.
  if ((a.rotary == layers::rotary_style::none) != (c.rope.type == "none"))
    fail(where, ": rope type is \"", c.rope.type, "\" but ", type, " was built ",
         a.rotary == layers::rotary_style::none ? "without" : "with", " rotary embeddings");
  s.rope = make_rope(c, a.rotary, s.head_dim);
  if (s.learned_positions && s.max_positions <= 0)
    fail(where, ": field 'max_position_embeddings' must be positive for learned positions");
  resolve_layers(a, c, s);

  // Tensor parallelism.
  if (tp < 1 || rank < 0 || rank >= tp) fail("tensor_parallel: rank ", rank, " of ", tp, " is not a valid rank");
  s.tp = tp;
  s.rank = rank;
  auto need_divisible = [&](std::string_view field, std::int64_t v) {
    if (v % tp != 0)
      fail(where, ": field '", field, "' is ", v, ", which tensor_parallel = ", tp, " does not divide");
  };
  need_divisible("num_attention_heads", s.heads);
  if (!moe || s.has_dense_mlp()) need_divisible("intermediate_size", s.ffn);
  if (moe) need_divisible(expert_field, s.expert_ffn);
  if (s.shared_ffn) need_divisible("shared_expert_intermediate_size", s.shared_ffn);
  need_divisible("vocab_size", s.vocab);
  s.local_heads = s.heads / tp;
  if (s.kv_heads >= tp) {
    need_divisible("num_key_value_heads", s.kv_heads);
    s.local_kv_heads = s.kv_heads / tp;
    s.kv_head_begin = rank * s.local_kv_heads;
  } else {
    if (tp % s.kv_heads != 0)
      fail(where, ": num_key_value_heads = ", s.kv_heads, " must divide tensor_parallel = ", tp,
           " to replicate kv heads across ranks");
    s.local_kv_heads = 1;  // replicated: each rank keeps the kv head its query heads read
    s.kv_head_begin = rank / (tp / s.kv_heads);
  }
  s.local_ffn = s.ffn / tp;
  s.local_expert_ffn = s.expert_ffn / tp;
  s.local_shared_ffn = s.shared_ffn / tp;
  s.local_vocab = s.vocab / tp;
  s.vocab_begin = rank * s.local_vocab;
  return s;
}

}  // namespace mii::model

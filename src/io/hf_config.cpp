#include <mii/io/hf_config.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

#include <mii/error.hpp>

#include "io/json_reader.hpp"
#include "io/quantization_config.hpp"

namespace mii::io {
namespace {

using detail::json_object;

// transformers' defaults for the fields a model_type's config class fills in when config.json
// leaves them out. Only what differs from the generic llama-like defaults is listed per type.
struct type_defaults {
  std::int64_t vocab, hidden, intermediate, layers, heads, max_pos;
  double eps, rope_theta;
  const char* act;
  bool tie;
  std::int64_t kv_heads = 0;  // 0: as many as the attention heads
};

type_defaults defaults_for(std::string_view model_type) {
  if (model_type == "mistral") return {32000, 4096, 14336, 32, 32, 4096 * 32, 1e-6, 10000.0, "silu", false, 8};
  if (model_type == "mixtral") return {32000, 4096, 14336, 32, 32, 4096 * 32, 1e-5, 1e6, "silu", false, 8};
  if (model_type == "qwen2") return {151936, 4096, 22016, 32, 32, 32768, 1e-6, 10000.0, "silu", false};
  if (model_type == "qwen3") return {151936, 4096, 22016, 32, 32, 32768, 1e-6, 10000.0, "silu", false};
  if (model_type == "qwen3_moe") return {151936, 2048, 6144, 24, 32, 32768, 1e-6, 10000.0, "silu", false, 4};
  if (model_type == "qwen2_moe") return {151936, 2048, 5632, 24, 16, 32768, 1e-6, 10000.0, "silu", false};
  if (model_type == "phi3") return {32064, 3072, 8192, 32, 32, 4096, 1e-5, 10000.0, "silu", false};
  if (model_type == "falcon") return {65024, 4544, 0, 32, 71, 2048, 1e-5, 10000.0, "gelu", true};
  if (model_type == "opt") return {50272, 768, 3072, 12, 12, 2048, 1e-5, 10000.0, "relu", true};
  if (model_type == "phi") return {51200, 2048, 8192, 24, 32, 2048, 1e-5, 10000.0, "gelu_new", false};
  if (model_type == "gemma2") return {256000, 2304, 9216, 26, 8, 8192, 1e-6, 10000.0, "gelu_pytorch_tanh", true, 4};
  if (model_type == "gemma3_text") return {262208, 2304, 9216, 26, 8, 131072, 1e-6, 1e6, "gelu_pytorch_tanh", true, 4};
  return {32000, 4096, 11008, 32, 32, 2048, 1e-6, 10000.0, "silu", false};  // llama
}

// A double as config.json would write it (-1, 1e-06, 0.5), for messages: std::to_string's six
// fixed decimals would print an eps of 1e-7 as 0.000000.
std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

// The first of several spellings of a field that is present (Falcon and OPT use their own).
std::optional<std::int64_t> int_field(const json_object& o, std::initializer_list<std::string_view> keys) {
  for (auto k : keys)
    if (auto v = o.get_int(k)) return v;
  return std::nullopt;
}

// One rope's scaling object: 4.x's rope_scaling, 5.x's rope_parameters, or one layer type's entry
// of a rope_parameters keyed by layer type. `r` holds the root-level values on entry.
void read_rope_scaling(const json_object& root, const json_object& s, rope_config& r) {
  // 1 / theta^x: a theta <= 0 makes infinite or NaN frequencies.
  const auto check_theta = [&](const json_object& where) {
    if (!(r.theta > 0.0)) where.invalid("rope_theta", "must be positive, got " + std::to_string(r.theta));
  };
  std::string type = s.get_string("rope_type").value_or(s.get_string("type").value_or("default"));
  if (type == "su") type = "longrope";
  if (type != "default" && type != "linear" && type != "dynamic" && type != "llama3" && type != "longrope")
    s.invalid(s.has("rope_type") ? "rope_type" : "type",
              "is \"" + type + "\"; mii supports default, linear, dynamic, llama3, longrope (su)");
  r.type = type;
  r.theta = s.get_number("rope_theta").value_or(r.theta);
  r.partial_rotary_factor = s.get_number("partial_rotary_factor").value_or(r.partial_rotary_factor);
  r.factor = s.get_number("factor").value_or(1.0);
  r.factor_given = s.has("factor");
  r.low_freq_factor = s.get_number("low_freq_factor").value_or(1.0);
  r.high_freq_factor = s.get_number("high_freq_factor").value_or(4.0);
  // transformers 5.17 (standardize_rope_params): a root-level original_max_position_embeddings, as
  // Phi-3 writes it, wins over the scaling object's.
  if (!root.has("original_max_position_embeddings"))
    r.original_max_position_embeddings = s.get_int("original_max_position_embeddings").value_or(0);
  r.attention_factor = s.get_number("attention_factor");
  if (auto v = s.get_number_list("short_factor")) r.short_factor = *v;
  if (auto v = s.get_number_list("long_factor")) r.long_factor = *v;
  if ((type == "linear" || type == "dynamic" || type == "llama3") && !(r.factor >= 1.0))
    s.invalid("factor", "must be >= 1 for rope type " + type + ", got " + std::to_string(r.factor));
  if (type == "llama3" && !s.has("original_max_position_embeddings") && !root.has("original_max_position_embeddings"))
    s.missing("original_max_position_embeddings");
  // llama3 divides the original context by each factor: 0 or less gives infinite or negative
  // wavelengths and every frequency lands in the wrong band.
  if (type == "llama3" && !(r.low_freq_factor > 0.0))
    s.invalid("low_freq_factor", "must be positive for rope type llama3, got " + number(r.low_freq_factor));
  // Llama 3 blends between the two wavelengths: equal or inverted factors divide by zero.
  if (type == "llama3" && !(r.high_freq_factor > r.low_freq_factor))
    s.invalid("high_freq_factor", "(" + std::to_string(r.high_freq_factor) + ") must be greater than low_freq_factor (" +
                                      std::to_string(r.low_freq_factor) + ")");
  check_theta(s.has("rope_theta") ? s : root);
  if (type == "longrope" && (r.short_factor.empty() || r.long_factor.empty()))
    s.invalid(r.short_factor.empty() ? "short_factor" : "long_factor", "is required for longrope");
  // Each longrope factor divides a frequency; cos/sin are scaled by attention_factor.
  for (const auto* list : {&r.short_factor, &r.long_factor})
    for (std::size_t i = 0; i < list->size(); ++i)
      if (!((*list)[i] > 0.0) || !std::isfinite((*list)[i]))
        s.invalid(list == &r.short_factor ? "short_factor" : "long_factor",
                  "[" + std::to_string(i) + "] must be a positive number, got " + number((*list)[i]));
  if (r.attention_factor && (!(*r.attention_factor > 0.0) || !std::isfinite(*r.attention_factor)))
    s.invalid("attention_factor", "must be a positive number, got " + number(*r.attention_factor));
}

// transformers 5 writes rope_parameters keyed by layer type when layer types rotate differently
// (Gemma 3: {"sliding_attention": {...}, "full_attention": {...}}). Returns false for the flat
// form. The full-attention entry (else the first) becomes c.rope; the others go to
// c.layer_type_ropes.
bool read_layer_type_ropes(const json_object& root, const json_object& params, hf_config& c) {
  std::size_t objects = 0, members = 0;
  for (auto [key, value] : params.object()) {
    ++members;
    objects += value.is_object() ? 1 : 0;
  }
  if (objects == 0) return false;
  if (objects != members)
    root.invalid("rope_parameters", "mixes per-layer-type entries (objects) with plain fields");
  const rope_config base = c.rope;  // root-level values (partial_rotary_factor, ...)
  std::vector<std::pair<std::string, rope_config>> ropes;
  for (auto [key, value] : params.object()) {
    const std::string type(key);
    if (type != "full_attention" && type != "sliding_attention")
      params.invalid(type, "is not a layer type mii knows (full_attention, sliding_attention)");
    rope_config r = base;
    // An entry without rope_theta: transformers' Gemma 3 gives its local layers rope_local_base_freq
    // (10000 by default) and its global ones rope_theta (the type's default).
    if (type == "sliding_attention") r.theta = root.get_number("rope_local_base_freq").value_or(10000.0);
    read_rope_scaling(root, json_object::expect(value, params.origin(), params.field_path(type)), r);
    ropes.emplace_back(type, std::move(r));
  }
  auto main = std::find_if(ropes.begin(), ropes.end(), [](const auto& e) { return e.first == "full_attention"; });
  if (main == ropes.end()) main = ropes.begin();
  c.rope = main->second;
  ropes.erase(main);
  c.layer_type_ropes = std::move(ropes);
  return true;
}

void read_rope(const json_object& root, hf_config& c, double default_theta) {
  rope_config& r = c.rope;
  r.theta = root.get_number("rope_theta").value_or(default_theta);
  r.partial_rotary_factor = root.get_number("partial_rotary_factor").value_or(r.partial_rotary_factor);
  r.original_max_position_embeddings = root.get_int("original_max_position_embeddings").value_or(0);

  // 4.x: rope_scaling holds the scaling; 5.x: rope_parameters holds theta and the scaling.
  if (auto params = root.get_object("rope_parameters"); params && read_layer_type_ropes(root, *params, c)) return;
  std::optional<json_object> scaling = root.get_object("rope_parameters");
  if (!scaling) scaling = root.get_object("rope_scaling");
  if (!scaling) {
    if (!(r.theta > 0.0)) root.invalid("rope_theta", std::string("must be positive, got ") + std::to_string(r.theta));
    return;
  }
  read_rope_scaling(root, *scaling, r);
}

// A number transformers defaults to `fallback` when the field is absent and turns off when it is
// null (Gemma 2's soft-capping: absent means 50.0, null means none).
std::optional<double> number_or_null(const json_object& root, std::string_view key, std::optional<double> fallback) {
  if (root.has(key)) return root.get_number(key);
  if (!root.object().at_key(key).error()) return std::nullopt;  // present and null
  return fallback;
}

// Gemma 2/3: fields the other architectures do not have, with transformers' defaults.
void read_gemma(const json_object& root, hf_config& c) {
  const bool gemma2 = c.model_type == "gemma2";
  // transformers' Gemma MLP reads hidden_activation; hub configs also carry an unused hidden_act.
  c.hidden_act = root.get_string("hidden_activation").value_or("gelu_pytorch_tanh");
  c.qkv_bias = c.o_bias = root.get_bool("attention_bias").value_or(false);
  c.query_pre_attn_scalar = root.get_number("query_pre_attn_scalar").value_or(256.0);
  c.attn_logit_softcapping = number_or_null(root, "attn_logit_softcapping", gemma2 ? std::optional(50.0) : std::nullopt);
  c.final_logit_softcapping = number_or_null(root, "final_logit_softcapping", gemma2 ? std::optional(30.0) : std::nullopt);
  // The scale and the caps divide scores: zero, negative or infinite values make NaN or no softmax.
  if (!(*c.query_pre_attn_scalar > 0.0) || !std::isfinite(*c.query_pre_attn_scalar))
    root.invalid("query_pre_attn_scalar", "must be a positive number, got " + number(*c.query_pre_attn_scalar));
  for (auto [key, cap] : {std::pair{"attn_logit_softcapping", c.attn_logit_softcapping},
                          std::pair{"final_logit_softcapping", c.final_logit_softcapping}})
    if (cap && (!(*cap > 0.0) || !std::isfinite(*cap)))
      root.invalid(key, "must be a positive number or null, got " + number(*cap));
  // EmbeddingGemma's bidirectional variant is an encoder, not a causal language model.
  if (root.get_bool("use_bidirectional_attention").value_or(false))
    root.invalid("use_bidirectional_attention", "is true; mii runs Gemma as a causal language model only");
  if (c.layer_types.empty()) {
    // transformers' default: every pattern-th layer global, the others sliding.
    const std::int64_t pattern = gemma2 ? 2 : root.get_int("sliding_window_pattern").value_or(6);
    if (pattern < 1) root.invalid("sliding_window_pattern", "must be a positive integer, got " + std::to_string(pattern));
    for (std::int64_t i = 0; i < c.num_hidden_layers; ++i)
      c.layer_types.push_back((i + 1) % pattern ? "sliding_attention" : "full_attention");
  }
}

// Gemma 3 configs written before transformers 5 give the sliding layers' rope as
// rope_local_base_freq (default rope); rope_theta and rope_scaling are the global layers'.
void read_local_rope(const json_object& root, hf_config& c) {
  if (!c.layer_type_ropes.empty()) return;
  // transformers 5 keys Gemma 3's rope_parameters by layer type and drops a flat one's contents.
  bool keyed = false;
  if (auto params = root.get_object("rope_parameters")) {
    for (auto [key, value] : params->object()) keyed = keyed || value.is_object();
    if (!keyed)
      root.invalid("rope_parameters", "must be keyed by layer type (sliding_attention, full_attention) for gemma3_text");
  }
  rope_config local;
  local.theta = root.get_number("rope_local_base_freq").value_or(10000.0);
  local.partial_rotary_factor = c.rope.partial_rotary_factor;
  if (!(local.theta > 0.0)) root.invalid("rope_local_base_freq", "must be positive, got " + number(local.theta));
  c.layer_type_ropes.emplace_back("sliding_attention", local);
}

// transformers 5's per-layer attention kinds: one known entry per layer.
void check_layer_types(const json_object& root, const hf_config& c) {
  if (c.layer_types.empty()) return;
  if (std::int64_t(c.layer_types.size()) != c.num_hidden_layers)
    root.invalid("layer_types", "has " + std::to_string(c.layer_types.size()) + " entries but num_hidden_layers is " +
                                    std::to_string(c.num_hidden_layers));
  for (std::size_t i = 0; i < c.layer_types.size(); ++i)
    if (c.layer_types[i] != "full_attention" && c.layer_types[i] != "sliding_attention")
      root.invalid("layer_types", "[" + std::to_string(i) + "] is \"" + c.layer_types[i] +
                                      "\"; mii knows full_attention and sliding_attention");
}

void check_positive(const json_object& root, std::string_view field, std::int64_t v) {
  if (v <= 0) root.invalid(field, "must be a positive integer, got " + std::to_string(v));
}

// Model sizes become 32-bit ints downstream (token ids, positions, kernel dimensions): a config
// from the internet with a size past that must be refused here, not wrap or overflow later.
constexpr std::int64_t max_size = std::numeric_limits<std::int32_t>::max();
void check_size(const json_object& root, std::string_view field, std::int64_t v) {
  check_positive(root, field, v);
  if (v > max_size) root.invalid(field, "is " + std::to_string(v) + ", more than mii supports (2^31 - 1)");
}

// The Qwen model types whose configs carry use_sliding_window, by name (null: another type).
const char* qwen_family_name(std::string_view model_type) {
  if (model_type == "qwen2") return "Qwen2";
  if (model_type == "qwen3") return "Qwen3";
  if (model_type == "qwen2_moe") return "Qwen2-MoE";
  if (model_type == "qwen3_moe") return "Qwen3-MoE";
  return nullptr;
}

// Qwen2-MoE / Qwen3-MoE: experts, router and which layers are sparse, with transformers'
// defaults. Values no model can have are refused here, naming the field.
void read_qwen_moe(const json_object& root, hf_config& c) {
  const bool qwen2 = c.model_type == "qwen2_moe";
  // transformers 5 maps num_experts to num_local_experts (attribute_map), so either may be written.
  const std::string_view experts_key = root.has("num_experts") || !root.has("num_local_experts") ? "num_experts" : "num_local_experts";
  c.num_local_experts = root.get_int(experts_key).value_or(qwen2 ? 60 : 128);
  c.num_experts_per_tok = root.get_int("num_experts_per_tok").value_or(qwen2 ? 4 : 8);
  c.moe_intermediate_size = root.get_int("moe_intermediate_size").value_or(qwen2 ? 1408 : 768);
  if (qwen2) c.shared_expert_intermediate_size = root.get_int("shared_expert_intermediate_size").value_or(5632);
  c.norm_topk_prob = root.get_bool("norm_topk_prob").value_or(false);
  c.decoder_sparse_step = root.get_int("decoder_sparse_step").value_or(1);
  c.mlp_only_layers = root.get_int_list("mlp_only_layers").value_or(std::vector<std::int64_t>{});

  // transformers builds dense layers everywhere with num_experts 0; mii's MoE types need experts.
  check_size(root, experts_key, c.num_local_experts);
  if (c.num_experts_per_tok < 1 || c.num_experts_per_tok > c.num_local_experts)
    root.invalid("num_experts_per_tok", "is " + std::to_string(c.num_experts_per_tok) + "; it must be in [1, " +
                                            std::string(experts_key) + " = " + std::to_string(c.num_local_experts) + "]");
  check_size(root, "moe_intermediate_size", c.moe_intermediate_size);
  if (qwen2) check_size(root, "shared_expert_intermediate_size", c.shared_expert_intermediate_size);
  // transformers takes (layer + 1) % decoder_sparse_step: 0 divides by zero.
  if (c.decoder_sparse_step < 1)
    root.invalid("decoder_sparse_step", "must be a positive integer, got " + std::to_string(c.decoder_sparse_step));
  for (std::size_t i = 0; i < c.mlp_only_layers.size(); ++i)
    if (c.mlp_only_layers[i] < 0 || c.mlp_only_layers[i] >= c.num_hidden_layers)
      root.invalid("mlp_only_layers", "[" + std::to_string(i) + "] is " + std::to_string(c.mlp_only_layers[i]) +
                                          ", not a layer index in [0, num_hidden_layers = " +
                                          std::to_string(c.num_hidden_layers) + ")");
}

}  // namespace

static hf_config parse_config_document(const detail::json_document& doc, const std::filesystem::path& origin) {
  const auto root = json_object::expect(doc.root(), doc.origin(), "");
  hf_config c;
  c.file = origin;
  c.architectures = root.get_string_list("architectures").value_or(std::vector<std::string>{});
  c.model_type = root.get_string("model_type").value_or("");
  if (c.model_type.empty() && c.architectures.empty())
    root.invalid("model_type", "and 'architectures' are both missing: cannot tell which model this is");
  // Quantized checkpoints hold tensors that are not the weights themselves: the FP8 scheme mii
  // runs is read, the others (AWQ, GPTQ, bitsandbytes, block-wise FP8, ...) refused here naming
  // the field, instead of at the first odd tensor.
  c.quantization = read_quantization_config(root);
  const type_defaults d = defaults_for(c.model_type);
  const std::string& mt = c.model_type;

  c.vocab_size = root.get_int("vocab_size").value_or(d.vocab);
  c.hidden_size = int_field(root, {"hidden_size", "n_embed", "d_model"}).value_or(d.hidden);
  c.num_hidden_layers = int_field(root, {"num_hidden_layers", "n_layer"}).value_or(d.layers);
  c.num_attention_heads = int_field(root, {"num_attention_heads", "n_head"}).value_or(d.heads);
  c.max_position_embeddings = root.get_int("max_position_embeddings").value_or(d.max_pos);
  c.tie_word_embeddings = root.get_bool("tie_word_embeddings").value_or(d.tie);
  c.hidden_act = root.get_string("hidden_act")
                     .value_or(root.get_string("activation_function").value_or(root.get_string("activation").value_or(d.act)));
  c.norm_eps = root.get_number("rms_norm_eps")
                   .value_or(root.get_number("layer_norm_eps").value_or(root.get_number("layer_norm_epsilon").value_or(d.eps)));
  c.bos_token_id = root.get_int("bos_token_id");
  c.pad_token_id = root.get_int("pad_token_id");
  c.eos_token_ids = root.get_int_list("eos_token_id").value_or(std::vector<std::int64_t>{});
  c.dtype = root.get_string("dtype").value_or(root.get_string("torch_dtype").value_or(""));
  check_size(root, "vocab_size", c.vocab_size);
  check_size(root, "hidden_size", c.hidden_size);
  check_size(root, "num_hidden_layers", c.num_hidden_layers);
  // Per-layer tables are allocated before any tensor is read; no real model has 10^5 layers.
  if (c.num_hidden_layers > 100000)
    root.invalid("num_hidden_layers", "is " + std::to_string(c.num_hidden_layers) + ", more than mii supports (100000)");
  check_size(root, "num_attention_heads", c.num_attention_heads);
  // 0 used to fall through to model_config.max_context (8192) as if the field were absent; an
  // absent field already got the model type's default above.
  check_size(root, "max_position_embeddings", c.max_position_embeddings);
  // Normalization divides by sqrt(variance + eps): eps <= 0 turns a zero row into NaN, and a
  // negative eps makes small rows' outputs NaN (transformers computes the same NaN).
  if (!(c.norm_eps > 0.0) || !std::isfinite(c.norm_eps)) {
    std::string_view field = "rms_norm_eps";
    for (std::string_view k : {"rms_norm_eps", "layer_norm_eps", "layer_norm_epsilon"})
      if (root.has(k)) {
        field = k;
        break;
      }
    root.invalid(field, "must be a positive number, got " + number(c.norm_eps));
  }

  if (mt == "falcon") {
    c.intermediate_size = root.get_int("ffn_hidden_size").value_or(4 * c.hidden_size);
    c.new_decoder_architecture = root.get_bool("new_decoder_architecture").value_or(false);
    c.multi_query = root.get_bool("multi_query").value_or(true);
    c.parallel_attn = root.get_bool("parallel_attn").value_or(true);
    c.alibi = root.get_bool("alibi").value_or(false);
    c.num_ln_in_parallel_attn =
        root.get_int("num_ln_in_parallel_attn").value_or(c.new_decoder_architecture ? 2 : 1);
    if (c.num_ln_in_parallel_attn != 1 && c.num_ln_in_parallel_attn != 2)
      root.invalid("num_ln_in_parallel_attn", "must be 1 or 2, got " + std::to_string(c.num_ln_in_parallel_attn));
    const bool bias = root.get_bool("bias").value_or(false);
    c.qkv_bias = c.o_bias = c.mlp_bias = bias;
    const auto kv = int_field(root, {"num_kv_heads", "n_head_kv"});
    c.num_key_value_heads = c.new_decoder_architecture ? kv.value_or(c.num_attention_heads)
                                                       : (c.multi_query ? 1 : c.num_attention_heads);
    if (c.alibi) root.invalid("alibi", "is true; mii supports Falcon with rotary embeddings only");
  } else if (mt == "opt") {
    c.intermediate_size = root.get_int("ffn_dim").value_or(d.intermediate);
    c.do_layer_norm_before = root.get_bool("do_layer_norm_before").value_or(true);
    c.word_embed_proj_dim = root.get_int("word_embed_proj_dim").value_or(c.hidden_size);
    check_size(root, "word_embed_proj_dim", c.word_embed_proj_dim);
    const bool bias = root.get_bool("enable_bias").value_or(true);
    c.qkv_bias = c.o_bias = c.mlp_bias = bias;
    c.final_layer_norm = c.do_layer_norm_before && !root.get_bool("_remove_final_layer_norm").value_or(false);
    if (!root.get_bool("layer_norm_elementwise_affine").value_or(true))
      root.invalid("layer_norm_elementwise_affine", "is false; mii supports OPT layer norms with weights only");
    c.num_key_value_heads = c.num_attention_heads;
    c.rope.type = "none";
  } else {
    c.intermediate_size = root.get_int("intermediate_size").value_or(d.intermediate);
    c.num_key_value_heads = root.get_int("num_key_value_heads").value_or(d.kv_heads ? d.kv_heads : c.num_attention_heads);
  }
  if (mt == "llama" || mt == "mistral" || mt == "mixtral" || mt == "qwen2" || mt == "phi3" || mt == "qwen3" ||
      mt == "qwen3_moe") {
    c.qkv_bias = c.o_bias = root.get_bool("attention_bias").value_or(false);
    c.mlp_bias = root.get_bool("mlp_bias").value_or(false);
  }
  if (mt == "qwen2") c.qkv_bias = true;  // Qwen2 always has q/k/v biases and none on o_proj
  if (mt == "qwen2_moe") c.qkv_bias = root.get_bool("qkv_bias").value_or(true);  // and never an o_proj bias
  if (mt == "phi") {
    c.qkv_bias = c.o_bias = c.mlp_bias = c.lm_head_bias = true;
    c.parallel_attn = true;
    c.qk_layernorm = root.get_bool("qk_layernorm").value_or(false);
    if (c.qk_layernorm) root.invalid("qk_layernorm", "is true; mii supports Phi models without q/k layer norms");
    c.rope.partial_rotary_factor = 0.5;
  }
  if (mt == "mixtral") {
    c.num_local_experts = root.get_int("num_local_experts").value_or(8);
    c.num_experts_per_tok = root.get_int("num_experts_per_tok").value_or(2);
  }
  if (mt == "qwen2_moe" || mt == "qwen3_moe") read_qwen_moe(root, c);
  c.layer_types = root.get_string_list("layer_types").value_or(std::vector<std::string>{});
  const bool gemma = mt == "gemma2" || mt == "gemma3_text";
  if (gemma) read_gemma(root, c);
  check_layer_types(root, c);

  // Sliding window: Mistral's default is 4096 in transformers; null means full attention. The
  // Qwen configs write a sliding_window that only use_sliding_window turns on.
  if (const char* qwen = qwen_family_name(mt)) {
    if (root.get_bool("use_sliding_window").value_or(false))
      root.invalid("use_sliding_window",
                   std::string("is true; mii supports ") + qwen + " with full attention in every layer only");
  } else if (auto e = root.raw("sliding_window")) {
    c.sliding_window = root.get_int("sliding_window");
  } else if ((mt == "mistral" || gemma) && !root.object().at_key("sliding_window").error()) {
    c.sliding_window = std::nullopt;  // present and null
  } else if (mt == "mistral" || gemma) {
    c.sliding_window = 4096;
  }
  if (c.sliding_window && *c.sliding_window <= 0)
    root.invalid("sliding_window", "must be a positive integer or null, got " + std::to_string(*c.sliding_window));

  if (mt != "opt") read_rope(root, c, d.rope_theta);
  if (mt == "gemma3_text") read_local_rope(root, c);
  // transformers: Phi3Config's original_max_position_embeddings defaults to 4096 (and wins over
  // the scaling object's); other longrope configs without one use max_position_embeddings.
  if (mt == "phi3" && !root.has("original_max_position_embeddings")) c.rope.original_max_position_embeddings = 4096;
  if (c.rope.type == "longrope" && c.rope.original_max_position_embeddings == 0)
    c.rope.original_max_position_embeddings = c.max_position_embeddings;
  if (c.rope.type == "dynamic" && c.rope.original_max_position_embeddings == 0)
    c.rope.original_max_position_embeddings = c.max_position_embeddings;
  // The context the scaled ropes were trained at: it divides lengths and wavelengths.
  if ((c.rope.type == "llama3" || c.rope.type == "longrope" || c.rope.type == "dynamic") &&
      c.rope.original_max_position_embeddings <= 0)
    root.invalid("original_max_position_embeddings", "must be a positive integer for rope type " + c.rope.type +
                                                         ", got " + std::to_string(c.rope.original_max_position_embeddings));

  c.head_dim = root.get_int("head_dim").value_or(gemma ? 256 : mt == "qwen3" ? 128 : 0);  // Gemma's default is 256, not hidden / heads
  if (c.head_dim == 0) {
    if (c.hidden_size % c.num_attention_heads != 0)
      root.invalid("num_attention_heads", "(" + std::to_string(c.num_attention_heads) + ") does not divide hidden_size (" +
                                              std::to_string(c.hidden_size) + ")");
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  check_size(root, "head_dim", c.head_dim);
  check_size(root, "num_key_value_heads", c.num_key_value_heads);
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    root.invalid("num_key_value_heads", "(" + std::to_string(c.num_key_value_heads) +
                                            ") must divide num_attention_heads (" + std::to_string(c.num_attention_heads) + ")");
  check_size(root, "intermediate_size", c.intermediate_size);
  if (!(c.rope.partial_rotary_factor > 0.0 && c.rope.partial_rotary_factor <= 1.0))
    root.invalid("partial_rotary_factor", "must be in (0, 1], got " + std::to_string(c.rope.partial_rotary_factor));
  if (c.rope.type == "longrope") {
    const auto rot = std::int64_t(double(c.head_dim) * c.rope.partial_rotary_factor) / 2;
    if (std::int64_t(c.rope.short_factor.size()) != rot || std::int64_t(c.rope.long_factor.size()) != rot)
      root.invalid("rope_scaling", "longrope short_factor/long_factor have " + std::to_string(c.rope.short_factor.size()) +
                                       "/" + std::to_string(c.rope.long_factor.size()) +
                                       " entries; rotary dimension / 2 is " + std::to_string(rot));
  }
  return c;
}

hf_config parse_hf_config(std::string_view json, const std::filesystem::path& origin) {
  return parse_config_document(detail::json_document::from_string(json, origin.string()), origin);
}

hf_config load_hf_config(const std::filesystem::path& path) {
  const auto file = std::filesystem::is_directory(path) ? path / "config.json" : path;
  return parse_config_document(detail::json_document::from_file(file), file);
}

generation_config load_generation_config(const std::filesystem::path& dir_or_file) {
  const auto file = std::filesystem::is_directory(dir_or_file) ? dir_or_file / "generation_config.json" : dir_or_file;
  generation_config g;
  if (!std::filesystem::exists(file)) return g;
  const auto doc = detail::json_document::from_file(file);
  const auto root = json_object::expect(doc.root(), doc.origin(), "");
  g.eos_token_ids = root.get_int_list("eos_token_id").value_or(std::vector<std::int64_t>{});
  g.bos_token_id = root.get_int("bos_token_id");
  g.pad_token_id = root.get_int("pad_token_id");
  g.do_sample = root.get_bool("do_sample");
  g.temperature = root.get_number("temperature");
  g.top_p = root.get_number("top_p");
  g.top_k = root.get_int("top_k");
  g.max_new_tokens = root.get_int("max_new_tokens");
  g.max_length = root.get_int("max_length");
  return g;
}

std::string summarize(const hf_config& c) {
  std::ostringstream os;
  os << (c.architectures.empty() ? c.model_type : c.architectures.front()) << " (" << c.model_type << "): "
     << c.num_hidden_layers << " layers, hidden " << c.hidden_size << ", " << c.num_attention_heads << " heads / "
     << c.num_key_value_heads << " kv heads x " << c.head_dim << ", ffn " << c.intermediate_size;
  if (c.num_local_experts && c.moe_intermediate_size) {  // Qwen MoE: experts of their own size
    os << ", " << c.num_local_experts << " experts of " << c.moe_intermediate_size << " (top-" << c.num_experts_per_tok << ")";
    if (c.shared_expert_intermediate_size) os << " + a shared expert of " << c.shared_expert_intermediate_size;
  } else if (c.num_local_experts) {
    os << " x " << c.num_local_experts << " experts (top-" << c.num_experts_per_tok << ")";
  }
  os << ", vocab " << c.vocab_size << ", rope " << c.rope.type;
  if (c.rope.type != "none") os << " theta " << c.rope.theta;
  if (c.sliding_window) os << ", window " << *c.sliding_window;
  return os.str();
}

}  // namespace mii::io

#include <mii/io/hf_config.hpp>

#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

#include <mii/error.hpp>

#include "io/json_reader.hpp"

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
  if (model_type == "phi3") return {32064, 3072, 8192, 32, 32, 4096, 1e-5, 10000.0, "silu", false};
  if (model_type == "falcon") return {65024, 4544, 0, 32, 71, 2048, 1e-5, 10000.0, "gelu", true};
  if (model_type == "opt") return {50272, 768, 3072, 12, 12, 2048, 1e-5, 10000.0, "relu", true};
  if (model_type == "phi") return {51200, 2048, 8192, 24, 32, 2048, 1e-5, 10000.0, "gelu_new", false};
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

void read_rope(const json_object& root, hf_config& c, double default_theta) {
  rope_config& r = c.rope;
  r.theta = root.get_number("rope_theta").value_or(default_theta);
  r.partial_rotary_factor = root.get_number("partial_rotary_factor").value_or(r.partial_rotary_factor);
  r.original_max_position_embeddings = root.get_int("original_max_position_embeddings").value_or(0);

  // 4.x: rope_scaling holds the scaling; 5.x: rope_parameters holds theta and the scaling.
  std::optional<json_object> scaling = root.get_object("rope_parameters");
  if (!scaling) scaling = root.get_object("rope_scaling");
  // 1 / theta^x: a theta <= 0 makes infinite or NaN frequencies.
  const auto check_theta = [&](const json_object& where) {
    if (!(r.theta > 0.0)) where.invalid("rope_theta", "must be positive, got " + std::to_string(r.theta));
  };
  if (!scaling) return check_theta(root);
  const json_object& s = *scaling;
  std::string type = s.get_string("rope_type").value_or(s.get_string("type").value_or("default"));
  if (type == "su") type = "longrope";
  if (type != "default" && type != "linear" && type != "dynamic" && type != "llama3" && type != "longrope")
    s.invalid(s.has("rope_type") ? "rope_type" : "type",
              "is \"" + type + "\"; mii supports default, linear, dynamic, llama3, longrope (su)");
  r.type = type;
  r.theta = s.get_number("rope_theta").value_or(r.theta);
  r.partial_rotary_factor = s.get_number("partial_rotary_factor").value_or(r.partial_rotary_factor);
  r.factor = s.get_number("factor").value_or(1.0);
  r.low_freq_factor = s.get_number("low_freq_factor").value_or(1.0);
  r.high_freq_factor = s.get_number("high_freq_factor").value_or(4.0);
  r.original_max_position_embeddings =
      s.get_int("original_max_position_embeddings").value_or(r.original_max_position_embeddings);
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

}  // namespace

static hf_config parse_config_document(const detail::json_document& doc, const std::filesystem::path& origin) {
  const auto root = json_object::expect(doc.root(), doc.origin(), "");
  hf_config c;
  c.file = origin;
  c.architectures = root.get_string_list("architectures").value_or(std::vector<std::string>{});
  c.model_type = root.get_string("model_type").value_or("");
  if (c.model_type.empty() && c.architectures.empty())
    root.invalid("model_type", "and 'architectures' are both missing: cannot tell which model this is");
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
  if (mt == "llama" || mt == "mistral" || mt == "mixtral" || mt == "qwen2" || mt == "phi3") {
    c.qkv_bias = c.o_bias = root.get_bool("attention_bias").value_or(false);
    c.mlp_bias = root.get_bool("mlp_bias").value_or(false);
  }
  if (mt == "qwen2") c.qkv_bias = true;  // Qwen2 always has q/k/v biases and none on o_proj
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

  // Sliding window: Mistral's default is 4096 in transformers; null means full attention.
  if (mt == "qwen2") {
    if (root.get_bool("use_sliding_window").value_or(false))
      root.invalid("use_sliding_window", "is true; mii supports Qwen2 with full attention in every layer only");
  } else if (auto e = root.raw("sliding_window")) {
    c.sliding_window = root.get_int("sliding_window");
  } else if (mt == "mistral" && !root.object().at_key("sliding_window").error()) {
    c.sliding_window = std::nullopt;  // present and null
  } else if (mt == "mistral") {
    c.sliding_window = 4096;
  }
  if (c.sliding_window && *c.sliding_window <= 0)
    root.invalid("sliding_window", "must be a positive integer or null, got " + std::to_string(*c.sliding_window));

  if (mt != "opt") read_rope(root, c, d.rope_theta);
  // transformers: longrope without original_max_position_embeddings uses max_position_embeddings.
  if ((mt == "phi3" || c.rope.type == "longrope") && c.rope.original_max_position_embeddings == 0)
    c.rope.original_max_position_embeddings = c.max_position_embeddings;
  if (c.rope.type == "dynamic" && c.rope.original_max_position_embeddings == 0)
    c.rope.original_max_position_embeddings = c.max_position_embeddings;
  // The context the scaled ropes were trained at: it divides lengths and wavelengths.
  if ((c.rope.type == "llama3" || c.rope.type == "longrope" || c.rope.type == "dynamic") &&
      c.rope.original_max_position_embeddings <= 0)
    root.invalid("original_max_position_embeddings", "must be a positive integer for rope type " + c.rope.type +
                                                         ", got " + std::to_string(c.rope.original_max_position_embeddings));

  c.head_dim = root.get_int("head_dim").value_or(0);
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
  if (c.num_local_experts) os << " x " << c.num_local_experts << " experts (top-" << c.num_experts_per_tok << ")";
  os << ", vocab " << c.vocab_size << ", rope " << c.rope.type;
  if (c.rope.type != "none") os << " theta " << c.rope.theta;
  if (c.sliding_window) os << ", window " << *c.sliding_window;
  return os.str();
}

}  // namespace mii::io

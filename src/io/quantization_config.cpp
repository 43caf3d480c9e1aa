// config.json's quantization_config: which pre-quantized checkpoints mii loads, and a message
// naming the field and value for the others. Supported: compressed-tensors FP8 as llm-compressor
// writes its FP8_DYNAMIC scheme (format "float-quantized"; one config group targeting Linear
// layers; weights 8-bit float, symmetric, static, per channel or per tensor; input activations
// 8-bit float, dynamic, per token) — exactly the scheme mii's FP8 runs (backend/fp8.hpp), so
// such a checkpoint's bytes and scales are used as they are — or its FP8 scheme with static
// input scales (input activations static, per tensor: one `input_scale` per layer, as the
// RedHatAI/neuralmagic "-FP8" releases carry).
#include "io/quantization_config.hpp"

#include <optional>
#include <string>

namespace mii::io {
namespace {

using detail::json_object;

constexpr const char* supported =
    "supported: quant_method \"compressed-tensors\" with FP8 weights per channel or per tensor and FP8 "
    "activations dynamic per token (llm-compressor's FP8_DYNAMIC) or static per tensor (its FP8 scheme); for "
    "other checkpoints load the unquantized "
    "release and pass model_config.quantization = \"fp8\" (mii-generate --quantization fp8)";

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

// One side of a config group (weights, input_activations): 8-bit float, symmetric, with the
// strategies and dynamic flag given.
// dynamic: the value "dynamic" must have; nullopt: either (then strategies must fit it: see the caller).
void require_fp8(const json_object& o, std::optional<bool> dynamic, std::initializer_list<std::string_view> strategies) {
  if (const auto t = o.get_string("type"); t != "float")
    o.invalid("type", (t ? "is " + quoted(*t) : std::string("is missing")) + "; " + supported);
  if (const auto bits = o.get_int("num_bits"); bits != 8)
    o.invalid("num_bits", (bits ? "is " + std::to_string(*bits) : std::string("is missing")) + "; " + supported);
  if (o.get_bool("symmetric").value_or(true) != true) o.invalid("symmetric", std::string("is false; ") + supported);
  if (dynamic && o.get_bool("dynamic").value_or(false) != *dynamic)
    o.invalid("dynamic", std::string(*dynamic ? "is false" : "is true") + "; " + supported);
  const std::string strategy = o.get_string("strategy").value_or("");
  bool known = false;
  for (auto s : strategies) known |= strategy == s;
  if (!known) o.invalid("strategy", (strategy.empty() ? std::string("is missing") : "is " + quoted(strategy)) + "; " + supported);
}

}  // namespace

checkpoint_quantization read_quantization_config(const json_object& root) {
  const auto q = root.get_object("quantization_config");
  if (!q) return {};
  const std::string method = q->get_string("quant_method").value_or("");
  if (method != "compressed-tensors")
    q->invalid("quant_method", (method.empty() ? std::string("is missing") : "is " + quoted(method)) + "; " + supported);
  if (const auto format = q->get_string("format"); format && *format != "float-quantized")
    q->invalid("format", "is " + quoted(*format) + "; " + supported);
  const auto groups = q->get_object("config_groups");
  if (!groups) q->missing("config_groups");
  checkpoint_quantization out;
  std::size_t count = 0;
  for (auto [name, value] : groups->object()) {
    if (++count > 1) groups->invalid(name, std::string("is a second config group; ") + supported);
    const auto g = json_object::expect(value, q->origin(), groups->field_path(name));
    const auto targets = g.get_string_list("targets").value_or(std::vector<std::string>{});
    if (targets != std::vector<std::string>{"Linear"})
      g.invalid("targets", std::string("must be [\"Linear\"]; ") + supported);
    const auto weights = g.get_object("weights");
    if (!weights) g.missing("weights");
    require_fp8(*weights, false, {"channel", "tensor"});
    const auto inputs = g.get_object("input_activations");
    if (!inputs) g.invalid("input_activations", std::string("is missing (weight-only FP8); ") + supported);
    // Dynamic per token, or static per tensor (the checkpoint's input_scale tensors).
    const bool dynamic = inputs->get_bool("dynamic").value_or(false);
    if (dynamic) require_fp8(*inputs, true, {"token"});
    else require_fp8(*inputs, false, {"tensor"});
    out.static_input_scales = !dynamic;
    if (g.has("output_activations")) g.invalid("output_activations", std::string("is set; ") + supported);
  }
  if (count == 0) q->invalid("config_groups", std::string("holds no config group; ") + supported);
  if (q->has("kv_cache_scheme")) q->invalid("kv_cache_scheme", "is set: FP8 KV-cache scales are not supported yet");
  out.fp8 = true;
  out.ignore = q->get_string_list("ignore").value_or(std::vector<std::string>{});
  return out;
}

}  // namespace mii::io

// config.json's quantization_config: which pre-quantized checkpoints mii loads, and a message
// naming the field and value for the others. Supported: compressed-tensors FP8 as llm-compressor
// writes its FP8_DYNAMIC scheme (format "float-quantized"; one config group targeting Linear
// layers; weights 8-bit float, symmetric, static, per channel or per tensor; input activations
// 8-bit float, dynamic, per token) — exactly the scheme mii's FP8 runs (backend/fp8.hpp), so
// such a checkpoint's bytes and scales are used as they are — or its FP8 scheme with static
// input scales (input activations static, per tensor: one `input_scale` per layer, as the
// RedHatAI/neuralmagic "-FP8" releases carry); or transformers' block-wise FP8
// ("quant_method": "fp8", FineGrainedFP8Config, DeepSeek-V3's layout: a weight_scale_inv per
// block of weight_block_size, inputs quantized per group of its columns at run time).
#include "io/quantization_config.hpp"

#include <optional>
#include <string>

namespace mii::io {
namespace {

using detail::json_object;

constexpr const char* kv_supported =
    "supported: kv_cache_scheme with num_bits 8, type \"float\", symmetric, dynamic false and strategy \"tensor\" "
    "(a k_scale and a v_scale per attention layer, as llm-compressor writes them), or none";

constexpr const char* supported =
    "supported: quant_method \"compressed-tensors\" with FP8 weights per channel or per tensor and FP8 "
    "activations dynamic per token (llm-compressor's FP8_DYNAMIC) or static per tensor (its FP8 scheme); "
    "quant_method \"fp8\" (transformers' block-wise FP8) with activation_scheme \"dynamic\" and float scales; for "
    "other checkpoints load the unquantized "
    "release and pass model_config.quantization = \"fp8\" (mii-generate --quantization fp8)";

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

// One side of a config group (weights, input_activations): 8-bit float, symmetric, with the
// strategies and dynamic flag given.
// dynamic: the value "dynamic" must have; nullopt: either (then strategies must fit it: see the caller).
void require_fp8(const json_object& o, std::optional<bool> dynamic, std::initializer_list<std::string_view> strategies,
                 const char* supported = io::supported) {
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

// transformers' FineGrainedFP8Config: {"quant_method": "fp8", "activation_scheme": "dynamic",
// "weight_block_size": [128, 128], "scale_fmt": "float", "modules_to_not_convert": [...], ...}.
checkpoint_quantization read_block_fp8(const json_object& q) {
  if (const auto scheme = q.get_string("activation_scheme").value_or("dynamic"); scheme != "dynamic")
    q.invalid("activation_scheme", "is " + quoted(scheme) + "; " + supported);
  // "ue8m0" (DeepSeek-V3.1) rounds every activation scale up to a power of two: another scheme.
  if (const auto fmt = q.get_string("scale_fmt").value_or("float"); fmt != "float")
    q.invalid("scale_fmt", "is " + quoted(fmt) + "; " + supported);
  if (const auto fmt = q.get_string("fmt").value_or("e4m3"); fmt != "e4m3")
    q.invalid("fmt", "is " + quoted(fmt) + "; " + supported);
  const auto block = q.get_int_list("weight_block_size");
  if (!block) q.invalid("weight_block_size", std::string("is missing: mii reads block-wise FP8 (quant_method \"fp8\") "
                                                         "only with the size of its blocks; ") + supported);
  if (block->size() != 2 || (*block)[0] < 1 || (*block)[1] < 1) {
    std::string v = "[";
    for (std::size_t i = 0; i < block->size(); ++i) v += (i ? ", " : "") + std::to_string((*block)[i]);
    q.invalid("weight_block_size", "is " + v + "]; it must be [rows, columns], each >= 1");
  }
  checkpoint_quantization out;
  out.fp8 = true;
  out.block_rows = (*block)[0];
  out.block_cols = (*block)[1];
  out.ignore = q.get_string_list("modules_to_not_convert").value_or(std::vector<std::string>{});
  return out;
}

}  // namespace

checkpoint_quantization read_quantization_config(const json_object& root) {
  const auto q = root.get_object("quantization_config");
  if (!q) return {};
  const std::string method = q->get_string("quant_method").value_or("");
  if (method == "fp8") return read_block_fp8(*q);
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
  // Static FP8 KV-cache scales (used with an FP8 KV cache; a compute-dtype cache ignores them, as vLLM's "auto").
  if (const auto kv = q->get_object("kv_cache_scheme")) {
    require_fp8(*kv, false, {"tensor"}, kv_supported);
    out.kv_cache_scales = true;
  }
  out.fp8 = true;
  out.ignore = q->get_string_list("ignore").value_or(std::vector<std::string>{});
  return out;
}

}  // namespace mii::io

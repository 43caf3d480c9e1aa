#include <mii/pipeline.hpp>

#include <algorithm>
#include <optional>
#include <span>

#include <boost/hana/for_each.hpp>

#include <mii/io/hf_config.hpp>
#include <mii/io/hub.hpp>
#include <mii/models/all.hpp>

#include "models/instantiations.hpp"

namespace mii {

void detail::check_dtype(const model_config& cfg, dtype compute) {
  if (!cfg.dtype) return;
  const std::string& want = *cfg.dtype;
  const bool ok = (want == "bf16" || want == "bfloat16") ? compute == dtype::bf16
                  : (want == "fp16" || want == "float16") ? compute == dtype::f16
                  : (want == "fp32" || want == "float32") ? compute == dtype::f32
                                                          : false;
  if (!ok)
    fail("model_config.dtype is \"", want, "\" but this pipeline computes in ", dtype_name(compute),
         " (choose the backend's dtype at compile time, e.g. mii::backend::cuda<mii::fp16_t>)");
}

std::filesystem::path detail::resolve_model_dir(const std::filesystem::path& model_dir, const model_config& cfg) {
  return io::resolve_model(model_dir, {.revision = cfg.revision,
                                       .files = cfg.random_weights ? io::hub_files::model_no_weights : io::hub_files::model,
                                       .show_progress = cfg.show_progress});
}

std::vector<std::string_view> builtin_architectures() {
  std::vector<std::string_view> names;
  boost::hana::for_each(models::builtin, [&](auto t) {
    using M = typename decltype(t)::type;
    for (auto n : M::hf_names()) names.push_back(n);
  });
  return names;
}

namespace {
// A pipeline of the first built-in model M for which serves(M::hf_names(), M::hf_model_types()) holds.
template <class Serves>
std::optional<generation_pipeline> first_served(const std::filesystem::path& model_dir, const model_config& cfg,
                                                Serves serves) {
  std::optional<generation_pipeline> out;
  boost::hana::for_each(models::builtin, [&](auto t) {
    using M = typename decltype(t)::type;
    if (!out && serves(M::hf_names(), M::hf_model_types())) out.emplace(pipeline<M>(model_dir, cfg));
  });
  return out;
}

std::string joined(const auto& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + std::string(n);
  return out;
}
}  // namespace

generation_pipeline pipeline(const std::filesystem::path& name, const model_config& cfg) {
  const std::filesystem::path model_dir = detail::resolve_model_dir(name, cfg);  // a Hub id becomes its snapshot
  const io::hf_config hf = io::load_hf_config(model_dir);
  auto contains = [](std::span<const std::string_view> names, std::string_view n) {
    return std::find(names.begin(), names.end(), n) != names.end();
  };
  // `architectures` first, in the config's order; then `model_type`, as transformers'
  // AutoModelForCausalLM does (configs without `architectures`, or naming a wrapper class).
  for (const auto& arch : hf.architectures)
    if (auto out = first_served(model_dir, cfg, [&](auto names, auto) { return contains(names, arch); }))
      return std::move(*out);
  if (auto out = first_served(model_dir, cfg, [&](auto, auto types) { return contains(types, hf.model_type); }))
    return std::move(*out);
  std::vector<std::string_view> types;
  boost::hana::for_each(models::builtin, [&](auto t) {
    for (auto n : decltype(t)::type::hf_model_types()) types.push_back(n);
  });
  fail(hf.file.string(), ": field 'architectures' is [", joined(hf.architectures), "] and field 'model_type' is \"",
       hf.model_type, "\"; mii knows architectures ", joined(builtin_architectures()), " and model_type ", joined(types));
}

}  // namespace mii

#include <mii/pipeline.hpp>

#include <boost/hana/for_each.hpp>

#include <mii/io/hf_config.hpp>
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

std::vector<std::string_view> builtin_architectures() {
  std::vector<std::string_view> names;
  boost::hana::for_each(models::builtin, [&](auto t) {
    using M = typename decltype(t)::type;
    for (auto n : M::hf_names()) names.push_back(n);
  });
  return names;
}

generation_pipeline pipeline(const std::filesystem::path& model_dir, const model_config& cfg) {
  const io::hf_config hf = io::load_hf_config(model_dir);
  std::optional<generation_pipeline> out;
  for (const auto& arch : hf.architectures) {
    boost::hana::for_each(models::builtin, [&](auto t) {
      using M = typename decltype(t)::type;
      if (out) return;
      for (auto n : M::hf_names())
        if (n == arch) out.emplace(pipeline<M>(model_dir, cfg));
    });
    if (out) return std::move(*out);
  }
  std::string known;
  for (auto n : builtin_architectures()) known += (known.empty() ? "" : ", ") + std::string(n);
  std::string given;
  for (const auto& a : hf.architectures) given += (given.empty() ? "" : ", ") + a;
  fail(hf.file.string(), ": field 'architectures' is [", given, "]; mii knows: ", known);
}

}  // namespace mii

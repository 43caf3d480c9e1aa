// Fuzzes config.json -> hf_config (every spelling of every field, rope scaling, defaults per
// model_type) and what the loader does next with it: the config checked against each built-in
// architecture (model::resolve_shape, rope tables included), and generation_config.json. The
// only acceptable failure is a mii::error.
#include <cmath>

#include <boost/hana/for_each.hpp>

#include <mii/io/hf_config.hpp>
#include <mii/model/model_shape.hpp>
#include <mii/models/all.hpp>

#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mii;
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  io::hf_config config;
  if (fuzz::accepts([&] { config = io::parse_hf_config(json, "fuzz/config.json"); })) {
    (void)io::summarize(config);
    boost::hana::for_each(models::builtin, [&](auto t) {
      using M = typename decltype(t)::type;
      fuzz::accepts([&] {
        const model::model_shape s = model::resolve_shape(M::describe(M::name), config);
        if (s.head_dim <= 0 || s.heads <= 0 || s.kv_heads <= 0 || s.layers <= 0 || s.vocab <= 0)
          fuzz::finding("resolve_shape accepted a non-positive size");
        // Length-dependent ropes compute frequencies per forward length, up to the longest
        // sequence served: none may be NaN or infinite.
        for (const std::int64_t len : {std::int64_t(1), s.rope.switch_length + 1, s.max_positions})
          for (const float f : s.rope.inv_freq_for(len))
            if (!std::isfinite(f)) fuzz::finding("a rope frequency is not finite");
      });
    });
  }
  static fuzz::scratch_file file("generation_config.json");
  const auto& path = file.write(data, size);
  fuzz::accepts([&] { (void)io::load_generation_config(path); });
  return 0;
}

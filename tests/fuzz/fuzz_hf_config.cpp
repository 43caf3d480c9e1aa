// Fuzzes config.json -> hf_config (every spelling of every field, rope scaling, defaults per
// model_type) and what the loader does next with it: the config checked against each built-in
// architecture (model::resolve_shape, rope tables included), and generation_config.json. The
// only acceptable failure is a mii::error.
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
        // The engine asks for dynamic-NTK tables up to the longest sequence it serves.
        if (s.rope.is_dynamic()) (void)s.rope.dynamic_inv_freq(s.max_positions);
      });
    });
  }
  static fuzz::scratch_file file("generation_config.json");
  const auto& path = file.write(data, size);
  fuzz::accepts([&] { (void)io::load_generation_config(path); });
  return 0;
}

// Access to the model fixtures in tests/fixtures/models (made by tests/fixtures/make_fixtures.py
// with transformers) and small comparison helpers shared by the test suites.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <mii/io/safetensors.hpp>

#include "io/json_reader.hpp"

namespace mii::test {

inline std::filesystem::path source_dir() { return MII_SOURCE_DIR; }
inline std::filesystem::path fixture_dir(const std::string& name) { return source_dir() / "tests/fixtures/models" / name; }

struct model_reference {
  std::vector<std::vector<std::int32_t>> prompts;
  std::vector<std::vector<std::int32_t>> greedy;
  std::vector<std::vector<std::int32_t>> long_prompts, long_greedy;
  std::vector<std::vector<float>> logits;  // per prompt, [len * vocab]
  std::int64_t vocab = 0;
};

inline std::vector<std::vector<std::int32_t>> int_lists(const detail::json_object& o, std::string_view key) {
  std::vector<std::vector<std::int32_t>> out;
  auto e = o.raw(key);
  if (!e) return out;
  for (simdjson::dom::element row : simdjson::dom::array(*e)) {
    std::vector<std::int32_t> v;
    for (simdjson::dom::element x : simdjson::dom::array(row)) v.push_back(std::int32_t(std::int64_t(x)));
    out.push_back(std::move(v));
  }
  return out;
}

// `variant`: "" for transformers' fp32 reference (reference.json / .safetensors), "fp8" for the
// same model with FP8 linear layers (reference_fp8.*, tests/fixtures/make_fp8_references.py).
inline model_reference load_reference(const std::string& name, const std::string& variant = "") {
  const auto dir = fixture_dir(name);
  const std::string stem = variant.empty() ? "reference" : "reference_" + variant;
  const auto doc = detail::json_document::from_file(dir / (stem + ".json"));
  const auto root = detail::json_object::expect(doc.root(), doc.origin(), "");
  model_reference r;
  r.prompts = int_lists(root, "prompts");
  r.greedy = int_lists(root, "greedy");
  r.long_prompts = int_lists(root, "long_prompts");
  r.long_greedy = int_lists(root, "long_greedy");
  const auto file = io::safetensors_file::open(dir / (stem + ".safetensors"));
  for (std::size_t i = 0; i < r.prompts.size(); ++i) {
    const auto* t = file.find("logits." + std::to_string(i));
    if (!t) throw std::runtime_error("reference logits missing for " + name);
    r.vocab = t->shape[1];
    std::vector<float> v(std::size_t(t->numel()));
    io::convert(*t, dtype::f32, v.data());
    r.logits.push_back(std::move(v));
  }
  return r;
}

// max |a - b| / max |b|: the relative error the fixtures' tolerance is stated in.
inline double max_relative_error(const float* a, const float* b, std::size_t n) {
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i])) return INFINITY;
    diff = std::max(diff, double(std::fabs(a[i] - b[i])));
    scale = std::max(scale, double(std::fabs(b[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

// log_softmax of one row of logits in double: the log-probabilities transformers' log_softmax
// gives, which the logprobs tests compare against.
inline std::vector<double> log_softmax(const float* x, std::int64_t n) {
  double mx = -INFINITY, sum = 0;
  for (std::int64_t i = 0; i < n; ++i) mx = std::max(mx, double(x[i]));
  for (std::int64_t i = 0; i < n; ++i) sum += std::exp(double(x[i]) - mx);
  std::vector<double> out(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) out[std::size_t(i)] = double(x[i]) - mx - std::log(sum);
  return out;
}

}  // namespace mii::test

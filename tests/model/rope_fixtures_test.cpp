// Rope scalings against transformers 5.17 (issue 15): dynamic NTK with prompts and generations
// that cross max_position_embeddings (16), linear scaling, and Phi-3 longrope whose generations
// cross original_max_position_embeddings (24). transformers computes a prompt in one forward, so
// whole, chunked and ragged prompts must all give the logits of that one forward; greedy tokens
// are transformers' decoding loop with its KV cache for each prompt alone (a fresh model per
// prompt: dynamic rope keeps state across calls).
#include <cmath>

#include "check_fixture.hpp"

using namespace mii;
using mii::test::check_fixture;
using mii::test::harness;
using mii::test::tolerance;

TEST_CASE("llama dynamic-NTK rope fixture matches transformers", "[model][rope]") {
  check_fixture<models::llama>("llama_dynamic", "llama_dynamic");
}
TEST_CASE("llama linear rope fixture matches transformers", "[model][rope]") {
  check_fixture<models::llama>("llama_linear", "llama_linear");
}
TEST_CASE("phi-3 longrope crossing original_max_position_embeddings matches transformers", "[model][rope]") {
  check_fixture<models::phi3>("phi3_cross", "phi3_cross");
}

namespace {

// The logits of prompt `s` fed in chunks of `size`, each chunk's tokens rotated for a forward of
// `rope_len(chunk end)` tokens.
template <class Model, class RopeLen>
std::vector<float> chunked_logits(harness<Model>& h, const test::model_reference& ref, int s, std::int64_t size,
                                  RopeLen rope_len) {
  const auto& prompt = ref.prompts[std::size_t(s)];
  const auto n = std::int64_t(prompt.size());
  const auto blocks = test::interleaved_blocks(h.runner, n, 0, 1);
  std::vector<float> out;
  for (std::int64_t b = 0; b < n; b += size) {
    const std::int64_t e = std::min(n, b + size);
    const runtime::step_chunk c{std::span(prompt).subspan(std::size_t(b), std::size_t(e - b)), b, blocks, rope_len(e),
                                runtime::step_chunk::logits::all};
    h.runner.forward(std::span(&c, 1));
    const auto l = h.runner.logits();
    out.insert(out.end(), l.begin(), l.end());
  }
  return out;
}

double error_against(const std::vector<float>& got, const test::model_reference& ref, int s) {
  REQUIRE(got.size() == ref.logits[std::size_t(s)].size());
  return test::max_relative_error(got.data(), ref.logits[std::size_t(s)].data(), got.size());
}

}  // namespace

// The per-sequence rule is what the chunked sections above rely on. Rotating each chunk for its
// own end instead (mii's rule before issue 15) misses the dynamic fixture's 33-token prompt: its
// first chunks would use the original frequencies, transformers' one forward the grown base.
TEST_CASE("dynamic NTK: chunks rotated for their own end instead of the prompt's length miss transformers",
          "[model][rope]") {
  const auto ref = test::load_reference("llama_dynamic");
  harness<models::llama> h(std::string("llama_dynamic"));
  REQUIRE(ref.prompts[2].size() == 33);
  const double right = error_against(chunked_logits(h, ref, 2, 8, [](std::int64_t) { return 33; }), ref, 2);
  const double wrong = error_against(chunked_logits(h, ref, 2, 8, [](std::int64_t end) { return end; }), ref, 2);
  INFO("prompt length: " << right << ", chunk end: " << wrong);
  CHECK(right <= tolerance);
  CHECK(wrong > 100 * tolerance);
}

TEST_CASE("phi-3 longrope: a prompt past the original length uses the long factors in every chunk", "[model][rope]") {
  const auto ref = test::load_reference("phi3_cross");
  harness<models::phi3> h(std::string("phi3_cross"));
  REQUIRE(ref.prompts[2].size() == 30);  // original_max_position_embeddings is 24
  CHECK(error_against(chunked_logits(h, ref, 2, 5, [](std::int64_t) { return 30; }), ref, 2) <= tolerance);
  CHECK(error_against(chunked_logits(h, ref, 2, 5, [](std::int64_t end) { return end; }), ref, 2) > 100 * tolerance);
}

TEST_CASE("rope frequencies per forward length follow transformers' formulas", "[model][rope]") {
  SECTION("dynamic NTK: the base grows past max_position_embeddings") {
    const auto c = io::load_hf_config(test::fixture_dir("llama_dynamic"));
    const auto s = model::resolve_shape(models::llama::describe(models::llama::name), c);
    REQUIRE(s.rope.rule() == backend::rope_length_rule::dynamic_ntk);
    REQUIRE(s.rope.switch_length == 16);
    const int d = s.rope.rot_dim;
    CHECK(s.rope.inv_freq_for(1) == s.rope.inv_freq);
    CHECK(s.rope.inv_freq_for(16) == s.rope.inv_freq);
    for (const std::int64_t len : {17, 33, 65}) {
      // theta * ((factor * len / max_pos) - (factor - 1)) ^ (dim / (dim - 2)), factor 2
      const double base = 10000.0 * std::pow(2.0 * double(len) / 16.0 - 1.0, double(d) / double(d - 2));
      const auto f = s.rope.inv_freq_for(len);
      REQUIRE(f.size() == std::size_t(d / 2));
      for (int i = 0; i < d / 2; ++i)
        CHECK(f[std::size_t(i)] == Approx(1.0 / std::pow(base, 2.0 * i / d)).epsilon(1e-6));
      CHECK(s.rope.kv_variant(len) == std::uint64_t(len));  // each length rotates differently
    }
    CHECK(s.rope.kv_variant(7) == 0);
    CHECK(s.rope.kv_variant(16) == 0);
  }
  SECTION("longrope: long factors past original_max_position_embeddings") {
    const auto c = io::load_hf_config(test::fixture_dir("phi3_cross"));
    const auto s = model::resolve_shape(models::phi3::describe(models::phi3::name), c);
    REQUIRE(s.rope.rule() == backend::rope_length_rule::longrope);
    REQUIRE(s.rope.switch_length == 24);
    CHECK(s.rope.inv_freq_for(24) == s.rope.inv_freq);
    CHECK(s.rope.inv_freq_for(25) == s.rope.long_inv_freq);
    CHECK(s.rope.kv_variant(24) == 0);
    CHECK(s.rope.kv_variant(25) == 1);
    CHECK(s.rope.kv_variant(30) == 1);
    // cos and sin scaled by sqrt(1 + ln(factor) / ln(original)), factor = max_position_embeddings / original
    CHECK(s.rope.attention_factor == Approx(std::sqrt(1.0 + std::log(128.0 / 24.0) / std::log(24.0))).epsilon(1e-6));
  }
  SECTION("longrope config rules of transformers 5.17 (standardize_rope_params, _compute_longrope_parameters)") {
    std::string eight = "[1, 1, 1, 1, 1, 1, 1, 1]";
    auto shape = [&](const std::string& extra) {
      const auto c = io::parse_hf_config(R"({"architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "hidden_size": 64,
          "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 512, "max_position_embeddings": 131072)" +
                                             extra + "}",
                                         "phi3/config.json");
      return model::resolve_shape(models::phi3::describe(models::phi3::name), c);
    };
    const std::string factors = R"("short_factor": )" + eight + R"(, "long_factor": )" + eight;
    // A root-level original length wins over the scaling object's; Phi3Config's default is 4096.
    CHECK(shape(R"(, "original_max_position_embeddings": 8192, "rope_scaling": {"type": "longrope", )" + factors +
                R"(, "original_max_position_embeddings": 2048})")
              .rope.switch_length == 8192);
    const auto d = shape(R"(, "rope_scaling": {"type": "longrope", )" + factors + "}");
    CHECK(d.rope.switch_length == 4096);
    CHECK(d.rope.attention_factor == Approx(std::sqrt(1.0 + std::log(32.0) / std::log(4096.0))).epsilon(1e-6));
    // A "factor" in the scaling object sets the default attention factor instead of 131072 / 4096.
    const auto f = shape(R"(, "rope_scaling": {"type": "longrope", "factor": 4.0, )" + factors + "}");
    CHECK(f.rope.attention_factor == Approx(std::sqrt(1.0 + std::log(4.0) / std::log(4096.0))).epsilon(1e-6));
    CHECK(shape(R"(, "rope_scaling": {"type": "longrope", "attention_factor": 1.5, )" + factors + "}").rope.attention_factor ==
          1.5f);
  }
  SECTION("dynamic NTK grows past max_position_embeddings, whatever original length the scaling object names") {
    const auto c = io::parse_hf_config(R"({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4,
        "max_position_embeddings": 2048, "rope_scaling": {"type": "dynamic", "factor": 2.0,
        "original_max_position_embeddings": 1024}})",
                                       "llama/config.json");
    CHECK(model::resolve_shape(models::llama::describe(models::llama::name), c).rope.switch_length == 2048);
  }
  SECTION("linear: one table, the default frequencies divided by the factor") {
    const auto c = io::load_hf_config(test::fixture_dir("llama_linear"));
    const auto s = model::resolve_shape(models::llama::describe(models::llama::name), c);
    REQUIRE(s.rope.rule() == backend::rope_length_rule::fixed);
    const int d = s.rope.rot_dim;
    for (int i = 0; i < d / 2; ++i)
      CHECK(s.rope.inv_freq[std::size_t(i)] == Approx(1.0 / std::pow(10000.0, 2.0 * i / d) / 4.0).epsilon(1e-6));
    CHECK(s.rope.inv_freq_for(100000) == s.rope.inv_freq);
    CHECK(s.rope.kv_variant(5000) == 0);
  }
}

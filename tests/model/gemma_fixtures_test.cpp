// Gemma 2 and Gemma 3 against transformers (tests/fixtures/make_fixtures.py): logits of whole
// prompts, of chunks through the KV cache and of ragged steps within 1e-5, and the 32 greedy
// tokens. Then: that the fixtures exercise each Gemma feature (switching one off in the config
// moves the logits past the tolerance), that the older config forms transformers still reads
// (no layer_types; Gemma 3's rope_local_base_freq + rope_scaling) give the same model, that
// transformers' defaults are what a bare config gets, and that impossible values are refused
// naming config.json and the field.
#include "check_fixture.hpp"

#include <cstdio>

#include <mii/io/hf_config.hpp>
#include <mii/model/model_shape.hpp>

#include "expect_error.hpp"

using namespace mii;
using Catch::Matchers::Contains;
using mii::test::check_fixture;
using mii::test::harness;
using mii::test::tolerance;
using mii::test::whole_prompts;
namespace fs = std::filesystem;

TEST_CASE("gemma2 fixture (soft-caps, sandwich norms, sliding layer 0, query_pre_attn_scalar) matches transformers",
          "[model]") {
  check_fixture<models::gemma2>("gemma2", "gemma2");
}
TEST_CASE("gemma3 fixture (q/k norms, local and global layers with their own ropes) matches transformers", "[model]") {
  check_fixture<models::gemma3>("gemma3", "gemma3");
}

namespace {

// A copy of a fixture whose config.json a test rewrites.
struct fixture_copy {
  test::temp_dir dir{"gemma"};
  explicit fixture_copy(const std::string& fixture) { test::copy_dir(test::fixture_dir(fixture), dir.path()); }
  fs::path config() const { return dir / "config.json"; }
  void write_config(const std::string& json) const { test::write_text(config(), json); }
};

// The fixtures' configs as make_fixtures.py specifies them, in a form the test controls: `extra`
// is spliced in as further top-level fields.
std::string gemma2_config(const std::string& extra) {
  return R"({"architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "vocab_size": 512,
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 4096, "rms_norm_eps": 1e-06,
    "hidden_activation": "gelu_pytorch_tanh", "tie_word_embeddings": true, "bos_token_id": 1,
    "eos_token_id": 2, "pad_token_id": 0)" + extra + "}";
}
const std::string gemma2_fixture_fields = R"(, "query_pre_attn_scalar": 24, "sliding_window": 8,
    "attn_logit_softcapping": 3.0, "final_logit_softcapping": 5.0,
    "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0})";

std::string gemma3_config(const std::string& extra) {
  return R"({"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "vocab_size": 512,
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 3, "num_attention_heads": 4,
    "num_key_value_heads": 1, "head_dim": 16, "max_position_embeddings": 4096, "rms_norm_eps": 1e-06,
    "hidden_activation": "gelu_pytorch_tanh", "tie_word_embeddings": true, "bos_token_id": 1,
    "eos_token_id": 2, "pad_token_id": 0, "query_pre_attn_scalar": 16, "sliding_window": 8)" + extra + "}";
}

template <class Model>
std::vector<std::vector<float>> logits_of(const fs::path& dir, const test::model_reference& ref) {
  harness<Model> h(dir);
  return whole_prompts(h, ref);
}

double worst_error(const std::vector<std::vector<float>>& got, const test::model_reference& ref) {
  double worst = 0;
  for (std::size_t s = 0; s < got.size(); ++s)
    worst = std::max(worst, test::max_relative_error(got[s].data(), ref.logits[s].data(), got[s].size()));
  return worst;
}

io::hf_config parse(const std::string& json) { return io::parse_hf_config(json, "/models/g/config.json"); }

}  // namespace

// Each feature must move the logits past the tolerance, or the fixture would not see it missing.
TEST_CASE("gemma2: the fixture sees each of soft-capping, the attention scale and the sliding layer", "[model]") {
  const auto ref = test::load_reference("gemma2");
  fixture_copy c("gemma2");
  const std::string layers = R"(, "layer_types": ["sliding_attention", "full_attention"])";
  c.write_config(gemma2_config(gemma2_fixture_fields + layers));
  const double faithful = worst_error(logits_of<models::gemma2>(c.dir.path(), ref), ref);
  std::printf("gemma2: logits within %.2e of transformers' (tolerance %.0e)\n", faithful, tolerance);
  CHECK(faithful <= tolerance);  // the rewrite is faithful
  const std::vector<std::pair<std::string, std::string>> variants = {
      {"no attention soft-cap", R"(, "query_pre_attn_scalar": 24, "sliding_window": 8, "attn_logit_softcapping": null,
          "final_logit_softcapping": 5.0)" + layers},
      {"no final soft-cap", R"(, "query_pre_attn_scalar": 24, "sliding_window": 8, "attn_logit_softcapping": 3.0,
          "final_logit_softcapping": null)" + layers},
      {"scale 1/sqrt(head_dim)", R"(, "query_pre_attn_scalar": 16, "sliding_window": 8, "attn_logit_softcapping": 3.0,
          "final_logit_softcapping": 5.0)" + layers},
      {"no sliding layer", R"(, "query_pre_attn_scalar": 24, "sliding_window": 8, "attn_logit_softcapping": 3.0,
          "final_logit_softcapping": 5.0, "layer_types": ["full_attention", "full_attention"])"},
  };
  for (const auto& [what, fields] : variants) {
    INFO(what);
    c.write_config(gemma2_config(fields));
    const double err = worst_error(logits_of<models::gemma2>(c.dir.path(), ref), ref);
    std::printf("gemma2 with %s: %.2e\n", what.c_str(), err);
    CHECK(err > tolerance);
  }
}

TEST_CASE("gemma2: a config without layer_types slides every other layer from the first, as transformers", "[model]") {
  const auto ref = test::load_reference("gemma2");
  fixture_copy c("gemma2");
  c.write_config(gemma2_config(gemma2_fixture_fields));
  CHECK(worst_error(logits_of<models::gemma2>(c.dir.path(), ref), ref) <= tolerance);
  const auto cfg = io::load_hf_config(c.config());
  CHECK(cfg.layer_types == std::vector<std::string>{"sliding_attention", "full_attention"});
}

TEST_CASE("gemma3: the 4.x config form (rope_local_base_freq, rope_scaling, sliding_window_pattern) is the same model",
          "[model]") {
  const auto ref = test::load_reference("gemma3");
  fixture_copy c("gemma3");
  c.write_config(gemma3_config(R"(, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
      "rope_scaling": {"rope_type": "linear", "factor": 8.0}, "sliding_window_pattern": 3)"));
  const double faithful = worst_error(logits_of<models::gemma3>(c.dir.path(), ref), ref);
  std::printf("gemma3 (4.x config form): logits within %.2e of transformers' (tolerance %.0e)\n", faithful, tolerance);
  CHECK(faithful <= tolerance);
  // ... and each layer type's rope matters: the local layers rotated with the global rope are off.
  c.write_config(gemma3_config(R"(, "rope_theta": 1000000.0, "rope_local_base_freq": 1000000.0,
      "rope_scaling": {"rope_type": "linear", "factor": 8.0}, "sliding_window_pattern": 3)"));
  const double err = worst_error(logits_of<models::gemma3>(c.dir.path(), ref), ref);
  std::printf("gemma3 with the global rope's theta on the local layers: %.2e\n", err);
  CHECK(err > tolerance);
}

TEST_CASE("gemma3: rope_parameters keyed by layer type give each layer its rope", "[model]") {
  const auto c = parse(gemma3_config(R"(, "layer_types": ["sliding_attention", "full_attention", "sliding_attention"],
      "rope_parameters": {"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                          "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0}})"));
  CHECK(c.rope.type == "linear");
  CHECK(c.rope.theta == 1e6);
  CHECK(c.rope.factor == 8.0);
  REQUIRE(c.layer_type_ropes.size() == 1);
  CHECK(c.layer_type_ropes[0].first == "sliding_attention");
  CHECK(c.layer_type_ropes[0].second.type == "default");
  CHECK(c.layer_type_ropes[0].second.theta == 1e4);
  const auto s = model::resolve_shape(models::gemma3::describe(models::gemma3::name), c);
  REQUIRE(s.per_layer.size() == 3);
  CHECK(s.per_layer[0].window == 8);
  CHECK(s.per_layer[1].window == 0);
  CHECK(s.per_layer[2].window == 8);
  CHECK(&s.rope_of(1) == &s.rope);
  REQUIRE(s.layer_ropes.size() == 1);
  CHECK(&s.rope_of(0) == &s.layer_ropes[0]);
  CHECK(&s.rope_of(2) == &s.layer_ropes[0]);
  CHECK(s.layer_ropes[0].inv_freq[1] == Approx(1.0 / std::pow(1e4, 2.0 / 16)));
  CHECK(s.rope.inv_freq[1] == Approx(1.0 / std::pow(1e6, 2.0 / 16) / 8));
  CHECK(s.attention_scale() == Approx(0.25));
  CHECK(s.per_layer[0].attn_softcap == 0.0f);
  CHECK(s.final_softcap == 0.0f);
}

TEST_CASE("gemma: a bare config gets transformers' defaults", "[model]") {
  SECTION("gemma2") {
    const auto c = parse(R"({"model_type": "gemma2", "num_hidden_layers": 4, "hidden_act": "gelu"})");
    CHECK(c.hidden_act == "gelu_pytorch_tanh");  // transformers reads hidden_activation
    CHECK(c.vocab_size == 256000);
    CHECK(c.hidden_size == 2304);
    CHECK(c.num_key_value_heads == 4);
    CHECK(c.head_dim == 256);
    CHECK(c.tie_word_embeddings);
    CHECK(c.query_pre_attn_scalar == 256.0);
    CHECK(c.attn_logit_softcapping == 50.0);
    CHECK(c.final_logit_softcapping == 30.0);
    CHECK(c.sliding_window == 4096);
    CHECK(c.rope.theta == 10000.0);
    CHECK(c.layer_types ==
          std::vector<std::string>{"sliding_attention", "full_attention", "sliding_attention", "full_attention"});
  }
  SECTION("gemma2 with soft-capping switched off") {
    const auto c = parse(R"({"model_type": "gemma2", "attn_logit_softcapping": null, "final_logit_softcapping": null})");
    CHECK_FALSE(c.attn_logit_softcapping);
    CHECK_FALSE(c.final_logit_softcapping);
  }
  SECTION("gemma3_text") {
    const auto c = parse(R"({"model_type": "gemma3_text", "num_hidden_layers": 7})");
    CHECK(c.vocab_size == 262208);
    CHECK(c.head_dim == 256);
    CHECK(c.max_position_embeddings == 131072);
    CHECK_FALSE(c.attn_logit_softcapping);
    CHECK_FALSE(c.final_logit_softcapping);
    CHECK(c.rope.theta == 1e6);
    REQUIRE(c.layer_type_ropes.size() == 1);
    CHECK(c.layer_type_ropes[0].second.theta == 1e4);
    std::vector<std::string> want(7, "sliding_attention");
    want[5] = "full_attention";  // every sixth layer is global
    CHECK(c.layer_types == want);
  }
}

TEST_CASE("gemma: impossible values are refused, naming config.json and the field", "[model]") {
  const std::string where = "/models/g/config.json";
  auto error = [&](const std::string& json) { return MII_ERROR_MESSAGE(parse(json)); };
  CHECK_THAT(error(gemma2_config(R"(, "layer_types": ["sliding_attention", "chunked_attention"])")),
             Contains(where) && Contains("'layer_types'") && Contains("[1] is \"chunked_attention\""));
  CHECK_THAT(error(gemma2_config(R"(, "layer_types": ["sliding_attention"])")),
             Contains(where) && Contains("'layer_types' has 1 entries but num_hidden_layers is 2"));
  CHECK_THAT(error(gemma2_config(R"(, "attn_logit_softcapping": 0)")),
             Contains(where) && Contains("'attn_logit_softcapping' must be a positive number or null, got 0"));
  CHECK_THAT(error(gemma2_config(R"(, "final_logit_softcapping": -30)")),
             Contains(where) && Contains("'final_logit_softcapping'") && Contains("got -30"));
  CHECK_THAT(error(gemma2_config(R"(, "query_pre_attn_scalar": 0)")),
             Contains(where) && Contains("'query_pre_attn_scalar' must be a positive number, got 0"));
  CHECK_THAT(error(gemma3_config(R"(, "sliding_window_pattern": 0)")),
             Contains(where) && Contains("'sliding_window_pattern' must be a positive integer, got 0"));
  CHECK_THAT(error(gemma3_config(R"(, "rope_local_base_freq": -1)")), Contains(where) && Contains("'rope_local_base_freq'"));
  CHECK_THAT(error(gemma3_config(R"(, "rope_parameters": {"local_attention": {"rope_type": "default"}})")),
             Contains(where) && Contains("'rope_parameters.local_attention' is not a layer type"));
  CHECK_THAT(error(gemma3_config(R"(, "rope_parameters": {"sliding_attention": {"rope_type": "yarn"}})")),
             Contains(where) && Contains("'rope_parameters.sliding_attention.rope_type' is \"yarn\""));
  CHECK_THAT(error(gemma3_config(R"(, "rope_parameters": {"full_attention": {"rope_type": "default"}, "rope_theta": 5})")),
             Contains(where) && Contains("'rope_parameters' mixes per-layer-type entries"));
  CHECK_THAT(error(gemma3_config(R"(, "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0})")),
             Contains(where) && Contains("'rope_parameters' must be keyed by layer type"));
  CHECK_THAT(error(gemma3_config(R"(, "use_bidirectional_attention": true)")),
             Contains(where) && Contains("'use_bidirectional_attention' is true"));
}

namespace {
// Gemma 2 built without the soft-capping policy: a config that asks for soft-caps must not load.
struct gemma2_uncapped : model::architecture<model::hf_name<"Gemma2ForCausalLM">, model::hf_model_type<"gemma2">,
                                             model::norm<layers::rms_norm_plus_one>, model::rotary<layers::rope::neox>,
                                             model::attention<layers::gqa, layers::window::sliding>,
                                             model::mlp<layers::gated<layers::gelu_tanh>>,
                                             model::block<layers::sandwich_norms>,
                                             model::embeddings<layers::sqrt_hidden_scaled_embedding>,
                                             model::weights<model::gemma_naming>> {
  static constexpr std::string_view name = "gemma2_uncapped";
};
}  // namespace

TEST_CASE("gemma: a config the architecture's policies cannot run is refused at load", "[model]") {
  const std::string where = "/models/g/config.json";
  auto shape_error = [&](const std::string& json, const model::arch_description& a) {
    return MII_ERROR_MESSAGE(model::resolve_shape(a, parse(json)));
  };
  const auto uncapped = gemma2_uncapped::describe(gemma2_uncapped::name);
  CHECK_THAT(shape_error(gemma2_config(R"(, "final_logit_softcapping": null)"), uncapped),  // 50 by default
             Contains(where) && Contains("'attn_logit_softcapping' is 50") && Contains("without attention soft-capping"));
  CHECK_THAT(shape_error(gemma2_config(R"(, "attn_logit_softcapping": null)"), uncapped),
             Contains(where) && Contains("'final_logit_softcapping' is 30") && Contains("without logit soft-capping"));
  const auto gemma3 = models::gemma3::describe(models::gemma3::name);
  CHECK_THAT(shape_error(gemma3_config(R"(, "rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 1e6},
                                            "sliding_attention": {"rope_type": "dynamic", "factor": 2.0}})"),
                         gemma3),
             Contains(where) && Contains("'rope_parameters.sliding_attention.rope_type' is \"dynamic\""));
  // transformers' Gemma 3 never applies attn_logit_softcapping: a config setting it is refused.
  CHECK_THAT(shape_error(gemma3_config(R"(, "attn_logit_softcapping": 50.0)"), gemma3),
             Contains(where) && Contains("'attn_logit_softcapping' is 50") && Contains("mii::models::gemma3") &&
                 Contains("without attention soft-capping"));
  CHECK(model::resolve_shape(gemma3, parse(gemma3_config(R"(, "final_logit_softcapping": 30.0)"))).final_softcap == 30.0f);
  const auto gemma2 = models::gemma2::describe(models::gemma2::name);
  CHECK_THAT(shape_error(gemma2_config(R"(, "sliding_window": null)"), gemma2),
             Contains(where) && Contains("'layer_types' marks layer 0 \"sliding_attention\"") &&
                 Contains("'sliding_window' is null"));
}

TEST_CASE("gemma: hub configs in transformers 4.x spelling resolve as transformers reads them", "[model]") {
  const fs::path hub = test::source_dir() / "tests/fuzz/corpus/hf_config";
  SECTION("gemma-2-9b: every other layer slides over 4096 keys, caps 50 and 30, scale 256^-0.5") {
    const auto c = io::load_hf_config(hub / "hub_gemma-2-9b.json");
    const auto s = model::resolve_shape(models::gemma2::describe(models::gemma2::name), c);
    REQUIRE(s.per_layer.size() == 42);
    for (std::int64_t L = 0; L < 42; ++L) {
      INFO("layer " << L);
      CHECK(s.per_layer[std::size_t(L)].window == (L % 2 == 0 ? 4096 : 0));
      CHECK(s.per_layer[std::size_t(L)].attn_softcap == 50.0f);
      CHECK(&s.rope_of(L) == &s.rope);
    }
    CHECK(s.final_softcap == 30.0f);
    CHECK(s.attention_scale() == 1.0f / 16);
    CHECK(s.head_dim == 256);
    CHECK(s.rope.theta == 10000.0);
    CHECK(s.tied_embeddings);
  }
  SECTION("gemma-3-1b: five local layers (window 512, theta 1e4) to one global (theta 1e6), no caps") {
    const auto c = io::load_hf_config(hub / "hub_gemma-3-1b.json");
    const auto s = model::resolve_shape(models::gemma3::describe(models::gemma3::name), c);
    REQUIRE(s.per_layer.size() == 26);
    for (std::int64_t L = 0; L < 26; ++L) {
      INFO("layer " << L);
      const bool global = (L + 1) % 6 == 0;
      CHECK(s.per_layer[std::size_t(L)].window == (global ? 0 : 512));
      CHECK(s.rope_of(L).theta == (global ? 1e6 : 1e4));
      CHECK(s.per_layer[std::size_t(L)].attn_softcap == 0.0f);
    }
    CHECK(s.final_softcap == 0.0f);
    CHECK(s.rope.type == "default");
    CHECK(s.qk_norm);
    CHECK(s.qk_norm_offset == 1.0f);
    CHECK(c.eos_token_ids == std::vector<std::int64_t>{1, 106});
  }
}

// Every architecture against transformers: logits of whole prompts, of prompts fed in chunks
// through the KV cache, of several prompts in one ragged step, and the fixtures' 32 greedy
// tokens per prompt.
#include "check_fixture.hpp"

using namespace mii;
using mii::test::check_fixture;
using mii::test::harness;
using mii::test::whole_prompts;
using mii::test::tolerance;


TEST_CASE("llama-2 fixture matches transformers", "[model]") { check_fixture<models::llama>("llama2", "llama2"); }
TEST_CASE("llama-3 fixture (llama3 rope scaling, tied, MQA) matches transformers", "[model]") {
  check_fixture<models::llama>("llama3", "llama3");
}
TEST_CASE("mistral fixture (sliding window) matches transformers", "[model]") { check_fixture<models::mistral>("mistral", "mistral"); }
TEST_CASE("qwen2 fixture (qkv bias) matches transformers", "[model]") { check_fixture<models::qwen2>("qwen2", "qwen2"); }
TEST_CASE("mixtral fixture (top-2 of 8 experts) matches transformers", "[model]") { check_fixture<models::mixtral>("mixtral", "mixtral"); }
TEST_CASE("mixtral in transformers 5's stacked-expert layout matches transformers", "[model]") {
  check_fixture<models::mixtral>("mixtral_v5layout", "mixtral");
}
TEST_CASE("phi-3 fixture (fused qkv and gate_up, longrope, window) matches transformers", "[model]") {
  check_fixture<models::phi3>("phi3", "phi3");
}
TEST_CASE("falcon new decoder architecture fixture matches transformers", "[model]") {
  check_fixture<models::falcon>("falcon_new", "falcon_new");
}
TEST_CASE("falcon-7b layout (MQA, parallel, one norm) matches transformers", "[model]") {
  check_fixture<models::falcon>("falcon_old", "falcon_old");
}
TEST_CASE("falcon RW layout (sequential, MHA, biases) matches transformers", "[model]") {
  check_fixture<models::falcon>("falcon_rw", "falcon_rw");
}
TEST_CASE("opt fixture (learned positions, pre-norm) matches transformers", "[model]") { check_fixture<models::opt>("opt", "opt"); }
TEST_CASE("opt post-norm with project_in/out (350m layout) matches transformers", "[model]") {
  check_fixture<models::opt>("opt_postln", "opt_postln");
}
TEST_CASE("phi-2 fixture (partial rotary, parallel block, lm_head bias) matches transformers", "[model]") {
  check_fixture<models::phi>("phi2", "phi2");
}

// The tolerance must be tight enough to see a small config mistake: llama3's rope_theta 500000
// read as 499900 (2e-4 relative) moves the logits by about 5e-5, which 1e-4 let through.
TEST_CASE("the fixture tolerance detects llama3's rope_theta off by 2e-4", "[model]") {
  const auto ref = test::load_reference("llama3");
  test::temp_dir dir("rope-theta");
  test::copy_dir(test::fixture_dir("llama3"), dir.path());
  test::write_text(dir / "config.json", test::replace_once(test::read_text(dir / "config.json"),
                                                           "\"rope_theta\": 500000.0", "\"rope_theta\": 499900.0"));
  harness<models::llama> h(dir.path());
  const auto got = whole_prompts(h, ref);
  double worst = 0;
  for (std::size_t s = 0; s < got.size(); ++s)
    worst = std::max(worst, test::max_relative_error(got[s].data(), ref.logits[s].data(), got[s].size()));
  INFO("max relative error with rope_theta 499900: " << worst);
  CHECK(worst > tolerance);
}

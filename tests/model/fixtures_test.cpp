// Every architecture against transformers: logits of whole prompts, of prompts fed in chunks
// through the KV cache, of several prompts in one ragged step, and the fixtures' 32 greedy
// tokens per prompt.
#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>

#include <mii/backend/host/host_backend.hpp>
#include <mii/models/all.hpp>
#include <mii/parallel/single.hpp>
#include <mii/runtime/model_runner.hpp>

#include "fixture_runs.hpp"
#include "fixtures.hpp"
#include "test_files.hpp"

using namespace mii;

namespace {

// Max relative error of fp32 host logits against transformers' fp32 logits. Measured worst over
// every fixture and section: 1.4e-6 (rounding of fp32 sums in another order). 1e-5 leaves 7x of
// margin and still catches real mistakes: 1e-4 passed llama3 with rope_theta 499900 instead of
// 500000 (5.1e-5), which the test below guards.
constexpr double tolerance = 1e-5;

template <class Model>
struct harness {
  backend::host::context ctx{2};
  parallel::single comm;
  runtime::model_runner<Model, backend::host, parallel::single> runner;

  explicit harness(const std::filesystem::path& dir) : runner(ctx, comm, dir, test::fixture_config()) {}
  explicit harness(const std::string& fixture) : harness(test::fixture_dir(fixture)) {}
};

// Each prompt's logits in one step each.
template <class Model>
std::vector<std::vector<float>> whole_prompts(harness<Model>& h, const test::model_reference& ref) {
  std::vector<std::vector<test::piece>> steps;
  for (int s = 0; s < int(ref.prompts.size()); ++s) steps.push_back({{s, 0, std::int64_t(ref.prompts[std::size_t(s)].size())}});
  return test::run_pieces(h.runner, ref, steps);
}

using test::piece;

template <class Model>
void check_fixture(const std::string& fixture, const std::string& reference_fixture) {
  INFO("fixture " << fixture);
  const auto ref = test::load_reference(reference_fixture);
  harness<Model> h(fixture);
  REQUIRE(h.runner.shape().vocab == ref.vocab);
  const int n = int(ref.prompts.size());
  auto len = [&](int s) { return std::int64_t(ref.prompts[std::size_t(s)].size()); };
  auto compare = [&](const std::vector<std::vector<float>>& got, const char* what) {
    for (int s = 0; s < n; ++s) {
      INFO(what << ", prompt " << s);
      REQUIRE(got[std::size_t(s)].size() == ref.logits[std::size_t(s)].size());
      CHECK(test::max_relative_error(got[std::size_t(s)].data(), ref.logits[std::size_t(s)].data(),
                                     got[std::size_t(s)].size()) <= tolerance);
    }
  };

  SECTION("each prompt in one step") { compare(whole_prompts(h, ref), "one step"); }
  SECTION("each prompt in chunks through the KV cache") {
    std::vector<std::vector<piece>> steps;
    for (int s = 0; s < n; ++s)
      for (std::int64_t b = 0, size = 1; b < len(s); b += size, size = size % 7 + 2)
        steps.push_back({{s, b, std::min(len(s), b + size)}});
    compare(test::run_pieces(h.runner, ref, steps), "chunked");
  }
  SECTION("ragged steps mixing prompts and chunk sizes") {
    // step 1: prompt 0 whole + the start of 1 and 2; step 2: the rest of 1 + more of 2; step 3: rest of 2
    const std::int64_t c1 = len(1) / 2, c2 = len(2) / 3, c2b = 2 * len(2) / 3;
    const std::vector<std::vector<piece>> steps = {
        {{0, 0, len(0)}, {1, 0, c1}, {2, 0, c2}}, {{2, c2, c2b}, {1, c1, len(1)}}, {{2, c2b, len(2)}}};
    compare(test::run_pieces(h.runner, ref, steps), "ragged");
  }
  SECTION("greedy continuation matches token for token") {
    for (int s = 0; s < n; ++s) {
      INFO("prompt " << s);
      std::vector<std::int32_t> tokens = ref.prompts[std::size_t(s)];
      const auto& expected = ref.greedy[std::size_t(s)];
      const auto blocks = test::interleaved_blocks(h.runner, std::int64_t(tokens.size() + expected.size()), 0, 1);
      std::int64_t cached = 0;
      runtime::sample_params greedy;
      for (std::size_t step = 0; step < expected.size(); ++step) {
        const std::int64_t total = std::int64_t(tokens.size());
        const runtime::step_chunk chunk{std::span(tokens).subspan(std::size_t(cached)), cached, blocks,
                                        h.runner.rope_row(total), runtime::step_chunk::logits::last};
        h.runner.forward(std::span(&chunk, 1));
        cached = total;
        tokens.push_back(h.runner.sample(std::span(&greedy, 1), {})[0]);
      }
      const std::vector<std::int32_t> got(tokens.end() - std::ptrdiff_t(expected.size()), tokens.end());
      CHECK(got == expected);
    }
  }
}

}  // namespace

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

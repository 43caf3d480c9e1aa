// Every fixture architecture end to end on the GPU, in bf16 and fp16, against transformers' fp32
// reference: logits of whole prompts, of prompts fed in chunks through the KV cache and of
// ragged steps (relative L2 error), and the fixtures' 32 greedy tokens per prompt. Greedy runs
// teacher-forced on the reference tokens, so every step is compared; a step where the GPU's pick
// differs must be a near-tie (the GPU's own logits of the two tokens within the logits error
// budget), and is printed with its margin.
//
// Error budgets. tests/gpu/transformers_baseline.py runs transformers itself in bf16 and fp16 on
// the same fixtures: its bf16 logits land 0.74e-2 .. 1.77e-2 from its own fp32 reference on the
// dense models and 9.4e-2 on Mixtral, its fp16 logits 0.9e-3 .. 2.5e-3 (3.5e-2 on Mixtral).
// mii measured (H100): bf16 0.67e-2 .. 1.55e-2 dense, 7.4e-2 Mixtral; fp16 0.87e-3 .. 1.83e-3,
// Mixtral included. So:
//  - fp16: 5e-3, every greedy mismatch a near-tie. fp16 is the sharp check of the logic: a bug
//    shows in both dtypes, bf16 rounding does not.
//  - bf16 dense: 2e-2 (bf16's 8-bit mantissa on 64-wide random models; transformers' own bf16
//    needs 1.8e-2), every greedy mismatch a near-tie.
//  - bf16 MoE: 1e-1, greedy mismatches reported, not failed: bf16 rounding flips the router's
//    top-2 choice on near-tied experts (transformers' own bf16 and even fp16 runs do too), and a
//    flipped expert changes that token's output wholesale. The fp16 run checks the MoE path.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <type_traits>

#include <mii/models/all.hpp>
#include <mii/parallel/single.hpp>
#include <mii/runtime/model_runner.hpp>

#include "fixture_runs.hpp"
#include "fixtures.hpp"
#include "gpu_support.hpp"
#include "logit_budgets.hpp"
#include "io/json_reader.hpp"

using namespace mii;

namespace {

template <class Model, class D>
struct harness {
  typename backend::cuda<D>::context& ctx = test::gpu::shared_context<D>();
  parallel::single comm;
  runtime::model_runner<Model, backend::cuda<D>, parallel::single> runner;

  explicit harness(const std::string& fixture) : runner(ctx, comm, test::fixture_dir(fixture), test::fixture_config()) {}
};

using test::piece;

std::vector<double> greedy_margins(const std::string& fixture) {
  const auto doc = detail::json_document::from_file(test::fixture_dir(fixture) / "reference.json");
  const auto root = detail::json_object::expect(doc.root(), doc.origin(), "");
  std::vector<double> out;
  if (auto e = root.raw("greedy_margins"))
    for (simdjson::dom::element m : simdjson::dom::array(*e)) out.push_back(double(m));
  return out;
}

template <class Model, class D = bf16_t>
void check_fixture(const std::string& fixture, const std::string& reference_fixture, bool moe = false) {
  const test::logit_budget limits = test::logit_budget_for<D>(moe);
  INFO("fixture " << fixture << " in " << test::gpu::dtype_label<D>);
  const auto ref = test::load_reference(reference_fixture);
  const auto margins = greedy_margins(reference_fixture);
  harness<Model, D> h(fixture);
  const std::string label = fixture + " " + test::gpu::dtype_label<D>;
  REQUIRE(h.runner.shape().vocab == ref.vocab);
  const int n = int(ref.prompts.size());
  auto len = [&](int s) { return std::int64_t(ref.prompts[std::size_t(s)].size()); };
  auto compare = [&](const std::vector<std::vector<float>>& got, const char* what) {
    double worst = 0;
    for (int s = 0; s < n; ++s) {
      INFO(what << ", prompt " << s);
      REQUIRE(got[std::size_t(s)].size() == ref.logits[std::size_t(s)].size());
      const double err = test::gpu::rel_l2(got[std::size_t(s)], ref.logits[std::size_t(s)]);
      CHECK(err <= limits.logits);
      worst = std::max(worst, err);
    }
    std::printf("  %-23s %-9s logits relative L2 (worst prompt) %.2e\n", label.c_str(), what, worst);
  };

  {
    std::vector<std::vector<piece>> steps;
    for (int s = 0; s < n; ++s) steps.push_back({{s, 0, len(s)}});
    compare(test::run_pieces(h.runner, ref, steps), "one-step");
  }
  {
    std::vector<std::vector<piece>> steps;
    for (int s = 0; s < n; ++s)
      for (std::int64_t b = 0, size = 1; b < len(s); b += size, size = size % 7 + 2)
        steps.push_back({{s, b, std::min(len(s), b + size)}});
    compare(test::run_pieces(h.runner, ref, steps), "chunked");
  }
  {
    const std::int64_t c1 = len(1) / 2, c2 = len(2) / 3, c2b = 2 * len(2) / 3;
    const std::vector<std::vector<piece>> steps = {
        {{0, 0, len(0)}, {1, 0, c1}, {2, 0, c2}}, {{2, c2, c2b}, {1, c1, len(1)}}, {{2, c2b, len(2)}}};
    compare(test::run_pieces(h.runner, ref, steps), "ragged");
  }

  // Greedy, teacher-forced on the reference tokens so that every one of the 24 steps counts.
  int mismatches = 0, steps_compared = 0;
  for (int s = 0; s < n; ++s) {
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
      const auto logits = h.runner.logits();
      const std::int32_t pick = h.runner.sample(std::span(&greedy, 1), {})[0];
      const std::int32_t argmax = std::int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
      CHECK(pick == argmax);  // the GPU sampler agrees with the logits it was given
      const std::int32_t want = expected[step];
      ++steps_compared;
      if (pick != want) {
        ++mismatches;
        float scale = 0;
        for (float v : logits) scale = std::max(scale, std::fabs(v));
        const float gap = logits[std::size_t(pick)] - logits[std::size_t(want)];
        // within the logits error budget, scaled to this row
        const bool near_tie = test::near_tie(limits, gap, scale);
        std::printf("  %-23s greedy prompt %d step %zu: GPU picks %d, transformers %d; GPU logit gap %.3g "
                    "(%.2g of max |logit| %.3g), reference min top-2 margin of this prompt %.3g -> %s\n",
                    label.c_str(), s, step, pick, want, double(gap), double(gap / scale), double(scale),
                    std::size_t(s) < margins.size() ? margins[std::size_t(s)] : -1.0,
                    near_tie ? "near-tie" : limits.strict_greedy ? "REAL DIVERGENCE" : "divergence (MoE routing flip allowed in bf16)");
        if (limits.strict_greedy) CHECK(near_tie);
      }
      tokens.push_back(want);
    }
  }
  std::printf("  %-23s greedy: %d of %d steps identical to transformers\n", label.c_str(), steps_compared - mismatches,
              steps_compared);
  std::fflush(stdout);
}

}  // namespace

TEST_CASE("GPU bf16: llama-2 fixture matches transformers", "[gpu][model]") { check_fixture<models::llama>("llama2", "llama2"); }
TEST_CASE("GPU bf16: llama-3 fixture matches transformers", "[gpu][model]") { check_fixture<models::llama>("llama3", "llama3"); }
TEST_CASE("GPU bf16: mistral fixture matches transformers", "[gpu][model]") { check_fixture<models::mistral>("mistral", "mistral"); }
TEST_CASE("GPU bf16: qwen2 fixture matches transformers", "[gpu][model]") { check_fixture<models::qwen2>("qwen2", "qwen2"); }
TEST_CASE("GPU bf16: mixtral fixture matches transformers", "[gpu][model]") { check_fixture<models::mixtral>("mixtral", "mixtral", true); }
TEST_CASE("GPU bf16: mixtral v5 layout matches transformers", "[gpu][model]") {
  check_fixture<models::mixtral>("mixtral_v5layout", "mixtral", true);
}
TEST_CASE("GPU bf16: phi-3 fixture matches transformers", "[gpu][model]") { check_fixture<models::phi3>("phi3", "phi3"); }
TEST_CASE("GPU bf16: falcon new decoder fixture matches transformers", "[gpu][model]") {
  check_fixture<models::falcon>("falcon_new", "falcon_new");
}
TEST_CASE("GPU bf16: falcon-7b layout matches transformers", "[gpu][model]") { check_fixture<models::falcon>("falcon_old", "falcon_old"); }
TEST_CASE("GPU bf16: falcon RW layout matches transformers", "[gpu][model]") { check_fixture<models::falcon>("falcon_rw", "falcon_rw"); }
TEST_CASE("GPU bf16: opt fixture matches transformers", "[gpu][model]") { check_fixture<models::opt>("opt", "opt"); }
TEST_CASE("GPU bf16: opt post-norm 350m layout matches transformers", "[gpu][model]") {
  check_fixture<models::opt>("opt_postln", "opt_postln");
}
TEST_CASE("GPU bf16: phi-2 fixture matches transformers", "[gpu][model]") { check_fixture<models::phi>("phi2", "phi2"); }

// fp16 keeps 3 more mantissa bits than bf16: errors ~8x smaller, which separates rounding from
// logic errors (a bug shows in both dtypes; precision loss shrinks in fp16).
TEST_CASE("GPU fp16: llama-2 fixture matches transformers", "[gpu][model][fp16]") { check_fixture<models::llama, fp16_t>("llama2", "llama2"); }
TEST_CASE("GPU fp16: llama-3 fixture matches transformers", "[gpu][model][fp16]") { check_fixture<models::llama, fp16_t>("llama3", "llama3"); }
TEST_CASE("GPU fp16: mistral fixture matches transformers", "[gpu][model][fp16]") { check_fixture<models::mistral, fp16_t>("mistral", "mistral"); }
TEST_CASE("GPU fp16: qwen2 fixture matches transformers", "[gpu][model][fp16]") { check_fixture<models::qwen2, fp16_t>("qwen2", "qwen2"); }
TEST_CASE("GPU fp16: mixtral fixture matches transformers", "[gpu][model][fp16]") { check_fixture<models::mixtral, fp16_t>("mixtral", "mixtral", true); }
TEST_CASE("GPU fp16: mixtral v5 layout matches transformers", "[gpu][model][fp16]") {
  check_fixture<models::mixtral, fp16_t>("mixtral_v5layout", "mixtral", true);
}
TEST_CASE("GPU fp16: phi-3 fixture matches transformers", "[gpu][model][fp16]") { check_fixture<models::phi3, fp16_t>("phi3", "phi3"); }
TEST_CASE("GPU fp16: falcon new decoder fixture matches transformers", "[gpu][model][fp16]") {
  check_fixture<models::falcon, fp16_t>("falcon_new", "falcon_new");
}
TEST_CASE("GPU fp16: falcon-7b layout matches transformers", "[gpu][model][fp16]") { check_fixture<models::falcon, fp16_t>("falcon_old", "falcon_old"); }
TEST_CASE("GPU fp16: falcon RW layout matches transformers", "[gpu][model][fp16]") { check_fixture<models::falcon, fp16_t>("falcon_rw", "falcon_rw"); }
TEST_CASE("GPU fp16: opt fixture matches transformers", "[gpu][model][fp16]") { check_fixture<models::opt, fp16_t>("opt", "opt"); }
TEST_CASE("GPU fp16: opt post-norm 350m layout matches transformers", "[gpu][model][fp16]") {
  check_fixture<models::opt, fp16_t>("opt_postln", "opt_postln");
}
TEST_CASE("GPU fp16: phi-2 fixture matches transformers", "[gpu][model][fp16]") { check_fixture<models::phi, fp16_t>("phi2", "phi2"); }

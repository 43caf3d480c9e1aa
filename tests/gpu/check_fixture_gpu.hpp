// check_fixture<Model, D>(fixture, reference): one architecture end to end on the GPU in bf16 or
// fp16 against transformers' fp32 reference (whole prompts, chunks, ragged steps, teacher-forced
// greedy), within the budgets explained in fixtures_gpu_test.cpp. Shared by the GPU fixture test
// files (fixtures_gpu_test.cpp, rope_fixtures_gpu_test.cpp, ...).
#pragma once
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

namespace mii::test::gpu_fixtures {

template <class Model, class D>
struct harness {
  typename backend::cuda<D>::context& ctx = test::gpu::shared_context<D>();
  parallel::single comm;
  runtime::model_runner<Model, backend::cuda<D>, parallel::single> runner;

  explicit harness(const std::string& fixture, const model_config& cfg = test::fixture_config())
      : runner(ctx, comm, test::fixture_dir(fixture), cfg) {}
};

using test::piece;

inline std::vector<double> greedy_margins(const std::string& fixture, const std::string& variant = "") {
  const auto doc = detail::json_document::from_file(test::fixture_dir(fixture) /
                                                    (variant.empty() ? "reference.json" : "reference_" + variant + ".json"));
  const auto root = detail::json_object::expect(doc.root(), doc.origin(), "");
  std::vector<double> out;
  if (auto e = root.raw("greedy_margins"))
    for (simdjson::dom::element m : simdjson::dom::array(*e)) out.push_back(double(m));
  return out;
}

// `logits_budget` (> 0) replaces the dtype's logits budget for a fixture whose architecture
// transformers itself computes less exactly in that dtype (tests/gpu/transformers_baseline.py);
// the near-tie rule for greedy mismatches stays as it is. `cfg` and `variant`: the engine's
// configuration and the reference (test::load_reference), for FP8 runs: see quantization_effect.
// An FP8 run in bf16 rounds its activations, keys and values to e4m3 from bf16 values, which sit
// on the other side of an e4m3 rounding boundary from torch's fp32 ones often enough that the
// GPU's quantization noise is a different draw from torch's, of the same size: the logits budget
// grows by the quantization's own effect in torch, and greedy divergences are reported, not
// failed. (Bit-level agreement with the host's FP8 arithmetic is checked per op: fp8_ops_test.cpp,
// kv_fp8_test.cpp; the host against torch within 1e-4 / 5e-4: tests/model.)
// How far torch's quantized model (reference_<variant>) is from its unquantized one (the
// reference of the checkpoint it was made from: "source" in a pre-quantized fixture's reference),
// worst prompt, relative L2.
inline double quantization_effect(const std::string& fixture, const std::string& variant) {
  const auto doc = detail::json_document::from_file(test::fixture_dir(fixture) / ("reference_" + variant + ".json"));
  const auto root = detail::json_object::expect(doc.root(), doc.origin(), "");
  const std::string source = root.get_string("source").value_or(fixture);
  const auto quantized = test::load_reference(fixture, variant), plain = test::load_reference(source);
  double worst = 0;
  for (std::size_t s = 0; s < quantized.logits.size(); ++s)
    worst = std::max(worst, test::gpu::rel_l2(quantized.logits[s], plain.logits[s]));
  return worst;
}

template <class Model, class D = bf16_t>
void check_fixture(const std::string& fixture, const std::string& reference_fixture, bool moe = false,
                   double logits_budget = 0, const model_config& cfg = test::fixture_config(),
                   const std::string& variant = "") {
  test::logit_budget limits = test::logit_budget_for<D>(moe);
  if (logits_budget > 0) limits.logits = logits_budget;
  if (!variant.empty()) {
    const double effect = quantization_effect(reference_fixture, variant);
    std::printf("  %-23s %s: torch's quantized logits are %.2e (relative L2) from its unquantized ones\n",
                fixture.c_str(), variant.c_str(), effect);
    limits.logits += effect;
    limits.strict_greedy = false;
  }
  INFO("fixture " << fixture << " in " << test::gpu::dtype_label<D>);
  const auto ref = test::load_reference(reference_fixture, variant);
  const auto margins = greedy_margins(reference_fixture, variant);
  harness<Model, D> h(fixture, cfg);
  const std::string label = fixture + " " + test::gpu::dtype_label<D>;
  REQUIRE(h.runner.shape().vocab == ref.vocab);
  const int n = int(ref.prompts.size());
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

  const auto lens = test::prompt_lengths(ref);
  compare(test::run_pieces(h.runner, ref, test::whole_prompt_steps(lens)), "one-step");
  compare(test::run_pieces(h.runner, ref, test::chunked_steps(lens)), "chunked");
  compare(test::run_pieces(h.runner, ref, test::ragged_steps(lens)), "ragged");

  // Greedy, teacher-forced on the reference tokens so that every one of the 24 steps counts.
  int mismatches = 0, steps_compared = 0;
  for (int s = 0; s < n; ++s) {
    std::vector<std::int32_t> tokens = ref.prompts[std::size_t(s)];
    const auto& expected = ref.greedy[std::size_t(s)];
    const auto blocks = test::interleaved_blocks(h.runner, std::int64_t(tokens.size() + expected.size()), 0, 1);
    std::int64_t cached = 0;
    const auto rope_len = std::int64_t(tokens.size());  // the prompt's forward length (step_chunk)
    runtime::sample_params greedy;
    for (std::size_t step = 0; step < expected.size(); ++step) {
      const std::int64_t total = std::int64_t(tokens.size());
      const runtime::step_chunk chunk{std::span(tokens).subspan(std::size_t(cached)), cached, blocks, rope_len,
                                      runtime::step_chunk::logits::last};
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
                    near_tie ? "near-tie" : limits.strict_greedy ? "REAL DIVERGENCE" : "divergence (allowed: MoE routing flips in bf16, FP8 roundings)");
        if (limits.strict_greedy) CHECK(near_tie);
      }
      tokens.push_back(want);
    }
  }
  std::printf("  %-23s greedy: %d of %d steps identical to transformers\n", label.c_str(), steps_compared - mismatches,
              steps_compared);
  std::fflush(stdout);
}

}  // namespace mii::test::gpu_fixtures

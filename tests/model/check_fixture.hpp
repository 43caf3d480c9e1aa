// check_fixture<Model>(fixture, reference): one architecture against transformers' fp32 logits and
// greedy tokens (whole prompts, chunks through the KV cache, ragged steps, 32 greedy steps), on the
// host backend. Shared by the fixture test files of tests/model/ (one file per model family).
#pragma once
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>

#include <mii/backend/host/host_backend.hpp>
#include <mii/models/all.hpp>
#include <mii/parallel/single.hpp>
#include <mii/runtime/model_runner.hpp>

#include "fixture_runs.hpp"
#include "fixtures.hpp"
#include "test_files.hpp"

namespace mii::test {


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

  explicit harness(const std::filesystem::path& dir, const model_config& cfg = test::fixture_config())
      : runner(ctx, comm, dir, cfg) {}
  explicit harness(const std::string& fixture, const model_config& cfg = test::fixture_config())
      : harness(test::fixture_dir(fixture), cfg) {}
};

// Each prompt's logits in one step each.
template <class Model>
inline std::vector<std::vector<float>> whole_prompts(harness<Model>& h, const test::model_reference& ref) {
  return test::run_pieces(h.runner, ref, test::whole_prompt_steps(test::prompt_lengths(ref)));
}

// What a fixture check runs besides the fixture: the engine's configuration, which reference
// (load_reference's variant) and within which relative error.
struct fixture_check_options {
  model_config config = test::fixture_config();
  std::string reference_variant;
  double tolerance = test::tolerance;
  // 0: every greedy token must equal the reference's. Else a differing pick passes when its logit
  // is within this fraction of the row's largest |logit| of the reference token's (a near-tie);
  // the reference's token is then fed on, and at most greedy_max_mismatches picks may differ.
  double greedy_near_tie = 0;
  int greedy_max_mismatches = 0;
  // Logits rows {prompt, position} held to knife_edge_tolerance instead (relative to the prompt's
  // largest |logit|, as every row): each one a measured case of an FP8 rounding that the order of
  // fp32 sums decides (an activation within a few fp32 ulps of the midpoint between two e4m3
  // codes), named where it is set. Every other row keeps `tolerance`.
  std::vector<std::pair<int, std::int64_t>> knife_edge_rows;
  double knife_edge_tolerance = 0;
};

template <class Model>
void check_fixture(const std::string& fixture, const std::string& reference_fixture,
                   const fixture_check_options& options = {}) {
  INFO("fixture " << fixture << (options.reference_variant.empty() ? "" : ", reference " + options.reference_variant));
  const auto ref = test::load_reference(reference_fixture, options.reference_variant);
  harness<Model> h(fixture, options.config);
  const double tolerance = options.tolerance;
  REQUIRE(h.runner.shape().vocab == ref.vocab);
  const int n = int(ref.prompts.size());
  auto compare = [&](const std::vector<std::vector<float>>& got, const char* what) {
    for (int s = 0; s < n; ++s) {
      INFO(what << ", prompt " << s);
      REQUIRE(got[std::size_t(s)].size() == ref.logits[std::size_t(s)].size());
      std::vector<float> held = got[std::size_t(s)];
      const std::vector<float>& want = ref.logits[std::size_t(s)];
      const std::size_t V = std::size_t(ref.vocab);
      for (const auto& [prompt, row] : options.knife_edge_rows) {
        if (prompt != s) continue;
        INFO("knife-edge row " << row);
        REQUIRE((std::size_t(row) + 1) * V <= held.size());
        // The row against the prompt's scale: its difference over the largest |logit| of the prompt.
        double diff = 0, scale = 0;
        for (std::size_t i = 0; i < want.size(); ++i) scale = std::max(scale, double(std::fabs(want[i])));
        for (std::size_t i = std::size_t(row) * V; i < (std::size_t(row) + 1) * V; ++i)
          diff = std::max(diff, double(std::fabs(held[i] - want[i])));
        CHECK(diff / scale <= options.knife_edge_tolerance);
        std::copy_n(want.begin() + std::ptrdiff_t(std::size_t(row) * V), V, held.begin() + std::ptrdiff_t(std::size_t(row) * V));
      }
      CHECK(test::max_relative_error(held.data(), want.data(), held.size()) <= tolerance);
    }
  };

  SECTION("each prompt in one step") { compare(whole_prompts(h, ref), "one step"); }
  SECTION("each prompt in chunks through the KV cache") {
    compare(test::run_pieces(h.runner, ref, test::chunked_steps(test::prompt_lengths(ref))), "chunked");
  }
  SECTION("ragged steps mixing prompts and chunk sizes") {
    compare(test::run_pieces(h.runner, ref, test::ragged_steps(test::prompt_lengths(ref))), "ragged");
  }
  SECTION("greedy continuation matches token for token") {
    int mismatches = 0;
    for (int s = 0; s < n; ++s) {
      INFO("prompt " << s);
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
        const std::int32_t pick = h.runner.sample(std::span(&greedy, 1), {})[0];
        if (options.greedy_near_tie > 0 && pick != expected[step]) {
          // Teacher forcing: a differing pick must be a near-tie, and the reference's token is fed on.
          const auto logits = h.runner.logits();
          float scale = 0;
          for (float v : logits) scale = std::max(scale, std::fabs(v));
          const float gap = logits[std::size_t(pick)] - logits[std::size_t(expected[step])];
          WARN(fixture << " prompt " << s << " step " << step << ": mii picks " << pick << ", reference "
                       << expected[step] << "; logit gap " << gap << " = " << gap / scale << " of max |logit|");
          CHECK(gap <= float(options.greedy_near_tie) * scale);
          ++mismatches;
          tokens.push_back(expected[step]);
          continue;
        }
        tokens.push_back(pick);
      }
      const std::vector<std::int32_t> got(tokens.end() - std::ptrdiff_t(expected.size()), tokens.end());
      CHECK(got == expected);
    }
    CHECK(mismatches <= options.greedy_max_mismatches);
  }
}


// Perplexity of a model on its own text with `cfg` (the demo model's quality checks of FP8):
// every sequence of `text` in one step, each next token's log-probability from the host logits.
template <class Model>
double perplexity(const std::filesystem::path& dir, const model_config& cfg, test::model_reference text) {
  harness<Model> h(dir, cfg);
  const std::int64_t vocab = h.runner.shape().vocab;
  text.vocab = vocab;
  const auto logits = test::run_pieces(h.runner, text, test::whole_prompt_steps(test::prompt_lengths(text)));
  double nll = 0;
  std::int64_t count = 0;
  for (std::size_t s = 0; s < text.prompts.size(); ++s) {
    const auto& ids = text.prompts[s];
    for (std::size_t t = 0; t + 1 < ids.size(); ++t, ++count)
      nll -= test::log_softmax(logits[s].data() + std::int64_t(t) * vocab, vocab)[std::size_t(ids[t + 1])];
  }
  return std::exp(nll / double(count));
}

}  // namespace mii::test

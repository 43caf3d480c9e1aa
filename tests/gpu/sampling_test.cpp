// The CUDA sampler against runtime::sample_row: greedy (ties, EOS suppression) identical, seeded
// temperature / top-k / top-p sampling identical on logits without near-ties.
#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>
#include <set>

#include <mii/runtime/sampling.hpp>

#include "gpu_support.hpp"

using namespace mii;
using namespace mii::test::gpu;

namespace {

using D = bf16_t;
using B = backend::cuda<D>;

// Logits whose sorted values are at least `gap` apart: a random permutation of spaced values
// plus a little noise, so no float rounding can reorder them.
std::vector<float> separated_logits(std::mt19937& rng, std::int64_t rows, std::int64_t vocab, float gap, float scale) {
  std::vector<float> out(static_cast<std::size_t>(rows * vocab));
  std::uniform_real_distribution<float> noise(0.0f, gap * 0.25f);
  std::vector<std::int64_t> perm(static_cast<std::size_t>(vocab));
  for (std::int64_t r = 0; r < rows; ++r) {
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    for (std::int64_t i = 0; i < vocab; ++i)
      out[std::size_t(r * vocab + perm[std::size_t(i)])] = scale * (float(i) * gap + noise(rng)) - scale * float(vocab) * gap * 0.5f;
  }
  return out;
}

std::vector<std::int32_t> host_sample(const std::vector<float>& logits, std::int64_t vocab,
                                      const std::vector<runtime::sample_params>& params, const std::vector<std::int32_t>& eos) {
  std::vector<std::int32_t> ids;
  for (std::size_t r = 0; r < params.size(); ++r)
    ids.push_back(runtime::sample_row(logits.data() + std::int64_t(r) * vocab, vocab, params[r], eos));
  return ids;
}

std::vector<std::int32_t> gpu_sample(const std::vector<float>& logits, std::int64_t vocab,
                                     const std::vector<runtime::sample_params>& params, const std::vector<std::int32_t>& eos) {
  auto& ctx = shared_context<D>();
  auto d_logits = upload_raw<D>(ctx, logits);
  std::vector<std::int32_t> ids(params.size(), -7);
  B::sample(ctx, d_logits.data(), std::int32_t(params.size()), vocab, params, eos, ids.data());
  return ids;
}

}  // namespace

TEST_CASE("cuda greedy sampling equals the host's: ties to the lowest id, EOS suppression", "[gpu]") {
  auto rng = rng_for("greedy");
  for (const std::int64_t vocab : {1, 7, 1000, 32000, 151936}) {
    INFO("vocab " << vocab);
    const std::int64_t rows = 9;
    std::uniform_real_distribution<float> dist(-5, 5);
    std::vector<float> logits(static_cast<std::size_t>(rows * vocab));
    for (auto& v : logits) v = dist(rng);
    std::vector<runtime::sample_params> params(static_cast<std::size_t>(rows));
    std::uniform_int_distribution<std::int64_t> pos(0, vocab - 1);
    // row 1: a tie for the maximum at two ids; row 2: every logit equal; row 3..: EOS games
    const std::int64_t a = pos(rng), b = pos(rng);
    logits[std::size_t(vocab + a)] = logits[std::size_t(vocab + b)] = 100.0f;
    std::fill(logits.begin() + 2 * vocab, logits.begin() + 3 * vocab, 0.5f);
    const std::vector<std::int32_t> eos = {std::int32_t(pos(rng)), std::int32_t(pos(rng)), std::int32_t(vocab + 5)};
    for (std::int64_t r = 3; r < rows; ++r) logits[std::size_t(r * vocab + eos[0])] = 50.0f;  // EOS would win
    for (std::int64_t r = 3; r < rows; r += 2) params[std::size_t(r)].suppress_eos = true;
    params[8].temperature = 0.0f;  // temperature 0 is greedy too
    params[8].greedy = false;
    const auto want = host_sample(logits, vocab, params, eos);
    const auto got = gpu_sample(logits, vocab, params, eos);
    CHECK(got == want);
    if (vocab > 2) CHECK(got[1] == std::int32_t(std::min(a, b)));
    CHECK(got[2] == 0);
    for (std::int64_t r = 3; r < rows; r += 2) {  // suppressed rows (unless EOS is the whole vocabulary)
      if (vocab > 2) CHECK(got[std::size_t(r)] != eos[0]);
      if (vocab > 2) CHECK(got[std::size_t(r)] != eos[1]);
    }
    CHECK(got[4] == eos[0]);  // not suppressed: the EOS id wins
  }
}

TEST_CASE("cuda seeded sampling draws the host's tokens", "[gpu]") {
  auto rng = rng_for("seeded sampling");
  std::uniform_int_distribution<std::uint64_t> seed_dist;
  int compared = 0;
  for (const std::int64_t vocab : {50, 1000, 32000}) {
    struct setting {
      float temperature;
      std::int32_t top_k;
      float top_p;
    };
    for (const setting s : {setting{1.0f, 0, 1.0f}, setting{0.7f, 0, 1.0f}, setting{1.3f, 40, 1.0f}, setting{0.8f, 0, 0.9f},
                            setting{1.0f, 50, 0.7f}, setting{0.5f, 1, 1.0f}, setting{2.0f, 100000, 0.95f}}) {
      INFO("vocab " << vocab << " temperature " << s.temperature << " top_k " << s.top_k << " top_p " << s.top_p);
      const std::int64_t rows = 24;
      // Spread so that softmax mass sits on a few hundred ids at most.
      const auto logits = separated_logits(rng, rows, vocab, 1e-2f, 40.0f / float(std::min<std::int64_t>(vocab, 1000)));
      std::vector<runtime::sample_params> params(static_cast<std::size_t>(rows));
      const std::vector<std::int32_t> eos = {2, 3};
      for (std::int64_t r = 0; r < rows; ++r) {
        auto& p = params[std::size_t(r)];
        p.greedy = r % 5 == 4;  // greedy and sampled rows mixed in one call
        p.temperature = s.temperature;
        p.top_k = s.top_k;
        p.top_p = s.top_p;
        p.seed = seed_dist(rng);
        p.step = std::uint64_t(r) * 7;
        p.suppress_eos = r % 3 == 0;
      }
      const auto want = host_sample(logits, vocab, params, eos);
      const auto got = gpu_sample(logits, vocab, params, eos);
      CHECK(got == want);
      for (std::int64_t r = 0; r < rows; r += 3) {
        CHECK(got[std::size_t(r)] != 2);
        CHECK(got[std::size_t(r)] != 3);
      }
      compared += int(rows);
    }
  }
  // the draws must differ across seeds (a sampler stuck on the argmax would pass the above only
  // if the host did the same)
  std::vector<float> flat(1000, 0.0f);
  std::vector<runtime::sample_params> params(64);
  for (std::size_t i = 0; i < params.size(); ++i) {
    params[i].greedy = false;
    params[i].seed = 12345;
    params[i].step = i;
  }
  std::vector<float> logits;
  for (std::size_t i = 0; i < params.size(); ++i) logits.insert(logits.end(), flat.begin(), flat.end());
  const auto got = gpu_sample(logits, 1000, params, {});
  CHECK(got == host_sample(logits, 1000, params, {}));
  CHECK(std::set<std::int32_t>(got.begin(), got.end()).size() > 32);
  std::printf("sampler: %d rows compared with runtime::sample_row\n", compared);
}

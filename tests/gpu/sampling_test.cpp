// The CUDA sampler against runtime::sample_row: greedy (ties, EOS suppression) identical, seeded
// temperature / top-k / top-p sampling identical on logits without near-ties.
#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>
#include <set>

#include <mii/backend/host/host_backend.hpp>
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
      float min_p = 0.0f;
    };
    for (const setting s : {setting{1.0f, 0, 1.0f}, setting{0.7f, 0, 1.0f}, setting{1.3f, 40, 1.0f}, setting{0.8f, 0, 0.9f},
                            setting{1.0f, 50, 0.7f}, setting{0.5f, 1, 1.0f}, setting{2.0f, 100000, 0.95f},
                            setting{1.0f, 0, 1.0f, 0.05f}, setting{1.5f, 60, 0.9f, 0.3f}}) {
      INFO("vocab " << vocab << " temperature " << s.temperature << " top_k " << s.top_k << " top_p " << s.top_p
                    << " min_p " << s.min_p);
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
        p.min_p = s.min_p;
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

TEST_CASE("cuda logit operations equal the host's: summaries, edits, gathers", "[gpu][logprobs]") {
  auto rng = rng_for("logit operations");
  auto& ctx = shared_context<D>();
  for (const std::int64_t vocab : {7, 1000, 151936}) {
    INFO("vocab " << vocab);
    const std::int64_t rows = 6;
    std::uniform_real_distribution<float> dist(-8, 8);
    std::vector<float> logits(static_cast<std::size_t>(rows * vocab));
    for (auto& v : logits) v = dist(rng);
    logits[std::size_t(2 * vocab + 3)] = logits[std::size_t(2 * vocab + 1)] = 30.0f;  // a tie at the top
    auto d_logits = upload_raw<D>(ctx, logits);

    // Summaries of rows 0, 2, 5 with 20 alternatives (more than the smallest vocabulary).
    const std::vector<std::int32_t> which = {0, 2, 5};
    const std::int32_t top_n = 20;
    std::vector<float> lse(which.size()), top(which.size() * top_n);
    std::vector<std::int32_t> ids(which.size() * top_n, -7);
    B::summarize_rows(ctx, d_logits.data(), vocab, which, top_n, lse.data(), ids.data(), top.data());
    for (std::size_t j = 0; j < which.size(); ++j) {
      const auto want = runtime::summarize_row(logits.data() + which[j] * vocab, vocab, top_n);
      CHECK(lse[j] == Approx(want.logsumexp).epsilon(1e-6));
      for (std::int32_t k = 0; k < top_n; ++k) {
        const std::size_t at = j * top_n + std::size_t(k);
        if (std::size_t(k) < want.top_ids.size()) {
          CHECK(ids[at] == want.top_ids[std::size_t(k)]);
          CHECK(top[at] == want.top_logits[std::size_t(k)]);
        } else {
          CHECK(ids[at] == -1);
        }
      }
    }
    if (vocab > 3) {
      CHECK(ids[top_n] == 1);  // row 2: the tie goes to the lower id
      CHECK(ids[top_n + 1] == 3);
    }

    // Edits: penalties and biases in place, the old values returned.
    std::vector<runtime::logit_edit> edits;
    for (std::int32_t r = 0; r < rows; ++r)
      for (std::int32_t t = 0; t < std::min<std::int64_t>(vocab, 5); ++t)
        edits.push_back({r, std::int32_t((t * 7919 + r) % vocab), 1.0f / 1.3f, 1.3f, float(t) - 2.0f});
    std::sort(edits.begin(), edits.end(), [](auto& a, auto& b) { return a.row != b.row ? a.row < b.row : a.token < b.token; });
    edits.erase(std::unique(edits.begin(), edits.end(), [](auto& a, auto& b) { return a.row == b.row && a.token == b.token; }),
                edits.end());
    std::vector<float> replaced(edits.size(), -1.0f), host_replaced(edits.size());
    B::edit_logits(ctx, d_logits.data(), vocab, edits, replaced.data());
    std::vector<float> edited = logits;
    backend::host::edit_logits(host_context(), edited.data(), vocab, edits, host_replaced.data());
    CHECK(replaced == host_replaced);
    CHECK(download_raw<D>(ctx, d_logits.data(), rows * vocab) == edited);

    // Gathers.
    std::vector<std::int32_t> rs, ts;
    for (std::int32_t r = 0; r < rows; ++r) {
      rs.push_back(r);
      ts.push_back(std::int32_t((r * 31) % vocab));
    }
    std::vector<float> got(rs.size());
    B::gather_logits(ctx, d_logits.data(), vocab, rs, ts, got.data());
    for (std::size_t i = 0; i < rs.size(); ++i) CHECK(got[i] == edited[std::size_t(rs[i] * vocab + ts[i])]);
  }
}

// Sampling: greedy ties, EOS suppression, top-k / top-p / temperature against independently
// computed candidate sets and distributions, reproducibility from (seed, step), and the Philox
// stream itself (a known-answer vector and uniformity).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include <mii/runtime/sampling.hpp>

#include "test_files.hpp"

using namespace mii::runtime;

namespace {

std::int32_t sample(const std::vector<float>& logits, const sample_params& p, std::vector<std::int32_t> eos = {}) {
  return sample_row(logits.data(), std::int64_t(logits.size()), p, eos);
}

sample_params sampling(float temperature, std::int32_t top_k = 0, float top_p = 1.0f, std::uint64_t seed = 0) {
  sample_params p;
  p.greedy = false;
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  p.seed = seed;
  return p;
}

// Ids ordered by logit, highest first, lower id first among equal logits.
std::vector<std::int32_t> ranked(const std::vector<float>& logits) {
  std::vector<std::int32_t> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::stable_sort(ids.begin(), ids.end(), [&](auto a, auto b) { return logits[std::size_t(a)] > logits[std::size_t(b)]; });
  return ids;
}

// The distribution sampling should follow: softmax(logits / T) over the top-k ids, cut to the
// smallest prefix reaching top_p, renormalised. Computed in double, independently.
std::vector<double> expected_distribution(const std::vector<float>& logits, double temperature, int top_k, double top_p) {
  auto ids = ranked(logits);
  if (top_k > 0 && std::size_t(top_k) < ids.size()) ids.resize(std::size_t(top_k));
  std::vector<double> w;
  for (auto i : ids) w.push_back(std::exp((double(logits[std::size_t(i)]) - double(logits[std::size_t(ids[0])])) / temperature));
  const double total = std::accumulate(w.begin(), w.end(), 0.0);
  std::size_t keep = w.size();
  double cum = 0;
  for (std::size_t i = 0; i < w.size(); ++i) {
    cum += w[i] / total;
    if (cum >= top_p) {
      keep = i + 1;
      break;
    }
  }
  const double kept = std::accumulate(w.begin(), w.begin() + std::ptrdiff_t(keep), 0.0);
  std::vector<double> p(logits.size(), 0.0);
  for (std::size_t i = 0; i < keep; ++i) p[std::size_t(ids[i])] = w[i] / kept;
  return p;
}

// Chi-square statistic of observed counts against probabilities; cells expected below 5 are
// pooled. Returns {statistic, degrees of freedom}.
std::pair<double, int> chi_square(const std::vector<std::int64_t>& counts, const std::vector<double>& p, std::int64_t n) {
  double stat = 0, pooled_expected = 0;
  std::int64_t pooled_observed = 0;
  int cells = 0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    const double e = p[i] * double(n);
    if (e < 5) {
      pooled_expected += e;
      pooled_observed += counts[i];
      continue;
    }
    stat += (double(counts[i]) - e) * (double(counts[i]) - e) / e;
    ++cells;
  }
  if (pooled_expected >= 5) {
    stat += (double(pooled_observed) - pooled_expected) * (double(pooled_observed) - pooled_expected) / pooled_expected;
    ++cells;
  } else if (pooled_expected > 0 && double(pooled_observed) > pooled_expected + 10 * std::sqrt(pooled_expected) + 10) {
    stat = INFINITY;  // rare ids drawn far too often
  }
  return {stat, std::max(cells - 1, 1)};
}

// Upper quantile of chi-square with `df` degrees of freedom at about 1e-7 (Wilson-Hilferty with
// z = 5.2): a correct sampler fails this less than once in ten million runs.
double chi_square_bound(int df) {
  const double k = df, z = 5.2;
  const double t = 1 - 2 / (9 * k) + z * std::sqrt(2 / (9 * k));
  return k * t * t * t;
}

std::vector<float> random_logits(std::mt19937_64& rng, std::size_t vocab, float spread) {
  std::uniform_real_distribution<float> u(-spread, spread);
  std::vector<float> l(vocab);
  for (auto& x : l) x = u(rng);
  return l;
}

}  // namespace

TEST_CASE("greedy: the highest logit, ties to the lowest id", "[runtime][sampling]") {
  sample_params greedy;
  CHECK(sample({0.1f, 2.0f, -1.0f, 2.0f}, greedy) == 1);
  CHECK(sample({5.0f, 5.0f, 5.0f}, greedy) == 0);
  CHECK(sample({-3.0f, -1.0f, -2.0f}, greedy) == 1);
  CHECK(sample({-INFINITY, -INFINITY, 0.0f}, greedy) == 2);
  // Temperature 0 while sampling is greedy too.
  CHECK(sample({0.1f, 2.0f, -1.0f, 2.0f}, sampling(0.0f, 0, 1.0f, 7)) == 1);
}

TEST_CASE("EOS suppression masks every EOS id", "[runtime][sampling]") {
  const std::vector<float> logits = {0.0f, 9.0f, 8.0f, 1.0f, 7.5f};
  sample_params greedy;
  CHECK(sample(logits, greedy, {1}) == 1);  // not suppressed: EOS wins
  greedy.suppress_eos = true;
  CHECK(sample(logits, greedy, {1}) == 2);
  CHECK(sample(logits, greedy, {1, 2}) == 4);
  CHECK(sample({3.0f, 3.0f, 1.0f}, greedy, {0}) == 1);  // a tie with the masked id
  // A vocabulary of nothing but EOS ids leaves nothing to mask them in favour of.
  CHECK(sample({1.0f, 2.0f}, greedy, {0, 1}) == 1);
  auto all_eos = sampling(1.0f, 0, 1.0f, 3);
  all_eos.suppress_eos = true;
  const auto id = sample({1.0f, 2.0f}, all_eos, {0, 1});
  CHECK((id == 0 || id == 1));
  for (std::uint64_t seed = 0; seed < 2000; ++seed) {
    auto p = sampling(1.0f, 0, 1.0f, seed);
    p.suppress_eos = true;
    const auto id = sample(logits, p, {1, 2});
    REQUIRE(id != 1);
    REQUIRE(id != 2);
    p.top_k = 1;
    REQUIRE(sample(logits, p, {1, 2}) == 4);
  }
}

TEST_CASE("top_k = 1 and a tiny top_p are greedy", "[runtime][sampling]") {
  const std::uint64_t seed = mii::test::test_seed("top_k=1 / top_p tiny == greedy");
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  sample_params greedy;
  for (int trial = 0; trial < 2000; ++trial) {
    auto logits = random_logits(rng, 1 + rng() % 300, 5.0f);
    if (trial % 2) for (auto& x : logits) x = std::round(x);  // many ties
    const auto want = sample(logits, greedy);
    const float t = std::uniform_real_distribution<float>(0.05f, 3.0f)(rng);
    REQUIRE(sample(logits, sampling(t, 1, 1.0f, rng())) == want);
    REQUIRE(sample(logits, sampling(t, 0, 1e-6f, rng())) == want);
    REQUIRE(sample(logits, sampling(t, std::int32_t(1 + rng() % 50), 1e-6f, rng())) == want);
  }
}

TEST_CASE("sampled ids always lie in the top-k and top-p sets", "[runtime][sampling]") {
  const std::uint64_t seed = mii::test::test_seed("top-k / top-p candidate sets");
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (int trial = 0; trial < 300; ++trial) {
    auto logits = random_logits(rng, 2 + rng() % 100, 4.0f);
    if (trial % 3 == 0) for (auto& x : logits) x = std::round(x);  // ties at the cut
    const int k = int(1 + rng() % logits.size());
    const float top_p = trial % 2 ? 1.0f : std::uniform_real_distribution<float>(0.05f, 0.99f)(rng);
    const float t = std::uniform_real_distribution<float>(0.2f, 2.0f)(rng);
    const auto p = expected_distribution(logits, t, k, top_p);
    // Skip the rare case where the cumulative mass lands within rounding of top_p.
    {
      auto ids = ranked(logits);
      ids.resize(std::size_t(k));
      std::vector<double> w;
      for (auto i : ids) w.push_back(std::exp((double(logits[std::size_t(i)]) - double(logits[std::size_t(ids[0])])) / t));
      const double total = std::accumulate(w.begin(), w.end(), 0.0);
      double cum = 0;
      bool close = false;
      for (double x : w) close |= std::fabs((cum += x / total) - double(top_p)) < 1e-5;
      if (close) continue;
    }
    for (int draw = 0; draw < 200; ++draw) {
      const auto id = sample(logits, sampling(t, k, top_p, rng()));
      INFO("trial " << trial << ", k " << k << ", top_p " << top_p << ", id " << id);
      REQUIRE((id >= 0 && std::size_t(id) < logits.size()));
      REQUIRE(p[std::size_t(id)] > 0);
    }
  }
}

TEST_CASE("the empirical distribution over seeds follows softmax(logits / T)", "[runtime][sampling]") {
  const std::uint64_t seed = mii::test::test_seed("sampling distribution");
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  struct setting {
    int top_k;
    float top_p;
  };
  for (const setting s : {setting{0, 1.0f}, setting{3, 1.0f}, setting{0, 0.7f}, setting{5, 0.9f}}) {
    for (int trial = 0; trial < 3; ++trial) {
      const auto logits = random_logits(rng, 8 + rng() % 9, 2.0f);
      const float t = std::uniform_real_distribution<float>(0.5f, 2.0f)(rng);
      const auto p = expected_distribution(logits, t, s.top_k, s.top_p);
      const std::int64_t n = 20000;
      std::vector<std::int64_t> counts(logits.size());
      const std::uint64_t base = rng();
      for (std::int64_t i = 0; i < n; ++i) ++counts[std::size_t(sample(logits, sampling(t, s.top_k, s.top_p, base + std::uint64_t(i))))];
      for (std::size_t i = 0; i < p.size(); ++i)
        if (p[i] == 0) CHECK(counts[i] == 0);
      const auto [stat, df] = chi_square(counts, p, n);
      INFO("top_k " << s.top_k << ", top_p " << s.top_p << ", T " << t << ": chi-square " << stat << " with " << df
                    << " degrees of freedom, bound " << chi_square_bound(df));
      CHECK(stat < chi_square_bound(df));
    }
  }
  SECTION("the same holds along one request's steps (one seed, counter = step)") {
    const auto logits = random_logits(rng, 6, 1.5f);
    const auto p = expected_distribution(logits, 0.8, 0, 1.0);
    std::vector<std::int64_t> counts(logits.size());
    auto params = sampling(0.8f, 0, 1.0f, rng());
    for (params.step = 0; params.step < 20000; ++params.step) ++counts[std::size_t(sample(logits, params))];
    const auto [stat, df] = chi_square(counts, p, 20000);
    CHECK(stat < chi_square_bound(df));
  }
}

TEST_CASE("sampling is a function of (logits, settings, seed, step)", "[runtime][sampling]") {
  const std::uint64_t seed = mii::test::test_seed("seeded reproducibility");
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  const auto logits = random_logits(rng, 64, 0.5f);  // flat: many ids are likely
  std::set<std::int32_t> over_seeds, over_steps;
  for (std::uint64_t s = 0; s < 200; ++s) {
    auto p = sampling(1.0f, 0, 1.0f, seed + s);
    const auto a = sample(logits, p);
    REQUIRE(sample(logits, p) == a);
    over_seeds.insert(a);
    p.step = 1 + s;
    over_steps.insert(sample(logits, p));
  }
  CHECK(over_seeds.size() > 20);
  CHECK(over_steps.size() > 20);
}

TEST_CASE("philox_uniform: the reference stream, in [0, 1), uniform", "[runtime][sampling]") {
  // Random123's known-answer vector for Philox-4x32-10, key 0 and counter 0: first word 0x6627e8d5.
  CHECK(philox_uniform(0, 0) == float(0x6627e8d5u >> 8) / 16777216.0f);

  const std::uint64_t seed = mii::test::test_seed("philox uniformity");
  INFO("seed " << seed);
  constexpr int bins = 64;
  constexpr std::int64_t n = 1 << 20;
  std::vector<std::int64_t> counts(bins);
  double sum = 0;
  bool in_range = true;
  for (std::int64_t i = 0; i < n; ++i) {
    // Counters of one seed, and seeds of one counter: both are streams the sampler uses.
    const float u = i % 2 ? philox_uniform(seed, std::uint64_t(i)) : philox_uniform(seed + std::uint64_t(i), 7);
    in_range &= u >= 0.0f && u < 1.0f;
    ++counts[std::size_t(std::min(int(u * bins), bins - 1))];
    sum += u;
  }
  CHECK(in_range);
  CHECK(std::fabs(sum / double(n) - 0.5) < 0.002);  // sd of the mean is 0.00028
  const auto [stat, df] = chi_square(counts, std::vector<double>(bins, 1.0 / bins), n);
  INFO("chi-square " << stat << " with " << df << " degrees of freedom");
  CHECK(stat < chi_square_bound(df));
  CHECK(philox_uniform(1, 0) != philox_uniform(0, 0));
  CHECK(philox_uniform(0, 1) != philox_uniform(0, 0));
  CHECK(philox_uniform(0, std::uint64_t(1) << 32) != philox_uniform(0, 0));  // the counter's high word matters
  CHECK(philox_uniform(std::uint64_t(1) << 32, 0) != philox_uniform(0, 0));  // the key's high word matters
}

TEST_CASE("min_p: only candidates at least min_p x the top probability, in proportion", "[runtime][sampling]") {
  const std::uint64_t seed = mii::test::test_seed("min_p distribution");
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (const float min_p : {0.05f, 0.2f, 0.6f}) {
    const auto logits = random_logits(rng, 40, 3.0f);
    const double temperature = 0.9;
    // Independently: softmax(logits / T), keep p_i >= min_p * p_max, renormalise.
    std::vector<double> expected(logits.size());
    const double mx = *std::max_element(logits.begin(), logits.end());
    double kept = 0;
    for (std::size_t i = 0; i < logits.size(); ++i) {
      const double w = std::exp((double(logits[i]) - mx) / temperature);
      if (w >= double(min_p)) kept += expected[i] = w;
    }
    for (auto& e : expected) e /= kept;
    auto p = sampling(float(temperature));
    p.min_p = min_p;
    const std::int64_t n = 40000;
    std::vector<std::int64_t> counts(logits.size());
    for (std::int64_t s = 0; s < n; ++s) {
      p.seed = std::uint64_t(s) * 7919 + seed;
      const auto id = sample(logits, p);
      REQUIRE(expected[std::size_t(id)] > 0);  // never a candidate min_p removed
      ++counts[std::size_t(id)];
    }
    const auto [stat, df] = chi_square(counts, expected, n);
    INFO("min_p " << min_p << ": chi-square " << stat << " on " << df << " degrees of freedom");
    CHECK(stat < chi_square_bound(df));
  }
  // min_p = 1 keeps only the top candidate (ties at the top included).
  auto p = sampling(1.0f, 0, 1.0f, 3);
  p.min_p = 1.0f;
  for (std::uint64_t s = 0; s < 200; ++s) {
    p.seed = s;
    CHECK(sample({0.5f, 3.0f, 2.9f, -1.0f}, p) == 1);
  }
}

TEST_CASE("summarize_row: log-sum-exp and the top logits, ties to the lower id", "[runtime][sampling][logprobs]") {
  const std::vector<float> logits = {1.0f, 3.0f, -2.0f, 3.0f, 0.5f, 2.0f};
  const auto s = summarize_row(logits.data(), std::int64_t(logits.size()), 4);
  double sum = 0;
  for (float x : logits) sum += std::exp(double(x));
  CHECK(s.logsumexp == Approx(std::log(sum)).epsilon(1e-6));
  CHECK(s.top_ids == std::vector<std::int32_t>{1, 3, 5, 0});
  CHECK(s.top_logits == std::vector<float>{3.0f, 3.0f, 2.0f, 1.0f});
  // More alternatives than tokens: all of them.
  CHECK(summarize_row(logits.data(), 3, 10).top_ids == std::vector<std::int32_t>{1, 0, 2});
  // Large logits do not overflow.
  const std::vector<float> big = {1000.0f, 999.0f};
  CHECK(summarize_row(big.data(), 2, 1).logsumexp == Approx(1000.0 + std::log1p(std::exp(-1.0))).epsilon(1e-7));
}

TEST_CASE("logit edits: transformers' repetition penalty and OpenAI's additive penalties", "[runtime][sampling][penalties]") {
  // transformers' RepetitionPenaltyLogitsProcessor: score < 0 ? score * penalty : score / penalty.
  const float penalty = 1.3f;
  const logit_edit rep{0, 0, 1.0f / penalty, penalty, 0.0f};
  for (float x : {2.5f, -2.5f, 0.0f, 1e-3f, -40.0f}) {
    const float want = x < 0 ? x * penalty : x / penalty;
    CHECK(apply_edit(x, rep) == Approx(want).epsilon(1e-7));
  }
  // OpenAI: mu[j] - c[j] * frequency_penalty - (c[j] > 0) * presence_penalty + logit_bias[j].
  const float frequency = 0.4f, presence = 0.7f, bias = 3.0f;
  const int count = 3;
  const logit_edit additive{0, 0, 1.0f, 1.0f, -(presence + frequency * count) + bias};
  CHECK(apply_edit(1.25f, additive) == Approx(1.25f - count * frequency - presence + bias));
  CHECK(apply_edit(-1.25f, additive) == Approx(-1.25f - count * frequency - presence + bias));
}

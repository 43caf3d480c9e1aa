#include "serve/paired_stats.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include <mii/error.hpp>

namespace mii::serve {

namespace {

// quantile() of values already sorted.
double sorted_quantile(std::span<const double> s, double q) {
  if (s.empty()) return 0;
  const double at = std::clamp(q, 0.0, 1.0) * double(s.size() - 1);
  const auto lo = std::size_t(std::floor(at));
  const auto hi = std::min(lo + 1, s.size() - 1);
  return s[lo] + (s[hi] - s[lo]) * (at - double(lo));
}

double mean_of(std::span<const double> v) {
  return v.empty() ? 0 : std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
}

}  // namespace

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return sorted_quantile(v, q);
}

spread spread_of(std::span<const double> v) {
  std::vector<double> s(v.begin(), v.end());
  std::sort(s.begin(), s.end());
  return {.count = s.size(),
          .p50 = sorted_quantile(s, 0.5),
          .p90 = sorted_quantile(s, 0.9),
          .p99 = sorted_quantile(s, 0.99),
          .mean = mean_of(s)};
}

paired_difference compare_pairs(std::span<const double> a, std::span<const double> b, std::uint64_t seed, int resamples) {
  if (a.size() != b.size()) fail("compare_pairs: ", a.size(), " values against ", b.size());
  paired_difference r;
  r.pairs = a.size();
  if (a.empty()) return r;
  std::vector<double> d(a.size());
  for (std::size_t i = 0; i < d.size(); ++i) d[i] = b[i] - a[i];
  r.mean = mean_of(d);
  std::vector<double> sorted = d;
  std::sort(sorted.begin(), sorted.end());
  r.median = sorted_quantile(sorted, 0.5);
  r.p10 = sorted_quantile(sorted, 0.1);
  r.p90 = sorted_quantile(sorted, 0.9);

  r.resamples = std::max(1, resamples);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::size_t> pick(0, d.size() - 1);
  std::vector<double> medians(std::size_t(r.resamples)), draw(d.size());
  for (auto& m : medians) {
    for (auto& x : draw) x = d[pick(rng)];
    std::sort(draw.begin(), draw.end());
    m = sorted_quantile(draw, 0.5);
  }
  std::sort(medians.begin(), medians.end());
  r.ci95_lo = sorted_quantile(medians, 0.025);
  r.ci95_hi = sorted_quantile(medians, 0.975);
  return r;
}

}  // namespace mii::serve

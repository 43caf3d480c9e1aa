// The statistics mii-serve-overhead reports: quantiles of one path's times, and the comparison
// of two paths measured in pairs (the same prompt on both, one right after the other), where
// the per-pair difference cancels what drifts between pairs (clocks, thermals, other tenants).
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace mii::serve {

// The q-quantile (0 <= q <= 1) by linear interpolation between order statistics (numpy's
// default): the median of an even count is the mean of the middle two. 0 for no values.
double quantile(std::vector<double> v, double q);

struct spread {
  std::size_t count = 0;
  double p50 = 0, p90 = 0, p99 = 0, mean = 0;
};
spread spread_of(std::span<const double> v);

// b[i] - a[i] over the pairs.
struct paired_difference {
  std::size_t pairs = 0;
  double median = 0, p10 = 0, p90 = 0, mean = 0;
  // 95 % confidence interval of the median difference: the percentile bootstrap -- the pairs
  // resampled with replacement `resamples` times (seeded, so a rerun prints the same bounds),
  // and the 2.5th and 97.5th percentiles of the resampled medians.
  double ci95_lo = 0, ci95_hi = 0;
  int resamples = 0;
};
// Throws mii::error when the spans differ in length.
paired_difference compare_pairs(std::span<const double> a, std::span<const double> b, std::uint64_t seed,
                                int resamples = 10000);

}  // namespace mii::serve

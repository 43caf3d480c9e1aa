#include <mii/runtime/sampling.hpp>

#include <mii/runtime/philox.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

namespace mii::runtime {

float philox_uniform(std::uint64_t seed, std::uint64_t counter) { return philox_uniform_at(seed, counter); }

std::int32_t sample_row(const float* logits, std::int64_t vocab, const sample_params& p,
                        std::span<const std::int32_t> eos_ids) {
  // EOS suppression masks the EOS ids, unless they are the whole vocabulary (then there would be
  // nothing left to sample).
  bool suppress = false;
  for (std::int64_t i = 0; p.suppress_eos && !suppress && i < vocab; ++i)
    suppress = std::find(eos_ids.begin(), eos_ids.end(), std::int32_t(i)) == eos_ids.end();
  auto masked = [&](std::int64_t i) {
    return suppress && std::find(eos_ids.begin(), eos_ids.end(), std::int32_t(i)) != eos_ids.end();
  };
  if (p.greedy || p.temperature <= 0.0f) {
    std::int64_t best = -1;
    for (std::int64_t i = 0; i < vocab; ++i)
      if (!masked(i) && (best < 0 || logits[i] > logits[best])) best = i;
    return std::int32_t(best);
  }
  // Candidates sorted by logit (descending, lower id first on ties), cut by top-k.
  std::vector<std::int32_t> ids;
  ids.reserve(std::size_t(vocab));
  for (std::int64_t i = 0; i < vocab; ++i)
    if (!masked(i)) ids.push_back(std::int32_t(i));
  auto better = [&](std::int32_t a, std::int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  const std::size_t k = p.top_k > 0 ? std::min<std::size_t>(std::size_t(p.top_k), ids.size()) : ids.size();
  std::partial_sort(ids.begin(), ids.begin() + std::ptrdiff_t(k), ids.end(), better);
  ids.resize(k);
  // Softmax of logits / temperature over the candidates.
  std::vector<float> probs(k);
  const float mx = logits[ids[0]] / p.temperature;
  double sum = 0;
  for (std::size_t i = 0; i < k; ++i) sum += probs[i] = std::exp(logits[ids[i]] / p.temperature - mx);
  // Top-p: the smallest prefix whose probability reaches top_p.
  std::size_t keep = k;
  if (p.top_p < 1.0f) {
    double cum = 0;
    for (std::size_t i = 0; i < k; ++i) {
      cum += probs[i] / sum;
      if (cum >= double(p.top_p)) {
        keep = i + 1;
        break;
      }
    }
  }
  // Min-p: candidates are sorted, so those at least min_p x the top one's probability are a
  // prefix (probs[0] is exp(0) = 1).
  if (p.min_p > 0.0f) {
    std::size_t above = 0;
    while (above < keep && probs[above] >= p.min_p) ++above;
    keep = std::max<std::size_t>(above, 1);
  }
  double kept = 0;
  for (std::size_t i = 0; i < keep; ++i) kept += probs[i];
  const double u = double(philox_uniform(p.seed, p.step)) * kept;
  double cum = 0;
  for (std::size_t i = 0; i < keep; ++i) {
    cum += probs[i];
    if (u < cum) return ids[i];
  }
  return ids[keep - 1];
}

row_summary summarize_row(const float* logits, std::int64_t vocab, std::int32_t n) {
  row_summary s;
  float mx = -std::numeric_limits<float>::infinity();
  for (std::int64_t i = 0; i < vocab; ++i) mx = std::max(mx, logits[i]);
  double sum = 0.0;
  for (std::int64_t i = 0; i < vocab; ++i) sum += std::exp(double(logits[i]) - double(mx));
  s.logsumexp = float(double(mx) + std::log(sum));
  std::vector<std::int32_t> ids(static_cast<std::size_t>(vocab));
  std::iota(ids.begin(), ids.end(), 0);
  const std::size_t k = std::min<std::size_t>(std::size_t(std::max(n, 0)), ids.size());
  std::partial_sort(ids.begin(), ids.begin() + std::ptrdiff_t(k), ids.end(), [&](std::int32_t a, std::int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  for (std::size_t i = 0; i < k; ++i) {
    s.top_ids.push_back(ids[i]);
    s.top_logits.push_back(logits[ids[i]]);
  }
  return s;
}

}  // namespace mii::runtime

// Mixture of experts on the host, token by token: route, run the chosen experts, mix.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include <mii/backend/host/host_backend.hpp>

namespace mii::backend {

template <layers::activation A>
void host::moe(context& ctx, const float* x, std::int64_t rows, std::int64_t hidden, const float* router_w,
               std::int64_t experts, std::int64_t top_k, std::span<const float* const> expert_up,
               std::span<const float* const> expert_down, std::int64_t ffn, float* out) {
  std::vector<float> logits(static_cast<std::size_t>(rows * experts));
  linear(ctx, x, rows, hidden, router_w, experts, nullptr, logits.data());
  std::fill(out, out + rows * hidden, 0.0f);
  std::vector<float> gate_up(static_cast<std::size_t>(2 * ffn)), inner(static_cast<std::size_t>(ffn)), y(static_cast<std::size_t>(hidden));
  std::vector<int> order(static_cast<std::size_t>(experts));
  for (std::int64_t r = 0; r < rows; ++r) {
    // softmax over all experts in fp32, then the top k, renormalised (Mixtral's router)
    const float* l = logits.data() + r * experts;
    const float mx = *std::max_element(l, l + experts);
    std::vector<float> p(static_cast<std::size_t>(experts));
    float sum = 0;
    for (std::int64_t e = 0; e < experts; ++e) sum += (p[std::size_t(e)] = std::exp(l[e] - mx));
    for (auto& v : p) v /= sum;
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[std::size_t(a)] > p[std::size_t(b)]; });
    float chosen = 0;
    for (std::int64_t k = 0; k < top_k; ++k) chosen += p[std::size_t(order[std::size_t(k)])];
    for (std::int64_t k = 0; k < top_k; ++k) {
      const int e = order[std::size_t(k)];
      const float weight = p[std::size_t(e)] / chosen;
      linear(ctx, x + r * hidden, 1, hidden, expert_up[std::size_t(e)], 2 * ffn, nullptr, gate_up.data());
      gated_act<A>(ctx, gate_up.data(), 1, ffn, inner.data());
      linear(ctx, inner.data(), 1, ffn, expert_down[std::size_t(e)], hidden, nullptr, y.data());
      float* o = out + r * hidden;
      for (std::int64_t i = 0; i < hidden; ++i) o[i] += weight * y[std::size_t(i)];
    }
  }
}

#define MII_HOST_MOE(A)                                                                                               \
  template void host::moe<layers::activation::A>(context&, const float*, std::int64_t, std::int64_t, const float*,   \
                                                 std::int64_t, std::int64_t, std::span<const float* const>,           \
                                                 std::span<const float* const>, std::int64_t, float*);
MII_HOST_MOE(silu)
MII_HOST_MOE(gelu)
MII_HOST_MOE(gelu_tanh)
MII_HOST_MOE(relu)
#undef MII_HOST_MOE

}  // namespace mii::backend

// Mixture of experts on the host, token by token: route, run the chosen experts (and the shared
// one), mix. The reference the CUDA kernels are checked against (backend/moe_weights.hpp).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include <mii/backend/host/host_backend.hpp>
#include <mii/error.hpp>

namespace mii::backend {
namespace {

// One row through one expert projection: FP8 where the expert has it (its row quantized per
// token, as a dense layer's), else the compute-dtype weight.
void expert_linear(host::context& ctx, const float* x, std::int64_t in, const float* w, const fp8_weight& q,
                   std::int64_t out, float* y, fp8_scratch scratch) {
  if (q.data) host::linear_fp8(ctx, x, 1, in, q, out, nullptr, y, false, scratch);
  else host::linear(ctx, x, 1, in, w, out, nullptr, y);
}

const fp8_weight& at(std::span<const fp8_weight> v, std::int64_t e) {
  static const fp8_weight none{};
  return std::int64_t(v.size()) > e ? v[std::size_t(e)] : none;
}

}  // namespace

template <layers::activation A>
void host::moe(context& ctx, const float* x, std::int64_t rows, std::int64_t hidden, const moe_weights<float>& w,
               float* out) {
  if (w.top_k < 1 || w.top_k > w.experts) fail("moe: top_k must be in [1, experts = ", w.experts, "], got ", w.top_k);
  if (std::int64_t(w.up.size()) < w.experts || std::int64_t(w.down.size()) < w.experts)
    fail("moe: ", w.experts, " experts but ", w.up.size(), " up and ", w.down.size(), " down weights");
  const std::int64_t experts = w.experts, ffn = w.ffn;
  std::vector<float> logits(static_cast<std::size_t>(rows * experts));
  linear(ctx, x, rows, hidden, w.router, experts, nullptr, logits.data());
  std::fill(out, out + rows * hidden, 0.0f);
  const std::int64_t inner_max = std::max(ffn, w.shared_ffn);
  std::vector<float> gate_up(static_cast<std::size_t>(2 * inner_max)), inner(static_cast<std::size_t>(inner_max)),
      y(static_cast<std::size_t>(hidden));
  std::vector<int> order(static_cast<std::size_t>(experts));
  std::vector<float> p(static_cast<std::size_t>(experts));
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * hidden;
    float* o = out + r * hidden;
    // softmax over all experts in fp32, then the top k, renormalised when the router says so
    const float* l = logits.data() + r * experts;
    const float mx = *std::max_element(l, l + experts);
    float sum = 0;
    for (std::int64_t e = 0; e < experts; ++e) sum += (p[std::size_t(e)] = std::exp(l[e] - mx));
    for (auto& v : p) v /= sum;
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[std::size_t(a)] > p[std::size_t(b)]; });
    float chosen = 0;
    for (std::int64_t k = 0; k < w.top_k; ++k) chosen += p[std::size_t(order[std::size_t(k)])];
    for (std::int64_t k = 0; k < w.top_k; ++k) {
      const int e = order[std::size_t(k)];
      const float weight = w.renormalise ? p[std::size_t(e)] / chosen : p[std::size_t(e)];
      expert_linear(ctx, xr, hidden, w.up[std::size_t(e)], at(w.up_fp8, e), 2 * ffn, gate_up.data(), w.scratch);
      gated_act<A>(ctx, gate_up.data(), 1, ffn, inner.data());
      expert_linear(ctx, inner.data(), ffn, w.down[std::size_t(e)], at(w.down_fp8, e), hidden, y.data(), w.scratch);
      for (std::int64_t i = 0; i < hidden; ++i) o[i] += weight * y[std::size_t(i)];
    }
    if (w.has_shared()) {  // Qwen2-MoE: every token also runs the shared expert, scaled by its gate
      float scale = 1.0f;
      if (w.shared_gate) {
        double dot = 0;
        for (std::int64_t i = 0; i < hidden; ++i) dot += double(xr[i]) * w.shared_gate[i];
        scale = float(1.0 / (1.0 + std::exp(-dot)));
      }
      expert_linear(ctx, xr, hidden, w.shared_up, w.shared_up_fp8, 2 * w.shared_ffn, gate_up.data(), w.scratch);
      gated_act<A>(ctx, gate_up.data(), 1, w.shared_ffn, inner.data());
      expert_linear(ctx, inner.data(), w.shared_ffn, w.shared_down, w.shared_down_fp8, hidden, y.data(), w.scratch);
      for (std::int64_t i = 0; i < hidden; ++i) o[i] += scale * y[std::size_t(i)];
    }
  }
}

#define MII_HOST_MOE(A)                                                                                   \
  template void host::moe<layers::activation::A>(context&, const float*, std::int64_t, std::int64_t,    \
                                                 const moe_weights<float>&, float*);
MII_HOST_MOE(silu)
MII_HOST_MOE(gelu)
MII_HOST_MOE(gelu_tanh)
MII_HOST_MOE(relu)
#undef MII_HOST_MOE

}  // namespace mii::backend

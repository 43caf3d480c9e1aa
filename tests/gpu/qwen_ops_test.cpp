// The CUDA ops the Qwen3 / Qwen-MoE architectures added, against the host backend on random
// inputs (as tests/gpu/ops_test.cpp): the per-head q/k RMSNorm (also Gemma 3's, with weight
// offset 1) and the MoE op with the router's renormalisation off and a shared expert with and
// without its sigmoid gate. Inputs are representable in the dtype; outputs poisoned first.
#include <catch2/catch.hpp>

#include <algorithm>

#include "gpu_support.hpp"

using namespace mii;
using namespace mii::test::gpu;

namespace {
constexpr double gemm_tolerance = 1e-2;
constexpr double elementwise_tolerance = 2e-3;
}  // namespace

TEMPLATE_TEST_CASE("cuda head_rms_norm matches host", "[gpu]", bf16_t, fp16_t) {
  using D = TestType;
  using B = backend::cuda<D>;
  auto& ctx = shared_context<D>();
  auto rng = rng_for("head_rms_norm");
  struct config {
    std::int32_t heads, kv_heads, head_dim;
  };
  for (const config c : {config{4, 2, 32}, config{16, 8, 128}, config{8, 1, 256}, config{3, 3, 80}, config{6, 2, 16}})
    for (const float offset : {0.0f, 1.0f})
      for (const std::int64_t rows : {1, 7, 300}) {
        INFO(dtype_label<D> << " heads " << c.heads << "/" << c.kv_heads << " x " << c.head_dim << " offset " << offset
                            << " rows " << rows);
        const backend::attention_shape as{c.heads, c.kv_heads, c.head_dim, 1.0f, 0};
        const std::int64_t width = std::int64_t(c.heads + 2 * c.kv_heads) * c.head_dim;
        const auto qkv_h = random_values<D>(rng, rows * width, -3.0f, 3.0f);
        const auto qw_h = random_values<D>(rng, c.head_dim, 0.5f, 1.5f);
        const auto kw_h = random_values<D>(rng, c.head_dim, -0.5f, 0.5f);
        auto qkv = upload<D>(ctx, qkv_h);
        auto qw = upload<D>(ctx, qw_h);
        auto kw = upload<D>(ctx, kw_h);
        B::head_rms_norm(ctx, qkv.data(), rows, as, qw.data(), kw.data(), 1e-6f, offset);
        const auto got = download<D>(ctx, qkv.data(), rows * width);
        auto ref = qkv_h;
        backend::host::head_rms_norm(host_context(), ref.data(), rows, as, qw_h.data(), kw_h.data(), 1e-6f, offset);
        CHECK(count_nan(got) == 0);
        CHECK(rel_l2(got, ref) <= elementwise_tolerance);
        bool v_untouched = true;  // v heads pass through bit for bit
        for (std::int64_t r = 0; r < rows; ++r)
          for (std::int64_t i = std::int64_t(c.heads + c.kv_heads) * c.head_dim; i < width; ++i)
            v_untouched &= got[std::size_t(r * width + i)] == qkv_h[std::size_t(r * width + i)];
        CHECK(v_untouched);
      }
}

TEMPLATE_TEST_CASE("cuda moe with a shared expert and unrenormalised routing matches host", "[gpu]", bf16_t, fp16_t) {
  using D = TestType;
  using B = backend::cuda<D>;
  auto& ctx = shared_context<D>();
  auto rng = rng_for("moe_shared");
  struct config {
    std::int64_t hidden, experts, top_k, ffn, shared_ffn;
    bool renormalise, gated;
  };
  for (const config c : {config{64, 6, 2, 32, 48, false, true}, config{64, 8, 2, 32, 0, true, false},
                         config{40, 5, 3, 20, 24, false, false}, config{128, 4, 1, 64, 96, true, true}}) {
    for (const std::int64_t rows : {1, 5, 37, 300}) {
      INFO(dtype_label<D> << " rows " << rows << " hidden " << c.hidden << " experts " << c.experts << " top_k "
                          << c.top_k << " ffn " << c.ffn << " shared " << c.shared_ffn << " renormalise "
                          << c.renormalise << " gated " << c.gated);
      const auto x_h = random_values<D>(rng, rows * c.hidden);
      const auto router_h = random_values<D>(rng, c.experts * c.hidden);
      std::vector<std::vector<float>> up_h, down_h;
      std::vector<typename B::template buffer<D>> up, down;
      for (std::int64_t e = 0; e < c.experts; ++e) {
        up_h.push_back(random_values<D>(rng, 2 * c.ffn * c.hidden, -0.3f, 0.3f));
        down_h.push_back(random_values<D>(rng, c.hidden * c.ffn, -0.3f, 0.3f));
        up.push_back(upload<D>(ctx, up_h.back()));
        down.push_back(upload<D>(ctx, down_h.back()));
      }
      std::vector<const D*> up_ptrs, down_ptrs;
      std::vector<const float*> up_ptrs_h, down_ptrs_h;
      for (std::int64_t e = 0; e < c.experts; ++e) {
        up_ptrs.push_back(up[std::size_t(e)].data());
        down_ptrs.push_back(down[std::size_t(e)].data());
        up_ptrs_h.push_back(up_h[std::size_t(e)].data());
        down_ptrs_h.push_back(down_h[std::size_t(e)].data());
      }
      const std::int64_t sf = std::max<std::int64_t>(c.shared_ffn, 1);  // no empty uploads
      const auto sup_h = random_values<D>(rng, 2 * sf * c.hidden, -0.3f, 0.3f);
      const auto sdown_h = random_values<D>(rng, c.hidden * sf, -0.3f, 0.3f);
      const auto sgate_h = random_values<D>(rng, c.hidden, -0.3f, 0.3f);
      auto x = upload<D>(ctx, x_h);
      auto router = upload<D>(ctx, router_h);
      auto sup = upload<D>(ctx, sup_h);
      auto sdown = upload<D>(ctx, sdown_h);
      auto sgate = upload<D>(ctx, sgate_h);
      const bool shared = c.shared_ffn > 0;

      backend::moe_weights<D> w{.router = router.data(), .experts = c.experts, .top_k = c.top_k,
                                .renormalise = c.renormalise, .up = up_ptrs, .down = down_ptrs, .ffn = c.ffn};
      backend::moe_weights<float> w_h{.router = router_h.data(), .experts = c.experts, .top_k = c.top_k,
                                      .renormalise = c.renormalise, .up = up_ptrs_h, .down = down_ptrs_h, .ffn = c.ffn};
      if (shared) {
        w.shared_up = sup.data();
        w.shared_down = sdown.data();
        w.shared_gate = c.gated ? sgate.data() : nullptr;
        w.shared_ffn = c.shared_ffn;
        w_h.shared_up = sup_h.data();
        w_h.shared_down = sdown_h.data();
        w_h.shared_gate = c.gated ? sgate_h.data() : nullptr;
        w_h.shared_ffn = c.shared_ffn;
      }
      auto out = B::template alloc<D>(ctx, rows * c.hidden);
      poison<D>(ctx, out.data(), rows * c.hidden);
      B::template moe<layers::activation::silu>(ctx, x.data(), rows, c.hidden, w, out.data());
      const auto got = download<D>(ctx, out.data(), rows * c.hidden);
      std::vector<float> ref(static_cast<std::size_t>(rows * c.hidden));
      backend::host::moe<layers::activation::silu>(host_context(), x_h.data(), rows, c.hidden, w_h, ref.data());
      CHECK(count_nan(got) == 0);
      CHECK(rel_l2(got, ref) <= gemm_tolerance);
    }
  }
}

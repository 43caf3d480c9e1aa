// MoE layers of up to 8 token rows route on the GPU and run each projection as one
// expert-indexed GEMV (kernels/moe.cu); more rows, or MII_CUDA_MOE_DEVICE_ROWS=0, take the
// host-routed path (the ids copied to the host, one GEMM or GEMV per expert). Both put the slots
// in the same order and, where the host-routed path also takes a GEMV (FP8 experts up to 8 rows
// each; bf16 experts with one row each), the same kernels compute every value, so the two must
// agree bit for bit; elsewhere (cuBLASLt for a bf16 expert of several rows) within the GEMM
// tolerance. The host backend's MoE is the oracle for the path as a whole (ops_test.cpp,
// fp8_ops_test.cpp); this file pins the new path to the old one, and checks that it replays
// from a CUDA graph with routing that changes between replays.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

#include "gpu_support.hpp"

using namespace mii;
using namespace mii::test::gpu;

namespace {

enum class expert_kind { compute, fp8_rows, fp8_blocks };

struct moe_case {
  const char* name;
  std::int64_t hidden, experts, top_k, ffn, shared_ffn;
  expert_kind kind;
  backend::fp8_blocks blocks{};
};

// Random e4m3 codes (no NaN: 0x7f / 0xff excluded) and positive scales: the paths are compared
// with each other over the same bytes, so the weights need no quantizer.
std::vector<std::uint8_t> random_e4m3(std::mt19937& rng, std::int64_t n) {
  std::uniform_int_distribution<int> dist(0, 253);
  std::vector<std::uint8_t> v(static_cast<std::size_t>(n));
  for (auto& b : v) {
    const int c = dist(rng);
    b = std::uint8_t(c < 0x7f ? c : c + 1);  // skips 0x7f; 253 + 1 = 0xfe, so 0xff never occurs
  }
  return v;
}

template <class D>
struct moe_layer {
  using B = backend::cuda<D>;
  std::vector<device_buffer<D, D>> up, down;
  std::vector<device_buffer<D, std::uint8_t>> up_q, down_q;
  std::vector<device_buffer<D, float>> up_s, down_s;
  std::vector<const D*> up_ptrs, down_ptrs;
  std::vector<backend::fp8_weight> up_fp8, down_fp8;
  std::optional<device_buffer<D, D>> router, shared_up, shared_down, shared_gate;
  backend::moe_weights<D> w{};

  moe_layer(typename B::context& ctx, std::mt19937& rng, const moe_case& c) {
    router = upload<D>(ctx, random_values<D>(rng, c.experts * c.hidden));
    auto add_fp8 = [&](std::int64_t rows, std::int64_t cols, auto& q, auto& s, auto& views) {
      const std::int64_t scale_ld = c.blocks.groups(cols), scale_rows = c.blocks.scale_rows(rows);
      std::uniform_real_distribution<float> scale(1e-3f, 1e-2f);
      std::vector<float> sv(static_cast<std::size_t>(scale_rows * scale_ld));
      for (float& v : sv) v = scale(rng);
      q.push_back(upload_raw<D>(ctx, random_e4m3(rng, rows * cols)));
      s.push_back(upload_raw<D>(ctx, sv));
      views.push_back({q.back().data(), s.back().data(), nullptr, c.blocks, scale_ld});
    };
    for (std::int64_t e = 0; e < c.experts; ++e) {
      if (c.kind == expert_kind::compute) {
        up.push_back(upload<D>(ctx, random_values<D>(rng, 2 * c.ffn * c.hidden, -0.3f, 0.3f)));
        down.push_back(upload<D>(ctx, random_values<D>(rng, c.hidden * c.ffn, -0.3f, 0.3f)));
        up_ptrs.push_back(up.back().data());
        down_ptrs.push_back(down.back().data());
      } else {
        add_fp8(2 * c.ffn, c.hidden, up_q, up_s, up_fp8);
        add_fp8(c.hidden, c.ffn, down_q, down_s, down_fp8);
        up_ptrs.push_back(nullptr);
        down_ptrs.push_back(nullptr);
      }
    }
    w.router = router->data();
    w.experts = c.experts;
    w.top_k = c.top_k;
    w.up = up_ptrs;
    w.down = down_ptrs;
    w.ffn = c.ffn;
    w.up_fp8 = up_fp8;
    w.down_fp8 = down_fp8;
    if (c.shared_ffn) {
      shared_up = upload<D>(ctx, random_values<D>(rng, 2 * c.shared_ffn * c.hidden, -0.3f, 0.3f));
      shared_down = upload<D>(ctx, random_values<D>(rng, c.hidden * c.shared_ffn, -0.3f, 0.3f));
      shared_gate = upload<D>(ctx, random_values<D>(rng, c.hidden, -0.1f, 0.1f));
      w.shared_up = shared_up->data();
      w.shared_down = shared_down->data();
      w.shared_gate = shared_gate->data();
      w.shared_ffn = c.shared_ffn;
    }
  }
};

// A context whose MoE layers route on the host for every row count (or on the device up to 8).
template <class D>
std::unique_ptr<typename backend::cuda<D>::context> moe_context(bool routed_on_host) {
  if (routed_on_host) ::setenv("MII_CUDA_MOE_DEVICE_ROWS", "0", 1);
  auto ctx = std::make_unique<typename backend::cuda<D>::context>(0);
  ::unsetenv("MII_CUDA_MOE_DEVICE_ROWS");
  return ctx;
}

const moe_case cases[] = {
    {"compute-dtype experts", 64, 8, 2, 96, 0, expert_kind::compute},
    {"compute-dtype experts + shared expert", 64, 8, 2, 96, 48, expert_kind::compute},
    {"FP8 per-row experts", 64, 8, 2, 96, 0, expert_kind::fp8_rows},
    {"FP8 per-row experts, top-4 of 16 + shared expert", 128, 16, 4, 64, 64, expert_kind::fp8_rows},
    {"FP8 128 x 128 blocks", 256, 8, 2, 256, 0, expert_kind::fp8_blocks, {128, 128}},
    {"FP8 32 x 64 blocks", 128, 8, 2, 192, 0, expert_kind::fp8_blocks, {32, 64}},
};

}  // namespace

TEMPLATE_TEST_CASE("MoE routed on the GPU computes what the host-routed path computes", "[gpu][moe]", bf16_t,
                   fp16_t) {
  using D = TestType;
  using B = backend::cuda<D>;
  auto on_device = moe_context<D>(false), routed = moe_context<D>(true);
  auto rng = rng_for("moe on the device");
  for (const moe_case& c : cases) {
    moe_layer<D> dev_layer(*on_device, rng, c);
    // The same weights in the second context: contexts share the device, so its buffers serve both.
    const auto& w = dev_layer.w;
    CHECK(B::moe_device_rows(*on_device, w, c.hidden) == 8);
    CHECK(B::moe_device_rows(*routed, w, c.hidden) == 0);
    const std::int64_t widest = std::max(c.hidden, c.ffn), groups = c.blocks.groups(widest);
    auto xq = B::template alloc<std::uint8_t>(*on_device, 16 * widest);
    auto xs = B::template alloc<float>(*on_device, 16 * groups);
    auto with_scratch = w;
    with_scratch.scratch = {xq.data(), xs.data()};
    for (const std::int64_t rows : {1, 2, 5, 8}) {
      INFO(dtype_label<D> << " " << c.name << ", rows " << rows);
      auto x = upload<D>(*on_device, random_values<D>(rng, rows * c.hidden));
      auto run = [&](typename B::context& ctx) {
        auto out = B::template alloc<D>(ctx, rows * c.hidden);
        poison<D>(ctx, out.data(), rows * c.hidden);
        B::template moe<layers::activation::silu>(ctx, x.data(), rows, c.hidden, with_scratch, out.data());
        return download<D>(ctx, out.data(), rows * c.hidden);
      };
      const auto got = run(*on_device), want = run(*routed);
      CHECK(count_nan(got) == 0);
      if (c.kind != expert_kind::compute || rows == 1) CHECK(got == want);
      else CHECK(rel_l2(got, want) <= 1e-2);
    }
  }
}

TEST_CASE("MoE routed on the GPU replays from a CUDA graph as new rows change the routing", "[gpu][moe][graphs]") {
  using D = bf16_t;
  using B = backend::cuda<D>;
  auto ctx_ptr = moe_context<D>(false);
  auto& ctx = *ctx_ptr;
  auto rng = rng_for("moe graph");
  for (const moe_case& c : {cases[1], cases[3]}) {
    INFO(c.name);
    moe_layer<D> layer(ctx, rng, c);
    const std::int64_t rows = 4, widest = std::max(c.hidden, c.ffn);
    auto xq = B::template alloc<std::uint8_t>(ctx, rows * widest);
    auto xs = B::template alloc<float>(ctx, rows);
    auto w = layer.w;
    w.scratch = {xq.data(), xs.data()};
    auto x = B::template alloc<D>(ctx, rows * c.hidden);
    auto out = B::template alloc<D>(ctx, rows * c.hidden);
    auto set_x = [&](const std::vector<float>& v) {
      std::vector<D> s(v.size());
      for (std::size_t i = 0; i < v.size(); ++i) s[i] = from_float<D>(v[i]);
      B::copy_to_device(ctx, x.data(), s.data(), std::int64_t(s.size()));
    };
    set_x(random_values<D>(rng, rows * c.hidden));
    B::template moe<layers::activation::silu>(ctx, x.data(), rows, c.hidden, w, out.data());  // reserves scratch
    ctx.synchronize();
    B::graph_begin(ctx);
    B::template moe<layers::activation::silu>(ctx, x.data(), rows, c.hidden, w, out.data());
    const auto g = B::graph_end(ctx);
    for (int replay = 0; replay < 3; ++replay) {
      INFO("replay " << replay);
      set_x(random_values<D>(rng, rows * c.hidden));  // new rows: other experts chosen
      poison<D>(ctx, out.data(), rows * c.hidden);
      B::graph_launch(ctx, g);
      const auto got = download<D>(ctx, out.data(), rows * c.hidden);
      B::template moe<layers::activation::silu>(ctx, x.data(), rows, c.hidden, w, out.data());
      const auto want = download<D>(ctx, out.data(), rows * c.hidden);
      CHECK(count_nan(got) == 0);
      CHECK(got == want);
    }
  }
}

TEST_CASE("MoE weights the expert-indexed GEMVs cannot take route on the host", "[gpu][moe]") {
  using D = bf16_t;
  using B = backend::cuda<D>;
  auto& ctx = shared_context<D>();
  auto rng = rng_for("moe refusals");
  moe_layer<D> layer(ctx, rng, cases[2]);  // FP8 per-row experts
  auto w = layer.w;
  CHECK(B::moe_device_rows(ctx, w, 64) == 8);
  {  // compute-dtype experts with an FP8 entry per expert that holds nothing, as the transformer passes them
    moe_layer<D> plain(ctx, rng, cases[0]);
    const std::vector<backend::fp8_weight> nothing(std::size_t(cases[0].experts));
    auto v = plain.w;
    v.up_fp8 = nothing;
    v.down_fp8 = nothing;
    CHECK(B::moe_device_rows(ctx, v, 64) == 8);
  }
  CHECK(B::moe_device_rows(ctx, w, 60) == 0);  // rows of 60 bytes: not 16-byte aligned
  // 300 experts (every one of them expert 0's weights, so that nothing else refuses them): more
  // than the table passed by value holds.
  const std::vector<const D*> many_ptrs(300, nullptr);
  const std::vector<backend::fp8_weight> many_up(300, layer.up_fp8[0]), many_down(300, layer.down_fp8[0]);
  w.experts = 300;
  w.up = many_ptrs;
  w.down = many_ptrs;
  w.up_fp8 = many_up;
  w.down_fp8 = many_down;
  CHECK(B::moe_device_rows(ctx, w, 64) == 0);
  w.experts = 256;  // as many as it holds
  CHECK(B::moe_device_rows(ctx, w, 64) == 8);
  w = layer.w;
  auto mixed = layer.up_fp8;
  mixed[3].blocks = {128, 128};  // one expert's layout differs from the others'
  w.up_fp8 = mixed;
  CHECK(B::moe_device_rows(ctx, w, 64) == 0);
  w = layer.w;
  auto generic = layer.up_fp8, generic_down = layer.down_fp8;
  for (auto& q : generic) q.blocks = {16, 16};  // columns of 16: the GEMV steps 64 bytes at a time
  for (auto& q : generic_down) q.blocks = {16, 16};
  w.up_fp8 = generic;
  w.down_fp8 = generic_down;
  CHECK(B::moe_device_rows(ctx, w, 64) == 0);
  w = layer.w;
  auto partial = layer.down_fp8;
  partial.pop_back();  // one expert without an FP8 down projection
  w.down_fp8 = partial;
  CHECK(B::moe_device_rows(ctx, w, 64) == 0);
}

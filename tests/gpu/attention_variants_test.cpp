// The CUDA side of Gemma against the host reference: attention with soft-capped scores (the
// tensor-core variant at head_dim 128 and 256, the fallback kernel elsewhere; decode, prefill,
// mixed and split-KV steps) and with a different window per layer over one cache, then the
// element-wise ops Gemma adds: the (1 + w) RMSNorm, the embedding scale (its factor rounded to
// the compute dtype first) and the soft-capping of fp32 logits. Fresh random inputs every run,
// drawn representable in the compute dtype; MII_TEST_SEED repeats a run.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <mii/backend/cuda/cuda_backend.hpp>
#include <mii/backend/host/host_backend.hpp>
#include <mii/runtime/step_builder.hpp>

#include "gpu_support.hpp"

namespace {

using mii::bf16_t;
using mii::fp16_t;
using mii::backend::attention_shape;
using mii::backend::kv_layer;
using mii::runtime::step_builder;
using mii::runtime::step_chunk;
using host = mii::backend::host;
using namespace mii::test::gpu;

struct seq_spec {
  int cached = 0, fresh = 1;
};

struct variant_case {
  std::string family;
  int heads, kv_heads, head_dim, block_size;
  std::vector<int> windows;  // one attention per window over the same cache (a layer each)
  float softcap;
  std::vector<seq_spec> seqs;
  std::string describe() const {
    std::string w;
    for (int x : windows) w += (w.empty() ? "" : "/") + std::to_string(x);
    return family + ": heads " + std::to_string(heads) + "/" + std::to_string(kv_heads) + " d " +
           std::to_string(head_dim) + " bs " + std::to_string(block_size) + " windows " + w + " softcap " +
           std::to_string(softcap) + " seqs " + std::to_string(seqs.size());
  }
};

// Runs every window of the case on the host and the GPU over one paged cache (blocks shuffled,
// NaN where no query may read); returns the worst relative L2 error over the windows.
template <class D>
double run_case(const variant_case& c, std::mt19937& rng) {
  using B = mii::backend::cuda<D>;
  auto& ctx = shared_context<D>();
  const int n_seqs = int(c.seqs.size()), hd = c.head_dim, bs = c.block_size, kvh = c.kv_heads;
  std::vector<std::vector<std::int32_t>> blocks, tokens;
  std::int32_t pool = 0;
  for (const auto& s : c.seqs) pool += (s.cached + s.fresh + bs - 1) / bs;
  std::vector<std::int32_t> ids(static_cast<std::size_t>(pool));
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  std::size_t at = 0;
  std::vector<step_chunk> chunks;
  for (const auto& s : c.seqs) {
    const std::size_t need = std::size_t((s.cached + s.fresh + bs - 1) / bs);
    blocks.emplace_back(ids.begin() + std::ptrdiff_t(at), ids.begin() + std::ptrdiff_t(at + need));
    at += need;
    tokens.emplace_back(std::size_t(s.fresh), 0);
  }
  for (int s = 0; s < n_seqs; ++s)
    chunks.push_back({tokens[std::size_t(s)], c.seqs[std::size_t(s)].cached, blocks[std::size_t(s)], 0,
                      step_chunk::logits::last});
  step_builder builder;
  builder.build(chunks);
  const int n = builder.n_tokens();

  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> cache(std::size_t(pool) * 2 * std::size_t(kvh * bs * hd), std::numeric_limits<float>::quiet_NaN());
  for (int s = 0; s < n_seqs; ++s)
    for (int pos = 0; pos < c.seqs[std::size_t(s)].cached + c.seqs[std::size_t(s)].fresh; ++pos)
      for (int h = 0; h < kvh; ++h)
        for (int which = 0; which < 2; ++which) {
          const std::int64_t block = blocks[std::size_t(s)][std::size_t(pos / bs)];
          const std::int64_t base = (((block * 2 + which) * kvh + h) * bs + pos % bs) * hd;
          for (int i = 0; i < hd; ++i) cache[std::size_t(base + i)] = rounded<D>(normal(rng));
        }
  const std::int64_t stride = std::int64_t(c.heads + 2 * kvh) * hd;
  std::vector<float> qkv(std::size_t(n * stride));
  for (auto& v : qkv) v = rounded<D>(2.0f * normal(rng));  // scores of several units: the caps bend them

  auto g_cache = upload<D>(ctx, cache);
  auto g_qkv = upload<D>(ctx, qkv);
  auto g_out = B::template alloc<D>(ctx, std::int64_t(n) * c.heads * hd);
  const auto db = B::upload_step(ctx, builder);
  const auto hb = builder.bind(builder.data().data());
  double worst = 0;
  for (const int window : c.windows) {
    const attention_shape shape{c.heads, kvh, hd, 1.0f / std::sqrt(float(hd)), window, c.softcap};
    std::vector<float> want(std::size_t(std::int64_t(n) * c.heads * hd));
    host::attention(host_context(), hb, qkv.data(), shape, kv_layer<const float>{cache.data(), bs, kvh, hd}, want.data());
    poison<D>(ctx, g_out.data(), std::int64_t(want.size()));  // every element must be written
    B::attention(ctx, db, g_qkv.data(), shape, kv_layer<const D>{g_cache.data(), bs, kvh, hd}, g_out.data());
    const auto got = download<D>(ctx, g_out.data(), std::int64_t(want.size()));
    const double err = rel_l2(got, want);
    INFO(dtype_label<D> << " " << c.describe() << ", window " << window << ": rel_l2 " << err << ", NaN "
                        << count_nan(got));
    CHECK(err <= 1e-2);
    worst = std::max(worst, err);
  }
  return worst;
}

template <class D>
void run_all(std::vector<variant_case> cases, std::mt19937& rng) {
  double worst = 0;
  for (const auto& c : cases) {
    const double err = run_case<D>(c, rng);
    std::printf("%-5s %-100s %10.2e\n", dtype_label<D>, c.describe().c_str(), err);
    worst = std::max(worst, err);
  }
  std::printf("%s soft-capped / per-layer-window attention: worst relative L2 error %.3e over %zu cases\n",
              dtype_label<D>, worst, cases.size());
}

}  // namespace

TEST_CASE("cuda attention with soft-capped scores and per-layer windows matches the host", "[gpu][attention]") {
  std::mt19937 rng = rng_for("attention variants");
  std::vector<variant_case> cases;
  // Gemma 2's head dims (tensor-core variant) and others (fallback kernel), Gemma's caps (50) and
  // caps that bend every score (2, 0.5); windows as Gemma alternates them, layer by layer.
  for (const int hd : {256, 128, 16, 64}) {
    const int heads = hd == 256 ? 8 : 16, kvh = hd == 256 ? 4 : 8;
    for (const float cap : {50.0f, 2.0f}) {
      cases.push_back({"decode", heads, kvh, hd, 16, {0, 37}, cap, {{200, 1}, {40, 1}, {4, 1}, {1500, 1}}});
      cases.push_back({"prefill", heads, kvh, hd, 16, {37, 0}, cap, {{0, 150}, {0, 7}}});
      cases.push_back({"mixed", heads, kvh, hd, 32, {0, 8, 1}, cap, {{90, 30}, {300, 1}, {0, 64}, {17, 1}}});
    }
    cases.push_back({"mqa", heads, 1, hd, 64, {0, 100}, 0.5f, {{70, 20}, {500, 1}}});
  }
  // Split-KV (few work items, long contexts): the soft-capped partials merged by the combine kernel.
  for (const int hd : {128, 256}) {
    cases.push_back({"split-decode", 8, 2, hd, 16, {0, 1024}, 50.0f, {{4000, 1}}});
    cases.push_back({"split-chunk", 8, 1, hd, 32, {0, 513}, 2.0f, {{2500, 24}}});
  }
  run_all<bf16_t>(cases, rng);
  std::vector<variant_case> half;
  for (const int hd : {256, 128, 16})
    half.push_back({"fp16-mixed", 8, 2, hd, 16, {0, 8}, 3.0f, {{60, 20}, {200, 1}, {0, 33}}});
  run_all<fp16_t>(half, rng);
}

TEST_CASE("cuda attention refuses a negative or non-finite soft-cap", "[gpu][attention]") {
  using B = mii::backend::cuda<bf16_t>;
  auto& ctx = shared_context<bf16_t>();
  std::vector<std::int32_t> tok = {0}, blocks = {0};
  std::vector<step_chunk> chunks = {{tok, 0, blocks, 0, step_chunk::logits::last}};
  step_builder builder;
  builder.build(chunks);
  const auto db = B::upload_step(ctx, builder);
  auto buf = B::alloc<bf16_t>(ctx, 4096);
  for (const float cap : {-1.0f, std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()})
    CHECK_THROWS_WITH(B::attention(ctx, db, buf.data(), attention_shape{4, 2, 64, 0.125f, 0, cap},
                                   kv_layer<const bf16_t>{buf.data(), 16, 2, 64}, buf.data()),
                      Catch::Contains("soft-cap"));
  ctx.synchronize();
}

namespace {

template <class D>
void check_gemma_ops() {
  using B = mii::backend::cuda<D>;
  auto& ctx = shared_context<D>();
  std::mt19937 rng = rng_for(std::string("gemma ops ") + dtype_label<D>);
  INFO(dtype_label<D>);
  {  // (1 + w) RMSNorm with and without a residual delta; norm weights around 0 as Gemma stores them
    const std::int64_t rows = 5, cols = 2304;
    for (const bool with_delta : {false, true}) {
      const auto x = random_values<D>(rng, rows * cols, -3.f, 3.f), d = random_values<D>(rng, rows * cols, -1.f, 1.f);
      const auto w = random_values<D>(rng, cols, -0.5f, 0.5f);
      auto gx = upload<D>(ctx, x), gd = upload<D>(ctx, d), gw = upload<D>(ctx, w);
      auto gy = B::template alloc<D>(ctx, rows * cols);
      B::template add_norm<mii::layers::norm_kind::rms_plus_one>(ctx, gx.data(), with_delta ? gd.data() : nullptr,
                                                                 gw.data(), nullptr, 1e-6f, rows, cols, gy.data());
      // Reference: the residual as the GPU stores it (rounded to D), normalised in fp32, rounded once.
      std::vector<float> res = x;
      if (with_delta)
        for (std::size_t i = 0; i < res.size(); ++i) res[i] = rounded<D>(x[i] + d[i]);
      std::vector<float> want(res.size());
      host::add_norm<mii::layers::norm_kind::rms_plus_one>(host_context(), res.data(), nullptr, w.data(), nullptr, 1e-6f,
                                                           rows, cols, want.data());
      const auto got = download<D>(ctx, gy.data(), rows * cols);
      INFO("(1 + w) RMSNorm, delta " << with_delta);
      CHECK(rel_l2(got, rounded_all<D>(want)) <= 2e-3);
      CHECK(rel_l2(download<D>(ctx, gx.data(), rows * cols), res) == 0.0);  // the residual it kept
    }
  }
  {  // embedding scale: the factor rounded to D first (sqrt(3584) = 59.87 -> bf16 60), one rounding of the product
    const std::int64_t n = 3584 * 3;
    const auto x = random_values<D>(rng, n, -2.f, 2.f);
    auto gx = upload<D>(ctx, x);
    const float factor = std::sqrt(3584.0f);
    B::scale(ctx, gx.data(), n, factor);
    const auto got = download<D>(ctx, gx.data(), n);
    std::vector<float> want(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) want[i] = rounded<D>(x[i] * rounded<D>(factor));
    CHECK(rel_l2(got, want) == 0.0);
  }
  {  // soft-capping of fp32 logits: cap * tanh(x / cap)
    const std::int64_t n = 100003;
    std::vector<float> x(static_cast<std::size_t>(n));
    std::uniform_real_distribution<float> dist(-200.f, 200.f);
    for (auto& v : x) v = dist(rng);
    auto gx = upload_raw<D>(ctx, x);
    B::softcap(ctx, gx.data(), n, 30.0f);
    const auto got = download_raw<D>(ctx, gx.data(), n);
    std::vector<float> want = x;
    host::softcap(host_context(), want.data(), n, 30.0f);
    double worst = 0;
    for (std::size_t i = 0; i < got.size(); ++i) worst = std::max(worst, double(std::fabs(got[i] - want[i])));
    CHECK(worst <= 1e-5);  // tanhf's few ulp at |values| <= 30
    CHECK(*std::max_element(got.begin(), got.end()) <= 30.0f);
  }
}

}  // namespace

TEST_CASE("cuda (1 + w) RMSNorm, embedding scale and logit soft-capping match the host", "[gpu][ops]") {
  check_gemma_ops<bf16_t>();
  check_gemma_ops<fp16_t>();
}

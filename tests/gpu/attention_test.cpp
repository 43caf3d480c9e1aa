// cuda attention (tensor-core kernel, split-KV + combine, generic fallback) against the host
// reference on fresh random inputs every run: ragged mixes of decodes and prefill chunks over a
// shuffled, non-contiguous paged KV cache, GQA/MQA, sliding windows, every supported head_dim.
// Set MII_TEST_SEED to replay a run (the seed is printed). Kernel timing is in bench/
// (gpu-kernels-bench), not here: a test that only prints a time cannot fail.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <mii/backend/cuda/cuda_backend.hpp>
#include <mii/backend/host/host_backend.hpp>
#include <mii/runtime/step_builder.hpp>

#include "gpu_support.hpp"
#include "test_files.hpp"

namespace {

using mii::bf16_t;
using mii::fp16_t;
using mii::backend::attention_shape;
using mii::backend::kv_layer;
using mii::backend::rope_table;
using mii::backend::step_batch;
using mii::runtime::step_builder;
using mii::runtime::step_chunk;
using host = mii::backend::host;

// One seed per run, printed; MII_TEST_SEED replays it (tests/support/test_files.hpp).
std::uint64_t test_seed() {
  static const std::uint64_t seed = mii::test::test_seed("attention tests");
  return seed;
}

using mii::test::gpu::dtype_label;
using mii::test::gpu::from_float;
using mii::test::gpu::rounded;
template <class D>
D nan_of() { return D{std::uint16_t(std::is_same_v<D, bf16_t> ? 0x7fc0 : 0x7e00)}; }

struct seq_spec {
  int cached = 0;  // tokens already in the cache
  int fresh = 1;   // new tokens this step
};

struct attn_case {
  std::string family;
  int heads = 8, kv_heads = 8, head_dim = 64, block_size = 16, window = 0;
  std::vector<seq_spec> seqs;
  std::string describe() const {
    std::string s = family + ": heads " + std::to_string(heads) + "/" + std::to_string(kv_heads) + " d " +
                    std::to_string(head_dim) + " bs " + std::to_string(block_size) + " window " +
                    std::to_string(window) + " seqs " + std::to_string(seqs.size()) + " [";
    for (std::size_t i = 0; i < seqs.size() && i < 6; ++i)
      s += (i ? " " : "") + std::to_string(seqs[i].cached) + "+" + std::to_string(seqs[i].fresh);
    return s + (seqs.size() > 6 ? " ...]" : "]");
  }
};

struct comparison {
  double rel_l2 = 0, max_abs = 0;
  std::int64_t non_finite = 0;
};

comparison compare(const std::vector<float>& got, const std::vector<float>& want) {
  comparison c;
  double num = 0, den = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) {
      ++c.non_finite;
      continue;
    }
    const double d = double(got[i]) - double(want[i]);
    num += d * d;
    den += double(want[i]) * double(want[i]);
    c.max_abs = std::max(c.max_abs, std::fabs(d));
  }
  c.rel_l2 = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  return c;
}

// A paged cache in host memory shaped like the device one: blocks handed out from a shuffled
// pool so that no sequence's blocks are contiguous or in order.
struct paged_layout {
  std::vector<std::vector<std::int32_t>> blocks;  // per sequence
  std::int32_t pool = 0;
};

paged_layout make_layout(const std::vector<seq_spec>& seqs, int block_size, std::mt19937_64& rng) {
  paged_layout l;
  std::int32_t total = 0;
  std::vector<std::int32_t> need;
  for (const auto& s : seqs) {
    need.push_back(std::max(1, (s.cached + s.fresh + block_size - 1) / block_size));
    total += need.back();
  }
  l.pool = total + 3;
  std::vector<std::int32_t> ids(static_cast<std::size_t>(l.pool));
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  std::size_t at = 0;
  for (const std::int32_t n : need) {
    l.blocks.emplace_back(ids.begin() + std::ptrdiff_t(at), ids.begin() + std::ptrdiff_t(at + std::size_t(n)));
    at += std::size_t(n);
  }
  return l;
}

std::int64_t cache_index(const paged_layout& l, int seq, int pos, int kv_head, int which, int block_size, int kv_heads,
                         int head_dim) {
  const std::int64_t block = l.blocks[std::size_t(seq)][std::size_t(pos / block_size)];
  return (((block * 2 + which) * kv_heads + kv_head) * block_size + pos % block_size) * std::int64_t(head_dim);
}

template <class D>
struct gpu {
  using backend = mii::backend::cuda<D>;
  template <class T>
  static typename backend::template buffer<T> upload(typename backend::context& ctx, const std::vector<T>& v) {
    auto b = backend::template alloc<T>(ctx, std::int64_t(std::max<std::size_t>(v.size(), 1)));
    backend::copy_to_device(ctx, b.data(), v.data(), std::int64_t(v.size()));
    return b;
  }
};

// Runs one attention case on the host (fp32 reference on the dtype-rounded inputs) and on the
// GPU, returns the comparison of the GPU output with the reference.
template <class D>
comparison run_attention_case(typename mii::backend::cuda<D>::context& ctx, host::context& hctx, const attn_case& c,
                              std::mt19937_64& rng) {
  using B = mii::backend::cuda<D>;
  const int n_seqs = int(c.seqs.size());
  const int hd = c.head_dim, bs = c.block_size, kvh = c.kv_heads;
  const paged_layout layout = make_layout(c.seqs, bs, rng);

  std::vector<std::vector<std::int32_t>> tokens(static_cast<std::size_t>(n_seqs));
  std::vector<step_chunk> chunks;
  for (int s = 0; s < n_seqs; ++s) {
    tokens[std::size_t(s)].assign(std::size_t(c.seqs[std::size_t(s)].fresh), 0);
    chunks.push_back({tokens[std::size_t(s)], c.seqs[std::size_t(s)].cached, layout.blocks[std::size_t(s)], 0,
                      step_chunk::logits::last});
  }
  step_builder builder;
  builder.build(chunks);
  const int n_tokens = builder.n_tokens();

  // Cache: NaN everywhere no query may legitimately read (past each sequence's length, before
  // the window of its first new token, unassigned blocks); random keys and values elsewhere.
  std::normal_distribution<float> normal(0.f, 1.f);
  const std::int64_t cache_elems = std::int64_t(layout.pool) * 2 * kvh * bs * hd;
  std::vector<float> cache_f(static_cast<std::size_t>(cache_elems), std::numeric_limits<float>::quiet_NaN());
  for (int s = 0; s < n_seqs; ++s) {
    const auto& q = c.seqs[std::size_t(s)];
    const int kv_len = q.cached + q.fresh;
    const int lo = c.window > 0 ? std::max(0, q.cached - c.window + 1) : 0;
    for (int pos = lo; pos < kv_len; ++pos)
      for (int h = 0; h < kvh; ++h)
        for (int which = 0; which < 2; ++which) {
          const std::int64_t at = cache_index(layout, s, pos, h, which, bs, kvh, hd);
          for (int i = 0; i < hd; ++i) cache_f[std::size_t(at + i)] = rounded<D>(normal(rng));
        }
  }
  const std::int64_t stride = std::int64_t(c.heads + 2 * kvh) * hd;
  std::vector<float> qkv_f(static_cast<std::size_t>(n_tokens * stride));
  for (auto& v : qkv_f) v = rounded<D>(1.5f * normal(rng));  // peaky-enough softmax

  const attention_shape shape{c.heads, kvh, hd, 1.0f / std::sqrt(float(hd)), c.window};
  std::vector<float> want(static_cast<std::size_t>(std::int64_t(n_tokens) * c.heads * hd));
  const step_batch hb = builder.bind(builder.data().data());
  host::attention(hctx, hb, qkv_f.data(), shape, kv_layer<const float>{cache_f.data(), bs, kvh, hd}, want.data());

  std::vector<D> cache_d(cache_f.size()), qkv_d(qkv_f.size()), out_d(want.size(), nan_of<D>());
  for (std::size_t i = 0; i < cache_f.size(); ++i) cache_d[i] = std::isnan(cache_f[i]) ? nan_of<D>() : from_float<D>(cache_f[i]);
  for (std::size_t i = 0; i < qkv_f.size(); ++i) qkv_d[i] = from_float<D>(qkv_f[i]);
  auto g_cache = gpu<D>::upload(ctx, cache_d);
  auto g_qkv = gpu<D>::upload(ctx, qkv_d);
  auto g_out = gpu<D>::upload(ctx, out_d);  // poisoned: every element must be written
  const step_batch db = B::upload_step(ctx, builder);
  B::attention(ctx, db, g_qkv.data(), shape, kv_layer<const D>{g_cache.data(), bs, kvh, hd}, g_out.data());
  B::copy_to_host(ctx, out_d.data(), g_out.data(), std::int64_t(out_d.size()));
  ctx.synchronize();
  std::vector<float> got(out_d.size());
  for (std::size_t i = 0; i < got.size(); ++i) got[i] = mii::to_float(out_d[i]);
  return compare(got, want);
}

// Random ragged mixes. `budget` bounds the reference's work (sum over tokens of keys * heads *
// head_dim) so that the suite stays quick; contexts shrink to fit it.
struct mix_maker {
  std::mt19937_64& rng;
  int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
  // A context length that often sits on or next to a block edge.
  int context(int max_len, int bs) {
    const int len = uniform(1, max_len);
    switch (uniform(0, 3)) {
      case 0: return std::max(1, (len / bs) * bs);
      case 1: return (len / bs) * bs + 1;
      case 2: return std::max(1, (len / bs) * bs - 1);
      default: return len;
    }
  }
  std::vector<seq_spec> decode(int n, int max_ctx, int bs) {
    std::vector<seq_spec> v;
    for (int i = 0; i < n; ++i) v.push_back({context(max_ctx, bs) - 1, 1});
    return v;
  }
  std::vector<seq_spec> prefill(int n, int max_len, int bs) {
    std::vector<seq_spec> v;
    for (int i = 0; i < n; ++i) v.push_back({0, context(max_len, bs)});
    return v;
  }
  std::vector<seq_spec> mixed(int n_chunks, int n_decodes, int max_cached, int max_chunk, int bs) {
    std::vector<seq_spec> v;
    for (int i = 0; i < n_chunks; ++i) v.push_back({context(max_cached, bs) - 1, uniform(1, max_chunk)});
    for (int i = 0; i < n_decodes; ++i) v.push_back({context(max_cached, bs) - 1, 1});
    std::shuffle(v.begin(), v.end(), rng);
    return v;
  }
  // Chunks that start and/or end exactly on block edges, and chunks of exactly one block.
  std::vector<seq_spec> block_edges(int bs) {
    return {{0, bs}, {bs, bs}, {2 * bs, 1}, {3 * bs - 1, 1}, {bs, 2 * bs - 1}, {bs - 1, bs + 1}, {4 * bs, 3 * bs}};
  }
};

std::int64_t reference_work(const attn_case& c) {
  std::int64_t w = 0;
  for (const auto& s : c.seqs) w += std::int64_t(s.fresh) * (s.cached + s.fresh);
  return w * c.heads * c.head_dim;
}

// Scales contexts down until the host reference's work fits the budget.
void fit_budget(attn_case& c, std::int64_t budget) {
  while (reference_work(c) > budget) {
    for (auto& s : c.seqs) {
      s.cached /= 2;
      if (s.fresh > 1) s.fresh = (s.fresh + 1) / 2;
    }
  }
}

struct head_config {
  int heads, kv_heads;
};

// MII_TEST_QUICK=1 (for compute-sanitizer runs): a third of the cases, all split-KV ones, with
// contexts shrunk to a small reference budget.
bool quick_mode() { return std::getenv("MII_TEST_QUICK") != nullptr; }

template <class D>
void run_cases(std::vector<attn_case>& all_cases, std::mt19937_64& rng) {
  typename mii::backend::cuda<D>::context ctx(0);
  host::context hctx;
  const double tolerance = 1e-2;
  std::vector<attn_case> cases;
  for (std::size_t i = 0; i < all_cases.size(); ++i)
    if (!quick_mode() || i % 3 == 0 || all_cases[i].family.find("split") != std::string::npos)
      cases.push_back(all_cases[i]);
  std::printf("%-8s %-90s %10s %10s\n", "dtype", "case", "rel_l2", "max_abs");
  double worst = 0;
  for (auto& c : cases) {
    fit_budget(c, std::int64_t(1) << (quick_mode() ? 21 : 27));
    const comparison r = run_attention_case<D>(ctx, hctx, c, rng);
    std::printf("%-8s %-90s %10.2e %10.2e%s\n", dtype_label<D>, c.describe().c_str(), r.rel_l2, r.max_abs,
                r.non_finite ? "  NON-FINITE" : "");
    worst = std::max(worst, r.rel_l2);
    INFO(dtype_label<D> << " " << c.describe() << ": rel_l2 " << r.rel_l2 << ", max_abs " << r.max_abs
                          << ", non-finite outputs " << r.non_finite);
    CHECK(r.non_finite == 0);
    CHECK(r.rel_l2 <= tolerance);
  }
  std::printf("%s: worst relative L2 error %.3e over %zu cases\n", dtype_label<D>, worst, cases.size());
}

}  // namespace

TEST_CASE("cuda attention matches the host reference on random ragged batches", "[gpu][attention]") {
  std::mt19937_64 rng(test_seed() ^ 0xa77e);
  mix_maker mk{rng};
  const std::vector<head_config> gqa = {{8, 8}, {16, 4}, {32, 4}, {8, 1}, {16, 2}, {16, 1}, {32, 1}};
  const std::vector<int> windows = {0, 0, 1, 7, 100, 1 << 20};
  const std::vector<int> block_sizes = {8, 16, 32, 64};
  auto pick_heads = [&](int head_dim) {
    head_config h = gqa[std::size_t(mk.uniform(0, int(gqa.size()) - 1))];
    if (head_dim >= 256) h = {std::min(h.heads, 8), std::min(h.kv_heads, 8)};
    if (h.heads % h.kv_heads) h.kv_heads = 1;
    return h;
  };
  std::vector<attn_case> cases;
  for (const int hd : {16, 20, 32, 64, 80, 96, 128, 256}) {
    auto add = [&](std::string family, std::vector<seq_spec> seqs, int bs, int window) {
      const head_config h = pick_heads(hd);
      cases.push_back({std::move(family), h.heads, h.kv_heads, hd, bs, window, std::move(seqs)});
    };
    auto bs = [&] { return block_sizes[std::size_t(mk.uniform(0, int(block_sizes.size()) - 1))]; };
    auto win = [&] { return windows[std::size_t(mk.uniform(0, int(windows.size()) - 1))]; };
    int b = bs();
    add("decode-1", mk.decode(1, 4096, b), b, 0);
    b = bs();
    add("decode-n", mk.decode(mk.uniform(2, 64), 3000, b), b, win());
    b = bs();
    add("prefill", mk.prefill(mk.uniform(1, 5), 300, b), b, win());
    b = bs();
    add("mixed", mk.mixed(mk.uniform(1, 4), mk.uniform(0, 24), 1500, 200, b), b, win());
    add("edges-16", mk.block_edges(16), 16, win());
    add("edges-64", mk.block_edges(64), 64, 0);
  }
  // Split-KV across many CTAs (few work items, long contexts), in both tile configurations.
  for (const int hd : {64, 128}) {
    cases.push_back({"split-decode", 32, 8, hd, 16, 0, {{4095, 1}}});
    cases.push_back({"split-decode-window", 32, 8, hd, 64, 1000, {{3999, 1}, {77, 1}}});
    cases.push_back({"split-chunk", 32, 8, hd, 32, 0, {{3000, 24}}});
    cases.push_back({"split-chunk-window", 16, 2, hd, 16, 513, {{2500, 40}, {10, 3}}});
  }
  // Windows of 1 and 7 and one larger than every context, GQA group 16 (a decode fills exactly
  // one 16-row tile) and 32 (a decode needs the prefill tiles).
  for (const int w : {1, 7, 5000}) {
    cases.push_back({"window", 16, 1, 128, 16, w, mk.mixed(2, 5, 700, 90, 16)});
    cases.push_back({"window", 32, 1, 64, 64, w, mk.mixed(1, 3, 300, 50, 64)});
  }
  std::printf("attention: %zu bf16 cases\n", cases.size());
  run_cases<bf16_t>(cases, rng);

  // fp16 on a subset.
  std::vector<attn_case> half_cases;
  for (const int hd : {20, 64, 128, 256}) {
    half_cases.push_back({"fp16-decode", 16, 4, hd, 16, 0, mk.decode(mk.uniform(1, 16), 2048, 16)});
    half_cases.push_back({"fp16-mixed", 8, 2, hd, 64, 0, mk.mixed(2, 6, 900, 150, 64)});
  }
  half_cases.push_back({"fp16-split", 32, 8, 128, 16, 0, {{4000, 1}, {100, 1}}});
  run_cases<fp16_t>(half_cases, rng);
}

TEST_CASE("cuda rope_store_kv + attention over several chunked-prefill steps", "[gpu][attention]") {
  // The per-layer path of the transformer: each step rotates q/k, writes k/v into the cache and
  // attends, on the host and on the GPU, each with its own cache. Sequence A's prompt is split
  // over two steps, B decodes while A prefills, C arrives in the second step.
  std::mt19937_64 rng(test_seed() ^ 0x57e9);
  using B = mii::backend::cuda<bf16_t>;
  B::context ctx(0);
  host::context hctx;
  for (const int hd : {64, 128, 20}) {
    const int heads = 8, kvh = 2, bs = 16;
    const int rot = hd == 20 ? 10 : hd / 2;  // partial rotary
    const std::vector<std::vector<seq_spec>> steps = {
        {{0, 37}, {0, 16}}, {{37, 20}, {16, 1}, {0, 5}}, {{57, 1}, {17, 1}, {5, 1}}, {{58, 40}, {18, 1}, {6, 1}}};
    const int max_len = 120;
    std::vector<std::vector<std::int32_t>> blocks(3);
    std::vector<std::int32_t> ids(3 * (max_len / bs + 1));
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng);
    for (int s = 0; s < 3; ++s)
      blocks[std::size_t(s)].assign(ids.begin() + s * (max_len / bs + 1), ids.begin() + (s + 1) * (max_len / bs + 1));
    const std::int64_t cache_elems = std::int64_t(ids.size()) * 2 * kvh * bs * hd;
    std::vector<float> cache_host(static_cast<std::size_t>(cache_elems), 0.f);
    auto cache_gpu = B::alloc<bf16_t>(ctx, cache_elems);
    {
      std::vector<bf16_t> zeros(static_cast<std::size_t>(cache_elems), mii::to_bf16(0.f));
      B::copy_to_device(ctx, cache_gpu.data(), zeros.data(), cache_elems);
    }
    std::vector<float> inv_freq(static_cast<std::size_t>(rot / 2));
    for (int i = 0; i < rot / 2; ++i) inv_freq[std::size_t(i)] = std::pow(10000.f, -2.f * i / rot);
    const std::vector<float> scale = {1.f};
    auto g_freq = gpu<bf16_t>::upload(ctx, inv_freq);
    auto g_scale = gpu<bf16_t>::upload(ctx, scale);
    const attention_shape shape{heads, kvh, hd, 1.0f / std::sqrt(float(hd)), 0};
    std::normal_distribution<float> normal(0.f, 1.f);
    double worst = 0;
    for (std::size_t step = 0; step < steps.size(); ++step) {
      std::vector<std::vector<std::int32_t>> tokens;
      std::vector<step_chunk> chunks;
      for (std::size_t s = 0; s < steps[step].size(); ++s) tokens.emplace_back(std::size_t(steps[step][s].fresh), 0);
      for (std::size_t s = 0; s < steps[step].size(); ++s)
        chunks.push_back({tokens[s], steps[step][s].cached, blocks[s], 0, step_chunk::logits::last});
      step_builder builder;
      builder.build(chunks);
      const int n = builder.n_tokens();
      const std::int64_t stride = std::int64_t(heads + 2 * kvh) * hd;
      std::vector<float> qkv(static_cast<std::size_t>(n * stride));
      for (auto& v : qkv) v = rounded<bf16_t>(normal(rng));
      std::vector<bf16_t> qkv_b(qkv.size());
      for (std::size_t i = 0; i < qkv.size(); ++i) qkv_b[i] = mii::to_bf16(qkv[i]);

      const step_batch hb = builder.bind(builder.data().data());
      const rope_table host_rope{inv_freq.data(), scale.data(), 1, rot};
      host::rope_store_kv<mii::layers::rotary_style::neox>(hctx, hb, qkv.data(), shape, host_rope,
                                                            kv_layer<float>{cache_host.data(), bs, kvh, hd});
      std::vector<float> want(static_cast<std::size_t>(std::int64_t(n) * heads * hd));
      host::attention(hctx, hb, qkv.data(), shape, kv_layer<const float>{cache_host.data(), bs, kvh, hd}, want.data());

      auto g_qkv = gpu<bf16_t>::upload(ctx, qkv_b);
      std::vector<bf16_t> out_b(want.size(), nan_of<bf16_t>());
      auto g_out = gpu<bf16_t>::upload(ctx, out_b);
      const step_batch db = B::upload_step(ctx, builder);
      const rope_table dev_rope{g_freq.data(), g_scale.data(), 1, rot};
      B::rope_store_kv<mii::layers::rotary_style::neox>(ctx, db, g_qkv.data(), shape, dev_rope,
                                                        kv_layer<bf16_t>{cache_gpu.data(), bs, kvh, hd});
      B::attention(ctx, db, g_qkv.data(), shape, kv_layer<const bf16_t>{cache_gpu.data(), bs, kvh, hd}, g_out.data());
      B::copy_to_host(ctx, out_b.data(), g_out.data(), std::int64_t(out_b.size()));
      ctx.synchronize();
      std::vector<float> got(out_b.size());
      for (std::size_t i = 0; i < got.size(); ++i) got[i] = mii::to_float(out_b[i]);
      const comparison r = compare(got, want);
      worst = std::max(worst, r.rel_l2);
      INFO("head_dim " << hd << " step " << step << ": rel_l2 " << r.rel_l2 << ", non-finite " << r.non_finite);
      CHECK(r.non_finite == 0);
      CHECK(r.rel_l2 <= 1e-2);
    }
    std::printf("rope+attention steps, head_dim %d: worst relative L2 error %.3e\n", hd, worst);
  }
}

TEST_CASE("cuda attention rejects bad cache geometry", "[gpu][attention]") {
  using B = mii::backend::cuda<bf16_t>;
  B::context ctx(0);
  std::vector<std::int32_t> tok = {0}, blocks = {0};
  std::vector<step_chunk> chunks = {{tok, 0, blocks, 0, step_chunk::logits::last}};
  step_builder builder;
  builder.build(chunks);
  const step_batch db = B::upload_step(ctx, builder);
  auto buf = B::alloc<bf16_t>(ctx, 4096);
  const attention_shape shape{4, 2, 64, 0.125f, 0};
  CHECK_THROWS_WITH(B::attention(ctx, db, buf.data(), shape, kv_layer<const bf16_t>{buf.data(), 24, 2, 64}, buf.data()),
                    Catch::Contains("power of two"));
  CHECK_THROWS_WITH(B::attention(ctx, db, buf.data(), attention_shape{6, 4, 64, 0.125f, 0},
                                 kv_layer<const bf16_t>{buf.data(), 16, 4, 64}, buf.data()),
                    Catch::Contains("multiple of kv heads"));
  ctx.synchronize();
}

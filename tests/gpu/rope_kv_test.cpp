// cuda rope_store_kv against the host reference on fresh random inputs: all rotary styles,
// full and partial rot_dim (16-byte and scalar kernel variants), each length rule (fixed one-row
// tables; longrope short/long rows with a cos/sin scale; dynamic NTK, whose frequencies the kernel
// computes per token) with per-sequence rope_len (0: each token's own length, or a prompt longer
// than the chunk) and a switch length that falls inside a chunk, shuffled block tables, block
// sizes 8..64, positions far past the first block. Set MII_TEST_SEED to replay a run.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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
using mii::backend::rope_length_rule;
using mii::backend::rope_table;
using mii::backend::step_batch;
using mii::layers::rotary_style;
using mii::runtime::step_builder;
using mii::runtime::step_chunk;
using host = mii::backend::host;

// One seed per run, printed; MII_TEST_SEED replays it (tests/support/test_files.hpp).
std::uint64_t rope_seed() {
  static const std::uint64_t seed = mii::test::test_seed("rope_store_kv tests");
  return seed;
}

using mii::test::gpu::dtype_label;
using mii::test::gpu::from_float;
const char* style_name(rotary_style s) {
  return s == rotary_style::none ? "none" : s == rotary_style::neox ? "neox" : "gptj";
}

struct rope_case {
  rotary_style style;
  int heads, kv_heads, head_dim, rot_dim, block_size;
  rope_length_rule rule = rope_length_rule::fixed;
  int rows() const { return rule == rope_length_rule::longrope ? 2 : 1; }
};
const char* rule_name(rope_length_rule r) {
  return r == rope_length_rule::fixed ? "fixed" : r == rope_length_rule::longrope ? "longrope" : "dynamic";
}

double rel_l2(const std::vector<float>& got, const std::vector<float>& want, std::int64_t* non_finite) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) {
      ++*non_finite;
      continue;
    }
    num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    den += double(want[i]) * want[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

template <class D, rotary_style S>
double run_rope_case(typename mii::backend::cuda<D>::context& ctx, host::context& hctx, const rope_case& c,
                     std::mt19937_64& rng) {
  using B = mii::backend::cuda<D>;
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  const int hd = c.head_dim, bs = c.block_size, kvh = c.kv_heads;
  const int n_seqs = uniform(1, 5);

  // Blocks touched by this step's tokens get distinct shuffled ids; the table entries of the
  // older blocks all point at one trap block that nothing may write.
  std::vector<std::int64_t> starts;
  std::vector<int> fresh;
  std::vector<std::vector<std::int32_t>> blocks(static_cast<std::size_t>(n_seqs));
  std::vector<std::int64_t> rope_lens;
  int next_block = 1;  // block 0 is the trap
  for (int s = 0; s < n_seqs; ++s) {
    const int start = uniform(0, 3) == 0 ? uniform(0, 3 * bs) : uniform(0, 40000);
    const int n = uniform(1, 40);
    starts.push_back(start);
    fresh.push_back(n);
    // The token's own length, or a prompt that goes past this chunk (all its tokens see that).
    rope_lens.push_back(uniform(0, 1) == 0 ? 0 : start + n + uniform(0, 50));
    const int first_block = start / bs, last_block = (start + n - 1) / bs;
    blocks[std::size_t(s)].assign(std::size_t(last_block + 1), 0);
    for (int b = first_block; b <= last_block; ++b) blocks[std::size_t(s)][std::size_t(b)] = next_block++;
  }
  std::vector<std::int32_t> perm(static_cast<std::size_t>(next_block));
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin() + 1, perm.end(), rng);
  for (auto& tbl : blocks)
    for (auto& b : tbl) b = perm[std::size_t(b)];
  const std::int32_t pool = next_block;

  std::vector<std::vector<std::int32_t>> tokens(static_cast<std::size_t>(n_seqs));
  std::vector<step_chunk> chunks;
  for (int s = 0; s < n_seqs; ++s) {
    tokens[std::size_t(s)].assign(std::size_t(fresh[std::size_t(s)]), 0);
    chunks.push_back({tokens[std::size_t(s)], starts[std::size_t(s)], blocks[std::size_t(s)],
                      rope_lens[std::size_t(s)], step_chunk::logits::last});
  }
  step_builder builder;
  builder.build(chunks);
  const int n_tokens = builder.n_tokens();

  // Rotary table: row 0 plain theta=10000 frequencies, row 1 longrope-style rescaled per dim
  // with a cos/sin scale. The switch length falls inside one sequence's chunk, so that a chunk
  // of tokens at their own length has tokens on both sides of it.
  const int half = c.rot_dim / 2;
  const int rows = c.rows();
  const int crossing = uniform(0, n_seqs - 1);
  const auto original_len = std::int32_t(std::max<std::int64_t>(
      1, starts[std::size_t(crossing)] + uniform(0, fresh[std::size_t(crossing)])));
  const double factor = 1.0 + 0.5 * uniform(1, 14);
  std::vector<float> inv_freq(static_cast<std::size_t>(rows * std::max(half, 1)));
  std::vector<float> scale(static_cast<std::size_t>(rows));
  for (int r = 0; r < rows; ++r) {
    scale[std::size_t(r)] = r == 0 ? 1.f : 1.19f;
    for (int i = 0; i < half; ++i) {
      const float base = std::pow(10000.f, -2.f * float(i) / float(c.rot_dim));
      inv_freq[std::size_t(r * half + i)] = r == 0 ? base : base / (1.f + 3.f * float(i) / float(half));
    }
  }

  std::normal_distribution<float> normal(0.f, 1.f);
  const std::int64_t stride = std::int64_t(c.heads + 2 * kvh) * hd;
  const std::int64_t cache_elems = std::int64_t(pool) * 2 * kvh * bs * hd;
  std::vector<D> qkv_in(static_cast<std::size_t>(n_tokens * stride)), cache_in(static_cast<std::size_t>(cache_elems));
  for (auto& v : qkv_in) v = from_float<D>(normal(rng));
  for (auto& v : cache_in) v = from_float<D>(normal(rng));
  std::vector<float> qkv_h(qkv_in.size()), cache_h(cache_in.size());
  for (std::size_t i = 0; i < qkv_in.size(); ++i) qkv_h[i] = mii::to_float(qkv_in[i]);
  for (std::size_t i = 0; i < cache_in.size(); ++i) cache_h[i] = mii::to_float(cache_in[i]);

  const attention_shape shape{c.heads, kvh, hd, 1.f, 0};
  const step_batch hb = builder.bind(builder.data().data());
  auto table = [&](const float* f, const float* sc) {
    rope_table t{f, sc, rows, c.rot_dim, c.rule, original_len, 10000.0, factor};
    return t;
  };
  host::rope_store_kv<S>(hctx, hb, qkv_h.data(), shape, table(inv_freq.data(), scale.data()),
                         kv_layer<float>{cache_h.data(), bs, kvh, hd});

  auto g_qkv = B::template alloc<D>(ctx, std::int64_t(qkv_in.size()));
  auto g_cache = B::template alloc<D>(ctx, cache_elems);
  auto g_freq = B::template alloc<float>(ctx, std::int64_t(inv_freq.size()));
  auto g_scale = B::template alloc<float>(ctx, std::int64_t(scale.size()));
  B::copy_to_device(ctx, g_qkv.data(), qkv_in.data(), std::int64_t(qkv_in.size()));
  B::copy_to_device(ctx, g_cache.data(), cache_in.data(), cache_elems);
  B::copy_to_device(ctx, g_freq.data(), inv_freq.data(), std::int64_t(inv_freq.size()));
  B::copy_to_device(ctx, g_scale.data(), scale.data(), std::int64_t(scale.size()));
  const step_batch db = B::upload_step(ctx, builder);
  B::template rope_store_kv<S>(ctx, db, g_qkv.data(), shape, table(g_freq.data(), g_scale.data()),
                               kv_layer<D>{g_cache.data(), bs, kvh, hd});
  std::vector<D> qkv_out(qkv_in.size()), cache_out(cache_in.size());
  B::copy_to_host(ctx, qkv_out.data(), g_qkv.data(), std::int64_t(qkv_out.size()));
  B::copy_to_host(ctx, cache_out.data(), g_cache.data(), cache_elems);
  ctx.synchronize();

  std::vector<float> qkv_got(qkv_out.size()), cache_got(cache_out.size());
  for (std::size_t i = 0; i < qkv_out.size(); ++i) qkv_got[i] = mii::to_float(qkv_out[i]);
  for (std::size_t i = 0; i < cache_out.size(); ++i) cache_got[i] = mii::to_float(cache_out[i]);
  std::int64_t non_finite = 0;
  const double err_qkv = rel_l2(qkv_got, qkv_h, &non_finite);
  const double err_cache = rel_l2(cache_got, cache_h, &non_finite);

  // Exact properties: the cached k is the rotated k left in qkv, the cached v is the input v,
  // unrotated q/k dims and v are untouched, the trap block and untouched slots keep their bits.
  std::int64_t exact_mismatch = 0;
  auto same = [](D a, D b) { return a.bits == b.bits; };
  const int rot = S == rotary_style::none ? 0 : c.rot_dim;
  std::vector<char> written(cache_in.size(), 0);
  for (int t = 0; t < n_tokens; ++t) {
    const int s = hb.token_seq[t];
    const int pos = hb.positions[t];
    const std::int64_t block = blocks[std::size_t(s)][std::size_t(pos / bs)];
    for (int h = 0; h < c.heads + 2 * kvh; ++h)  // dims past rot_dim of every head
      for (int i = rot; i < hd; ++i) {
        const std::size_t at = std::size_t(t * stride + h * hd + i);
        exact_mismatch += !same(qkv_out[at], qkv_in[at]);
      }
    for (int h = 0; h < kvh; ++h)
      for (int which = 0; which < 2; ++which)
        for (int i = 0; i < hd; ++i) {
          const std::size_t at =
              std::size_t((((block * 2 + which) * kvh + h) * bs + pos % bs) * hd + i);
          const std::size_t src = std::size_t(t * stride + (c.heads + which * kvh + h) * hd + i);
          exact_mismatch += !same(cache_out[at], qkv_out[src]);
          written[at] = 1;
        }
    for (int h = c.heads + kvh; h < c.heads + 2 * kvh; ++h)  // v heads are never rotated
      for (int i = 0; i < rot; ++i) {
        const std::size_t at = std::size_t(t * stride + h * hd + i);
        exact_mismatch += !same(qkv_out[at], qkv_in[at]);
      }
  }
  for (std::size_t i = 0; i < cache_in.size(); ++i)
    if (!written[i]) exact_mismatch += !same(cache_out[i], cache_in[i]);

  INFO(dtype_label<D> << " " << style_name(S) << " heads " << c.heads << "/" << kvh << " head_dim " << hd << " rot_dim "
                  << c.rot_dim << " rule " << rule_name(c.rule) << " (switch " << original_len << ", factor " << factor
                  << ") block " << bs << ": qkv rel_l2 " << err_qkv
                  << ", cache rel_l2 " << err_cache << ", non-finite " << non_finite << ", exact mismatches "
                  << exact_mismatch);
  CHECK(non_finite == 0);
  CHECK(exact_mismatch == 0);
  CHECK(err_qkv <= 1e-2);
  CHECK(err_cache <= 1e-2);
  return std::max(err_qkv, err_cache);
}

template <class D>
void run_all_styles(const std::vector<int>& head_dims) {
  std::mt19937_64 rng(rope_seed() ^ (std::is_same_v<D, bf16_t> ? 0x40e : 0xf16));
  typename mii::backend::cuda<D>::context ctx(0);
  host::context hctx;
  double worst = 0;
  int n = 0;
  const int block_sizes[] = {8, 16, 32, 64};
  const int gqa[][2] = {{4, 4}, {8, 2}, {8, 1}, {6, 3}};
  for (const int hd : head_dims) {
    // Full, half (16-byte path where the slices align) and an odd partial width (scalar path).
    const int odd = std::max(2, (hd * 3 / 8) & ~1);
    for (const int rot : {hd & ~1, hd / 2 & ~1, odd}) {
      for (const auto rule : {rope_length_rule::fixed, rope_length_rule::longrope, rope_length_rule::dynamic_ntk}) {
        if (rule == rope_length_rule::dynamic_ntk && rot <= 2) continue;  // its exponent is rot / (rot - 2)
        const auto& g = gqa[std::uniform_int_distribution<int>(0, 3)(rng)];
        const rope_case c{rotary_style::neox, g[0], g[1], hd, rot,
                          block_sizes[std::uniform_int_distribution<int>(0, 3)(rng)], rule};
        worst = std::max(worst, run_rope_case<D, rotary_style::neox>(ctx, hctx, c, rng));
        rope_case cg = c;
        cg.style = rotary_style::gptj;
        worst = std::max(worst, run_rope_case<D, rotary_style::gptj>(ctx, hctx, cg, rng));
        n += 2;
      }
    }
    rope_case cn{rotary_style::none, 8, 2, hd, 0, 16};
    worst = std::max(worst, run_rope_case<D, rotary_style::none>(ctx, hctx, cn, rng));
    ++n;
  }
  std::printf("rope_store_kv %s: %d cases, worst relative L2 error %.3e\n", dtype_label<D>, n, worst);
}

}  // namespace

TEST_CASE("cuda rope_store_kv matches the host reference", "[gpu][rope]") {
  run_all_styles<bf16_t>({16, 20, 32, 64, 80, 96, 128, 256});
  run_all_styles<fp16_t>({20, 64, 128});
}

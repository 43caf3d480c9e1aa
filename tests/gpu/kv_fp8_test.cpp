// The CUDA backend over an FP8 KV cache (backend/kv_fp8.hpp) against the host, on fresh random
// inputs every run (MII_TEST_SEED replays one; the seed is printed):
//  - rope_store_kv: q and k rotated bit for bit as the compute-dtype cache's op rotates them, and
//    the cache bytes and scales equal to the host's quantization (mii::fp8_scale, mii::to_e4m3) of
//    the GPU's own rotated k and v, bit for bit; nothing else of the cache written;
//  - attention: random e4m3 bytes and scales in a shuffled paged cache, the GPU against
//    host::attention over the same bytes: decodes with split-KV, prefill chunks, ragged mixes,
//    GQA groups 1/4/8, sliding windows, soft-capping, tensor-core head dims (with and without
//    whole chunks per thread) and fallback ones, a block stride the tensor-core kernel refuses,
//    and one decode replayed from a CUDA graph.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <mii/backend/cuda/cuda_backend.hpp>
#include <mii/backend/host/host_backend.hpp>
#include <mii/backend/kv_fp8.hpp>
#include <mii/dtype.hpp>
#include <mii/runtime/step_builder.hpp>

#include "gpu_support.hpp"
#include "test_files.hpp"

namespace {

using mii::bf16_t;
using mii::fp16_t;
using mii::backend::attention_shape;
using mii::backend::fp8_kv_layer;
using mii::backend::kv_layer;
using mii::backend::rope_table;
using mii::backend::step_batch;
using mii::layers::rotary_style;
using mii::runtime::step_builder;
using mii::runtime::step_chunk;
using host = mii::backend::host;
using namespace mii::test::gpu;

std::uint64_t kv_fp8_seed() {
  static const std::uint64_t seed = mii::test::test_seed("kv fp8 tests");
  return seed;
}

struct seq_spec {
  int cached = 0;  // tokens already in the cache
  int fresh = 1;   // new tokens this step
};

// Block tables over a shuffled pool, so that no sequence's blocks are contiguous or in order.
struct paged_layout {
  std::vector<std::vector<std::int32_t>> blocks;  // per sequence
  std::int32_t pool = 0;
};

paged_layout make_layout(const std::vector<seq_spec>& seqs, int block_size, std::mt19937_64& rng) {
  paged_layout l;
  std::vector<std::int32_t> need;
  for (const auto& s : seqs) need.push_back(std::max(1, (s.cached + s.fresh + block_size - 1) / block_size));
  l.pool = std::accumulate(need.begin(), need.end(), std::int32_t(0)) + 3;
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

// A step over `seqs` (token ids do not matter to these ops).
struct step {
  std::vector<std::vector<std::int32_t>> tokens;
  step_builder builder;
  step(const std::vector<seq_spec>& seqs, const std::vector<std::vector<std::int32_t>>& blocks) {
    std::vector<step_chunk> chunks;
    for (const auto& s : seqs) tokens.emplace_back(std::size_t(s.fresh), 0);
    for (std::size_t s = 0; s < seqs.size(); ++s)
      chunks.push_back({tokens[s], seqs[s].cached, blocks[s], 0, step_chunk::logits::last});
    builder.build(chunks);
  }
};

// Byte image of an FP8 cache's blocks on the host, addressed as kv_fp8.hpp lays them out.
struct fp8_image {
  fp8_kv_layer<std::uint8_t> geometry;  // data unused
  std::vector<std::uint8_t> bytes;      // [pool][block_stride()]
  fp8_image(std::int32_t pool, int block_size, int kv_heads, int head_dim, std::uint8_t fill)
      : geometry{nullptr, block_size, kv_heads, head_dim},
        bytes(static_cast<std::size_t>(pool * geometry.block_stride()), fill) {}
  std::uint8_t* vector(std::int64_t block, int which, int head, int slot) {
    return bytes.data() + block * geometry.block_stride() + geometry.value_at(which, head, slot);
  }
  void set_scale(std::int64_t block, int which, int head, int slot, float s) {
    std::memcpy(bytes.data() + block * geometry.block_stride() + geometry.scale_at(which, head, slot), &s, sizeof s);
  }
};

template <class D>
std::vector<D> to_dtype(const std::vector<float>& v) {
  std::vector<D> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = from_float<D>(v[i]);
  return out;
}
template <class D>
std::vector<float> to_floats(const std::vector<D>& v) {
  std::vector<float> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = mii::to_float(v[i]);
  return out;
}

// ---- rope_store_kv ------------------------------------------------------------------------

const char* style_name(rotary_style s) { return s == rotary_style::none ? "none" : s == rotary_style::neox ? "neox" : "gptj"; }

struct rope_case {
  int heads, kv_heads, head_dim, rot_dim, block_size;
};

template <class D, rotary_style S>
void check_rope_case(const rope_case& c, std::mt19937_64& rng) {
  using B = mii::backend::cuda<D>;
  auto& ctx = shared_context<D>();
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  const int hd = c.head_dim, bs = c.block_size, kvh = c.kv_heads;
  INFO(dtype_label<D> << " " << style_name(S) << " heads " << c.heads << "/" << kvh << " head_dim " << hd << " rot_dim "
                      << c.rot_dim << " block " << bs);

  // Sequences anywhere in a long context; their blocks get distinct shuffled ids.
  std::vector<seq_spec> seqs;
  for (int s = uniform(1, 4); s > 0; --s) seqs.push_back({uniform(0, 3) == 0 ? uniform(0, 2 * bs) : uniform(0, 2000), uniform(1, 30)});
  const paged_layout layout = make_layout(seqs, bs, rng);
  step st(seqs, layout.blocks);
  const int n = st.builder.n_tokens();
  const std::int64_t stride = std::int64_t(c.heads + 2 * kvh) * hd;

  // Heads of different magnitudes (scales from tiny to large), and token 0's first k and v
  // heads all zeros (amax 0: scale 1, zero bytes).
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> qkv(static_cast<std::size_t>(n * stride));
  for (int t = 0; t < n; ++t)
    for (int h = 0; h < c.heads + 2 * kvh; ++h) {
      const float magnitude = std::ldexp(1.f, uniform(-12, 6));
      for (int i = 0; i < hd; ++i) qkv[std::size_t(t * stride + h * hd + i)] = rounded<D>(magnitude * normal(rng));
    }
  for (const int h : {c.heads, c.heads + kvh})
    std::fill_n(qkv.begin() + std::ptrdiff_t(h * hd), hd, 0.f);

  std::vector<float> inv_freq(static_cast<std::size_t>(std::max(1, c.rot_dim / 2)));
  for (int i = 0; i < c.rot_dim / 2; ++i) inv_freq[std::size_t(i)] = std::pow(10000.f, -2.f * float(i) / float(c.rot_dim));
  auto g_freq = upload_raw<D, float>(ctx, inv_freq);
  const rope_table table{g_freq.data(), nullptr, 1, c.rot_dim};
  const attention_shape shape{c.heads, kvh, hd, 1.f, 0};
  const step_batch db = B::upload_step(ctx, st.builder);

  // The FP8 op, over a cache whose every byte starts as a marker...
  constexpr std::uint8_t marker = 0x5a;
  const fp8_kv_layer<std::uint8_t> geometry{nullptr, bs, kvh, hd};
  const std::int64_t cache_bytes = layout.pool * geometry.block_stride();
  auto g_cache = upload_raw<D, std::uint8_t>(ctx, std::vector<std::uint8_t>(std::size_t(cache_bytes), marker));
  auto g_qkv = upload<D>(ctx, qkv);
  B::template rope_store_kv<S>(ctx, db, g_qkv.data(), shape, table, fp8_kv_layer<std::uint8_t>{g_cache.data(), bs, kvh, hd});
  // ... and the compute-dtype op on the same rows, for the rotation.
  auto g_qkv_ref = upload<D>(ctx, qkv);
  auto g_cache_ref = B::template alloc<D>(ctx, std::int64_t(layout.pool) * 2 * kvh * bs * hd);
  B::template rope_store_kv<S>(ctx, db, g_qkv_ref.data(), shape, table, kv_layer<D>{g_cache_ref.data(), bs, kvh, hd});
  const auto rows = download_raw<D, D>(ctx, g_qkv.data(), n * stride);
  const auto rows_ref = download_raw<D, D>(ctx, g_qkv_ref.data(), n * stride);
  const auto got = download_raw<D, std::uint8_t>(ctx, g_cache.data(), cache_bytes);

  std::int64_t row_mismatch = 0;
  for (std::size_t i = 0; i < rows.size(); ++i) row_mismatch += rows[i].bits != rows_ref[i].bits;
  CHECK(row_mismatch == 0);

  // The host's quantization of the GPU's rotated k and v, into the marker image.
  fp8_image want(layout.pool, bs, kvh, hd, marker);
  const step_batch hb = st.builder.bind(st.builder.data().data());
  const std::vector<float> rotated = to_floats(rows);
  for (int t = 0; t < n; ++t) {
    const int pos = hb.positions[t];
    const std::int64_t block = layout.blocks[std::size_t(hb.token_seq[t])][std::size_t(pos / bs)];
    for (int which = 0; which < 2; ++which)
      for (int h = 0; h < kvh; ++h) {
        const float* x = rotated.data() + t * stride + (c.heads + which * kvh + h) * hd;
        float amax = 0.f;
        for (int i = 0; i < hd; ++i) amax = std::max(amax, std::fabs(x[i]));
        const float s = mii::fp8_scale(amax);
        std::uint8_t* dst = want.vector(block, which, h, pos % bs);
        for (int i = 0; i < hd; ++i) dst[i] = mii::to_e4m3(x[i] / s);
        want.set_scale(block, which, h, pos % bs, s);
      }
  }
  std::int64_t byte_mismatch = 0;
  for (std::size_t i = 0; i < got.size(); ++i) byte_mismatch += got[i] != want.bytes[i];
  INFO("cache bytes (values, scales, untouched markers) unlike the host's quantization: " << byte_mismatch << " of "
                                                                                         << got.size());
  CHECK(byte_mismatch == 0);

  // The host op (no rotation) over the same rotated rows: the same bytes, so host and device
  // agree on the cache layout too.
  fp8_image host_cache(layout.pool, bs, kvh, hd, marker);
  std::vector<float> host_rows = rotated;
  host::rope_store_kv<rotary_style::none>(host_context(), hb, host_rows.data(), shape, rope_table{},
                                          fp8_kv_layer<std::uint8_t>{host_cache.bytes.data(), bs, kvh, hd});
  CHECK(host_cache.bytes == got);
}

template <class D>
void check_rope_all(std::mt19937_64& rng) {
  const int gqa[][2] = {{4, 4}, {8, 2}, {8, 1}, {6, 3}};
  const int block_sizes[] = {16, 64, 8};
  int n = 0;
  // 16-byte units (head_dim % 8 == 0 and aligned rotary slices) and the scalar kernel (20, odd rot).
  for (const int hd : {64, 128, 256, 20, 96}) {
    for (const int rot : {hd, hd / 2 & ~1, std::max(2, (hd * 3 / 8) & ~1)}) {
      const auto& g = gqa[std::uniform_int_distribution<int>(0, 3)(rng)];
      const int bs = block_sizes[std::uniform_int_distribution<int>(0, 2)(rng)];
      const rope_case c{g[0], g[1], hd, rot, bs};
      check_rope_case<D, rotary_style::neox>(c, rng);
      check_rope_case<D, rotary_style::gptj>(c, rng);
      n += 2;
    }
    check_rope_case<D, rotary_style::none>({8, 2, hd, 0, 16}, rng);
    ++n;
  }
  std::printf("rope_store_kv over an FP8 cache, %s: %d cases\n", dtype_label<D>, n);
}

// ---- attention ----------------------------------------------------------------------------

struct attn_case {
  std::string family;
  int heads = 8, kv_heads = 8, head_dim = 64, block_size = 16, window = 0;
  float softcap = 0.f;
  std::vector<seq_spec> seqs;
  std::string describe() const {
    std::string s = family + ": heads " + std::to_string(heads) + "/" + std::to_string(kv_heads) + " d " +
                    std::to_string(head_dim) + " bs " + std::to_string(block_size) + " window " + std::to_string(window) +
                    " softcap " + std::to_string(softcap) + " seqs " + std::to_string(seqs.size()) + " [";
    for (std::size_t i = 0; i < seqs.size() && i < 6; ++i)
      s += (i ? " " : "") + std::to_string(seqs[i].cached) + "+" + std::to_string(seqs[i].fresh);
    return s + (seqs.size() > 6 ? " ...]" : "]");
  }
  std::int64_t reference_work() const {
    std::int64_t w = 0;
    for (const auto& s : seqs) w += std::int64_t(s.fresh) * (s.cached + s.fresh);
    return w * heads * head_dim;
  }
};

// Scales contexts down until the host reference's work fits the budget.
void fit_budget(attn_case& c, std::int64_t budget) {
  while (c.reference_work() > budget)
    for (auto& s : c.seqs) {
      s.cached /= 2;
      if (s.fresh > 1) s.fresh = (s.fresh + 1) / 2;
    }
}

// Random e4m3 bytes (every code but the NaNs 0x7f / 0xff: magnitudes from 2^-9 to 448) and
// scales that put the largest magnitude of a vector between 2 and 6, where any query may read;
// NaN bytes and scales everywhere else (past each sequence's length, before the window of its
// first new token, blocks nobody owns), so that a read out of range shows.
fp8_image random_cache(const attn_case& c, const paged_layout& layout, std::mt19937_64& rng) {
  fp8_image img(layout.pool, c.block_size, c.kv_heads, c.head_dim, 0x7f);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (std::int64_t b = 0; b < layout.pool; ++b)
    for (int which = 0; which < 2; ++which)
      for (int h = 0; h < c.kv_heads; ++h)
        for (int slot = 0; slot < c.block_size; ++slot) img.set_scale(b, which, h, slot, nan);
  std::uniform_int_distribution<int> byte(0, 253);
  std::uniform_real_distribution<float> top(2.f, 6.f);
  for (std::size_t s = 0; s < c.seqs.size(); ++s) {
    const auto& q = c.seqs[s];
    const int lo = c.window > 0 ? std::max(0, q.cached - c.window + 1) : 0;
    for (int pos = lo; pos < q.cached + q.fresh; ++pos) {
      const std::int64_t block = layout.blocks[s][std::size_t(pos / c.block_size)];
      for (int which = 0; which < 2; ++which)
        for (int h = 0; h < c.kv_heads; ++h) {
          std::uint8_t* v = img.vector(block, which, h, pos % c.block_size);
          for (int i = 0; i < c.head_dim; ++i) {
            const int b = byte(rng);
            v[i] = std::uint8_t(b < 0x7f ? b : b + 1);  // 0..0x7e, 0x80..0xfe
          }
          img.set_scale(block, which, h, pos % c.block_size, top(rng) / mii::e4m3_max);
        }
    }
  }
  return img;
}

struct comparison {
  double rel_l2 = 0;
  std::int64_t non_finite = 0;
};

comparison compare(const std::vector<float>& got, const std::vector<float>& want) {
  comparison r;
  double num = 0, den = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) {
      ++r.non_finite;
      continue;
    }
    num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    den += double(want[i]) * want[i];
  }
  r.rel_l2 = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  return r;
}

// The case on the host (fp32 over the dequantized cache, rounded to D) and on the GPU. `graph`: the GPU runs
// it once plainly, then from a CUDA graph captured after that, twice, with fresh queries
// uploaded in between (a replay must read the buffers as they are then).
template <class D>
comparison run_attention_case(const attn_case& c, std::mt19937_64& rng, bool graph = false) {
  using B = mii::backend::cuda<D>;
  auto& ctx = shared_context<D>();
  const int hd = c.head_dim, bs = c.block_size, kvh = c.kv_heads;
  const paged_layout layout = make_layout(c.seqs, bs, rng);
  step st(c.seqs, layout.blocks);
  const int n = st.builder.n_tokens();
  const fp8_image cache = random_cache(c, layout, rng);
  const std::int64_t stride = std::int64_t(c.heads + 2 * kvh) * hd;
  std::normal_distribution<float> normal(0.f, 1.f);
  auto random_qkv = [&] {
    std::vector<float> v(static_cast<std::size_t>(n * stride));
    for (auto& x : v) x = rounded<D>(1.5f * normal(rng));
    return v;
  };
  std::vector<float> qkv = random_qkv();

  const attention_shape shape{c.heads, kvh, hd, 1.0f / std::sqrt(float(hd)), c.window, c.softcap};
  const step_batch hb = st.builder.bind(st.builder.data().data());
  // The reference: host attention over the values the kernel multiplies — each byte decoded,
  // times its vector's scale, rounded to D as the kernel's tiles hold it — so that the budget is
  // the one of the compute-dtype cache (attention_test.cpp). (Host attention over the FP8 cache
  // equals host attention over its dequantized values bit for bit: tests/model/kv_fp8_test.cpp.)
  const fp8_kv_layer<const std::uint8_t> host_cache{cache.bytes.data(), bs, kvh, hd};
  const std::int64_t n_blocks = std::int64_t(cache.bytes.size()) / host_cache.block_stride();
  std::vector<float> rounded_cache(static_cast<std::size_t>(n_blocks * 2 * kvh * bs * hd));
  for (std::int64_t b = 0; b < n_blocks; ++b)
    for (int which = 0; which < 2; ++which)
      for (int h = 0; h < kvh; ++h)
        for (int slot = 0; slot < bs; ++slot) {
          const std::uint8_t* block = cache.bytes.data() + b * host_cache.block_stride();
          float scale;
          std::memcpy(&scale, block + host_cache.scale_at(which, h, slot), sizeof scale);
          const std::uint8_t* bytes = block + host_cache.value_at(which, h, slot);
          float* dst = rounded_cache.data() + (((b * 2 + which) * kvh + h) * bs + slot) * hd;
          for (int d = 0; d < hd; ++d) dst[d] = rounded<D>(mii::e4m3_to_float(bytes[d]) * scale);
        }
  auto reference = [&] {
    std::vector<float> want(static_cast<std::size_t>(std::int64_t(n) * c.heads * hd));
    host::attention(host_context(), hb, qkv.data(), shape,
                    mii::backend::kv_layer<const float>{rounded_cache.data(), bs, kvh, hd}, want.data());
    return want;
  };

  auto g_cache = upload_raw<D, std::uint8_t>(ctx, cache.bytes);
  auto g_qkv = upload<D>(ctx, qkv);
  auto g_out = B::template alloc<D>(ctx, std::int64_t(n) * c.heads * hd);
  const std::int64_t out_elems = std::int64_t(n) * c.heads * hd;
  const step_batch db = B::upload_step(ctx, st.builder);
  const fp8_kv_layer<const std::uint8_t> device_cache{g_cache.data(), bs, kvh, hd};
  auto run = [&] { B::attention(ctx, db, g_qkv.data(), shape, device_cache, g_out.data()); };

  poison<D>(ctx, g_out.data(), out_elems);  // every element must be written
  run();
  comparison worst = compare(download<D>(ctx, g_out.data(), out_elems), reference());
  if (graph) {
    ctx.synchronize();
    B::graph_begin(ctx);
    run();
    const auto g = B::graph_end(ctx);
    for (int replay = 0; replay < 2; ++replay) {
      qkv = random_qkv();
      const std::vector<D> q = to_dtype<D>(qkv);
      B::copy_to_device(ctx, g_qkv.data(), q.data(), std::int64_t(q.size()));
      poison<D>(ctx, g_out.data(), out_elems);
      B::graph_launch(ctx, g);
      const comparison r = compare(download<D>(ctx, g_out.data(), out_elems), reference());
      worst.rel_l2 = std::max(worst.rel_l2, r.rel_l2);
      worst.non_finite += r.non_finite;
    }
  }
  return worst;
}

struct mix_maker {
  std::mt19937_64& rng;
  int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
  std::vector<seq_spec> decode(int n, int max_ctx) {
    std::vector<seq_spec> v;
    for (int i = 0; i < n; ++i) v.push_back({uniform(0, max_ctx - 1), 1});
    return v;
  }
  std::vector<seq_spec> prefill(int n, int max_len) {
    std::vector<seq_spec> v;
    for (int i = 0; i < n; ++i) v.push_back({0, uniform(1, max_len)});
    return v;
  }
  std::vector<seq_spec> mixed(int n_chunks, int n_decodes, int max_cached, int max_chunk) {
    std::vector<seq_spec> v;
    for (int i = 0; i < n_chunks; ++i) v.push_back({uniform(0, max_cached), uniform(1, max_chunk)});
    for (int i = 0; i < n_decodes; ++i) v.push_back({uniform(0, max_cached), 1});
    std::shuffle(v.begin(), v.end(), rng);
    return v;
  }
};

template <class D>
void run_attention_cases(std::vector<attn_case> cases, std::mt19937_64& rng) {
  double worst = 0;
  for (auto& c : cases) {
    fit_budget(c, std::int64_t(1) << 26);
    const comparison r = run_attention_case<D>(c, rng);
    std::printf("%-5s %-110s %10.2e%s\n", dtype_label<D>, c.describe().c_str(), r.rel_l2,
                r.non_finite ? "  NON-FINITE" : "");
    worst = std::max(worst, r.rel_l2);
    INFO(dtype_label<D> << " " << c.describe() << ": rel_l2 " << r.rel_l2 << ", non-finite outputs " << r.non_finite);
    CHECK(r.non_finite == 0);
    CHECK(r.rel_l2 <= 1e-2);  // attention_test.cpp's budget
  }
  std::printf("%s attention over an FP8 cache: worst relative L2 error %.3e over %zu cases\n", dtype_label<D>, worst,
              cases.size());
}

}  // namespace

TEST_CASE("cuda rope_store_kv over an FP8 cache quantizes as the host does", "[gpu][kvfp8]") {
  std::mt19937_64 rng(kv_fp8_seed() ^ 0x40e8);
  check_rope_all<bf16_t>(rng);
  check_rope_all<fp16_t>(rng);
}

TEST_CASE("cuda attention over an FP8 cache matches the host reference", "[gpu][kvfp8]") {
  std::mt19937_64 rng(kv_fp8_seed() ^ 0xa778);
  mix_maker mk{rng};
  // GQA groups 1, 4 and 8 (8: a decode token fills half a 16-row tile).
  const int gqa[][2] = {{8, 8}, {16, 4}, {32, 4}, {8, 1}};
  auto heads = [&](int hd) {
    const auto& g = gqa[mk.uniform(0, 3)];
    return hd >= 256 ? std::pair{std::min(g[0], 8), std::min(g[1], 8)} : std::pair{g[0], g[1]};
  };
  std::vector<attn_case> cases;
  // Tensor-core head dims (80 and 96: chunks that do not divide evenly among the threads) and
  // fallback ones (48: a multiple of 16 without a kernel; 20: not even that).
  for (const int hd : {64, 80, 96, 128, 256, 48, 20}) {
    auto add = [&](std::string family, std::vector<seq_spec> seqs, int bs, int window, float cap = 0.f) {
      const auto [h, kvh] = heads(hd);
      cases.push_back({std::move(family), h, kvh, hd, bs, window, cap, std::move(seqs)});
    };
    add("decode", mk.decode(mk.uniform(1, 24), 3000), 16, 0);
    add("decode-window", mk.decode(mk.uniform(2, 24), 3000), 64, 300);
    add("prefill", mk.prefill(mk.uniform(1, 3), 300), 64, 0);
    add("mixed", mk.mixed(mk.uniform(1, 3), mk.uniform(0, 16), 1500, 200), 16, 0);
    add("mixed-window", mk.mixed(mk.uniform(1, 3), mk.uniform(0, 16), 1500, 200), 64, 77);
  }
  // Split-KV: few work items, long contexts (decode and prefill tile shapes).
  for (const int hd : {64, 128, 256}) {
    cases.push_back({"split-decode", 32, 8, hd, 16, 0, 0.f, {{4095, 1}}});
    cases.push_back({"split-decode-group8", 32, 4, hd, 64, 0, 0.f, {{3999, 1}, {77, 1}}});
    cases.push_back({"split-decode-window", 16, 4, hd, 64, 1000, 0.f, {{3500, 1}}});
    cases.push_back({"split-chunk", 16, 2, hd, 16, 0, 0.f, {{3000, 24}}});
  }
  // Soft-capped scores: the tensor-core variant (128, 256) and the fallback (64).
  for (const int hd : {128, 256, 64})
    for (const float cap : {50.f, 2.f}) {
      cases.push_back({"softcap-decode", 16, 8, hd, 16, 0, cap, {{200, 1}, {40, 1}, {1500, 1}}});
      cases.push_back({"softcap-mixed", 16, 8, hd, 64, 37, cap, {{90, 30}, {300, 1}, {0, 64}}});
    }
  // Block size 1 with one kv head: a block stride of 2 * 128 + 8 bytes, not a multiple of 16,
  // which the tensor-core kernel cannot copy: the fallback takes head_dim 128.
  cases.push_back({"stride-not-16", 8, 1, 128, 1, 0, 0.f, {{40, 1}, {0, 9}, {13, 5}}});
  run_attention_cases<bf16_t>(cases, rng);

  std::vector<attn_case> half;
  for (const int hd : {64, 128, 256, 20}) {
    half.push_back({"fp16-decode", 16, 4, hd, 16, 0, 0.f, mk.decode(mk.uniform(1, 16), 2048)});
    half.push_back({"fp16-mixed", 8, 2, hd, 64, 0, 0.f, mk.mixed(2, 6, 900, 150)});
  }
  half.push_back({"fp16-split", 32, 8, 128, 16, 0, 0.f, {{4000, 1}, {100, 1}}});
  run_attention_cases<fp16_t>(half, rng);
}

TEST_CASE("cuda attention over an FP8 cache from a CUDA graph", "[gpu][kvfp8]") {
  std::mt19937_64 rng(kv_fp8_seed() ^ 0x6a9f);
  // Split-KV decodes (the steps replayed from graphs): the partials reserved by the plain run.
  const attn_case cases[] = {{"graph-decode", 32, 8, 128, 16, 0, 0.f, {{3000, 1}, {517, 1}, {64, 1}}},
                             {"graph-decode", 8, 1, 64, 64, 0, 0.f, {{4000, 1}}}};
  for (const auto& c : cases) {
    const comparison r = run_attention_case<bf16_t>(c, rng, true);
    INFO(c.describe() << ": rel_l2 " << r.rel_l2 << ", non-finite outputs " << r.non_finite);
    CHECK(r.non_finite == 0);
    CHECK(r.rel_l2 <= 1e-2);
  }
}

TEST_CASE("cuda ops over an FP8 cache refuse bad geometry", "[gpu][kvfp8]") {
  using B = mii::backend::cuda<bf16_t>;
  auto& ctx = shared_context<bf16_t>();
  std::vector<std::int32_t> tok = {0}, blocks = {0};
  std::vector<step_chunk> chunks = {{tok, 0, blocks, 0, step_chunk::logits::last}};
  step_builder builder;
  builder.build(chunks);
  const step_batch db = B::upload_step(ctx, builder);
  auto qkv = B::alloc<bf16_t>(ctx, 4096);
  auto bytes = B::alloc<std::uint8_t>(ctx, 1 << 16);
  CHECK_THROWS_WITH(B::attention(ctx, db, qkv.data(), attention_shape{4, 2, 64, 0.125f, 0},
                                 fp8_kv_layer<const std::uint8_t>{bytes.data(), 24, 2, 64}, qkv.data()),
                    Catch::Contains("power of two"));
  // head_dim 3, one kv head, blocks of 1: 14-byte blocks, so the fp32 scales cannot be aligned.
  CHECK_THROWS_WITH(B::attention(ctx, db, qkv.data(), attention_shape{1, 1, 3, 1.f, 0},
                                 fp8_kv_layer<const std::uint8_t>{bytes.data(), 1, 1, 3}, qkv.data()),
                    Catch::Contains("4-byte aligned"));
  CHECK_THROWS_WITH(B::rope_store_kv<rotary_style::none>(ctx, db, qkv.data(), attention_shape{1, 1, 3, 1.f, 0},
                                                         rope_table{}, fp8_kv_layer<std::uint8_t>{bytes.data(), 1, 1, 3}),
                    Catch::Contains("4-byte aligned"));
  CHECK_THROWS_WITH(B::rope_store_kv<rotary_style::none>(ctx, db, qkv.data(), attention_shape{4, 2, 64, 1.f, 0},
                                                         rope_table{}, fp8_kv_layer<std::uint8_t>{bytes.data(), 16, 4, 64}),
                    Catch::Contains("does not match"));
  ctx.synchronize();
}

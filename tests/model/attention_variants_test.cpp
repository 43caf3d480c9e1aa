// The host backend's attention variants (the reference the CUDA kernels are tested against):
// soft-capped scores (Gemma 2: cap * tanh(s * scale / cap) before the mask) and each layer's own
// window, over a paged KV cache, against a direct computation in double from the definition.
// Ragged steps mixing prefill chunks and decodes; blocks of different sequences interleaved.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <mii/backend/host/host_backend.hpp>
#include <mii/runtime/step_builder.hpp>

namespace {

using mii::backend::attention_shape;
using mii::backend::kv_layer;
using mii::runtime::step_builder;
using mii::runtime::step_chunk;
using host = mii::backend::host;

struct sequence {
  int cached, fresh;
};

struct attention_case {
  int heads = 4, kv_heads = 2, head_dim = 16, block_size = 4;
  float scale = 0.2f, softcap = 0.0f;
  int window = 0;
  std::vector<sequence> seqs;
};

// Keys and values per sequence, dense: [pos][kv_head][head_dim].
struct dense_kv {
  std::vector<std::vector<float>> k, v;
};

// out[t][h] = sum_j softmax_j(cap(scale * q.k_j)) v_j over the keys the token at position p sees:
// j <= p, and j > p - window when window > 0.
std::vector<double> direct(const attention_case& c, const dense_kv& kv, const std::vector<float>& qkv,
                           const std::vector<int>& token_seq, const std::vector<int>& token_pos) {
  const int hd = c.head_dim, group = c.heads / c.kv_heads;
  const std::int64_t stride = std::int64_t(c.heads + 2 * c.kv_heads) * hd;
  std::vector<double> out(token_seq.size() * std::size_t(c.heads * hd));
  for (std::size_t t = 0; t < token_seq.size(); ++t) {
    const int s = token_seq[t], p = token_pos[t];
    for (int h = 0; h < c.heads; ++h) {
      const float* q = qkv.data() + std::int64_t(t) * stride + h * hd;
      std::vector<double> w;
      std::vector<int> keys;
      for (int j = 0; j <= p; ++j) {
        if (c.window > 0 && j <= p - c.window) continue;
        const float* k = kv.k[std::size_t(s)].data() + (std::int64_t(j) * c.kv_heads + h / group) * hd;
        double dot = 0;
        for (int i = 0; i < hd; ++i) dot += double(q[i]) * k[i];
        double score = dot * c.scale;
        if (c.softcap > 0) score = c.softcap * std::tanh(score / c.softcap);
        w.push_back(score);
        keys.push_back(j);
      }
      double mx = -INFINITY, sum = 0;
      for (double x : w) mx = std::max(mx, x);
      for (double& x : w) sum += (x = std::exp(x - mx));
      for (std::size_t i = 0; i < keys.size(); ++i) {
        const float* v = kv.v[std::size_t(s)].data() + (std::int64_t(keys[i]) * c.kv_heads + h / group) * hd;
        for (int d = 0; d < hd; ++d) out[(t * std::size_t(c.heads) + std::size_t(h)) * std::size_t(hd) + std::size_t(d)] += w[i] / sum * v[d];
      }
    }
  }
  return out;
}

struct result {
  double error;             // worst |host - direct| / max |direct|
  std::vector<float> host;  // host::attention's output
};

// Runs host::attention over a paged cache holding the same keys and values, and the direct
// computation.
result run_case(const attention_case& c, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.f, 1.f);
  const int hd = c.head_dim, bs = c.block_size, n_seqs = int(c.seqs.size());
  dense_kv kv;
  std::vector<std::vector<std::int32_t>> blocks(static_cast<std::size_t>(n_seqs)), tokens(static_cast<std::size_t>(n_seqs));
  int max_blocks = 0;
  for (const auto& s : c.seqs) max_blocks = std::max(max_blocks, (s.cached + s.fresh + bs - 1) / bs);
  for (int s = 0; s < n_seqs; ++s) {
    const int len = c.seqs[std::size_t(s)].cached + c.seqs[std::size_t(s)].fresh;
    kv.k.emplace_back(std::size_t(len * c.kv_heads * hd));
    kv.v.emplace_back(std::size_t(len * c.kv_heads * hd));
    for (auto& x : kv.k.back()) x = normal(rng);
    for (auto& x : kv.v.back()) x = normal(rng);
    for (int b = 0; b < max_blocks; ++b) blocks[std::size_t(s)].push_back(b * n_seqs + s);  // interleaved
    tokens[std::size_t(s)].assign(std::size_t(c.seqs[std::size_t(s)].fresh), 0);
  }
  std::vector<float> cache(std::size_t(max_blocks * n_seqs) * 2 * std::size_t(c.kv_heads * bs * hd), NAN);
  for (int s = 0; s < n_seqs; ++s)
    for (int pos = 0; pos < c.seqs[std::size_t(s)].cached + c.seqs[std::size_t(s)].fresh; ++pos)
      for (int h = 0; h < c.kv_heads; ++h)
        for (int which = 0; which < 2; ++which) {
          const std::int64_t block = blocks[std::size_t(s)][std::size_t(pos / bs)];
          const std::int64_t at = (((block * 2 + which) * c.kv_heads + h) * bs + pos % bs) * hd;
          const auto& src = which ? kv.v[std::size_t(s)] : kv.k[std::size_t(s)];
          std::copy_n(src.begin() + (std::int64_t(pos) * c.kv_heads + h) * hd, hd, cache.begin() + at);
        }

  std::vector<step_chunk> chunks;
  std::vector<int> token_seq, token_pos;
  for (int s = 0; s < n_seqs; ++s) {
    const auto& q = c.seqs[std::size_t(s)];
    chunks.push_back({tokens[std::size_t(s)], q.cached, blocks[std::size_t(s)], 0, step_chunk::logits::last});
    for (int i = 0; i < q.fresh; ++i) {
      token_seq.push_back(s);
      token_pos.push_back(q.cached + i);
    }
  }
  step_builder builder;
  builder.build(chunks);
  const std::int64_t stride = std::int64_t(c.heads + 2 * c.kv_heads) * hd;
  std::vector<float> qkv(token_seq.size() * std::size_t(stride));
  for (auto& x : qkv) x = 1.5f * normal(rng);
  std::vector<float> got(token_seq.size() * std::size_t(c.heads * hd));
  host::context ctx(2);
  attention_shape shape{c.heads, c.kv_heads, hd, c.scale, c.window, c.softcap};
  host::attention(ctx, builder.bind(builder.data().data()), qkv.data(), shape,
                  kv_layer<const float>{cache.data(), bs, c.kv_heads, hd}, got.data());
  const auto want = direct(c, kv, qkv, token_seq, token_pos);
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return {INFINITY, got};
    diff = std::max(diff, std::fabs(double(got[i]) - want[i]));
    scale = std::max(scale, std::fabs(want[i]));
  }
  return {diff / scale, got};
}

double relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::fabs(double(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  return diff / scale;
}

}  // namespace

TEST_CASE("host attention: soft-capped scores and per-layer windows match the definition", "[model][attention]") {
  std::mt19937 rng(20240917);
  const std::vector<sequence> mix = {{0, 13}, {9, 1}, {4, 7}, {30, 1}, {0, 1}};
  for (const float cap : {0.0f, 50.0f, 3.0f, 0.5f}) {
    for (const int window : {0, 1, 4, 8, 100}) {
      attention_case c;
      c.softcap = cap;
      c.window = window;
      c.seqs = mix;
      INFO("softcap " << cap << ", window " << window);
      CHECK(run_case(c, rng).error <= 1e-5);
    }
  }
  SECTION("MQA, head_dim 256, blocks of 16") {
    attention_case c;
    c.heads = 8;
    c.kv_heads = 1;
    c.head_dim = 256;
    c.block_size = 16;
    c.scale = 1.0f / 16;
    c.softcap = 50.0f;
    c.window = 20;
    c.seqs = {{0, 40}, {50, 1}, {17, 5}};
    CHECK(run_case(c, rng).error <= 1e-5);
  }
}

// On the same inputs, a cap of 1 must bend these scores (|s| reaches several units) and a cap far
// above them must not: the variant is applied, and only through cap * tanh(s / cap).
TEST_CASE("host attention: soft-capping bends large scores only", "[model][attention]") {
  attention_case c;
  c.seqs = {{0, 9}, {6, 3}};
  c.scale = 0.5f;
  auto with_cap = [&](float cap) {
    std::mt19937 rng(11);  // the same keys, values and queries for every cap
    attention_case k = c;
    k.softcap = cap;
    const result r = run_case(k, rng);
    CHECK(r.error <= 1e-5);
    return r.host;
  };
  const auto plain = with_cap(0.0f);
  CHECK(relative_difference(with_cap(1e6f), plain) <= 1e-5);
  CHECK(relative_difference(with_cap(1.0f), plain) > 1e-2);
}

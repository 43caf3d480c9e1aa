// Rotary embeddings, KV-cache writes and attention over the blocked cache (compute dtype or FP8,
// backend/kv_fp8.hpp), in fp32.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <mii/backend/host/host_backend.hpp>
#include <mii/error.hpp>

namespace mii::backend {
namespace {

inline std::int64_t cache_offset(const step_batch& b, int seq, std::int64_t pos, int kv_head, int which,
                                 std::int32_t block_size, std::int32_t kv_heads, std::int32_t head_dim) {
  const std::int32_t block = b.block_tables[std::int64_t(seq) * b.max_blocks_per_seq + pos / block_size];
  const std::int64_t in_block = pos % block_size;
  return ((((std::int64_t(block) * 2 + which) * kv_heads + kv_head) * block_size) + in_block) * head_dim;
}

// The block of an FP8 cache layer that holds position `pos` of sequence `seq`.
template <class Byte>
Byte* fp8_block(const step_batch& b, int seq, std::int64_t pos, fp8_kv_layer<Byte> cache) {
  const std::int32_t block = b.block_tables[std::int64_t(seq) * b.max_blocks_per_seq + pos / cache.block_size];
  return cache.data + std::int64_t(block) * cache.block_stride();
}

template <class Byte>
void check_fp8_layout(const attention_shape& a, fp8_kv_layer<Byte> cache) {
  if (cache.head_dim != a.head_dim || cache.kv_heads != a.kv_heads || cache.block_size <= 0)
    fail("host attention: FP8 KV cache layout (kv_heads ", cache.kv_heads, ", head_dim ", cache.head_dim, ", block size ",
         cache.block_size, ") does not match the attention shape (kv_heads ", a.kv_heads, ", head_dim ", a.head_dim, ")");
}

template <layers::rotary_style S>
void rotate(float* head, std::int32_t pos, const float* inv_freq, float scale, int rot_dim) {
  const int half = rot_dim / 2;
  for (int i = 0; i < half; ++i) {
    const float angle = float(pos) * inv_freq[i];
    const float c = std::cos(angle) * scale, s = std::sin(angle) * scale;
    if constexpr (S == layers::rotary_style::neox) {
      const float a = head[i], b = head[i + half];
      head[i] = a * c - b * s;
      head[i + half] = b * c + a * s;
    } else {
      const float a = head[2 * i], b = head[2 * i + 1];
      head[2 * i] = a * c - b * s;
      head[2 * i + 1] = b * c + a * s;
    }
  }
}

// Rotates the q and k heads of every token's qkv row in place, then hands the row to
// store(seq, pos, row), which writes its k and v heads into the cache.
template <layers::rotary_style S, class Store>
void rotate_and_store(host::context& ctx, const step_batch& b, float* qkv, const attention_shape& a, const rope_table& rope,
                      Store store) {
  const std::int64_t hd = a.head_dim, stride = std::int64_t(a.heads + 2 * a.kv_heads) * hd;
  ctx.parallel_for(b.n_tokens, [&](std::int64_t begin, std::int64_t end) {
    std::vector<float> grown;
    for (std::int64_t t = begin; t < end; ++t) {
      float* row = qkv + t * stride;
      const int seq = b.token_seq[t];
      const std::int32_t pos = b.positions[t];
      if constexpr (S != layers::rotary_style::none) {
        const std::int32_t len = rope_forward_length(b.seq_rope_len ? b.seq_rope_len[seq] : 0, pos);
        const int r = rope_row(rope, len);
        const float* f = rope.inv_freq + std::int64_t(r) * (rope.rot_dim / 2);
        const float scale = rope.scale ? rope.scale[r] : 1.0f;
        if (rope_grows_base(rope, len)) {  // dynamic NTK past the original length: this length's own frequencies
          const double base = dynamic_ntk_base(rope, len);
          grown.resize(std::size_t(rope.rot_dim / 2));
          for (int i = 0; i < rope.rot_dim / 2; ++i) grown[std::size_t(i)] = rope_inv_freq(base, i, rope.rot_dim);
          f = grown.data();
        }
        for (int h = 0; h < a.heads + a.kv_heads; ++h) rotate<S>(row + h * hd, pos, f, scale, rope.rot_dim);
      }
      store(seq, pos, static_cast<const float*>(row));
    }
  });
}

}  // namespace

template <layers::rotary_style S>
void host::rope_store_kv(context& ctx, const step_batch& b, float* qkv, const attention_shape& a,
                         const rope_table& rope, kv_layer<float> cache) {
  const std::int64_t hd = a.head_dim;
  rotate_and_store<S>(ctx, b, qkv, a, rope, [&](int seq, std::int32_t pos, const float* row) {
    for (int h = 0; h < a.kv_heads; ++h) {
      const float* k = row + (a.heads + h) * hd;
      const float* v = row + (a.heads + a.kv_heads + h) * hd;
      std::copy(k, k + hd, cache.data + cache_offset(b, seq, pos, h, 0, cache.block_size, cache.kv_heads, cache.head_dim));
      std::copy(v, v + hd, cache.data + cache_offset(b, seq, pos, h, 1, cache.block_size, cache.kv_heads, cache.head_dim));
    }
  });
}

template <layers::rotary_style S>
void host::rope_store_kv(context& ctx, const step_batch& b, float* qkv, const attention_shape& a,
                         const rope_table& rope, fp8_kv_layer<std::uint8_t> cache) {
  check_fp8_layout(a, cache);
  const std::int64_t hd = a.head_dim;
  rotate_and_store<S>(ctx, b, qkv, a, rope, [&](int seq, std::int32_t pos, const float* row) {
    std::uint8_t* block = fp8_block(b, seq, pos, cache);
    const std::int64_t slot = pos % cache.block_size;
    for (int which = 0; which < 2; ++which)
      for (int h = 0; h < a.kv_heads; ++h) {
        const float* x = row + (a.heads + which * a.kv_heads + h) * hd;
        const float fixed = which ? cache.v_scale : cache.k_scale;
        std::uint8_t* q = block + cache.value_at(which, h, slot);
        float s = fixed;
        if (fixed > 0.0f) {  // the checkpoint's static scale: saturate beyond e4m3's range
          for (std::int64_t i = 0; i < hd; ++i) q[i] = to_e4m3(std::clamp(x[i] / s, -e4m3_max, e4m3_max));
        } else {
          float amax = 0.0f;
          for (std::int64_t i = 0; i < hd; ++i) amax = std::max(amax, std::fabs(x[i]));
          s = fp8_scale(amax);
          for (std::int64_t i = 0; i < hd; ++i) q[i] = to_e4m3(x[i] / s);
        }
        std::memcpy(block + cache.scale_at(which, h, slot), &s, sizeof s);
      }
  });
}

#define MII_INSTANTIATE_HOST_ROPE_KV(STYLE)                                                                   \
  template void host::rope_store_kv<layers::rotary_style::STYLE>(context&, const step_batch&, float*,         \
                                                                 const attention_shape&, const rope_table&,   \
                                                                 kv_layer<float>);                            \
  template void host::rope_store_kv<layers::rotary_style::STYLE>(context&, const step_batch&, float*,         \
                                                                 const attention_shape&, const rope_table&,   \
                                                                 fp8_kv_layer<std::uint8_t>);
MII_INSTANTIATE_HOST_ROPE_KV(none)
MII_INSTANTIATE_HOST_ROPE_KV(neox)
MII_INSTANTIATE_HOST_ROPE_KV(gptj)
#undef MII_INSTANTIATE_HOST_ROPE_KV

namespace {

// Attention of every (token, query head) over the keys it may see; row(which, seq, pos, kv_head)
// returns that cached key (0) or value (1) vector as fp32 values.
template <class Rows>
void attend(host::context& ctx, const step_batch& b, const float* qkv, const attention_shape& a, float* out, Rows rows) {
  const std::int64_t hd = a.head_dim, stride = std::int64_t(a.heads + 2 * a.kv_heads) * hd;
  const int group = a.heads / a.kv_heads;
  ctx.parallel_for(std::int64_t(b.n_tokens) * a.heads, [&](std::int64_t begin, std::int64_t end) {
    std::vector<float> scores, decoded(static_cast<std::size_t>(hd));
    std::vector<double> acc(static_cast<std::size_t>(hd));
    for (std::int64_t job = begin; job < end; ++job) {
      const std::int64_t t = job / a.heads;
      const int h = int(job % a.heads), kvh = h / group;
      const int seq = b.token_seq[t];
      const std::int64_t pos = b.positions[t];
      const std::int64_t lo = a.window > 0 ? std::max<std::int64_t>(0, pos - a.window + 1) : 0;
      const float* q = qkv + t * stride + h * hd;
      scores.resize(std::size_t(pos - lo + 1));
      float mx = -std::numeric_limits<float>::infinity();
      for (std::int64_t j = lo; j <= pos; ++j) {
        const float* k = rows(0, seq, j, kvh, decoded.data());
        float s = 0;
        for (std::int64_t i = 0; i < hd; ++i) s += q[i] * k[i];
        s *= a.scale;
        if (a.softcap > 0) s = std::tanh(s / a.softcap) * a.softcap;  // Gemma 2: before the mask, as transformers
        scores[std::size_t(j - lo)] = s;
        mx = std::max(mx, s);
      }
      double sum = 0;
      for (auto& s : scores) {
        s = std::exp(s - mx);
        sum += s;
      }
      std::fill(acc.begin(), acc.end(), 0.0);
      for (std::int64_t j = lo; j <= pos; ++j) {
        const float* v = rows(1, seq, j, kvh, decoded.data());
        const double p = scores[std::size_t(j - lo)];
        for (std::int64_t i = 0; i < hd; ++i) acc[std::size_t(i)] += p * v[i];
      }
      float* o = out + t * std::int64_t(a.heads) * hd + h * hd;
      for (std::int64_t i = 0; i < hd; ++i) o[i] = float(acc[std::size_t(i)] / sum);
    }
  });
}

}  // namespace

void host::attention(context& ctx, const step_batch& b, const float* qkv, const attention_shape& a,
                     kv_layer<const float> cache, float* out) {
  attend(ctx, b, qkv, a, out, [&](int which, int seq, std::int64_t pos, int kvh, float*) {
    return cache.data + cache_offset(b, seq, pos, kvh, which, cache.block_size, cache.kv_heads, cache.head_dim);
  });
}

void host::attention(context& ctx, const step_batch& b, const float* qkv, const attention_shape& a,
                     fp8_kv_layer<const std::uint8_t> cache, float* out) {
  check_fp8_layout(a, cache);
  const auto& values = e4m3_values();
  attend(ctx, b, qkv, a, out, [&](int which, int seq, std::int64_t pos, int kvh, float* decoded) {
    const std::uint8_t* block = fp8_block(b, seq, pos, cache);
    const std::int64_t slot = pos % cache.block_size;
    const std::uint8_t* q = block + cache.value_at(which, kvh, slot);
    float s;
    std::memcpy(&s, block + cache.scale_at(which, kvh, slot), sizeof s);
    for (std::int32_t i = 0; i < cache.head_dim; ++i) decoded[i] = values[q[i]] * s;
    return static_cast<const float*>(decoded);
  });
}

}  // namespace mii::backend

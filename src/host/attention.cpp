// Rotary embeddings, KV-cache writes and attention over the blocked cache, in fp32.
#include <cmath>
#include <limits>
#include <vector>

#include <mii/backend/host/host_backend.hpp>

namespace mii::backend {
namespace {

inline std::int64_t cache_offset(const step_batch& b, int seq, std::int64_t pos, int kv_head, int which,
                                 std::int32_t block_size, std::int32_t kv_heads, std::int32_t head_dim) {
  const std::int32_t block = b.block_tables[std::int64_t(seq) * b.max_blocks_per_seq + pos / block_size];
  const std::int64_t in_block = pos % block_size;
  return ((((std::int64_t(block) * 2 + which) * kv_heads + kv_head) * block_size) + in_block) * head_dim;
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

}  // namespace

template <layers::rotary_style S>
void host::rope_store_kv(context& ctx, const step_batch& b, float* qkv, const attention_shape& a,
                         const rope_table& rope, kv_layer<float> cache) {
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
      for (int h = 0; h < a.kv_heads; ++h) {
        const float* k = row + (a.heads + h) * hd;
        const float* v = row + (a.heads + a.kv_heads + h) * hd;
        float* kd = cache.data + cache_offset(b, seq, pos, h, 0, cache.block_size, cache.kv_heads, cache.head_dim);
        float* vd = cache.data + cache_offset(b, seq, pos, h, 1, cache.block_size, cache.kv_heads, cache.head_dim);
        std::copy(k, k + hd, kd);
        std::copy(v, v + hd, vd);
      }
    }
  });
}
template void host::rope_store_kv<layers::rotary_style::none>(context&, const step_batch&, float*, const attention_shape&,
                                                              const rope_table&, kv_layer<float>);
template void host::rope_store_kv<layers::rotary_style::neox>(context&, const step_batch&, float*, const attention_shape&,
                                                              const rope_table&, kv_layer<float>);
template void host::rope_store_kv<layers::rotary_style::gptj>(context&, const step_batch&, float*, const attention_shape&,
                                                              const rope_table&, kv_layer<float>);

void host::attention(context& ctx, const step_batch& b, const float* qkv, const attention_shape& a,
                     kv_layer<const float> cache, float* out) {
  const std::int64_t hd = a.head_dim, stride = std::int64_t(a.heads + 2 * a.kv_heads) * hd;
  const int group = a.heads / a.kv_heads;
  ctx.parallel_for(std::int64_t(b.n_tokens) * a.heads, [&](std::int64_t begin, std::int64_t end) {
    std::vector<float> scores;
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
        const float* k = cache.data + cache_offset(b, seq, j, kvh, 0, cache.block_size, cache.kv_heads, cache.head_dim);
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
        const float* v = cache.data + cache_offset(b, seq, j, kvh, 1, cache.block_size, cache.kv_heads, cache.head_dim);
        const double p = scores[std::size_t(j - lo)];
        for (std::int64_t i = 0; i < hd; ++i) acc[std::size_t(i)] += p * v[i];
      }
      float* o = out + t * std::int64_t(a.heads) * hd + h * hd;
      for (std::int64_t i = 0; i < hd; ++i) o[i] = float(acc[std::size_t(i)] / sum);
    }
  });
}

}  // namespace mii::backend

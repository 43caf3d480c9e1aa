// cuda<DType>::rope_store_kv: rotary embedding of the q and k heads (in place in the qkv rows)
// fused with the write of k and v into the blocked KV cache, one launch per layer.
//
// One CTA per token. The token's cos/sin pairs (angle = position * inv_freq in fp32, times the
// rope row's scale) are computed once into shared memory and shared by all its heads; the row,
// or for dynamic NTK the frequencies themselves, follow from the token's forward length
// (backend/rope_table.hpp), computed here from the step's per-sequence rope_len. Threads
// then take "units" of work: a rotated slice of a q or k head (neox: V elements of the first
// half and their V partners rot_dim/2 further; gptj: V elements = V/2 adjacent pairs), a
// pass-through slice of a k head (dims rot_dim..head_dim, copied to the cache), or a slice of a
// v head (copied to the cache). V = 8 (16-byte loads and stores) when head_dim, rot_dim and the
// pointers allow; otherwise a scalar variant takes any even rot_dim and any head_dim.
#include <cmath>
#include <cstdint>

#include "common.cuh"
#include "cuda/check.hpp"
#include "cuda/context_state.hpp"

namespace mii::kernels::rope {
namespace {

using layers::rotary_style;

struct rope_kv_params {
  void* qkv = nullptr;
  void* cache = nullptr;
  const std::int32_t* positions = nullptr;
  const std::int32_t* token_seq = nullptr;
  const std::int32_t* block_tables = nullptr;
  const std::int32_t* seq_rope_len = nullptr;  // may be null: each token's own length
  backend::rope_table rope;                    // inv_freq and scale are device pointers
  std::int32_t heads = 0, kv_heads = 0, head_dim = 0, rot_dim = 0;
  std::int32_t qkv_stride = 0;
  std::int32_t max_blocks_per_seq = 0;
  std::int32_t block_size = 0, block_size_log2 = 0;
  std::int64_t block_stride = 0, value_offset = 0;
};

constexpr int rope_threads = 128;

// V consecutive 16-bit elements <-> floats; V = 8 is one 16-byte access.
template <class T, int V>
__device__ __forceinline__ void load_vec(const T* src, float (&f)[V]) {
  if constexpr (V == 8) {
    const uint4 raw = *reinterpret_cast<const uint4*>(src);
    const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int i = 0; i < 8; ++i) f[i] = to_f32(e[i]);
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) f[i] = to_f32(src[i]);
  }
}
template <class T, int V>
__device__ __forceinline__ void store_vec(T* dst, const float (&f)[V]) {
  if constexpr (V == 8) {
    uint4 raw;
    T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
    for (int i = 0; i < 8; ++i) e[i] = from_f32<T>(f[i]);
    *reinterpret_cast<uint4*>(dst) = raw;
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) dst[i] = from_f32<T>(f[i]);
  }
}
template <class T, int V>
__device__ __forceinline__ void copy_vec(T* dst, const T* src) {
  if constexpr (V == 8) {
    *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) dst[i] = src[i];
  }
}

template <class T, rotary_style S, int V>
__global__ void __launch_bounds__(rope_threads) rope_store_kv_kernel(const rope_kv_params p) {
  extern __shared__ float2 cos_sin[];  // [rot_dim / 2]
  const int token = blockIdx.x;
  const int seq = p.token_seq[token];
  const int pos = p.positions[token];
  const int hd = p.head_dim;
  const int rot = S == rotary_style::none ? 0 : p.rot_dim;
  const int half = rot / 2;

  if constexpr (S != rotary_style::none) {
    // The token's forward length picks the row (longrope) or grows the base (dynamic NTK).
    const std::int32_t len = backend::rope_forward_length(p.seq_rope_len ? p.seq_rope_len[seq] : 0, pos);
    const int r = backend::rope_row(p.rope, len);
    const float* const freq = p.rope.inv_freq + std::int64_t(r) * half;
    const float sc = p.rope.scale ? p.rope.scale[r] : 1.f;
    const bool grown = backend::rope_grows_base(p.rope, len);
    const double base = grown ? backend::dynamic_ntk_base(p.rope, len) : 0.0;
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
      const float f = grown ? backend::rope_inv_freq(base, i, rot) : freq[i];
      float sn, cn;
      sincosf(float(pos) * f, &sn, &cn);  // full-range accurate: angles reach 1e5 rad and beyond
      cos_sin[i] = make_float2(cn * sc, sn * sc);
    }
    __syncthreads();
  }

  T* const row = static_cast<T*>(p.qkv) + std::int64_t(token) * p.qkv_stride;
  const std::int64_t block = p.block_tables[std::int64_t(seq) * p.max_blocks_per_seq + (pos >> p.block_size_log2)];
  T* const k_cache = static_cast<T*>(p.cache) + block * p.block_stride + std::int64_t(pos & (p.block_size - 1)) * hd;
  const std::int64_t head_stride = std::int64_t(p.block_size) * hd;  // between kv heads in a block

  // Elements one rotated unit covers in the first half (neox) or in total (gptj).
  constexpr int gptj_elems = V == 1 ? 2 : V;
  const int rot_units = S == rotary_style::none ? 0 : (S == rotary_style::neox ? half / V : rot / gptj_elems);
  const int pass_units = (hd - rot) / V;
  const int q_units = p.heads * rot_units;
  const int k_units = p.kv_heads * (rot_units + pass_units);
  const int v_units = p.kv_heads * (hd / V);
  const int total = q_units + k_units + v_units;

  for (int u = threadIdx.x; u < total; u += blockDim.x) {
    if (u < q_units + k_units) {
      // q head h (h < heads) or k head h - heads.
      int h = 0, k = 0;
      if constexpr (S != rotary_style::none) {
        if (u < q_units) h = u / rot_units, k = u % rot_units;
      }
      if (u >= q_units) {
        const int w = u - q_units;
        h = p.heads + w / (rot_units + pass_units), k = w % (rot_units + pass_units);
      }
      T* const head = row + h * hd;
      T* const cache_head = h >= p.heads ? k_cache + (h - p.heads) * head_stride : nullptr;
      if (k < rot_units) {
        if constexpr (S == rotary_style::neox) {
          const int i0 = k * V;
          float a[V], b[V];
          load_vec<T, V>(head + i0, a);
          load_vec<T, V>(head + half + i0, b);
#pragma unroll
          for (int e = 0; e < V; ++e) {
            const float2 c = cos_sin[i0 + e];
            const float x = a[e], y = b[e];
            a[e] = x * c.x - y * c.y;
            b[e] = y * c.x + x * c.y;
          }
          store_vec<T, V>(head + i0, a);
          store_vec<T, V>(head + half + i0, b);
          if (cache_head) {
            store_vec<T, V>(cache_head + i0, a);
            store_vec<T, V>(cache_head + half + i0, b);
          }
        } else if constexpr (S == rotary_style::gptj) {
          const int i0 = k * gptj_elems;
          float a[gptj_elems];
          load_vec<T, gptj_elems>(head + i0, a);
#pragma unroll
          for (int e = 0; e < gptj_elems; e += 2) {
            const float2 c = cos_sin[(i0 + e) / 2];
            const float x = a[e], y = a[e + 1];
            a[e] = x * c.x - y * c.y;
            a[e + 1] = y * c.x + x * c.y;
          }
          store_vec<T, gptj_elems>(head + i0, a);
          if (cache_head) store_vec<T, gptj_elems>(cache_head + i0, a);
        }
      } else {
        const int i0 = rot + (k - rot_units) * V;  // pass-through dims of a k head
        copy_vec<T, V>(cache_head + i0, head + i0);
      }
    } else {
      const int w = u - q_units - k_units;
      const int h = w / (hd / V), i0 = (w % (hd / V)) * V;
      copy_vec<T, V>(k_cache + p.value_offset + h * head_stride + i0, row + (p.heads + p.kv_heads + h) * hd + i0);
    }
  }
}

bool aligned16(const void* ptr) { return (reinterpret_cast<std::uintptr_t>(ptr) & 15u) == 0; }

}  // namespace
}  // namespace mii::kernels::rope

namespace mii::backend {

template <class DType>
template <layers::rotary_style S>
void cuda<DType>::rope_store_kv(context& ctx, const step_batch& b, T* qkv, const attention_shape& a,
                                const rope_table& rope, kv_layer<T> cache) {
  namespace rk = kernels::rope;
  if (b.n_tokens <= 0) return;
  if (a.kv_heads <= 0 || a.heads <= 0 || a.head_dim <= 0)
    fail("cuda rope_store_kv: heads (", a.heads, "), kv_heads (", a.kv_heads, ") and head_dim (", a.head_dim,
         ") must be positive");
  if (cache.head_dim != a.head_dim || cache.kv_heads != a.kv_heads)
    fail("cuda rope_store_kv: KV cache layout (kv_heads ", cache.kv_heads, ", head_dim ", cache.head_dim,
         ") does not match the attention shape (kv_heads ", a.kv_heads, ", head_dim ", a.head_dim, ")");
  if (cache.block_size <= 0 || (cache.block_size & (cache.block_size - 1)) != 0)
    fail("cuda rope_store_kv: KV cache block size must be a power of two, got ", cache.block_size);
  const int rot = S == layers::rotary_style::none ? 0 : rope.rot_dim;
  if (rot < 0 || rot > a.head_dim || rot % 2 != 0)
    fail("cuda rope_store_kv: rotary dims (", rope.rot_dim, ") must be even and at most head_dim (", a.head_dim, ")");
  if (S != layers::rotary_style::none && rot > 0 && !rope.inv_freq)
    fail("cuda rope_store_kv: rotary table has no inverse frequencies");
  if (S != layers::rotary_style::none && rope.rule != rope_length_rule::fixed && rope.original_len <= 0)
    fail("cuda rope_store_kv: a length-dependent rope needs original_len > 0, got ", rope.original_len);
  if (S != layers::rotary_style::none && rope.rule == rope_length_rule::dynamic_ntk && rot <= 2)
    fail("cuda rope_store_kv: dynamic NTK needs rot_dim > 2, got ", rot);

  rk::rope_kv_params p;
  p.qkv = qkv;
  p.cache = cache.data;
  p.positions = b.positions;
  p.token_seq = b.token_seq;
  p.block_tables = b.block_tables;
  p.seq_rope_len = b.seq_rope_len;
  p.rope = rope;
  p.heads = a.heads;
  p.kv_heads = a.kv_heads;
  p.head_dim = a.head_dim;
  p.rot_dim = rot;
  p.qkv_stride = (a.heads + 2 * a.kv_heads) * a.head_dim;
  p.max_blocks_per_seq = b.max_blocks_per_seq;
  p.block_size = cache.block_size;
  int log2 = 0;
  while ((1 << log2) < cache.block_size) ++log2;
  p.block_size_log2 = log2;
  p.block_stride = cache.block_stride();
  p.value_offset = std::int64_t(cache.kv_heads) * cache.block_size * cache.head_dim;

  // 16-byte units need every slice start 8-element aligned: head_dim, rot_dim (gptj) or
  // rot_dim / 2 (neox) multiples of 8, and 16-byte aligned bases.
  const bool vec8 = a.head_dim % 8 == 0 && (S == layers::rotary_style::neox ? (rot / 2) % 8 == 0 : rot % 8 == 0) &&
                    rk::aligned16(qkv) && rk::aligned16(cache.data);
  auto& st = ctx.impl();
  const std::size_t smem = std::size_t(rot / 2) * sizeof(float2);
  using dev_t = kernels::device_t<DType>;
  if (vec8) {
    rk::rope_store_kv_kernel<dev_t, S, 8><<<unsigned(b.n_tokens), rk::rope_threads, smem, st.stream>>>(p);
  } else {
    rk::rope_store_kv_kernel<dev_t, S, 1><<<unsigned(b.n_tokens), rk::rope_threads, smem, st.stream>>>(p);
  }
  MII_CUDA_CHECK_LAUNCH();
}

#define MII_INSTANTIATE_ROPE_KV(DT, STYLE)                                                                      \
  template void cuda<DT>::rope_store_kv<layers::rotary_style::STYLE>(cuda<DT>::context&, const step_batch&, DT*, \
                                                                     const attention_shape&, const rope_table&,  \
                                                                     kv_layer<DT>);
MII_INSTANTIATE_ROPE_KV(bf16_t, none)
MII_INSTANTIATE_ROPE_KV(bf16_t, neox)
MII_INSTANTIATE_ROPE_KV(bf16_t, gptj)
MII_INSTANTIATE_ROPE_KV(fp16_t, none)
MII_INSTANTIATE_ROPE_KV(fp16_t, neox)
MII_INSTANTIATE_ROPE_KV(fp16_t, gptj)
#undef MII_INSTANTIATE_ROPE_KV

}  // namespace mii::backend

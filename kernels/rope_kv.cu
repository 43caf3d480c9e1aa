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
//
// Over an FP8 cache (backend/kv_fp8.hpp) the units only rotate q and k in the qkv row; after a
// barrier one warp per (keys or values, kv head) vector reads it back from the row (rotated and
// already rounded to T, as the bf16 cache would store it), takes its max |x| with warp shuffles
// and stores the vector's scale and e4m3 bytes into the token's cache slot.
#include <cmath>
#include <cstdint>

#include "common.cuh"
#include "cuda/check.hpp"
#include "cuda/context_state.hpp"
#include "fp8_convert.cuh"

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
  // Elements per cache block and from a block's keys to its values (bytes for an FP8 cache).
  std::int64_t block_stride = 0, value_offset = 0;
  std::int64_t scale_offset = 0;  // FP8 cache: bytes from a block's start to its fp32 scales
  float k_scale = 0.f, v_scale = 0.f;  // FP8 cache: static scales of keys and values (0: per vector)
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

// x clamped to e4m3's range when `saturate` (NaN stays NaN, as std::clamp leaves it on the host).
__device__ __forceinline__ float saturating(float x, bool saturate) {
  return saturate && !isnan(x) ? fminf(fmaxf(x, -448.f), 448.f) : x;
}

// Quantizes the token's keys and values (rotated, in its qkv row) into an FP8 cache slot:
// one warp per vector, V elements per lane access (8: 16-byte loads, 8-byte stores).
template <class T, int V>
__device__ void quantize_token_kv(const rope_kv_params& p, const T* row, std::int64_t block, int slot) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int hd = p.head_dim;
  std::uint8_t* const block_base = static_cast<std::uint8_t*>(p.cache) + block * p.block_stride;
  float* const scales = reinterpret_cast<float*>(block_base + p.scale_offset);
  for (int vec = warp; vec < 2 * p.kv_heads; vec += rope_threads / 32) {
    const int which = vec / p.kv_heads, head = vec % p.kv_heads;  // which: 0 keys, 1 values
    const T* const src = row + (p.heads + vec) * hd;  // k heads then v heads, as in the row
    // Index of the vector among the block's [2][kv_heads][block_size] (kv_fp8.hpp).
    const std::int64_t at = (std::int64_t(which) * p.kv_heads + head) * p.block_size + slot;
    std::uint8_t* const dst = block_base + at * hd;
    // A checkpoint's static scale (kv_fp8.hpp): values beyond e4m3's range saturate.
    const float fixed = which ? p.v_scale : p.k_scale;
    float s = fixed;
    if (fixed <= 0.f) {
      float amax = 0.f;
      for (int i = lane * V; i < hd; i += 32 * V) {
        float f[V];
        load_vec<T, V>(src + i, f);
#pragma unroll
        for (int e = 0; e < V; ++e) amax = fmaxf(amax, fabsf(f[e]));
      }
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
      s = fp8_scale(amax);
    }
    const bool saturate = fixed > 0.f;  // (a dynamic scale never lets a value exceed 448)
    if (lane == 0) scales[at] = s;
    for (int i = lane * V; i < hd; i += 32 * V) {  // the second read of the row hits L1
      float f[V];
      load_vec<T, V>(src + i, f);
      if constexpr (V == 8) {
        uint2 bytes;
        auto* b = reinterpret_cast<std::uint8_t*>(&bytes);
#pragma unroll
        for (int e = 0; e < 8; ++e) b[e] = e4m3(saturating(__fdiv_rn(f[e], s), saturate));
        *reinterpret_cast<uint2*>(dst + i) = bytes;
      } else {
#pragma unroll
        for (int e = 0; e < V; ++e) dst[i + e] = e4m3(saturating(__fdiv_rn(f[e], s), saturate));
      }
    }
  }
}

// KV_FP8: the cache is an FP8 one (see the top of the file); otherwise it has T elements.
template <class T, rotary_style S, int V, bool KV_FP8>
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
  const int slot = pos & (p.block_size - 1);
  // The units write the cache only when it holds T elements.
  T* const k_cache = KV_FP8 ? nullptr : static_cast<T*>(p.cache) + block * p.block_stride + std::int64_t(slot) * hd;
  const std::int64_t head_stride = std::int64_t(p.block_size) * hd;  // between kv heads in a block

  // Elements one rotated unit covers in the first half (neox) or in total (gptj).
  constexpr int gptj_elems = V == 1 ? 2 : V;
  const int rot_units = S == rotary_style::none ? 0 : (S == rotary_style::neox ? half / V : rot / gptj_elems);
  const int pass_units = KV_FP8 ? 0 : (hd - rot) / V;
  // Units per k head; an FP8 cache without rotary has no k units at all (1: no constant 0 divisor).
  const int k_head_units = KV_FP8 && S == rotary_style::none ? 1 : rot_units + pass_units;
  const int q_units = p.heads * rot_units;
  const int k_units = KV_FP8 && S == rotary_style::none ? 0 : p.kv_heads * k_head_units;
  const int v_units = KV_FP8 ? 0 : p.kv_heads * (hd / V);
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
        h = p.heads + w / k_head_units, k = w % k_head_units;
      }
      T* const head = row + h * hd;
      T* const cache_head = !KV_FP8 && h >= p.heads ? k_cache + (h - p.heads) * head_stride : nullptr;
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
  if constexpr (KV_FP8) {
    __syncthreads();  // the rotated k heads are in the row (global writes of this block: visible now)
    quantize_token_kv<T, V>(p, row, block, slot);
  }
}

bool aligned16(const void* ptr) { return (reinterpret_cast<std::uintptr_t>(ptr) & 15u) == 0; }

// Checks what both cache kinds share and fills the parameters but the cache's own offsets.
template <rotary_style S>
rope_kv_params common_params(const backend::step_batch& b, void* qkv, const backend::attention_shape& a,
                             const backend::rope_table& rope, void* cache, int cache_kv_heads, int cache_head_dim,
                             int block_size) {
  if (a.kv_heads <= 0 || a.heads <= 0 || a.head_dim <= 0)
    fail("cuda rope_store_kv: heads (", a.heads, "), kv_heads (", a.kv_heads, ") and head_dim (", a.head_dim,
         ") must be positive");
  if (cache_head_dim != a.head_dim || cache_kv_heads != a.kv_heads)
    fail("cuda rope_store_kv: KV cache layout (kv_heads ", cache_kv_heads, ", head_dim ", cache_head_dim,
         ") does not match the attention shape (kv_heads ", a.kv_heads, ", head_dim ", a.head_dim, ")");
  if (block_size <= 0 || (block_size & (block_size - 1)) != 0)
    fail("cuda rope_store_kv: KV cache block size must be a power of two, got ", block_size);
  const int rot = S == rotary_style::none ? 0 : rope.rot_dim;
  if (rot < 0 || rot > a.head_dim || rot % 2 != 0)
    fail("cuda rope_store_kv: rotary dims (", rope.rot_dim, ") must be even and at most head_dim (", a.head_dim, ")");
  if (S != rotary_style::none && rot > 0 && !rope.inv_freq)
    fail("cuda rope_store_kv: rotary table has no inverse frequencies");
  if (S != rotary_style::none && rope.rule != backend::rope_length_rule::fixed && rope.original_len <= 0)
    fail("cuda rope_store_kv: a length-dependent rope needs original_len > 0, got ", rope.original_len);
  if (S != rotary_style::none && rope.rule == backend::rope_length_rule::dynamic_ntk && rot <= 2)
    fail("cuda rope_store_kv: dynamic NTK needs rot_dim > 2, got ", rot);

  rope_kv_params p;
  p.qkv = qkv;
  p.cache = cache;
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
  p.block_size = block_size;
  int log2 = 0;
  while ((1 << log2) < block_size) ++log2;
  p.block_size_log2 = log2;
  return p;
}

// One CTA per token; 16-byte units need every slice start 8-element aligned: head_dim, rot_dim
// (gptj) or rot_dim / 2 (neox) multiples of 8, and 16-byte aligned bases (an FP8 cache's
// vectors then start 8-byte aligned: its block stride is a multiple of 8).
template <class T, rotary_style S, bool KV_FP8>
void launch(const rope_kv_params& p, std::int32_t n_tokens, cudaStream_t stream) {
  const int rot = p.rot_dim;
  const bool vec8 = p.head_dim % 8 == 0 && (S == rotary_style::neox ? (rot / 2) % 8 == 0 : rot % 8 == 0) &&
                    aligned16(p.qkv) && aligned16(p.cache);
  const std::size_t smem = std::size_t(rot / 2) * sizeof(float2);
  if (vec8) {
    rope_store_kv_kernel<T, S, 8, KV_FP8><<<unsigned(n_tokens), rope_threads, smem, stream>>>(p);
  } else {
    rope_store_kv_kernel<T, S, 1, KV_FP8><<<unsigned(n_tokens), rope_threads, smem, stream>>>(p);
  }
  MII_CUDA_CHECK_LAUNCH();
}

}  // namespace
}  // namespace mii::kernels::rope

namespace mii::backend {

template <class DType>
template <layers::rotary_style S>
void cuda<DType>::rope_store_kv(context& ctx, const step_batch& b, T* qkv, const attention_shape& a,
                                const rope_table& rope, kv_layer<T> cache) {
  namespace rk = kernels::rope;
  if (b.n_tokens <= 0) return;
  rk::rope_kv_params p =
      rk::common_params<S>(b, qkv, a, rope, cache.data, cache.kv_heads, cache.head_dim, cache.block_size);
  p.block_stride = cache.block_stride();
  p.value_offset = std::int64_t(cache.kv_heads) * cache.block_size * cache.head_dim;
  rk::launch<kernels::device_t<DType>, S, false>(p, b.n_tokens, ctx.impl().stream);
}

template <class DType>
template <layers::rotary_style S>
void cuda<DType>::rope_store_kv(context& ctx, const step_batch& b, T* qkv, const attention_shape& a,
                                const rope_table& rope, fp8_kv_layer<std::uint8_t> cache) {
  namespace rk = kernels::rope;
  if (b.n_tokens <= 0) return;
  rk::rope_kv_params p =
      rk::common_params<S>(b, qkv, a, rope, cache.data, cache.kv_heads, cache.head_dim, cache.block_size);
  // The fp32 scales are stored with plain 4-byte stores.
  if (cache.block_stride() % 4 != 0 || reinterpret_cast<std::uintptr_t>(cache.data) % 4 != 0)
    fail("cuda rope_store_kv: an FP8 KV cache needs 4-byte aligned scales (head_dim ", cache.head_dim,
         ", block size ", cache.block_size, ", kv heads ", cache.kv_heads, ")");
  p.block_stride = cache.block_stride();
  p.value_offset = cache.value_at(1, 0, 0);
  p.scale_offset = cache.scale_offset();
  p.k_scale = cache.k_scale;
  p.v_scale = cache.v_scale;
  rk::launch<kernels::device_t<DType>, S, true>(p, b.n_tokens, ctx.impl().stream);
}

#define MII_INSTANTIATE_ROPE_KV(DT, STYLE)                                                                       \
  template void cuda<DT>::rope_store_kv<layers::rotary_style::STYLE>(cuda<DT>::context&, const step_batch&, DT*,  \
                                                                     const attention_shape&, const rope_table&,   \
                                                                     kv_layer<DT>);                               \
  template void cuda<DT>::rope_store_kv<layers::rotary_style::STYLE>(cuda<DT>::context&, const step_batch&, DT*,  \
                                                                     const attention_shape&, const rope_table&,   \
                                                                     fp8_kv_layer<std::uint8_t>);
MII_INSTANTIATE_ROPE_KV(bf16_t, none)
MII_INSTANTIATE_ROPE_KV(bf16_t, neox)
MII_INSTANTIATE_ROPE_KV(bf16_t, gptj)
MII_INSTANTIATE_ROPE_KV(fp16_t, none)
MII_INSTANTIATE_ROPE_KV(fp16_t, neox)
MII_INSTANTIATE_ROPE_KV(fp16_t, gptj)
#undef MII_INSTANTIATE_ROPE_KV

}  // namespace mii::backend

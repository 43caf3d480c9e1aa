// cuda<DType>::attention: plans one step's attention (which kernel, how many key splits) from
// the host-side scalars of the step, then launches the tensor-core kernel
// (attention_flash.cuh, per head_dim in attention_hd<D>.cu) and, when the key range was split,
// the combine kernel. Head dims without a tensor-core instantiation run a generic fallback.
// Nothing here reads device memory, synchronizes or (inside graph capture) allocates. A cache
// of the compute dtype and an FP8 one (backend/kv_fp8.hpp) take the same plan; only the kernels
// instantiated for it differ.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "attention.cuh"
#include "common.cuh"
#include "pdl.cuh"
#include "cuda/check.hpp"
#include "cuda/context_state.hpp"
#include "dispatch.cuh"
#include "fp8_convert.cuh"

namespace mii::kernels::attn {
namespace {

constexpr int fallback_warps = 4;
constexpr int fallback_max_dims_per_lane = 8;  // head_dim <= 256
constexpr int combine_warps = 4;
constexpr int max_splits = 64;

// How the fallback kernel reads a cache: a vector (one token's keys or values of one kv head) is
// located once, shuffled between lanes as a whole, and read element by element as floats.
template <class T>
struct compute_dtype_cache {  // [block][2][kv_heads][block_size][head_dim] elements of T
  struct vector_ref {
    std::int64_t offset;
  };
  __device__ static vector_ref locate(const attention_params& p, std::int64_t block, int which, int kv_head, int slot) {
    return {block * p.block_stride + which * p.value_offset + (std::int64_t(kv_head) * p.block_size + slot) * p.head_dim};
  }
  __device__ static float at(const attention_params& p, const vector_ref& v, int d) {
    return to_f32(static_cast<const T*>(p.cache)[v.offset + d]);
  }
  __device__ static vector_ref shuffle(const vector_ref& v, int lane) {
    return {__shfl_sync(0xffffffffu, v.offset, lane)};
  }
};
struct fp8_cache {  // e4m3 bytes in that layout, then fp32 scales [2][kv_heads][block_size] per block
  struct vector_ref {
    std::int64_t offset;
    float scale;
  };
  __device__ static vector_ref locate(const attention_params& p, std::int64_t block, int which, int kv_head, int slot) {
    const std::int64_t vector = (std::int64_t(which) * p.kv_heads + kv_head) * p.block_size + slot;
    const std::int64_t base = block * p.block_stride;
    const auto* scales = reinterpret_cast<const float*>(static_cast<const std::uint8_t*>(p.cache) + base + p.scale_offset);
    return {base + vector * p.head_dim, __ldg(scales + vector)};
  }
  __device__ static float at(const attention_params& p, const vector_ref& v, int d) {
    return e4m3_to_float(static_cast<const std::uint8_t*>(p.cache)[v.offset + d]) * v.scale;
  }
  __device__ static vector_ref shuffle(const vector_ref& v, int lane) {
    return {__shfl_sync(0xffffffffu, v.offset, lane), __shfl_sync(0xffffffffu, v.scale, lane)};
  }
};

// Generic attention for any head_dim <= 256: one warp per (token, query head), fp32 math.
// Scores of 32 keys at a time (one key per lane), online softmax over chunks, and P V with the
// lanes owning dims lane, lane+32, ... so value rows are read coalesced. Cache: one of the
// readers above.
template <class T, class Cache>
__global__ void __launch_bounds__(fallback_warps * 32) attention_fallback_kernel(const attention_params p) {
  // The output projection's GEMV may start streaming its weights now (kernels/pdl.cuh).
  let_dependents_launch();
  extern __shared__ float q_smem[];  // [fallback_warps][head_dim], pre-scaled into the exp2 domain
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const std::int64_t row = std::int64_t(blockIdx.x) * fallback_warps + warp;
  if (row >= std::int64_t(p.n_tokens) * p.heads) return;
  const int token = int(row / p.heads), head = int(row % p.heads);
  const int kv_head = head / p.group;
  const int hd = p.head_dim;
  const int seq = p.token_seq[token];
  const int pos = p.positions[token];

  const T* const qkv = static_cast<const T*>(p.qkv);
  float* const q = q_smem + warp * hd;
  // Pre-scaled so that a dot product is the exponent (plain) or the tanh argument (soft-capped).
  const float q_scale = p.softcap > 0.f ? p.softcap_in : p.scale_log2;
  for (int d = lane; d < hd; d += 32) q[d] = to_f32(qkv[std::int64_t(token) * p.qkv_stride + head * hd + d]) * q_scale;
  __syncwarp();

  const std::int32_t* const table = p.block_tables + std::int64_t(seq) * p.max_blocks_per_seq;
  const int lo = p.window > 0 ? max(0, pos - p.window + 1) : 0;
  float m = -INFINITY, l = 0.f;
  float acc[fallback_max_dims_per_lane] = {};
  for (int j0 = lo; j0 <= pos; j0 += 32) {
    const int j = j0 + lane;
    float s = -INFINITY;
    typename Cache::vector_ref value{};  // of this lane's key, for the P V loop below
    if (j <= pos) {
      const std::int64_t block = table[j >> p.block_size_log2];
      const int slot = j & (p.block_size - 1);
      const typename Cache::vector_ref key = Cache::locate(p, block, 0, kv_head, slot);
      value = Cache::locate(p, block, 1, kv_head, slot);
      float dot = 0.f;
      for (int d = 0; d < hd; ++d) dot = fmaf(q[d], Cache::at(p, key, d), dot);
      s = p.softcap > 0.f ? p.softcap_log2 * tanhf(dot) : dot;
    }
    float chunk_max = s;
    for (int o = 16; o > 0; o >>= 1) chunk_max = fmaxf(chunk_max, __shfl_xor_sync(0xffffffffu, chunk_max, o));
    const float m_new = fmaxf(m, chunk_max);  // finite: key j0 is visible
    const float alpha = exp2f(m - m_new);
    const float pj = exp2f(s - m_new);
    float chunk_sum = pj;
    for (int o = 16; o > 0; o >>= 1) chunk_sum += __shfl_xor_sync(0xffffffffu, chunk_sum, o);
    l = l * alpha + chunk_sum;
    m = m_new;
#pragma unroll
    for (int i = 0; i < fallback_max_dims_per_lane; ++i) acc[i] *= alpha;
    const int n_keys = min(32, pos - j0 + 1);
    for (int jj = 0; jj < n_keys; ++jj) {
      const float pk = __shfl_sync(0xffffffffu, pj, jj);
      const typename Cache::vector_ref v = Cache::shuffle(value, jj);
#pragma unroll
      for (int i = 0; i < fallback_max_dims_per_lane; ++i) {
        const int d = lane + 32 * i;
        if (d < hd) acc[i] = fmaf(pk, Cache::at(p, v, d), acc[i]);
      }
    }
  }
  T* const out = static_cast<T*>(p.out) + row * hd;
  const float inv = l > 0.f ? 1.f / l : 0.f;
#pragma unroll
  for (int i = 0; i < fallback_max_dims_per_lane; ++i) {
    const int d = lane + 32 * i;
    if (d < hd) out[d] = from_f32<T>(acc[i] * inv);
  }
}

// Merges the split-KV partials of each (token, head) row: weights 2^(lse_s - max lse), one warp
// per row, four dims per lane per step (head_dim % 4 == 0 on the tensor-core path).
template <class T>
__global__ void __launch_bounds__(combine_warps * 32) attention_combine_kernel(const attention_params p) {
  // The output projection's GEMV may start streaming its weights now (kernels/pdl.cuh).
  let_dependents_launch();
  __shared__ float weights[combine_warps][max_splits];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const std::int64_t n_rows = std::int64_t(p.n_tokens) * p.heads;
  const std::int64_t row = std::int64_t(blockIdx.x) * combine_warps + warp;
  if (row >= n_rows) return;
  const int n_splits = p.n_splits;
  float mx = -INFINITY;
  for (int s = lane; s < n_splits; s += 32) mx = fmaxf(mx, p.partial_lse[s * n_rows + row]);
  for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  const float base = mx == -INFINITY ? 0.f : mx;
  float total = 0.f;
  for (int s = lane; s < n_splits; s += 32) {
    const float w = exp2f(p.partial_lse[s * n_rows + row] - base);
    weights[warp][s] = w;
    total += w;
  }
  for (int o = 16; o > 0; o >>= 1) total += __shfl_xor_sync(0xffffffffu, total, o);
  __syncwarp();
  const float inv = total > 0.f ? 1.f / total : 0.f;
  const int hd = p.head_dim;
  T* const out = static_cast<T*>(p.out) + row * hd;
  for (int d = lane * 4; d < hd; d += 128) {
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    for (int s = 0; s < n_splits; ++s) {
      const float w = weights[warp][s];
      if (w == 0.f) continue;  // empty slice: its partial row is zeros anyway
      const float4 v = *reinterpret_cast<const float4*>(p.partial_out + (s * n_rows + row) * hd + d);
      acc.x = fmaf(w, v.x, acc.x);
      acc.y = fmaf(w, v.y, acc.y);
      acc.z = fmaf(w, v.z, acc.z);
      acc.w = fmaf(w, v.w, acc.w);
    }
    out[d] = from_f32<T>(acc.x * inv);
    out[d + 1] = from_f32<T>(acc.y * inv);
    out[d + 2] = from_f32<T>(acc.z * inv);
    out[d + 3] = from_f32<T>(acc.w * inv);
  }
}

int log2_exact(std::int32_t v) {
  int l = 0;
  while ((std::int32_t(1) << l) < v) ++l;
  return l;
}

bool aligned_to(const void* ptr, std::uintptr_t bytes) { return (reinterpret_cast<std::uintptr_t>(ptr) % bytes) == 0; }

// How many slices to cut each query tile's key range into. Splitting pays when the step has
// too few (query tile, kv head) work items to occupy the SMs and the contexts are long enough
// that each slice still streams a couple of key tiles (flash-decoding).
int plan_splits(std::int64_t busy_ctas, std::int64_t max_kv_len, int block_n, int sm_count) {
  if (busy_ctas <= 0 || busy_ctas >= sm_count) return 1;
  const std::int64_t target_ctas = 2 * std::int64_t(sm_count);
  const std::int64_t by_occupancy = (target_ctas + busy_ctas - 1) / busy_ctas;
  const std::int64_t by_length = (max_kv_len + 2 * block_n - 1) / (2 * block_n);  // >= 2 tiles per slice
  const std::int64_t splits = std::min<std::int64_t>({by_occupancy, by_length, max_splits});
  return splits < 2 ? 1 : int(splits);
}

// What the plan needs to know of a cache, whichever its kind (offsets in its own units:
// elements of the compute dtype, or bytes of an FP8 cache).
struct cache_geometry {
  const void* data = nullptr;
  std::int32_t block_size = 0, kv_heads = 0, head_dim = 0;
  std::int64_t block_stride = 0, value_offset = 0, scale_offset = 0;
  bool fp8 = false;
};

// The op for either cache kind: checks, plan, launches.
template <class DType>
void attend(backend::cuda_context_state& st, const backend::step_batch& b, const void* qkv,
            const backend::attention_shape& a, const cache_geometry& cache, void* out) {
  using T = device_t<DType>;
  if (b.n_tokens <= 0) return;
  if (a.heads <= 0 || a.kv_heads <= 0 || a.heads % a.kv_heads != 0)
    fail("cuda attention: query heads (", a.heads, ") must be a positive multiple of kv heads (", a.kv_heads, ")");
  if (cache.head_dim != a.head_dim || cache.kv_heads != a.kv_heads)
    fail("cuda attention: KV cache layout (kv_heads ", cache.kv_heads, ", head_dim ", cache.head_dim,
         ") does not match the attention shape (kv_heads ", a.kv_heads, ", head_dim ", a.head_dim, ")");
  if (cache.block_size <= 0 || (cache.block_size & (cache.block_size - 1)) != 0)
    fail("cuda attention: KV cache block size must be a power of two, got ", cache.block_size);
  if (a.head_dim <= 0 || a.head_dim > fallback_max_dims_per_lane * 32)
    fail("cuda attention: head_dim ", a.head_dim, " is not supported (at most ", fallback_max_dims_per_lane * 32, ")");
  if (a.window < 0) fail("cuda attention: sliding window must be >= 0, got ", a.window);
  if (!(a.softcap >= 0.f) || !std::isfinite(a.softcap))
    fail("cuda attention: soft-cap must be a finite number >= 0, got ", a.softcap);
  // The fp32 scales are read with plain 4-byte loads.
  if (cache.fp8 && (cache.block_stride % 4 != 0 || !aligned_to(cache.data, 4)))
    fail("cuda attention: an FP8 KV cache needs 4-byte aligned scales (head_dim ", cache.head_dim, ", block size ",
         cache.block_size, ", kv heads ", cache.kv_heads, ")");

  attention_params p;
  p.qkv = qkv;
  p.out = out;
  p.cache = cache.data;
  p.seq_start = b.seq_start;
  p.seq_kv_len = b.seq_kv_len;
  p.block_tables = b.block_tables;
  p.positions = b.positions;
  p.token_seq = b.token_seq;
  p.n_seqs = b.n_seqs;
  p.n_tokens = b.n_tokens;
  p.max_blocks_per_seq = b.max_blocks_per_seq;
  p.heads = a.heads;
  p.kv_heads = a.kv_heads;
  p.group = a.heads / a.kv_heads;
  p.head_dim = a.head_dim;
  p.qkv_stride = (a.heads + 2 * a.kv_heads) * a.head_dim;
  p.block_size = cache.block_size;
  p.block_size_log2 = log2_exact(cache.block_size);
  p.block_stride = cache.block_stride;
  p.value_offset = cache.value_offset;
  p.scale_offset = cache.scale_offset;
  p.window = a.window;
  p.scale_log2 = a.scale * 1.4426950408889634f;
  if (a.softcap > 0.f) {
    p.softcap = a.softcap;
    p.softcap_in = a.scale / a.softcap;
    p.softcap_log2 = a.softcap * 1.4426950408889634f;
  }

  // 16-byte copies of keys and values: an FP8 cache's blocks must keep its base's alignment.
  const bool tensor_core_ok = aligned_to(qkv, 16) && aligned_to(cache.data, 16) && aligned_to(out, 4) &&
                              (!cache.fp8 || cache.block_stride % 16 == 0);
  auto run = [&](auto dim, auto variant) {
    constexpr int D = decltype(dim)::value;
    using Variant = decltype(variant);
    const bool decode = std::int64_t(b.max_new_tokens) * p.group <= decode_shape.block_m();
    const tile_shape shape = decode ? decode_shape : prefill_shape(D);
    const int block_m = shape.block_m(), block_n = shape.block_n;
    int sm_count = 0;
    MII_CUDA_CHECK(cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount, st.device));
    // CTAs with work: every sequence has at least one tile; rows beyond that fill whole tiles.
    const std::int64_t tiles = std::max<std::int64_t>(b.n_seqs, (std::int64_t(b.n_tokens) * p.group + block_m - 1) / block_m);
    // Split-KV scratch grows only outside graph capture (cudaMalloc cannot be captured). Every
    // reservation covers at least the decode bound (splits * busy CTAs < 3 * SMs, 16 rows each,
    // see plan_splits), and the first uncaptured call reserves it, so decode steps captured
    // later never need more; a step that would need more during capture runs unsplit.
    const std::int64_t decode_bound = std::int64_t(4) * sm_count * decode_shape.block_m() * (D + 1);
    // Decode steps (the ones replayed from CUDA graphs) have a buffer of their own that never
    // moves once reserved; prefill steps may grow theirs without invalidating any graph.
    auto& partials = decode ? st.attention_partials_decode : st.attention_partials;
    auto reserve_partials = [&](std::int64_t need) {
      if (partials.size() >= need) return true;
      cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
      MII_CUDA_CHECK(cudaStreamIsCapturing(st.stream, &capture));
      if (capture != cudaStreamCaptureStatusNone) return false;
      if (!partials.empty()) MII_CUDA_CHECK(cudaStreamSynchronize(st.stream));  // old block idle
      partials = backend::cuda_detail::device_buffer<float>(std::max(need, decode_bound));
      return true;
    };
    if (decode) reserve_partials(decode_bound);
    const int splits = plan_splits(tiles * p.kv_heads, b.max_kv_len, block_n, sm_count);
    if (splits > 1) {
      // Partials: [splits][n_tokens][heads] rows of head_dim outputs plus one lse each.
      const std::int64_t rows = std::int64_t(splits) * b.n_tokens * a.heads;
      if (reserve_partials(rows * (D + 1))) {
        p.n_splits = splits;
        p.partial_out = partials.data();
        p.partial_lse = p.partial_out + rows * D;
      }
    }
    if (cache.fp8) launch_flash_attention<D, DType, Variant, true>(p, decode, st.device, st.stream);
    else launch_flash_attention<D, DType, Variant, false>(p, decode, st.device, st.stream);
    if (p.n_splits > 1) {
      const unsigned blocks = ceil_div(std::int64_t(b.n_tokens) * a.heads, combine_warps);
      attention_combine_kernel<T><<<blocks, combine_warps * 32, 0, st.stream>>>(p);
      MII_CUDA_CHECK_LAUNCH();
    }
  };
  // The variant (attention.cuh) is chosen here, once: soft-capped scores where config asks for them.
  const bool launched =
      tensor_core_ok && (a.softcap > 0.f ? dispatch_head_dim(a.head_dim, [&](auto dim) { run(dim, soft_capped_scores{}); },
                                                             soft_capped_head_dims{})
                                         : dispatch_head_dim(a.head_dim, [&](auto dim) { run(dim, plain_scores{}); }));
  if (!launched) {
    const unsigned blocks = ceil_div(std::int64_t(b.n_tokens) * a.heads, fallback_warps);
    const std::size_t smem = std::size_t(fallback_warps) * a.head_dim * sizeof(float);
    if (cache.fp8) attention_fallback_kernel<T, fp8_cache><<<blocks, fallback_warps * 32, smem, st.stream>>>(p);
    else attention_fallback_kernel<T, compute_dtype_cache<T>><<<blocks, fallback_warps * 32, smem, st.stream>>>(p);
    MII_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace
}  // namespace mii::kernels::attn

namespace mii::backend {

template <class DType>
void cuda<DType>::attention(context& ctx, const step_batch& b, const T* qkv, const attention_shape& a,
                            kv_layer<const T> cache, T* out) {
  kernels::attn::cache_geometry g;
  g.data = cache.data;
  g.block_size = cache.block_size;
  g.kv_heads = cache.kv_heads;
  g.head_dim = cache.head_dim;
  g.block_stride = cache.block_stride();
  g.value_offset = std::int64_t(cache.kv_heads) * cache.block_size * cache.head_dim;
  kernels::attn::attend<DType>(ctx.impl(), b, qkv, a, g, out);
}

template <class DType>
void cuda<DType>::attention(context& ctx, const step_batch& b, const T* qkv, const attention_shape& a,
                            fp8_kv_layer<const std::uint8_t> cache, T* out) {
  kernels::attn::cache_geometry g;
  g.data = cache.data;
  g.block_size = cache.block_size;
  g.kv_heads = cache.kv_heads;
  g.head_dim = cache.head_dim;
  g.block_stride = cache.block_stride();
  g.value_offset = cache.value_at(1, 0, 0);
  g.scale_offset = cache.scale_offset();
  g.fp8 = true;
  kernels::attn::attend<DType>(ctx.impl(), b, qkv, a, g, out);
}

template void cuda<bf16_t>::attention(cuda<bf16_t>::context&, const step_batch&, const bf16_t*, const attention_shape&,
                                      kv_layer<const bf16_t>, bf16_t*);
template void cuda<fp16_t>::attention(cuda<fp16_t>::context&, const step_batch&, const fp16_t*, const attention_shape&,
                                      kv_layer<const fp16_t>, fp16_t*);
template void cuda<bf16_t>::attention(cuda<bf16_t>::context&, const step_batch&, const bf16_t*, const attention_shape&,
                                      fp8_kv_layer<const std::uint8_t>, bf16_t*);
template void cuda<fp16_t>::attention(cuda<fp16_t>::context&, const step_batch&, const fp16_t*, const attention_shape&,
                                      fp8_kv_layer<const std::uint8_t>, fp16_t*);

}  // namespace mii::backend

// FP8 row quantization (backend/fp8.hpp): linear_fp8's activations per token at run time and
// load_fp8's weights per output row. Each row's bytes and scale must equal the host backend's
// (src/host/fp8.cpp) bit for bit, so every step is the host's fp32 arithmetic: the amax of the
// values as float, s = amax / 448 (1 for an all-zero row) and x / s with IEEE division
// (__fdiv_rn, never a reciprocal multiply), rounded to e4m3 to nearest even by the hardware
// conversion, which matches mii::to_e4m3 for every value |x / s| <= 448 gives (subnormals
// included; saturation never triggers, as |x| <= amax). With a static input scale (backend/fp8.hpp)
// s is that value and x / s saturates at +-448, as the host clamps.
//
// Block-wise weights quantize each row per group of C columns instead (quantize_fp8_groups):
// one warp per (row, group), since a group is short (128 values: 16 vectors of 8) and a whole
// block per group would leave most of its threads idle; the arithmetic is the same.
#include <cuda_fp8.h>

#include <cstdint>

#include "common.cuh"
#include "cuda/check.hpp"
#include "cuda/context_state.hpp"
#include "fp8.cuh"
#include "pdl.cuh"
#include "fp8_convert.cuh"

namespace mii::kernels {
namespace {

constexpr int quantize_max_threads = 1024;

// V values of a 16-byte vector as floats (V = 8 for 16-bit types, 4 for float).
template <class In>
struct vec_traits {
  static constexpr int V = 8;
  using bytes = uint2;  // V e4m3 codes
  __device__ static void load(const In* p, float (&f)[V]) { unpack8<In>(*reinterpret_cast<const uint4*>(p), f); }
};
template <>
struct vec_traits<float> {
  static constexpr int V = 4;
  using bytes = std::uint32_t;
  __device__ static void load(const float* p, float (&f)[V]) {
    const float4 v = *reinterpret_cast<const float4*>(p);
    f[0] = v.x, f[1] = v.y, f[2] = v.z, f[3] = v.w;
  }
};

// max over the block of each thread's v (v >= 0); every thread gets the result.
__device__ float block_max(float v) {
  __shared__ float warp_max[32];
  __shared__ float result;
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (lane == 0) warp_max[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < int(blockDim.x >> 5) ? warp_max[lane] : 0.0f;
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    if (lane == 0) result = v;
  }
  __syncthreads();
  return result;
}

// One block per row. Vectorized: cols % V == 0, x 16-byte aligned, q V-byte aligned. The row is
// read twice (the second time from L1/L2): once for the amax, once to quantize.
template <class In, bool Vectorized>
__global__ void __launch_bounds__(quantize_max_threads)
    quantize_rows_kernel(const In* __restrict__ x, std::int64_t cols, std::uint8_t* __restrict__ q,
                         float* __restrict__ scale, const float* __restrict__ static_scale) {
  // linear_fp8's GEMV is launched as this kernel's programmatic dependent: it may start now (it
  // waits for this grid to finish before it reads the result).
  let_dependents_launch();
  using vt = vec_traits<In>;
  constexpr int V = vt::V;
  const In* row = x + std::int64_t(blockIdx.x) * cols;
  std::uint8_t* qrow = q + std::int64_t(blockIdx.x) * cols;
  float s;
  if (static_scale) {  // the checkpoint's input scale: no pass over the row for its maximum
    s = *static_scale;
  } else {
    float amax = 0.0f;
    if constexpr (Vectorized) {
      for (std::int64_t c = threadIdx.x; c < cols / V; c += blockDim.x) {
        float f[V];
        vt::load(row + c * V, f);
#pragma unroll
        for (int i = 0; i < V; ++i) amax = fmaxf(amax, fabsf(f[i]));
      }
    } else {
      for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) amax = fmaxf(amax, fabsf(to_f32(row[c])));
    }
    amax = block_max(amax);
    s = fp8_scale(amax);
  }
  if (threadIdx.x == 0) scale[blockIdx.x] = s;
  if constexpr (Vectorized) {
    for (std::int64_t c = threadIdx.x; c < cols / V; c += blockDim.x) {
      float f[V];
      vt::load(row + c * V, f);
      typename vt::bytes out;
      auto* p = reinterpret_cast<__nv_fp8x2_storage_t*>(&out);
#pragma unroll
      for (int i = 0; i < V / 2; ++i)  // low byte: the first of the pair
        p[i] = __nv_cvt_float2_to_fp8x2(make_float2(__fdiv_rn(f[2 * i], s), __fdiv_rn(f[2 * i + 1], s)), __NV_SATFINITE,
                                        __NV_E4M3);
      reinterpret_cast<typename vt::bytes*>(qrow)[c] = out;
    }
  } else {
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x)
      qrow[c] = e4m3(fminf(fmaxf(__fdiv_rn(to_f32(row[c]), s), -448.0f), 448.0f));
  }
}

constexpr int group_warps = 8;  // quantize_groups_kernel: warps (groups) per block

// One warp per (row, group): item = r * groups + g, the bytes in place in q [rows, cols] and the
// scale at scale[g * rows + r]. Vectorized: group % V == 0 and cols % V == 0 (every group then
// starts on a vector), x 16-byte aligned, q V-byte aligned.
template <class In, bool Vectorized>
__global__ void __launch_bounds__(group_warps * 32)
    quantize_groups_kernel(const In* __restrict__ x, std::int64_t rows, std::int64_t cols, std::int64_t group,
                           std::int64_t groups, std::uint8_t* __restrict__ q, float* __restrict__ scale) {
  let_dependents_launch();  // as quantize_rows_kernel: the GEMV behind it may start now
  using vt = vec_traits<In>;
  constexpr int V = vt::V;
  const int lane = threadIdx.x & 31;
  const std::int64_t item = std::int64_t(blockIdx.x) * group_warps + (threadIdx.x >> 5);
  if (item >= rows * groups) return;
  const std::int64_t r = item / groups, g = item - r * groups;
  const std::int64_t begin = g * group, n = std::min(group, cols - begin);
  const In* src = x + r * cols + begin;
  std::uint8_t* dst = q + r * cols + begin;
  float amax = 0.0f;
  if constexpr (Vectorized) {
    for (std::int64_t c = lane; c < n / V; c += 32) {
      float f[V];
      vt::load(src + c * V, f);
#pragma unroll
      for (int i = 0; i < V; ++i) amax = fmaxf(amax, fabsf(f[i]));
    }
  } else {
    for (std::int64_t c = lane; c < n; c += 32) amax = fmaxf(amax, fabsf(to_f32(src[c])));
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, offset));
  const float s = fp8_scale(amax);
  if (lane == 0) scale[g * rows + r] = s;
  if constexpr (Vectorized) {
    for (std::int64_t c = lane; c < n / V; c += 32) {
      float f[V];
      vt::load(src + c * V, f);
      typename vt::bytes out;
      auto* p = reinterpret_cast<__nv_fp8x2_storage_t*>(&out);
#pragma unroll
      for (int i = 0; i < V / 2; ++i)
        p[i] = __nv_cvt_float2_to_fp8x2(make_float2(__fdiv_rn(f[2 * i], s), __fdiv_rn(f[2 * i + 1], s)), __NV_SATFINITE,
                                        __NV_E4M3);
      reinterpret_cast<typename vt::bytes*>(dst)[c] = out;
    }
  } else {
    for (std::int64_t c = lane; c < n; c += 32) dst[c] = e4m3(__fdiv_rn(to_f32(src[c]), s));
  }
}

}  // namespace

template <class In>
void quantize_fp8_groups(const In* x, std::int64_t rows, std::int64_t cols, std::int64_t group, std::uint8_t* q,
                         float* scale, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return;
  if (group <= 0) fail("internal: quantize_fp8_groups needs group >= 1, got ", group);
  const std::int64_t groups = (cols + group - 1) / group;
  const std::int64_t blocks = (rows * groups + group_warps - 1) / group_warps;
  if (blocks > 0x7fffffff) fail("quantize_fp8: ", rows, " rows of ", groups, " groups is more than one launch takes");
  constexpr int V = vec_traits<In>::V;
  const bool vectorized =
      group % V == 0 && cols % V == 0 && aligned16(x) && reinterpret_cast<std::uintptr_t>(q) % V == 0;
  if (vectorized)
    quantize_groups_kernel<In, true><<<unsigned(blocks), group_warps * 32, 0, stream>>>(x, rows, cols, group, groups, q, scale);
  else
    quantize_groups_kernel<In, false><<<unsigned(blocks), group_warps * 32, 0, stream>>>(x, rows, cols, group, groups, q, scale);
  MII_CUDA_CHECK_LAUNCH();
}

template void quantize_fp8_groups<__nv_bfloat16>(const __nv_bfloat16*, std::int64_t, std::int64_t, std::int64_t,
                                                 std::uint8_t*, float*, cudaStream_t);
template void quantize_fp8_groups<__half>(const __half*, std::int64_t, std::int64_t, std::int64_t, std::uint8_t*, float*,
                                          cudaStream_t);

template <class In>
void quantize_fp8_rows(const In* x, std::int64_t rows, std::int64_t cols, std::uint8_t* q, float* scale,
                       cudaStream_t stream, const float* static_scale) {
  if (rows <= 0) return;
  if (rows > 0x7fffffff) fail("quantize_fp8: ", rows, " rows is more than one launch takes");
  constexpr int V = vec_traits<In>::V;
  const bool vectorized = cols % V == 0 && aligned16(x) && reinterpret_cast<std::uintptr_t>(q) % V == 0;
  // A decode step's few rows are on the critical path: a whole block of up to 1024 threads each;
  // many rows (prefill) fill the device with 256-thread blocks.
  const unsigned threads = row_block_threads(vectorized ? cols / V : cols, rows <= 256 ? 1024 : 256);
  if (vectorized) quantize_rows_kernel<In, true><<<unsigned(rows), threads, 0, stream>>>(x, cols, q, scale, static_scale);
  else quantize_rows_kernel<In, false><<<unsigned(rows), threads, 0, stream>>>(x, cols, q, scale, static_scale);
  MII_CUDA_CHECK_LAUNCH();
}

template void quantize_fp8_rows<__nv_bfloat16>(const __nv_bfloat16*, std::int64_t, std::int64_t, std::uint8_t*, float*,
                                               cudaStream_t, const float*);
template void quantize_fp8_rows<__half>(const __half*, std::int64_t, std::int64_t, std::uint8_t*, float*, cudaStream_t,
                                        const float*);
template void quantize_fp8_rows<float>(const float*, std::int64_t, std::int64_t, std::uint8_t*, float*, cudaStream_t,
                                       const float*);

}  // namespace mii::kernels

namespace mii::backend {

template <class DType>
void cuda<DType>::quantize_fp8(context& ctx, const T* x, std::int64_t rows, std::int64_t cols, fp8_scratch out) {
  kernels::quantize_fp8_rows(kernels::dev(x), rows, cols, out.data, out.scale, ctx.impl().stream);
}

template void cuda<bf16_t>::quantize_fp8(context&, const T*, std::int64_t, std::int64_t, fp8_scratch);
template void cuda<fp16_t>::quantize_fp8(context&, const T*, std::int64_t, std::int64_t, fp8_scratch);

}  // namespace mii::backend

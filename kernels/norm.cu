// Fused residual add + RMSNorm / Gemma's (1 + w) RMSNorm / LayerNorm: residual += delta (rounded to the storage type, as
// transformers keeps its residual stream), out = norm(residual) * w (+ bias), statistics in fp32.
// One block per row. `out` may alias `residual`: every element is read and written by the same
// thread, in program order.
#include <cstdint>

#include "common.cuh"
#include "pdl.cuh"
#include "cuda/check.hpp"
#include "cuda/context_state.hpp"

namespace mii::kernels {
namespace {

// Sum over the block; every thread gets the result. `scratch` holds one float per warp.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
  __syncthreads();  // scratch may still be read by the previous reduction
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float total = 0.0f;
  for (int i = 0; i < warps; ++i) total += scratch[i];  // same order in every thread
  return total;
}

// Vec elements per access: 8 (16-byte accesses) or 1.
template <int Vec, class T>
__device__ __forceinline__ void load_vec(const T* p, std::int64_t i, float (&v)[Vec]) {
  if constexpr (Vec == 8) {
    unpack8<T>(reinterpret_cast<const uint4*>(p)[i], v);
  } else {
    v[0] = to_f32(p[i]);
  }
}
template <int Vec, class T>
__device__ __forceinline__ void store_vec(T* p, std::int64_t i, const float (&v)[Vec]) {
  if constexpr (Vec == 8) {
    reinterpret_cast<uint4*>(p)[i] = pack8<T>(v);
  } else {
    p[i] = from_f32<T>(v[0]);
  }
}

template <class T, layers::norm_kind K, int Vec>
__global__ void add_norm_kernel(T* residual, const T* __restrict__ delta, const T* __restrict__ w,
                                const T* __restrict__ bias, float eps, std::int64_t cols, T* out) {
  // A GEMV behind this kernel may start streaming its weights now (kernels/pdl.cuh).
  let_dependents_launch();
  __shared__ float scratch[32];
  const std::int64_t row = blockIdx.x, n = cols / Vec;
  T* x = residual + row * cols;
  const T* d = delta ? delta + row * cols : nullptr;
  T* y = out + row * cols;

  // Pass 1: the residual sum, rounded to T and stored; the first statistic from the stored values.
  float stat = 0.0f;
  for (std::int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    float v[Vec];
    load_vec<Vec>(x, i, v);
    if (d) {
      float dv[Vec];
      load_vec<Vec>(d, i, dv);
#pragma unroll
      for (int k = 0; k < Vec; ++k) v[k] = to_f32(from_f32<T>(v[k] + dv[k]));
      store_vec<Vec>(x, i, v);
    }
#pragma unroll
    for (int k = 0; k < Vec; ++k) stat += K != layers::norm_kind::layer ? v[k] * v[k] : v[k];
  }
  const float total = block_sum(stat, scratch);
  float mean = 0.0f, inv;
  if constexpr (K != layers::norm_kind::layer) {
    inv = rsqrtf(total / float(cols) + eps);
  } else {
    // Pass 2: variance around the mean (two passes: no cancellation for rows with a large mean).
    mean = total / float(cols);
    float sq = 0.0f;
    for (std::int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      float v[Vec];
      load_vec<Vec>(x, i, v);
#pragma unroll
      for (int k = 0; k < Vec; ++k) sq += (v[k] - mean) * (v[k] - mean);
    }
    inv = rsqrtf(block_sum(sq, scratch) / float(cols) + eps);
  }
  // Last pass: normalise, scale (and shift).
  for (std::int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    float v[Vec], wv[Vec];
    load_vec<Vec>(x, i, v);
    load_vec<Vec>(w, i, wv);
    if constexpr (K == layers::norm_kind::rms) {
#pragma unroll
      for (int k = 0; k < Vec; ++k) v[k] = (v[k] * inv) * wv[k];
    } else if constexpr (K == layers::norm_kind::rms_plus_one) {  // Gemma: (1 + w) in fp32, as transformers
#pragma unroll
      for (int k = 0; k < Vec; ++k) v[k] = (v[k] * inv) * (1.0f + wv[k]);
    } else {
      float bv[Vec];
      if (bias) {
        load_vec<Vec>(bias, i, bv);
      } else {
#pragma unroll
        for (int k = 0; k < Vec; ++k) bv[k] = 0.0f;
      }
#pragma unroll
      for (int k = 0; k < Vec; ++k) v[k] = ((v[k] - mean) * inv) * wv[k] + bv[k];
    }
    store_vec<Vec>(y, i, v);
  }
}

}  // namespace
}  // namespace mii::kernels

namespace mii::backend {

template <class DType>
template <layers::norm_kind K>
void cuda<DType>::add_norm(context& ctx, T* residual, const T* delta, const T* w, const T* bias, float eps,
                           std::int64_t rows, std::int64_t cols, T* out) {
  if (rows <= 0 || cols <= 0) return;
  using D = kernels::device_t<DType>;
  using kernels::aligned16;
  const cudaStream_t stream = ctx.impl().stream;
  const bool vec = cols % 8 == 0 && aligned16(residual) && aligned16(w) && aligned16(out) &&
                   (!delta || aligned16(delta)) && (!bias || aligned16(bias));
  const unsigned threads = kernels::row_block_threads(vec ? cols / 8 : cols, 512);
  const auto grid = unsigned(rows);
  if (vec)
    kernels::add_norm_kernel<D, K, 8><<<grid, threads, 0, stream>>>(kernels::dev(residual), kernels::dev(delta),
                                                                     kernels::dev(w), kernels::dev(bias), eps, cols,
                                                                     kernels::dev(out));
  else
    kernels::add_norm_kernel<D, K, 1><<<grid, threads, 0, stream>>>(kernels::dev(residual), kernels::dev(delta),
                                                                     kernels::dev(w), kernels::dev(bias), eps, cols,
                                                                     kernels::dev(out));
  MII_CUDA_CHECK_LAUNCH();
}

#define MII_CUDA_ADD_NORM(D, K)                                                                                    \
  template void cuda<D>::add_norm<layers::norm_kind::K>(context&, T*, const T*, const T*, const T*, float,         \
                                                        std::int64_t, std::int64_t, T*);
MII_CUDA_ADD_NORM(bf16_t, rms)
MII_CUDA_ADD_NORM(bf16_t, layer)
MII_CUDA_ADD_NORM(fp16_t, rms)
MII_CUDA_ADD_NORM(fp16_t, layer)
MII_CUDA_ADD_NORM(bf16_t, rms_plus_one)
MII_CUDA_ADD_NORM(fp16_t, rms_plus_one)
#undef MII_CUDA_ADD_NORM

}  // namespace mii::backend

// Plain data movement and sums: fill, row gathers, x += d, pitched copies of fp32 rows.
#include <cstdint>

#include "common.cuh"
#include "pdl.cuh"
#include "cuda/check.hpp"
#include "cuda/context_state.hpp"

namespace mii::kernels {
namespace {

inline unsigned grid_for(std::int64_t n, int threads = 256) {
  return unsigned(std::min<std::int64_t>(ceil_div(std::max<std::int64_t>(n, 1), threads), 8192));
}

__global__ void fill_kernel(float* __restrict__ data, std::int64_t n, float value) {
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += std::int64_t(gridDim.x) * blockDim.x)
    data[i] = value;
}

// One block per gathered row; Vec = 8 copies 16 bytes per access.
template <class T, int Vec>
__global__ void gather_rows_kernel(const T* __restrict__ x, std::int64_t cols, const std::int32_t* __restrict__ rows,
                                   T* __restrict__ out) {
  // The MoE up projection's GEMV may start streaming its weights now (kernels/pdl.cuh).
  let_dependents_launch();
  const std::int64_t i = blockIdx.x;
  const std::int64_t src_row = rows[i];
  if constexpr (Vec == 8) {
    const uint4* src = reinterpret_cast<const uint4*>(x + src_row * cols);
    uint4* dst = reinterpret_cast<uint4*>(out + i * cols);
    for (std::int64_t c = threadIdx.x; c < cols / 8; c += blockDim.x) dst[c] = src[c];
  } else {
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) out[i * cols + c] = x[src_row * cols + c];
  }
}

template <class T, int Vec>
__global__ void add_kernel(T* __restrict__ x, const T* __restrict__ d, std::int64_t n_vec) {
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n_vec; i += std::int64_t(gridDim.x) * blockDim.x) {
    if constexpr (Vec == 8) {
      float a[8], b[8];
      unpack8<T>(reinterpret_cast<const uint4*>(x)[i], a);
      unpack8<T>(reinterpret_cast<const uint4*>(d)[i], b);
#pragma unroll
      for (int k = 0; k < 8; ++k) a[k] += b[k];
      reinterpret_cast<uint4*>(x)[i] = pack8<T>(a);
    } else {
      x[i] = from_f32<T>(to_f32(x[i]) + to_f32(d[i]));
    }
  }
}

}  // namespace
}  // namespace mii::kernels

namespace mii::backend {

template <class DType>
void cuda<DType>::fill(context& ctx, float* data, std::int64_t n, float value) {
  if (n <= 0) return;
  kernels::fill_kernel<<<kernels::grid_for(n), 256, 0, ctx.impl().stream>>>(data, n, value);
  MII_CUDA_CHECK_LAUNCH();
}

template <class DType>
void cuda<DType>::gather_rows(context& ctx, const T* x, std::int64_t cols, const std::int32_t* rows, std::int32_t n,
                              T* out) {
  if (n <= 0 || cols <= 0) return;
  using D = kernels::device_t<DType>;
  const cudaStream_t stream = ctx.impl().stream;
  const bool vec = cols % 8 == 0 && kernels::aligned16(x) && kernels::aligned16(out);
  const unsigned threads = kernels::row_block_threads(vec ? cols / 8 : cols, 256);
  if (vec)
    kernels::gather_rows_kernel<D, 8><<<unsigned(n), threads, 0, stream>>>(kernels::dev(x), cols, rows, kernels::dev(out));
  else
    kernels::gather_rows_kernel<D, 1><<<unsigned(n), threads, 0, stream>>>(kernels::dev(x), cols, rows, kernels::dev(out));
  MII_CUDA_CHECK_LAUNCH();
}

template <class DType>
void cuda<DType>::add(context& ctx, T* x, const T* d, std::int64_t n) {
  if (n <= 0) return;
  using D = kernels::device_t<DType>;
  const cudaStream_t stream = ctx.impl().stream;
  if (n % 8 == 0 && kernels::aligned16(x) && kernels::aligned16(d))
    kernels::add_kernel<D, 8><<<kernels::grid_for(n / 8), 256, 0, stream>>>(kernels::dev(x), kernels::dev(d), n / 8);
  else
    kernels::add_kernel<D, 1><<<kernels::grid_for(n), 256, 0, stream>>>(kernels::dev(x), kernels::dev(d), n);
  MII_CUDA_CHECK_LAUNCH();
}

template <class DType>
void cuda<DType>::copy_2d(context& ctx, float* dst, std::int64_t dst_pitch, const float* src, std::int64_t src_pitch,
                          std::int64_t width, std::int64_t height) {
  if (width <= 0 || height <= 0) return;
  MII_CUDA_CHECK(cudaMemcpy2DAsync(dst, std::size_t(dst_pitch) * sizeof(float), src, std::size_t(src_pitch) * sizeof(float),
                                   std::size_t(width) * sizeof(float), std::size_t(height), cudaMemcpyDeviceToDevice,
                                   ctx.impl().stream));
}

#define MII_CUDA_ELEMENTWISE(D)                                                                                     \
  template void cuda<D>::fill(context&, float*, std::int64_t, float);                                               \
  template void cuda<D>::gather_rows(context&, const T*, std::int64_t, const std::int32_t*, std::int32_t, T*);      \
  template void cuda<D>::add(context&, T*, const T*, std::int64_t);                                                 \
  template void cuda<D>::copy_2d(context&, float*, std::int64_t, const float*, std::int64_t, std::int64_t, std::int64_t);
MII_CUDA_ELEMENTWISE(bf16_t)
MII_CUDA_ELEMENTWISE(fp16_t)
#undef MII_CUDA_ELEMENTWISE

}  // namespace mii::backend

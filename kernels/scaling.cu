// Element-wise scalings Gemma needs: the embedding times its normalizer (compute dtype, the factor
// rounded to that dtype first, as transformers multiplies by a tensor of the activations' dtype)
// and soft-capping of the fp32 logits, cap * tanh(x / cap) (x / cap, not x * (1 / cap), as
// transformers writes it).
#include <cstdint>

#include "common.cuh"
#include "cuda/check.hpp"
#include "cuda/context_state.hpp"

namespace mii::kernels {
namespace {

inline unsigned grid_for(std::int64_t n, int threads = 256) {
  return unsigned(std::min<std::int64_t>(ceil_div(std::max<std::int64_t>(n, 1), threads), 8192));
}

// The factor as the compute dtype holds it.
inline float rounded(float v, mii::bf16_t) { return mii::to_float(mii::to_bf16(v)); }
inline float rounded(float v, mii::fp16_t) { return mii::to_float(mii::to_fp16(v)); }

template <class T>
__global__ void scale_kernel(T* __restrict__ x, std::int64_t n, float f) {
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += std::int64_t(gridDim.x) * blockDim.x)
    x[i] = from_f32<T>(to_f32(x[i]) * f);
}

__global__ void softcap_kernel(float* __restrict__ x, std::int64_t n, float cap) {
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += std::int64_t(gridDim.x) * blockDim.x)
    x[i] = tanhf(x[i] / cap) * cap;
}

}  // namespace
}  // namespace mii::kernels

namespace mii::backend {

template <class DType>
void cuda<DType>::scale(context& ctx, T* x, std::int64_t n, float factor) {
  if (n <= 0) return;
  using D = kernels::device_t<DType>;
  kernels::scale_kernel<D><<<kernels::grid_for(n), 256, 0, ctx.impl().stream>>>(kernels::dev(x), n,
                                                                                  kernels::rounded(factor, DType{}));
  MII_CUDA_CHECK_LAUNCH();
}

template <class DType>
void cuda<DType>::softcap(context& ctx, float* x, std::int64_t n, float cap) {
  if (n <= 0) return;
  kernels::softcap_kernel<<<kernels::grid_for(n), 256, 0, ctx.impl().stream>>>(x, n, cap);
  MII_CUDA_CHECK_LAUNCH();
}

template void cuda<bf16_t>::scale(context&, T*, std::int64_t, float);
template void cuda<fp16_t>::scale(context&, T*, std::int64_t, float);
template void cuda<bf16_t>::softcap(context&, float*, std::int64_t, float);
template void cuda<fp16_t>::softcap(context&, float*, std::int64_t, float);

}  // namespace mii::backend

// Activations: gated (out = act(gate) * up, gate and up side by side in one row) and in place.
// Same formulas as the host backend (src/host/elementwise.cpp), in fp32, one rounding at the end.
#include <cstdint>

#include "common.cuh"
#include "pdl.cuh"
#include "cuda/check.hpp"
#include "cuda/context_state.hpp"

namespace mii::kernels {
namespace {

template <layers::activation A>
__device__ __forceinline__ float activate(float x) {
  if constexpr (A == layers::activation::silu) {
    return x / (1.0f + expf(-x));
  } else if constexpr (A == layers::activation::gelu) {
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
  } else if constexpr (A == layers::activation::gelu_tanh) {
    return 0.5f * x * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
  } else {
    return x > 0.0f ? x : 0.0f;
  }
}

// Vec = 8: 16-byte accesses, needs f % 8 == 0 and aligned pointers.
template <class T, layers::activation A, int Vec>
__global__ void gated_act_kernel(const T* __restrict__ gate_up, std::int64_t rows, std::int64_t f, T* __restrict__ out) {
  // The down projection's GEMV may start streaming its weights now (kernels/pdl.cuh).
  let_dependents_launch();
  const std::int64_t per_row = f / Vec, n = rows * per_row;
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t r = i / per_row, c = i % per_row;
    const T* g = gate_up + r * 2 * f;
    if constexpr (Vec == 8) {
      float gv[8], uv[8];
      unpack8<T>(reinterpret_cast<const uint4*>(g)[c], gv);
      unpack8<T>(reinterpret_cast<const uint4*>(g + f)[c], uv);
#pragma unroll
      for (int k = 0; k < 8; ++k) gv[k] = activate<A>(gv[k]) * uv[k];
      reinterpret_cast<uint4*>(out + r * f)[c] = pack8<T>(gv);
    } else {
      out[r * f + c] = from_f32<T>(activate<A>(to_f32(g[c])) * to_f32(g[f + c]));
    }
  }
}

template <class T, layers::activation A, int Vec>
__global__ void act_kernel(T* x, std::int64_t n_vec) {
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n_vec; i += std::int64_t(gridDim.x) * blockDim.x) {
    if constexpr (Vec == 8) {
      float v[8];
      unpack8<T>(reinterpret_cast<const uint4*>(x)[i], v);
#pragma unroll
      for (int k = 0; k < 8; ++k) v[k] = activate<A>(v[k]);
      reinterpret_cast<uint4*>(x)[i] = pack8<T>(v);
    } else {
      x[i] = from_f32<T>(activate<A>(to_f32(x[i])));
    }
  }
}

// Enough blocks of 256 to fill the GPU a few times over; the kernels loop over the rest.
inline unsigned elementwise_blocks(std::int64_t n) { return unsigned(std::min<std::int64_t>(ceil_div(n, 256), 8192)); }

}  // namespace
}  // namespace mii::kernels

namespace mii::backend {

template <class DType>
template <layers::activation A>
void cuda<DType>::gated_act(context& ctx, const T* gate_up, std::int64_t rows, std::int64_t f, T* out) {
  if (rows <= 0 || f <= 0) return;
  using D = kernels::device_t<DType>;
  const cudaStream_t stream = ctx.impl().stream;
  const bool vec = f % 8 == 0 && kernels::aligned16(gate_up) && kernels::aligned16(out);
  const std::int64_t n = rows * (vec ? f / 8 : f);
  if (vec)
    kernels::gated_act_kernel<D, A, 8><<<kernels::elementwise_blocks(n), 256, 0, stream>>>(kernels::dev(gate_up), rows, f,
                                                                                           kernels::dev(out));
  else
    kernels::gated_act_kernel<D, A, 1><<<kernels::elementwise_blocks(n), 256, 0, stream>>>(kernels::dev(gate_up), rows, f,
                                                                                           kernels::dev(out));
  MII_CUDA_CHECK_LAUNCH();
}

template <class DType>
template <layers::activation A>
void cuda<DType>::act(context& ctx, T* x, std::int64_t rows, std::int64_t cols) {
  const std::int64_t n = rows * cols;
  if (n <= 0) return;
  using D = kernels::device_t<DType>;
  const cudaStream_t stream = ctx.impl().stream;
  if (n % 8 == 0 && kernels::aligned16(x))
    kernels::act_kernel<D, A, 8><<<kernels::elementwise_blocks(n / 8), 256, 0, stream>>>(kernels::dev(x), n / 8);
  else
    kernels::act_kernel<D, A, 1><<<kernels::elementwise_blocks(n), 256, 0, stream>>>(kernels::dev(x), n);
  MII_CUDA_CHECK_LAUNCH();
}

#define MII_CUDA_ACT(D, A)                                                                                     \
  template void cuda<D>::gated_act<layers::activation::A>(context&, const T*, std::int64_t, std::int64_t, T*); \
  template void cuda<D>::act<layers::activation::A>(context&, T*, std::int64_t, std::int64_t);
MII_CUDA_ACT(bf16_t, silu)
MII_CUDA_ACT(bf16_t, gelu)
MII_CUDA_ACT(bf16_t, gelu_tanh)
MII_CUDA_ACT(bf16_t, relu)
MII_CUDA_ACT(fp16_t, silu)
MII_CUDA_ACT(fp16_t, gelu)
MII_CUDA_ACT(fp16_t, gelu_tanh)
MII_CUDA_ACT(fp16_t, relu)
#undef MII_CUDA_ACT

}  // namespace mii::backend

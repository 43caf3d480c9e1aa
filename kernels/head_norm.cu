// Per-head RMSNorm of q and k (layers::qk_norm: Qwen3, Gemma 3), in place in the fused qkv rows
// [q heads | k heads | v heads]: one warp per head vector, statistics in fp32, rounded once.
// The host backend's head_rms_norm (src/host/head_norm.cpp) is the reference.
#include <cstdint>

#include "common.cuh"
#include "cuda/check.hpp"
#include "cuda/context_state.hpp"

namespace mii::kernels {
namespace {

template <class T>
__global__ void head_rms_norm_kernel(T* qkv, std::int64_t head_vectors, int heads, int kv_heads, int head_dim,
                                     const T* __restrict__ q_w, const T* __restrict__ k_w, float eps,
                                     float weight_offset) {
  const std::int64_t v = (std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (v >= head_vectors) return;  // whole warps leave together: v is uniform in a warp
  const int normed = heads + kv_heads;
  const std::int64_t row = v / normed;
  const int h = int(v % normed);
  T* x = qkv + row * std::int64_t(heads + 2 * kv_heads) * head_dim + std::int64_t(h) * head_dim;
  const T* w = h < heads ? q_w : k_w;
  float ss = 0.0f;
  for (int i = lane; i < head_dim; i += 32) {
    const float a = to_f32(x[i]);
    ss += a * a;
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  const float inv = rsqrtf(ss / float(head_dim) + eps);
  for (int i = lane; i < head_dim; i += 32) x[i] = from_f32<T>((to_f32(x[i]) * inv) * (weight_offset + to_f32(w[i])));
}

}  // namespace
}  // namespace mii::kernels

namespace mii::backend {

template <class DType>
void cuda<DType>::head_rms_norm(context& ctx, T* qkv, std::int64_t rows, const attention_shape& as, const T* q_w,
                                const T* k_w, float eps, float weight_offset) {
  const std::int64_t vectors = rows * (std::int64_t(as.heads) + as.kv_heads);
  if (vectors <= 0) return;
  using D = kernels::device_t<DType>;
  constexpr unsigned threads = 256;  // 8 head vectors per block
  kernels::head_rms_norm_kernel<D><<<kernels::ceil_div(vectors * 32, threads), threads, 0, ctx.impl().stream>>>(
      kernels::dev(qkv), vectors, as.heads, as.kv_heads, as.head_dim, kernels::dev(q_w), kernels::dev(k_w), eps,
      weight_offset);
  MII_CUDA_CHECK_LAUNCH();
}

template void cuda<bf16_t>::head_rms_norm(context&, T*, std::int64_t, const attention_shape&, const T*, const T*,
                                          float, float);
template void cuda<fp16_t>::head_rms_norm(context&, T*, std::int64_t, const attention_shape&, const T*, const T*,
                                          float, float);

}  // namespace mii::backend

// The routing kernels of the MoE layer: kernels/moe_routing.cuh.
#include "moe_routing.cuh"

#include "common.cuh"
#include "cuda/check.hpp"

namespace mii::kernels {
namespace {

// One thread per row: softmax over all experts, the top k (ties: lower expert id, as the host's
// stable sort), weights renormalised over the k chosen when `renormalise`.
__global__ void router_topk_kernel(const float* __restrict__ logits, int rows, int experts, int top_k,
                                   bool renormalise, std::int32_t* __restrict__ ids, float* __restrict__ weights) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  const float* l = logits + std::int64_t(r) * experts;
  float mx = l[0];
  for (int e = 1; e < experts; ++e) mx = fmaxf(mx, l[e]);
  float sum = 0.0f;
  for (int e = 0; e < experts; ++e) sum += expf(l[e] - mx);
  std::int32_t* my_ids = ids + std::int64_t(r) * top_k;
  float* my_w = weights + std::int64_t(r) * top_k;
  float chosen = 0.0f;
  for (int s = 0; s < top_k; ++s) {
    int best = -1;
    float best_p = 0.0f;
    for (int e = 0; e < experts; ++e) {
      bool taken = false;
      for (int q = 0; q < s; ++q) taken |= my_ids[q] == e;
      if (taken) continue;
      const float p = expf(l[e] - mx) / sum;
      if (best < 0 || p > best_p) {
        best = e;
        best_p = p;
      }
    }
    my_ids[s] = best;
    my_w[s] = best_p;
    chosen += best_p;
  }
  if (renormalise)
    for (int s = 0; s < top_k; ++s) my_w[s] /= chosen;
}

// Sum over the block; every thread gets the result. `scratch` holds one float per warp.
__device__ __forceinline__ float moe_block_sum(float v, float* scratch) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float total = 0.0f;
  for (int i = 0; i < warps; ++i) total += scratch[i];  // same order in every thread
  return total;
}

// out[r] = sum over the row's k slots of weight * y[slot] (+ sigmoid(x[r] . gate) * shared[r] when
// `shared` is given; an absent gate scales by 1); Vec = 8 for 16-byte accesses. One block per row.
template <class T, int Vec>
__global__ void moe_combine_kernel(const T* __restrict__ y, const std::int32_t* __restrict__ slot_of,
                                   const float* __restrict__ weights, int top_k, std::int64_t hidden,
                                   const T* __restrict__ shared, const T* __restrict__ x, const T* __restrict__ gate,
                                   T* __restrict__ out) {
  __shared__ float scratch[32];
  const std::int64_t r = blockIdx.x;
  auto load = [&](const T* p, std::int64_t c, float (&v)[Vec]) {
    if constexpr (Vec == 8) {
      unpack8<T>(reinterpret_cast<const uint4*>(p)[c], v);
    } else {
      v[0] = to_f32(p[c]);
    }
  };
  float shared_scale = 1.0f;
  if (shared && gate) {  // the shared expert's gate: sigmoid of one dot product per row, in fp32
    float dot = 0.0f;
    for (std::int64_t c = threadIdx.x; c < hidden / Vec; c += blockDim.x) {
      float xv[Vec], gv[Vec];
      load(x + r * hidden, c, xv);
      load(gate, c, gv);
#pragma unroll
      for (int k = 0; k < Vec; ++k) dot += xv[k] * gv[k];
    }
    shared_scale = 1.0f / (1.0f + expf(-moe_block_sum(dot, scratch)));
  }
  for (std::int64_t c = threadIdx.x; c < hidden / Vec; c += blockDim.x) {
    float acc[Vec];
#pragma unroll
    for (int k = 0; k < Vec; ++k) acc[k] = 0.0f;
    for (int s = 0; s < top_k; ++s) {
      const std::int64_t slot = slot_of[r * top_k + s];
      const float w = weights[r * top_k + s];
      float v[Vec];
      load(y + slot * hidden, c, v);
#pragma unroll
      for (int k = 0; k < Vec; ++k) acc[k] += w * v[k];
    }
    if (shared) {
      float v[Vec];
      load(shared + r * hidden, c, v);
#pragma unroll
      for (int k = 0; k < Vec; ++k) acc[k] += shared_scale * v[k];
    }
    if constexpr (Vec == 8) {
      reinterpret_cast<uint4*>(out + r * hidden)[c] = pack8<T>(acc);
    } else {
      out[r * hidden + c] = from_f32<T>(acc[0]);
    }
  }
}

// One block. Counts per expert in shared memory, the prefix and the list of experts in use by
// one thread (experts <= a few hundred), then each slot's position: its expert's first plus the
// number of earlier slots with the same expert (slots are few on this path: a quadratic scan).
__global__ void moe_group_kernel(const std::int32_t* __restrict__ ids, int slots, int experts, int top_k,
                                 std::int32_t* __restrict__ first, std::int32_t* __restrict__ used, int groups,
                                 std::int32_t* __restrict__ order, std::int32_t* __restrict__ slot_of) {
  extern __shared__ std::int32_t start[];  // experts + 1
  for (int e = threadIdx.x; e <= experts; e += blockDim.x) start[e] = 0;
  __syncthreads();
  // An id out of range cannot come from the router kernel; clamped so that no write can stray.
  auto expert_of = [&](int i) { return min(max(ids[i], 0), experts - 1); };
  for (int i = threadIdx.x; i < slots; i += blockDim.x) atomicAdd(&start[expert_of(i) + 1], 1);
  __syncthreads();
  if (threadIdx.x == 0) {
    int g = 0;
    for (int e = 0; e < experts; ++e) {
      if (start[e + 1] > 0 && g < groups) used[g++] = e;
      start[e + 1] += start[e];
    }
    for (; g < groups; ++g) used[g] = -1;
  }
  __syncthreads();
  for (int e = threadIdx.x; e <= experts; e += blockDim.x) first[e] = start[e];
  for (int i = threadIdx.x; i < slots; i += blockDim.x) {
    const int e = expert_of(i);
    int position = start[e];
    for (int j = 0; j < i; ++j) position += expert_of(j) == e;
    order[position] = i / top_k;
    slot_of[i] = position;
  }
}

}  // namespace

void moe_router_topk(const float* logits, int rows, int experts, int top_k, bool renormalise, std::int32_t* ids,
                     float* weights, cudaStream_t stream) {
  router_topk_kernel<<<ceil_div(rows, 128), 128, 0, stream>>>(logits, rows, experts, top_k, renormalise, ids, weights);
  MII_CUDA_CHECK_LAUNCH();
}

void moe_group_by_expert(const std::int32_t* ids, int slots, int experts, int top_k, std::int32_t* first,
                         std::int32_t* used, int groups, std::int32_t* order, std::int32_t* slot_of,
                         cudaStream_t stream) {
  moe_group_kernel<<<1, 256, std::size_t(experts + 1) * sizeof(std::int32_t), stream>>>(ids, slots, experts, top_k,
                                                                                        first, used, groups, order,
                                                                                        slot_of);
  MII_CUDA_CHECK_LAUNCH();
}

template <class T>
void moe_combine(const T* y, const std::int32_t* slot_of, const float* weights, int top_k, std::int64_t rows,
                 std::int64_t hidden, const T* shared, const T* x, const T* gate, T* out, cudaStream_t stream) {
  const bool vec = hidden % 8 == 0 && aligned16(y) && aligned16(out) && (!shared || (aligned16(shared) && aligned16(x))) &&
                   (!gate || aligned16(gate));
  const unsigned threads = row_block_threads(vec ? hidden / 8 : hidden, 256);
  if (vec)
    moe_combine_kernel<T, 8><<<unsigned(rows), threads, 0, stream>>>(y, slot_of, weights, top_k, hidden, shared, x, gate,
                                                                     out);
  else
    moe_combine_kernel<T, 1><<<unsigned(rows), threads, 0, stream>>>(y, slot_of, weights, top_k, hidden, shared, x, gate,
                                                                     out);
  MII_CUDA_CHECK_LAUNCH();
}

template void moe_combine<__nv_bfloat16>(const __nv_bfloat16*, const std::int32_t*, const float*, int, std::int64_t,
                                         std::int64_t, const __nv_bfloat16*, const __nv_bfloat16*,
                                         const __nv_bfloat16*, __nv_bfloat16*, cudaStream_t);
template void moe_combine<__half>(const __half*, const std::int32_t*, const float*, int, std::int64_t, std::int64_t,
                                  const __half*, const __half*, const __half*, __half*, cudaStream_t);

}  // namespace mii::kernels

// Mixture of experts (Mixtral, Qwen2-MoE, Qwen3-MoE; backend/moe_weights.hpp): router logits in
// fp32, softmax + top-k (+ renormalised weights when the router policy says so) on the GPU, then
// the work grouped by expert:
//   1. the chosen expert ids come to the host (rows * top_k ints) and are counting-sorted, so
//      each expert gets one contiguous slice of gathered rows;
//   2. one gather of x into that expert-major order, per expert two GEMMs (up: [gate | up],
//      down) on its slice, one gated activation over all slices;
//   3. the shared expert, when there is one: two GEMMs and a gated activation over all rows;
//   4. one combine kernel: out[r] = sum_k w_k * y[slot of (r, k)] + sigmoid(x_r . g) * shared[r],
//      in fp32, rounded once.
// Decode (rows = 1) touches top_k experts only, each GEMM going to the GEMV kernel.
#include <cstdint>
#include <vector>

#include "common.cuh"
#include "cuda/check.hpp"
#include "cuda/context_state.hpp"

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

}  // namespace
}  // namespace mii::kernels

namespace mii::backend {

template <class DType>
template <layers::activation A>
void cuda<DType>::moe(context& ctx, const T* x, std::int64_t rows, std::int64_t hidden, const moe_weights<T>& w,
                      T* out) {
  if (rows <= 0) return;
  const std::int64_t experts = w.experts, top_k = w.top_k, ffn = w.ffn;
  if (top_k < 1 || top_k > experts)
    fail("moe: top_k must be in [1, experts = ", experts, "], got ", top_k);
  if (std::int64_t(w.up.size()) < experts || std::int64_t(w.down.size()) < experts)
    fail("moe: ", experts, " experts but ", w.up.size(), " up and ", w.down.size(), " down weights");
  cuda_context_state& st = ctx.impl();  // the non-dependent base: its scratch members are plain
  const cudaStream_t stream = st.stream;
  const std::int64_t slots = rows * top_k;

  // Route.
  float* logits = st.moe_logits.as<float>(std::size_t(rows * experts));
  linear_f32(ctx, x, rows, hidden, w.router, experts, nullptr, logits);
  auto* ids = st.moe_topk_ids.as<std::int32_t>(std::size_t(slots));
  auto* weights = st.moe_topk_w.as<float>(std::size_t(slots));
  kernels::router_topk_kernel<<<kernels::ceil_div(rows, 128), 128, 0, stream>>>(logits, int(rows), int(experts),
                                                                                int(top_k), w.renormalise, ids, weights);
  MII_CUDA_CHECK_LAUNCH();

  // Group the slots by expert on the host: order[slot] = source row, slot_of[r * k + s] = slot.
  auto* host = st.moe_host.as<std::int32_t>(std::size_t(3 * slots), stream);
  MII_CUDA_CHECK(cudaMemcpyAsync(host, ids, std::size_t(slots) * sizeof(std::int32_t), cudaMemcpyDeviceToHost, stream));
  MII_CUDA_CHECK(cudaStreamSynchronize(stream));
  std::vector<std::int64_t> first(std::size_t(experts) + 1, 0);
  for (std::int64_t i = 0; i < slots; ++i) {
    const std::int32_t e = host[i];
    if (e < 0 || e >= experts) fail("internal: moe router chose expert ", e, " of ", experts);
    ++first[std::size_t(e) + 1];
  }
  for (std::int64_t e = 0; e < experts; ++e) first[std::size_t(e) + 1] += first[std::size_t(e)];
  std::int32_t* order = host + slots;
  std::int32_t* slot_of = host + 2 * slots;
  {
    std::vector<std::int64_t> next(first.begin(), first.end() - 1);
    for (std::int64_t i = 0; i < slots; ++i) {
      const std::int64_t slot = next[std::size_t(host[i])]++;
      order[slot] = std::int32_t(i / top_k);
      slot_of[i] = std::int32_t(slot);
    }
  }
  auto* d_order = st.moe_order.as<std::int32_t>(std::size_t(2 * slots));
  MII_CUDA_CHECK(cudaMemcpyAsync(d_order, order, std::size_t(2 * slots) * sizeof(std::int32_t), cudaMemcpyHostToDevice, stream));
  const std::int32_t* d_slot_of = d_order + slots;

  // Experts, each on its contiguous slice of gathered rows.
  T* xg = st.moe_x.as<T>(std::size_t(slots * hidden));
  T* gate_up = st.moe_gate_up.as<T>(std::size_t(slots * 2 * ffn));
  T* inner = st.moe_inner.as<T>(std::size_t(slots * ffn));
  T* y = st.moe_y.as<T>(std::size_t(slots * hidden));
  gather_rows(ctx, x, hidden, d_order, std::int32_t(slots), xg);
  // One projection of rows n: FP8 where the expert has it (its rows quantized per token into the
  // shared scratch, which the stream's next call reuses only after this one), else the GEMM.
  auto project = [&](const T* in, std::int64_t n, std::int64_t in_dim, const T* wt, const fp8_weight* q,
                     std::int64_t out_dim, T* out_rows) {
    if (q && q->data) linear_fp8(ctx, in, n, in_dim, *q, out_dim, nullptr, out_rows, false, w.scratch);
    else linear(ctx, in, n, in_dim, wt, out_dim, nullptr, out_rows);
  };
  auto fp8_of = [](std::span<const fp8_weight> v, std::int64_t e) {
    return std::int64_t(v.size()) > e ? &v[std::size_t(e)] : nullptr;
  };
  for (std::int64_t e = 0; e < experts; ++e) {
    const std::int64_t begin = first[std::size_t(e)], n = first[std::size_t(e) + 1] - begin;
    if (n > 0)
      project(xg + begin * hidden, n, hidden, w.up[std::size_t(e)], fp8_of(w.up_fp8, e), 2 * ffn,
              gate_up + begin * 2 * ffn);
  }
  gated_act<A>(ctx, gate_up, slots, ffn, inner);
  for (std::int64_t e = 0; e < experts; ++e) {
    const std::int64_t begin = first[std::size_t(e)], n = first[std::size_t(e) + 1] - begin;
    if (n > 0)
      project(inner + begin * ffn, n, ffn, w.down[std::size_t(e)], fp8_of(w.down_fp8, e), hidden, y + begin * hidden);
  }

  // The shared expert over all rows. Its intermediates reuse the routed experts' scratch, which
  // the stream has finished with (work on one stream runs in order; a scratch that grows frees
  // its old block only after the device is idle), and its output goes where the gathered rows
  // were (slots >= rows).
  T* shared = nullptr;
  if (w.has_shared()) {
    T* s_gate_up = st.moe_gate_up.as<T>(std::size_t(rows * 2 * w.shared_ffn));
    T* s_inner = st.moe_inner.as<T>(std::size_t(rows * w.shared_ffn));
    shared = st.moe_x.as<T>(std::size_t(slots * hidden));
    project(x, rows, hidden, w.shared_up, &w.shared_up_fp8, 2 * w.shared_ffn, s_gate_up);
    gated_act<A>(ctx, s_gate_up, rows, w.shared_ffn, s_inner);
    project(s_inner, rows, w.shared_ffn, w.shared_down, &w.shared_down_fp8, hidden, shared);
  }

  // Mix.
  using D = kernels::device_t<DType>;
  const T* gate = shared ? w.shared_gate : nullptr;
  const bool vec = hidden % 8 == 0 && kernels::aligned16(y) && kernels::aligned16(out) &&
                   (!shared || (kernels::aligned16(shared) && kernels::aligned16(x))) && (!gate || kernels::aligned16(gate));
  const unsigned threads = kernels::row_block_threads(vec ? hidden / 8 : hidden, 256);
  if (vec)
    kernels::moe_combine_kernel<D, 8><<<unsigned(rows), threads, 0, stream>>>(
        kernels::dev(y), d_slot_of, weights, int(top_k), hidden, kernels::dev(shared), kernels::dev(x),
        kernels::dev(gate), kernels::dev(out));
  else
    kernels::moe_combine_kernel<D, 1><<<unsigned(rows), threads, 0, stream>>>(
        kernels::dev(y), d_slot_of, weights, int(top_k), hidden, kernels::dev(shared), kernels::dev(x),
        kernels::dev(gate), kernels::dev(out));
  MII_CUDA_CHECK_LAUNCH();
}

#define MII_CUDA_MOE(D, A)                                                                                          \
  template void cuda<D>::moe<layers::activation::A>(context&, const T*, std::int64_t, std::int64_t,               \
                                                    const moe_weights<T>&, T*);
MII_CUDA_MOE(bf16_t, silu)
MII_CUDA_MOE(bf16_t, gelu)
MII_CUDA_MOE(bf16_t, gelu_tanh)
MII_CUDA_MOE(bf16_t, relu)
MII_CUDA_MOE(fp16_t, silu)
MII_CUDA_MOE(fp16_t, gelu)
MII_CUDA_MOE(fp16_t, gelu_tanh)
MII_CUDA_MOE(fp16_t, relu)
#undef MII_CUDA_MOE

}  // namespace mii::backend

// Logit operations around the sampler, each the host backend's (src/host/logits.cpp) on the GPU:
//  - summarize_rows: log(sum(exp(x))) of a row and its top_n logits (descending, lower id first on
//    ties: top_n passes of an argmax that skips what earlier passes took; top_n <= 20, so this is
//    cheaper than a sort and exact on ties);
//  - edit_logits: penalties and biases applied in place, the old values kept;
//  - gather_logits: single logits read back.
// All are opt-in per request (logprobs, penalties, logit_bias) and run only when a step needs them.
#include <cfloat>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common.cuh"

#include <mii/runtime/sampling.hpp>
#include "cuda/check.hpp"
#include "cuda/context_state.hpp"

namespace mii::kernels {
namespace {

constexpr int summary_threads = 512;
constexpr int warps = summary_threads / 32;

struct ranked {
  float value;
  std::int32_t id;  // -1: none
};
// a before b in the order (value descending, id ascending); "none" last.
__device__ __forceinline__ bool before(const ranked& a, const ranked& b) {
  if (a.id < 0) return false;
  if (b.id < 0) return true;
  return a.value > b.value || (a.value == b.value && a.id < b.id);
}

__device__ __forceinline__ ranked warp_best(ranked r) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const ranked o{__shfl_xor_sync(0xffffffffu, r.value, offset), __shfl_xor_sync(0xffffffffu, r.id, offset)};
    if (before(o, r)) r = o;
  }
  return r;
}

__global__ void __launch_bounds__(summary_threads)
    summarize_kernel(const float* __restrict__ logits, std::int64_t vocab, const std::int32_t* __restrict__ rows,
                     int top_n, float* __restrict__ lse, std::int32_t* __restrict__ top_ids, float* __restrict__ top_logits) {
  __shared__ ranked best_of_warp[warps];
  __shared__ float max_of_warp[warps];
  __shared__ double sum_of_warp[warps];
  __shared__ ranked picked;
  const int j = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const float* row = logits + std::int64_t(rows[j]) * vocab;

  float mx = -FLT_MAX;
  for (std::int64_t i = threadIdx.x; i < vocab; i += summary_threads) mx = fmaxf(mx, row[i]);
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, offset));
  if (lane == 0) max_of_warp[warp] = mx;
  __syncthreads();
  mx = max_of_warp[0];
  for (int w = 1; w < warps; ++w) mx = fmaxf(mx, max_of_warp[w]);
  double sum = 0.0;
  for (std::int64_t i = threadIdx.x; i < vocab; i += summary_threads) sum += exp(double(row[i]) - double(mx));
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  if (lane == 0) sum_of_warp[warp] = sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    double all = 0.0;
    for (int w = 0; w < warps; ++w) all += sum_of_warp[w];
    lse[j] = float(double(mx) + log(all));
    picked = {0.0f, -1};
  }
  __syncthreads();

  for (int k = 0; k < top_n; ++k) {
    const ranked prev = picked;
    ranked best{0.0f, -1};
    for (std::int64_t i = threadIdx.x; i < vocab; i += summary_threads) {
      const ranked c{row[i], std::int32_t(i)};
      if ((prev.id < 0 || before(prev, c)) && before(c, best)) best = c;
    }
    best = warp_best(best);
    if (lane == 0) best_of_warp[warp] = best;
    __syncthreads();
    if (threadIdx.x == 0) {
      ranked all = best_of_warp[0];
      for (int w = 1; w < warps; ++w)
        if (before(best_of_warp[w], all)) all = best_of_warp[w];
      top_ids[j * top_n + k] = all.id;
      top_logits[j * top_n + k] = all.id >= 0 ? all.value : 0.0f;
      if (all.id >= 0) picked = all;  // past the vocabulary the later passes find nothing either
    }
    __syncthreads();
  }
}

__global__ void edit_kernel(float* __restrict__ logits, std::int64_t vocab, const runtime::logit_edit* __restrict__ edits,
                            int n, float* __restrict__ replaced) {
  const int i = int(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const runtime::logit_edit e = edits[i];
  float& x = logits[std::int64_t(e.row) * vocab + e.token];
  replaced[i] = x;
  // runtime::apply_edit, rounded as the host rounds it (no fused multiply-add).
  x = __fadd_rn(x > 0.0f ? __fmul_rn(x, e.scale_pos) : __fmul_rn(x, e.scale_neg), e.add);
}

__global__ void gather_kernel(const float* __restrict__ logits, std::int64_t vocab, const std::int32_t* __restrict__ pairs,
                              int n, float* __restrict__ out) {
  const int i = int(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = logits[std::int64_t(pairs[2 * i]) * vocab + pairs[2 * i + 1]];
}

std::size_t align16(std::size_t v) { return (v + 15) / 16 * 16; }

}  // namespace

void summarize_rows(backend::cuda_context_state& st, const float* logits, std::int64_t vocab,
                    std::span<const std::int32_t> rows, std::int32_t top_n, float* lse, std::int32_t* top_ids,
                    float* top_logits) {
  const int n = int(rows.size());
  if (n == 0) return;
  if (top_n < 0 || top_n > 64) fail("summarize_rows: top_n must be in [0, 64], got ", top_n);
  const std::size_t in_bytes = align16(rows.size() * sizeof(std::int32_t));
  const std::size_t per = std::size_t(n) * std::size_t(top_n);
  const std::size_t out_bytes = std::size_t(n) * sizeof(float) + per * (sizeof(std::int32_t) + sizeof(float));
  auto* host = static_cast<std::byte*>(st.logits_host.reserve(in_bytes + out_bytes, st.stream));
  std::memcpy(host, rows.data(), rows.size() * sizeof(std::int32_t));
  auto* dev = static_cast<std::byte*>(st.logits_meta.reserve(in_bytes + out_bytes));
  MII_CUDA_CHECK(cudaMemcpyAsync(dev, host, in_bytes, cudaMemcpyHostToDevice, st.stream));
  auto* d_lse = reinterpret_cast<float*>(dev + in_bytes);
  auto* d_ids = reinterpret_cast<std::int32_t*>(d_lse + n);
  auto* d_top = reinterpret_cast<float*>(d_ids + per);
  summarize_kernel<<<unsigned(n), summary_threads, 0, st.stream>>>(logits, vocab, reinterpret_cast<const std::int32_t*>(dev),
                                                                  top_n, d_lse, d_ids, d_top);
  MII_CUDA_CHECK_LAUNCH();
  MII_CUDA_CHECK(cudaMemcpyAsync(host + in_bytes, dev + in_bytes, out_bytes, cudaMemcpyDeviceToHost, st.stream));
  MII_CUDA_CHECK(cudaStreamSynchronize(st.stream));
  const auto* h_lse = reinterpret_cast<const float*>(host + in_bytes);
  const auto* h_ids = reinterpret_cast<const std::int32_t*>(h_lse + n);
  const auto* h_top = reinterpret_cast<const float*>(h_ids + per);
  std::memcpy(lse, h_lse, std::size_t(n) * sizeof(float));
  if (per) {
    std::memcpy(top_ids, h_ids, per * sizeof(std::int32_t));
    std::memcpy(top_logits, h_top, per * sizeof(float));
  }
}

void edit_logits(backend::cuda_context_state& st, float* logits, std::int64_t vocab, std::span<const runtime::logit_edit> edits,
                 float* replaced) {
  const int n = int(edits.size());
  if (n == 0) return;
  const std::size_t in_bytes = align16(edits.size() * sizeof(runtime::logit_edit)), out_bytes = std::size_t(n) * sizeof(float);
  auto* host = static_cast<std::byte*>(st.logits_host.reserve(in_bytes + out_bytes, st.stream));
  std::memcpy(host, edits.data(), edits.size() * sizeof(runtime::logit_edit));
  auto* dev = static_cast<std::byte*>(st.logits_meta.reserve(in_bytes + out_bytes));
  MII_CUDA_CHECK(cudaMemcpyAsync(dev, host, in_bytes, cudaMemcpyHostToDevice, st.stream));
  edit_kernel<<<ceil_div(n, 256), 256, 0, st.stream>>>(logits, vocab, reinterpret_cast<const runtime::logit_edit*>(dev), n,
                                                       reinterpret_cast<float*>(dev + in_bytes));
  MII_CUDA_CHECK_LAUNCH();
  MII_CUDA_CHECK(cudaMemcpyAsync(host + in_bytes, dev + in_bytes, out_bytes, cudaMemcpyDeviceToHost, st.stream));
  MII_CUDA_CHECK(cudaStreamSynchronize(st.stream));
  if (replaced) std::memcpy(replaced, host + in_bytes, out_bytes);
}

void gather_logits(backend::cuda_context_state& st, const float* logits, std::int64_t vocab, std::span<const std::int32_t> rows,
                   std::span<const std::int32_t> tokens, float* out) {
  const int n = int(rows.size());
  if (n == 0) return;
  std::vector<std::int32_t> pairs(2 * rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    pairs[2 * i] = rows[i];
    pairs[2 * i + 1] = tokens[i];
  }
  const std::size_t in_bytes = align16(pairs.size() * sizeof(std::int32_t)), out_bytes = std::size_t(n) * sizeof(float);
  auto* host = static_cast<std::byte*>(st.logits_host.reserve(in_bytes + out_bytes, st.stream));
  std::memcpy(host, pairs.data(), pairs.size() * sizeof(std::int32_t));
  auto* dev = static_cast<std::byte*>(st.logits_meta.reserve(in_bytes + out_bytes));
  MII_CUDA_CHECK(cudaMemcpyAsync(dev, host, in_bytes, cudaMemcpyHostToDevice, st.stream));
  gather_kernel<<<ceil_div(n, 256), 256, 0, st.stream>>>(logits, vocab, reinterpret_cast<const std::int32_t*>(dev), n,
                                                         reinterpret_cast<float*>(dev + in_bytes));
  MII_CUDA_CHECK_LAUNCH();
  MII_CUDA_CHECK(cudaMemcpyAsync(host + in_bytes, dev + in_bytes, out_bytes, cudaMemcpyDeviceToHost, st.stream));
  MII_CUDA_CHECK(cudaStreamSynchronize(st.stream));
  std::memcpy(out, host + in_bytes, out_bytes);
}

}  // namespace mii::kernels

namespace mii::backend {

template <class DType>
void cuda<DType>::summarize_rows(context& ctx, const float* logits, std::int64_t vocab, std::span<const std::int32_t> rows,
                                 std::int32_t top_n, float* lse, std::int32_t* top_ids, float* top_logits) {
  kernels::summarize_rows(ctx.impl(), logits, vocab, rows, top_n, lse, top_ids, top_logits);
}
template <class DType>
void cuda<DType>::edit_logits(context& ctx, float* logits, std::int64_t vocab, std::span<const runtime::logit_edit> edits,
                              float* replaced) {
  kernels::edit_logits(ctx.impl(), logits, vocab, edits, replaced);
}
template <class DType>
void cuda<DType>::gather_logits(context& ctx, const float* logits, std::int64_t vocab, std::span<const std::int32_t> rows,
                                std::span<const std::int32_t> tokens, float* out) {
  kernels::gather_logits(ctx.impl(), logits, vocab, rows, tokens, out);
}

#define MII_INSTANTIATE_LOGITS(D)                                                                                      \
  template void cuda<D>::summarize_rows(context&, const float*, std::int64_t, std::span<const std::int32_t>,         \
                                        std::int32_t, float*, std::int32_t*, float*);                                 \
  template void cuda<D>::edit_logits(context&, float*, std::int64_t, std::span<const runtime::logit_edit>, float*);  \
  template void cuda<D>::gather_logits(context&, const float*, std::int64_t, std::span<const std::int32_t>,          \
                                       std::span<const std::int32_t>, float*);
MII_INSTANTIATE_LOGITS(bf16_t)
MII_INSTANTIATE_LOGITS(fp16_t)
#undef MII_INSTANTIATE_LOGITS

}  // namespace mii::backend

// The sampler on the GPU, step for step the host's runtime::sample_row (src/runtime/sampling.cpp)
// so that a seeded request draws the same token on either backend (up to float near-ties):
//  - greedy rows: argmax, lowest id on ties, EOS ids skipped while suppressed;
//  - sampled rows: candidates sorted by logit (descending, lower id first on ties) with one
//    device-wide radix sort over all sampled rows (key = row, then the logit's order bits),
//    cut to top-k, softmax of logit / temperature, top-p prefix, min-p cut, then the Philox-4x32-10 draw
//    u(seed, step) * kept mass located in the running sum.
// Ids land in pinned memory and the call waits for them (the caller needs them on the host).
#include <algorithm>
#include <bit>
#include <climits>
#include <cstdint>
#include <cstring>
#include <vector>

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_radix_sort.cuh>

#include "common.cuh"

#include <mii/runtime/philox.hpp>
#include "cuda/check.hpp"
#include "cuda/context_state.hpp"

namespace mii::kernels {
namespace {

struct row_params {
  std::uint64_t seed;
  std::uint64_t step;
  float temperature;
  float top_p;
  std::int32_t top_k;
  std::int32_t n_valid;  // vocab minus the suppressed EOS ids
  std::int32_t suppress_eos;
  float min_p;
};

// The same Philox stream as the host sampler (one definition: runtime/philox.hpp).
__device__ __forceinline__ float philox_uniform(std::uint64_t seed, std::uint64_t counter) {
  return runtime::philox_uniform_at(seed, counter);
}

__device__ __forceinline__ bool is_eos(std::int64_t id, const std::int32_t* eos, int n_eos) {
  for (int e = 0; e < n_eos; ++e)
    if (eos[e] == id) return true;
  return false;
}

// ---- greedy ----------------------------------------------------------------------------------

constexpr int greedy_threads = 512;

struct arg_best {
  float value;
  std::int64_t id;  // -1: none yet
};
__device__ __forceinline__ arg_best better(const arg_best& a, const arg_best& b) {
  if (a.id < 0) return b;
  if (b.id < 0) return a;
  if (a.value > b.value || (a.value == b.value && a.id < b.id)) return a;
  return b;
}

__global__ void __launch_bounds__(greedy_threads)
    greedy_kernel(const float* __restrict__ logits, std::int64_t vocab, const std::int32_t* __restrict__ rows,
                  const row_params* __restrict__ params, const std::int32_t* __restrict__ eos, int n_eos,
                  std::int32_t* __restrict__ out) {
  __shared__ arg_best warp_best[greedy_threads / 32];
  const std::int32_t r = rows[blockIdx.x];
  const bool suppress = params[r].suppress_eos != 0;
  const float* row = logits + std::int64_t(r) * vocab;
  arg_best best{0.0f, -1};
  for (std::int64_t i = threadIdx.x; i < vocab; i += blockDim.x) {
    if (suppress && is_eos(i, eos, n_eos)) continue;
    const float v = row[i];
    if (best.id < 0 || v > best.value) best = {v, i};  // ascending ids: strict > keeps the lowest
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const arg_best other{__shfl_xor_sync(0xffffffffu, best.value, offset), __shfl_xor_sync(0xffffffffu, best.id, offset)};
    best = better(best, other);
  }
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (lane == 0) warp_best[warp] = best;
  __syncthreads();
  if (threadIdx.x == 0) {
    arg_best all = warp_best[0];
    for (int w = 1; w < int(blockDim.x >> 5); ++w) all = better(all, warp_best[w]);
    out[r] = std::int32_t(all.id);
  }
}

// ---- sampling ----------------------------------------------------------------------------------

// Sort key of (sampled row j, logit): ascending keys = row by row, larger logits first. Masked
// ids get the largest low word, so they sort after every real logit (-inf included).
__global__ void sample_keys_kernel(const float* __restrict__ logits, std::int64_t vocab,
                                   const std::int32_t* __restrict__ rows, const row_params* __restrict__ params,
                                   const std::int32_t* __restrict__ eos, int n_eos, std::uint64_t* __restrict__ keys,
                                   std::int32_t* __restrict__ ids) {
  const std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= vocab) return;
  const std::int64_t j = blockIdx.y;
  const std::int32_t r = rows[j];
  std::uint32_t low = 0xffffffffu;
  if (!(params[r].suppress_eos && is_eos(i, eos, n_eos))) {
    float v = logits[std::int64_t(r) * vocab + i];
    if (v == 0.0f) v = 0.0f;  // -0 and +0 compare equal on the host: one key for both
    const std::uint32_t u = __float_as_uint(v);
    const std::uint32_t ordered = (u & 0x80000000u) ? ~u : (u | 0x80000000u);  // ascending with v
    low = ~ordered;
  }
  keys[j * vocab + i] = (std::uint64_t(j) << 32) | low;
  ids[j * vocab + i] = std::int32_t(i);
}

constexpr int finalize_threads = 256;
using block_scan = cub::BlockScan<double, finalize_threads>;
using block_reduce = cub::BlockReduce<double, finalize_threads>;

struct finalize_shared {
  union {
    block_scan::TempStorage scan;
    block_reduce::TempStorage reduce;
  } cub;
  double total;
  int first;
};

__device__ double block_total(double v, finalize_shared& sh) {
  const double t = block_reduce(sh.cub.reduce).Sum(v);
  if (threadIdx.x == 0) sh.total = t;
  __syncthreads();
  const double all = sh.total;
  __syncthreads();  // the storage is reused next
  return all;
}

// The first i < n whose running sum of f(0..i) reaches `threshold` (> when strict, else >=), or -1.
template <class F>
__device__ int first_reaching(int n, F f, double threshold, bool strict, finalize_shared& sh) {
  double carry = 0.0;
  for (int base = 0; base < n; base += finalize_threads) {
    const int i = base + int(threadIdx.x);
    const double v = i < n ? f(i) : 0.0;
    double inclusive, chunk_total;
    block_scan(sh.cub.scan).InclusiveSum(v, inclusive, chunk_total);
    if (threadIdx.x == 0) sh.first = INT_MAX;
    __syncthreads();
    const double cum = carry + inclusive;
    if (i < n && (strict ? cum > threshold : cum >= threshold)) atomicMin(&sh.first, i);
    __syncthreads();
    const int first = sh.first;
    __syncthreads();
    if (first != INT_MAX) return first;
    carry += chunk_total;
  }
  return -1;
}

__global__ void __launch_bounds__(finalize_threads)
    sample_finalize_kernel(const float* __restrict__ logits, std::int64_t vocab, const std::int32_t* __restrict__ rows,
                           const row_params* __restrict__ params, const std::int32_t* __restrict__ sorted_ids,
                           std::int32_t* __restrict__ out) {
  __shared__ finalize_shared sh;
  const std::int64_t j = blockIdx.x;
  const std::int32_t r = rows[j];
  const row_params p = params[r];
  if (p.n_valid <= 0) {
    if (threadIdx.x == 0) out[r] = -1;
    return;
  }
  const float* row = logits + std::int64_t(r) * vocab;
  const std::int32_t* ids = sorted_ids + j * vocab;
  const int k = p.top_k > 0 ? min(p.top_k, p.n_valid) : p.n_valid;
  const float temperature = p.temperature;
  const float mx = row[ids[0]] / temperature;
  auto prob = [&](int i) { return expf(row[ids[i]] / temperature - mx); };  // float, as the host

  double s = 0.0;
  for (int i = threadIdx.x; i < k; i += finalize_threads) s += double(prob(i));
  const double sum = block_total(s, sh);

  int keep = k;
  if (p.top_p < 1.0f) {
    const int f = first_reaching(k, [&](int i) { return double(prob(i)) / sum; }, double(p.top_p), false, sh);
    if (f >= 0) keep = f + 1;
  }
  if (p.min_p > 0.0f) {
    // Sorted candidates: those at least min_p x the top one's probability (prob(0) = 1) are a
    // prefix; count them.
    s = 0.0;
    for (int i = threadIdx.x; i < keep; i += finalize_threads) s += prob(i) >= p.min_p ? 1.0 : 0.0;
    keep = max(int(block_total(s, sh)), 1);
  }
  s = 0.0;
  for (int i = threadIdx.x; i < keep; i += finalize_threads) s += double(prob(i));
  const double kept = block_total(s, sh);
  const double u = double(philox_uniform(p.seed, p.step)) * kept;
  const int f = first_reaching(keep, [&](int i) { return double(prob(i)); }, u, true, sh);
  if (threadIdx.x == 0) out[r] = ids[f >= 0 ? f : keep - 1];
}

std::size_t align_up(std::size_t v, std::size_t a) { return (v + a - 1) / a * a; }

void sample_rows(backend::cuda_context_state& st, const float* logits, std::int32_t rows, std::int64_t vocab,
                 std::span<const runtime::sample_params> params, std::span<const std::int32_t> eos_ids,
                 std::int32_t* out) {
  if (rows <= 0) return;
  if (params.size() < std::size_t(rows)) fail("sample: ", params.size(), " sample_params for ", rows, " rows");
  if (vocab <= 0) fail("sample: vocab must be >= 1, got ", vocab);

  // Host side: per-row parameters and the split into greedy and sampled rows.
  std::vector<std::int32_t> eos;
  for (std::int32_t id : eos_ids)
    if (id >= 0 && id < vocab && std::find(eos.begin(), eos.end(), id) == eos.end()) eos.push_back(id);
  // As on the host, suppression is dropped when the EOS ids are the whole vocabulary (there
  // would be nothing left to sample).
  const bool can_suppress = std::int64_t(eos.size()) < vocab;
  std::vector<row_params> rp(static_cast<std::size_t>(rows));
  std::vector<std::int32_t> greedy, sampled;
  for (std::int32_t r = 0; r < rows; ++r) {
    const runtime::sample_params& p = params[std::size_t(r)];
    const bool suppress = p.suppress_eos && can_suppress;
    row_params& q = rp[std::size_t(r)];
    q = {p.seed, p.step, p.temperature, p.top_p, p.top_k, std::int32_t(vocab - (suppress ? std::int64_t(eos.size()) : 0)),
         suppress ? 1 : 0, p.min_p};
    (p.greedy || p.temperature <= 0.0f ? greedy : sampled).push_back(r);
  }
  const int n_eos = int(eos.size()), n_greedy = int(greedy.size()), n_sampled = int(sampled.size());

  // One pinned block, one copy: [row params][eos ids][greedy rows][sampled rows]; the ids come
  // back into the same block after it.
  const std::size_t off_eos = align_up(rp.size() * sizeof(row_params), 16);
  const std::size_t off_greedy = off_eos + eos.size() * sizeof(std::int32_t);
  const std::size_t off_sampled = off_greedy + greedy.size() * sizeof(std::int32_t);
  const std::size_t meta_bytes = align_up(off_sampled + sampled.size() * sizeof(std::int32_t), 16);
  auto* host = static_cast<std::byte*>(st.sample_host.reserve(meta_bytes + std::size_t(rows) * sizeof(std::int32_t), st.stream));
  std::memcpy(host, rp.data(), rp.size() * sizeof(row_params));
  std::memcpy(host + off_eos, eos.data(), eos.size() * sizeof(std::int32_t));
  std::memcpy(host + off_greedy, greedy.data(), greedy.size() * sizeof(std::int32_t));
  std::memcpy(host + off_sampled, sampled.data(), sampled.size() * sizeof(std::int32_t));
  auto* meta = static_cast<std::byte*>(st.sample_meta.reserve(meta_bytes));
  MII_CUDA_CHECK(cudaMemcpyAsync(meta, host, meta_bytes, cudaMemcpyHostToDevice, st.stream));
  const auto* d_params = reinterpret_cast<const row_params*>(meta);
  const auto* d_eos = reinterpret_cast<const std::int32_t*>(meta + off_eos);
  const auto* d_greedy = reinterpret_cast<const std::int32_t*>(meta + off_greedy);
  const auto* d_sampled = reinterpret_cast<const std::int32_t*>(meta + off_sampled);
  auto* d_out = st.sample_out.as<std::int32_t>(std::size_t(rows));

  if (n_greedy > 0) {
    greedy_kernel<<<unsigned(n_greedy), greedy_threads, 0, st.stream>>>(logits, vocab, d_greedy, d_params, d_eos, n_eos, d_out);
    MII_CUDA_CHECK_LAUNCH();
  }
  if (n_sampled > 0) {
    const std::int64_t items = std::int64_t(n_sampled) * vocab;
    if (items > std::int64_t(INT_MAX)) fail("sample: ", n_sampled, " sampled rows of ", vocab, " logits exceed the sorter's 2^31 items");
    if (n_sampled > 65535) fail("sample: at most 65535 sampled rows per call, got ", n_sampled);
    auto* keys = st.sample_keys.as<std::uint64_t>(std::size_t(items));
    auto* keys_sorted = st.sample_keys_sorted.as<std::uint64_t>(std::size_t(items));
    auto* ids = st.sample_ids.as<std::int32_t>(std::size_t(items));
    auto* ids_sorted = st.sample_ids_sorted.as<std::int32_t>(std::size_t(items));
    const dim3 grid(ceil_div(vocab, 256), unsigned(n_sampled));
    sample_keys_kernel<<<grid, 256, 0, st.stream>>>(logits, vocab, d_sampled, d_params, d_eos, n_eos, keys, ids);
    MII_CUDA_CHECK_LAUNCH();
    // Only the bits that vary: 32 for the logit, enough above them for the row number.
    const int end_bit = 32 + int(std::bit_width(unsigned(n_sampled - 1)));
    std::size_t temp_bytes = 0;
    MII_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, keys, keys_sorted, ids, ids_sorted, int(items), 0,
                                                   end_bit, st.stream));
    void* temp = st.sample_temp.reserve(temp_bytes);
    MII_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, keys, keys_sorted, ids, ids_sorted, int(items), 0,
                                                   end_bit, st.stream));
    sample_finalize_kernel<<<unsigned(n_sampled), finalize_threads, 0, st.stream>>>(logits, vocab, d_sampled, d_params,
                                                                                   ids_sorted, d_out);
    MII_CUDA_CHECK_LAUNCH();
  }
  auto* host_ids = reinterpret_cast<std::int32_t*>(host + meta_bytes);
  MII_CUDA_CHECK(cudaMemcpyAsync(host_ids, d_out, std::size_t(rows) * sizeof(std::int32_t), cudaMemcpyDeviceToHost, st.stream));
  MII_CUDA_CHECK(cudaStreamSynchronize(st.stream));
  std::memcpy(out, host_ids, std::size_t(rows) * sizeof(std::int32_t));
}

}  // namespace
}  // namespace mii::kernels

namespace mii::backend {

template <class DType>
void cuda<DType>::sample(context& ctx, const float* logits, std::int32_t rows, std::int64_t vocab,
                         std::span<const runtime::sample_params> params, std::span<const std::int32_t> eos_ids,
                         std::int32_t* out) {
  kernels::sample_rows(ctx.impl(), logits, rows, vocab, params, eos_ids, out);
}

template void cuda<bf16_t>::sample(context&, const float*, std::int32_t, std::int64_t, std::span<const runtime::sample_params>,
                                   std::span<const std::int32_t>, std::int32_t*);
template void cuda<fp16_t>::sample(context&, const float*, std::int32_t, std::int64_t, std::span<const runtime::sample_params>,
                                   std::span<const std::int32_t>, std::int32_t*);

}  // namespace mii::backend

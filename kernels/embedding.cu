// Token embedding lookups (vocab-parallel: ids outside this rank's slice give zero rows, filled
// in by the all-reduce) and learned position embeddings added in place.
#include <cstdint>

#include "common.cuh"
#include "cuda/check.hpp"
#include "cuda/context_state.hpp"

namespace mii::kernels {
namespace {

// One block per token; Vec elements per access (8: 16-byte accesses, needs dim % 8 == 0 and
// aligned table and out).
template <class T, int Vec>
__global__ void embed_kernel(const std::int32_t* __restrict__ token_ids, const T* __restrict__ table,
                             std::int64_t vocab_begin, std::int64_t local_vocab, std::int64_t dim, T* __restrict__ out) {
  const std::int64_t t = blockIdx.x;
  const std::int64_t row = std::int64_t(token_ids[t]) - vocab_begin;
  const bool mine = row >= 0 && row < local_vocab;
  if constexpr (Vec == 8) {
    const uint4* src = reinterpret_cast<const uint4*>(table + (mine ? row : 0) * dim);
    uint4* dst = reinterpret_cast<uint4*>(out + t * dim);
    for (std::int64_t i = threadIdx.x; i < dim / 8; i += blockDim.x) dst[i] = mine ? src[i] : make_uint4(0, 0, 0, 0);
  } else {
    const T* src = table + (mine ? row : 0) * dim;
    T* dst = out + t * dim;
    for (std::int64_t i = threadIdx.x; i < dim; i += blockDim.x) dst[i] = mine ? src[i] : from_f32<T>(0.0f);
  }
}

template <class T, int Vec>
__global__ void add_positions_kernel(const std::int32_t* __restrict__ positions, const T* __restrict__ table,
                                     int offset, std::int64_t dim, T* __restrict__ out) {
  const std::int64_t t = blockIdx.x;
  const T* src = table + (std::int64_t(positions[t]) + offset) * dim;
  T* dst = out + t * dim;
  if constexpr (Vec == 8) {
    for (std::int64_t i = threadIdx.x; i < dim / 8; i += blockDim.x) {
      float a[8], b[8];
      unpack8<T>(reinterpret_cast<const uint4*>(dst)[i], a);
      unpack8<T>(reinterpret_cast<const uint4*>(src)[i], b);
#pragma unroll
      for (int k = 0; k < 8; ++k) a[k] += b[k];
      reinterpret_cast<uint4*>(dst)[i] = pack8<T>(a);
    }
  } else {
    for (std::int64_t i = threadIdx.x; i < dim; i += blockDim.x) dst[i] = from_f32<T>(to_f32(dst[i]) + to_f32(src[i]));
  }
}

}  // namespace
}  // namespace mii::kernels

namespace mii::backend {

template <class DType>
void cuda<DType>::embed(context& ctx, const step_batch& b, const T* table, std::int64_t vocab_begin,
                        std::int64_t local_vocab, std::int64_t dim, T* out) {
  if (b.n_tokens <= 0 || dim <= 0) return;
  using D = kernels::device_t<DType>;
  const cudaStream_t stream = ctx.impl().stream;
  const bool vec = dim % 8 == 0 && kernels::aligned16(table) && kernels::aligned16(out);
  const unsigned threads = kernels::row_block_threads(vec ? dim / 8 : dim, 256);
  if (vec)
    kernels::embed_kernel<D, 8><<<b.n_tokens, threads, 0, stream>>>(b.token_ids, kernels::dev(table), vocab_begin,
                                                                     local_vocab, dim, kernels::dev(out));
  else
    kernels::embed_kernel<D, 1><<<b.n_tokens, threads, 0, stream>>>(b.token_ids, kernels::dev(table), vocab_begin,
                                                                     local_vocab, dim, kernels::dev(out));
  MII_CUDA_CHECK_LAUNCH();
}

template <class DType>
void cuda<DType>::add_positions(context& ctx, const step_batch& b, const T* table, int offset, std::int64_t dim, T* out) {
  if (b.n_tokens <= 0 || dim <= 0) return;
  using D = kernels::device_t<DType>;
  const cudaStream_t stream = ctx.impl().stream;
  const bool vec = dim % 8 == 0 && kernels::aligned16(table) && kernels::aligned16(out);
  const unsigned threads = kernels::row_block_threads(vec ? dim / 8 : dim, 256);
  if (vec)
    kernels::add_positions_kernel<D, 8><<<b.n_tokens, threads, 0, stream>>>(b.positions, kernels::dev(table), offset,
                                                                             dim, kernels::dev(out));
  else
    kernels::add_positions_kernel<D, 1><<<b.n_tokens, threads, 0, stream>>>(b.positions, kernels::dev(table), offset,
                                                                             dim, kernels::dev(out));
  MII_CUDA_CHECK_LAUNCH();
}

template void cuda<bf16_t>::embed(context&, const step_batch&, const T*, std::int64_t, std::int64_t, std::int64_t, T*);
template void cuda<fp16_t>::embed(context&, const step_batch&, const T*, std::int64_t, std::int64_t, std::int64_t, T*);
template void cuda<bf16_t>::add_positions(context&, const step_batch&, const T*, int, std::int64_t, T*);
template void cuda<fp16_t>::add_positions(context&, const step_batch&, const T*, int, std::int64_t, T*);

}  // namespace mii::backend

// Copy-on-write of KV blocks (generate_params.n: samples of one prompt share its blocks, and the
// partial last one is copied when a sample first writes into it): whole blocks, keys and values
// of every layer, copied onto others. The host backend's copy_kv_blocks is the reference.
//
// Copies take effect in list order. The list is cut into batches in which no block is both read
// and written (normally the whole list: sources are shared prompt blocks, destinations fresh
// ones), and each batch is one launch: blockIdx.y picks the pair, blockIdx.z the layer, and the
// x dimension strides over the block's bytes in 16-byte words when they are aligned.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "common.cuh"
#include "cuda/check.hpp"
#include "cuda/context_state.hpp"

#include <mii/error.hpp>

namespace mii::kernels {
namespace {

constexpr int max_pairs_per_launch = 64;  // kernel parameters: 520 bytes

struct copy_batch {
  std::int32_t src[max_pairs_per_launch];
  std::int32_t dst[max_pairs_per_launch];
  int count;
};

// W: the word copied per access (uint4 when the blocks are 16-byte aligned, else 2-byte units).
template <class W>
__global__ void copy_blocks_kernel(W* __restrict__ kv, std::int64_t words_per_block, std::int64_t blocks_per_layer,
                                   copy_batch batch) {
  const int pair = int(blockIdx.y);
  const std::int64_t layer_base = std::int64_t(blockIdx.z) * blocks_per_layer;
  const W* from = kv + (layer_base + batch.src[pair]) * words_per_block;
  W* to = kv + (layer_base + batch.dst[pair]) * words_per_block;
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < words_per_block;
       i += std::int64_t(gridDim.x) * blockDim.x)
    to[i] = from[i];
}

template <class W>
void launch(W* kv, std::int64_t words_per_block, std::int64_t blocks_per_layer, std::int64_t layers,
            const copy_batch& batch, cudaStream_t stream) {
  constexpr int threads = 256;
  const unsigned x = unsigned(std::clamp<std::int64_t>((words_per_block + threads - 1) / threads, 1, 64));
  const dim3 grid(x, unsigned(batch.count), unsigned(layers));
  copy_blocks_kernel<W><<<grid, threads, 0, stream>>>(kv, words_per_block, blocks_per_layer, batch);
  MII_CUDA_CHECK_LAUNCH();
}

}  // namespace

// `bytes_per_block`: one layer's block, in bytes (a multiple of 2: 16-bit elements, or an FP8
// block's bytes and scales).
void copy_kv_blocks(backend::cuda_context_state& st, void* kv, std::int64_t layers, std::int64_t blocks_per_layer,
                    std::int64_t bytes_per_block, std::span<const backend::block_copy> copies) {
  if (copies.empty() || layers <= 0 || bytes_per_block <= 0) return;
  if (layers > 65535) fail("copy_kv_blocks: ", layers, " layers is more than one launch holds (65535)");
  for (const auto& c : copies)
    if (c.src < 0 || c.src >= blocks_per_layer || c.dst < 0 || c.dst >= blocks_per_layer)
      fail("internal: KV block copy ", c.src, " -> ", c.dst, " outside the cache of ", blocks_per_layer, " blocks");
  const bool wide = bytes_per_block % 16 == 0 && reinterpret_cast<std::uintptr_t>(kv) % 16 == 0;
  auto run = [&](const copy_batch& b) {
    if (b.count == 0) return;
    if (wide) {
      launch(static_cast<uint4*>(kv), bytes_per_block / 16, blocks_per_layer, layers, b, st.stream);
    } else {
      launch(static_cast<std::uint16_t*>(kv), bytes_per_block / 2, blocks_per_layer, layers, b, st.stream);
    }
  };
  copy_batch batch{};
  std::vector<std::int32_t> read, written;  // blocks of the batch being filled
  for (const auto& c : copies) {
    const bool clash = std::find(written.begin(), written.end(), c.src) != written.end() ||
                       std::find(read.begin(), read.end(), c.dst) != read.end() ||
                       std::find(written.begin(), written.end(), c.dst) != written.end();
    if (clash || batch.count == max_pairs_per_launch) {
      run(batch);
      batch.count = 0;
      read.clear();
      written.clear();
    }
    batch.src[batch.count] = c.src;
    batch.dst[batch.count] = c.dst;
    ++batch.count;
    read.push_back(c.src);
    written.push_back(c.dst);
  }
  run(batch);
}

}  // namespace mii::kernels

namespace mii::backend {

template <class DType>
void cuda<DType>::copy_kv_blocks(context& ctx, std::uint8_t* kv, std::int64_t layers, std::int64_t blocks_per_layer,
                                 std::int64_t block_bytes, std::span<const block_copy> copies) {
  if (block_bytes % 2 != 0) fail("internal: KV blocks of ", block_bytes, " bytes (an odd count) cannot be copied");
  kernels::copy_kv_blocks(ctx.impl(), kv, layers, blocks_per_layer, block_bytes, copies);
}

template void cuda<bf16_t>::copy_kv_blocks(context&, std::uint8_t*, std::int64_t, std::int64_t, std::int64_t,
                                           std::span<const block_copy>);
template void cuda<fp16_t>::copy_kv_blocks(context&, std::uint8_t*, std::int64_t, std::int64_t, std::int64_t,
                                           std::span<const block_copy>);

}  // namespace mii::backend

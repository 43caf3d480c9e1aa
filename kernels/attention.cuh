// Attention over a ragged batch with a paged (blocked) KV cache: the parameters the kernels
// share and the launch entry points of the per-head_dim translation units.
//
// Work decomposition (see attention_flash.cuh for the kernel itself):
//  - A "row" is one (query token, query head) pair. The query heads that share a kv head are
//    packed together (row = token * group + head_in_group), so one CTA loads each K/V tile once
//    for all of them (GQA/MQA) and a decode token of a group-8 model fills 8 rows of a tile.
//  - A CTA owns BLOCK_M rows of one sequence and one kv head (blockIdx.x: tile, blockIdx.y: kv
//    head) and, with split-KV, one slice of the key range (blockIdx.z: split).
//  - Tiles of sequence s are numbered from tile_base(s) = s + floor(seq_start[s] * group /
//    BLOCK_M): the gap between consecutive bases is at least ceil(rows_s / BLOCK_M), so every
//    sequence gets enough tiles, and the grid size n_seqs + floor(n_tokens * group / BLOCK_M)
//    is known on the host without reading device memory. A CTA finds its sequence by binary
//    search over seq_start; surplus CTAs (at most one per sequence) exit at once.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace mii::kernels::attn {

struct attention_params {
  const void* qkv = nullptr;         // [n_tokens][qkv_stride], q heads | k heads | v heads
  void* out = nullptr;               // [n_tokens][heads * head_dim]
  // data[block][2][kv_heads][block_size][head_dim] in the compute dtype, or an FP8 cache's
  // blocks (backend/kv_fp8.hpp): e4m3 bytes in that layout, then fp32 scales [2][kv_heads][block_size].
  const void* cache = nullptr;
  const std::int32_t* seq_start = nullptr;
  const std::int32_t* seq_kv_len = nullptr;
  const std::int32_t* block_tables = nullptr;
  const std::int32_t* positions = nullptr;  // fallback kernel
  const std::int32_t* token_seq = nullptr;  // fallback kernel
  std::int32_t n_seqs = 0;
  std::int32_t n_tokens = 0;
  std::int32_t max_blocks_per_seq = 0;
  std::int32_t heads = 0;
  std::int32_t kv_heads = 0;
  std::int32_t group = 1;            // heads / kv_heads
  std::int32_t head_dim = 0;
  std::int32_t qkv_stride = 0;       // elements per qkv row
  std::int32_t block_size = 0;       // tokens per cache block, a power of two
  std::int32_t block_size_log2 = 0;
  std::int64_t block_stride = 0;     // elements (FP8: bytes) per cache block
  std::int64_t value_offset = 0;     // elements (FP8: bytes) from a block's keys to its values
  std::int64_t scale_offset = 0;     // FP8: bytes from a block's start to its scales
  std::int32_t window = 0;           // 0: full causal
  float scale_log2 = 0;              // softmax scale * log2(e): scores live in the exp2 domain
  // Soft-capping (Gemma 2): a score s becomes cap * tanh(s * scale / cap) before the mask.
  float softcap = 0;                 // cap; 0: off
  float softcap_in = 0;              // scale / cap
  float softcap_log2 = 0;            // cap * log2(e)
  // Split-KV: n_splits > 1 writes normalized fp32 partial outputs and their log2-sum-exp per
  // (split, token, head); attention_combine merges them into out.
  std::int32_t n_splits = 1;
  float* partial_out = nullptr;      // [n_splits][n_tokens][heads][head_dim]
  float* partial_lse = nullptr;      // [n_splits][n_tokens][heads]
};

// Tile geometry of the tensor-core kernel: warps_m warps stacked over the query rows, each
// owning m_atoms 16-row mma tiles, warps_n warps dividing each block_n-key tile.
struct tile_shape {
  int warps_m, warps_n, m_atoms, block_n;
  constexpr int block_m() const { return 16 * m_atoms * warps_m; }
};
// Decode: one 16-row query tile, 4 warps splitting every key tile four ways (in-CTA split-K,
// merged through shared memory at the end); for steps whose sequences all have at most 16 rows
// (decode tokens times the GQA group).
inline constexpr tile_shape decode_shape{1, 4, 1, 64};
// Prefill / mixed steps: 128 query rows per CTA, 4 warps with two 16-row mma tiles each (every
// K/V fragment read from shared memory feeds two mma), 64-key tiles; head_dim 256 keeps one
// mma tile per warp and 32-key tiles to stay within 255 registers. Measured on H100 (d 128,
// causal 8x2048): 64 rows x 64 keys 177 TFLOP/s, 128 x 32 244, 128 x 64 249.
constexpr tile_shape prefill_shape(int head_dim) {
  return head_dim > 128 ? tile_shape{4, 1, 1, 32} : tile_shape{4, 1, 2, 64};
}

// Attention variants, as FlashInfer's attention/variants.cuh: how the tensor-core kernel turns a
// raw score q.k into the base-2 exponent of its softmax weight. The mask (causal, the layer's
// window) is run-time data in attention_params; the score transform is a compile-time parameter,
// so models without soft-capping pay nothing for it.
struct plain_scores {  // exponent = s * scale * log2(e), folded into the kernel's exp2 fma
  __device__ static float score(float s, const attention_params&) { return s; }
  __device__ static float exp2_scale(const attention_params& p) { return p.scale_log2; }
};
struct soft_capped_scores {  // exponent = cap * tanh(s * scale / cap) * log2(e)
  __device__ static float score(float s, const attention_params& p) { return p.softcap_log2 * tanhf(s * p.softcap_in); }
  __device__ static float exp2_scale(const attention_params&) { return 1.0f; }
};

// Launches the tensor-core kernel for one compile-time head_dim and variant over a cache of the
// compute dtype (KV_FP8 false) or an FP8 one; defined (and explicitly instantiated for
// bf16/fp16) in attention_hd<HEAD_DIM>.cu (plain_scores), attention_hd<HEAD_DIM>_softcap.cu
// (soft_capped_scores) and their _fp8kv twins. grid.z = p.n_splits. An FP8 cache needs its
// base and block stride 16-byte aligned (its values are copied 16 bytes = 16 values at a time).
template <int HEAD_DIM, class T, class Variant, bool KV_FP8>
void launch_flash_attention(const attention_params& p, bool decode_config, int device, cudaStream_t stream);

}  // namespace mii::kernels::attn

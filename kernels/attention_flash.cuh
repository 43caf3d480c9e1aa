// FlashAttention-2-style tensor-core attention over the paged KV cache, one launch for a ragged
// mix of prefill chunks and decode tokens. Included only by attention_hd<D>.cu, which
// instantiate it for one head_dim each (keeps each translation unit's compile time bounded and
// lets the build compile head dims in parallel).
//
// Per CTA (see attention.cuh for how CTAs map to sequences, kv heads and splits):
//   Q tile [BLOCK_M rows][HEAD_DIM] -> shared memory (cp.async) -> mma A fragments (kept in
//   registers by one-mma-tile warps up to HEAD_DIM 128; re-read from shared memory per key tile
//   otherwise, to leave the registers to the O accumulators).
//   K/V tiles [BLOCK_N keys][HEAD_DIM] are gathered through the block table with 16-byte
//   cp.async into a two-stage ring, so the next tile loads while this one is computed.
//   S = Q K^T (mma.sync m16n8k16, fp32 accumulate) -> causal/window/range mask -> online softmax
//   in fp32 (exp2 domain, running max and sum per row) -> P (bf16/fp16) -> O += P V.
// Shared-memory rows are padded by 16 bytes: the 8 row addresses of every ldmatrix then fall in
// distinct bank quads for every supported head_dim (row pitch = 4 banks mod 32 or an odd
// multiple of 4 banks), with no swizzle arithmetic in the inner loop.
//
// FP8 KV cache (KV_FP8, backend/kv_fp8.hpp), dequantized in registers on the way into the
// tiles: the two-stage cp.async ring holds the raw e4m3 bytes instead (16 values per 16-byte
// copy, unpadded rows) and each tile's K and V scales (4-byte copies, one per key), and the K/V
// tiles of T keep one stage. Each iteration, after the wait and barrier that publish ring stage
// it & 1, every thread issues the next tile's copies into the other ring stage, converts the
// chunks it copied itself into the T tiles (decode, times the key's scale, round to T), and a
// second barrier publishes the converted tile to the mma loop, which is unchanged. The scales
// sit in shared memory rather than in registers held across the mma loop: at head_dim 128
// (prefill tiles) those registers would spill, and the next tile's copies could not be issued
// before this tile's conversion.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <atomic>
#include <cmath>
#include <cstdint>

#include "pdl.cuh"
#include "attention.cuh"
#include "common.cuh"
#include "cuda/check.hpp"
#include "fp8_convert.cuh"

namespace mii::kernels::attn {

// ---- PTX wrappers -------------------------------------------------------------------------

__device__ __forceinline__ unsigned shared_address(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

// 16-byte async copy global -> shared; when !valid nothing is read and the destination is zeroed
// (keys past the range must be finite zeros: a masked score times a garbage value is NaN).
__device__ __forceinline__ void cp_async_16(unsigned dst, const void* src, bool valid) {
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_4(unsigned dst, const void* src, bool valid) {
  const int src_bytes = valid ? 4 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], unsigned addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned (&r)[4], unsigned addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

template <class T>
__device__ __forceinline__ void mma_16816(float (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1);
template <>
__device__ __forceinline__ void mma_16816<__nv_bfloat16>(float (&c)[4], const unsigned (&a)[4], unsigned b0,
                                                         unsigned b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma_16816<__half>(float (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats -> one 32-bit register of two 16-bit values, `lo` in the low half (the element
// with the smaller column index in an mma fragment).
template <class T>
__device__ __forceinline__ unsigned pack2(float lo, float hi);
template <>
__device__ __forceinline__ unsigned pack2<__nv_bfloat16>(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const unsigned*>(&v);
}
template <>
__device__ __forceinline__ unsigned pack2<__half>(float lo, float hi) {
  const __half2 v = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const unsigned*>(&v);
}

// 16 e4m3 values (one 16-byte chunk of a staged key or value row) times their vector's scale ->
// 16 T values of a K/V tile row: exact decode, one fp32 multiply, one rounding to T.
template <class T>
__device__ __forceinline__ void dequantize_chunk(const std::uint8_t* src, float scale, T* dst) {
  const uint4 raw = *reinterpret_cast<const uint4*>(src);
  const unsigned words[4] = {raw.x, raw.y, raw.z, raw.w};
  unsigned packed[8];
#pragma unroll
  for (int w = 0; w < 4; ++w) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const float2 f = e4m3x2_to_float2(static_cast<std::uint16_t>(words[w] >> (16 * h)));
      packed[2 * w + h] = pack2<T>(f.x * scale, f.y * scale);
    }
  }
  *reinterpret_cast<uint4*>(dst) = make_uint4(packed[0], packed[1], packed[2], packed[3]);
  *reinterpret_cast<uint4*>(dst + 8) = make_uint4(packed[4], packed[5], packed[6], packed[7]);
}

__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// ---- configuration ------------------------------------------------------------------------

// WARPS_M warps stacked over the query rows, each owning M_ATOMS 16-row mma tiles (more rows
// per warp = fewer shared-memory reads of K and V per mma); WARPS_N warps splitting each key
// tile (decode: few rows, so the warps share the rows and divide the keys instead). KV_FP8: the
// cache is an FP8 one (the file's header).
template <int HEAD_DIM, int WARPS_M, int WARPS_N, int M_ATOMS, int BLOCK_N, bool KV_FP8 = false>
struct flash_config {
  static_assert(HEAD_DIM % 16 == 0, "mma k-steps need head_dim % 16 == 0");
  static constexpr int threads = 32 * WARPS_M * WARPS_N;
  static constexpr int warp_rows = 16 * M_ATOMS;
  static constexpr int block_m = warp_rows * WARPS_M;
  static constexpr int warp_keys = BLOCK_N / WARPS_N;  // keys of each tile one warp handles
  static_assert(warp_keys % 16 == 0, "each warp needs whole 16-key mma steps");
  static constexpr int pitch = HEAD_DIM + 8;             // shared row pitch in elements (+16 bytes)
  static constexpr int chunks_per_row = HEAD_DIM / 8;    // 16-byte chunks per row
  static constexpr int q_elems = block_m * pitch;
  static constexpr int kv_tile_elems = BLOCK_N * pitch;
  // Q fragments stay in registers when they fit next to the O accumulators.
  static constexpr bool q_in_registers = M_ATOMS == 1 && HEAD_DIM <= 128;
  // K/V tiles of T: the two-stage ring, or for an FP8 cache the one stage the bytes convert into.
  static constexpr int kv_stages = KV_FP8 ? 1 : 2;
  // FP8: the ring after the T tiles: raw bytes [2 stages][K, V][BLOCK_N][HEAD_DIM], then the
  // scales [2 stages][K, V][BLOCK_N] floats. Each thread copies (and later converts)
  // fp8_chunks_per_thread 16-byte chunks of K and as many of V.
  static constexpr int fp8_chunks_per_row = HEAD_DIM / 16;
  static constexpr int fp8_tile_bytes = BLOCK_N * HEAD_DIM;
  static constexpr int fp8_staging_bytes = KV_FP8 ? 2 * 2 * fp8_tile_bytes : 0;
  static constexpr int fp8_scale_bytes = KV_FP8 ? 2 * 2 * BLOCK_N * 4 : 0;
  static constexpr int fp8_chunks_per_thread = (BLOCK_N * fp8_chunks_per_row + threads - 1) / threads;
  // Q + the K and V stages, 16-bit elements, + the FP8 ring.
  static constexpr int smem_bytes =
      (q_elems + 2 * kv_stages * kv_tile_elems) * 2 + fp8_staging_bytes + fp8_scale_bytes;
  static_assert(smem_bytes <= 227 * 1024, "more shared memory than an SM gives one CTA");
  // The in-CTA split-K merge reuses the K/V stages for [WARPS_N][block_m][HEAD_DIM] floats.
  static_assert(WARPS_N == 1 || WARPS_N * block_m * HEAD_DIM * 4 <= 2 * kv_stages * kv_tile_elems * 2,
                "merge buffer must fit in the K/V stages");
};

// ---- the kernel ---------------------------------------------------------------------------

template <class T, class Variant, int HEAD_DIM, int WARPS_M, int WARPS_N, int M_ATOMS, int BLOCK_N, bool KV_FP8>
__global__ void __launch_bounds__(32 * WARPS_M* WARPS_N)
    flash_attention_kernel(const attention_params p) {
  // The output projection's GEMV may start streaming its weights now (kernels/pdl.cuh).
  let_dependents_launch();
  using cfg = flash_config<HEAD_DIM, WARPS_M, WARPS_N, M_ATOMS, BLOCK_N, KV_FP8>;
  constexpr int BLOCK_M = cfg::block_m;
  constexpr int PITCH = cfg::pitch;
  constexpr int CPR = cfg::chunks_per_row;
  constexpr int KEY_ATOMS = cfg::warp_keys / 8;  // n=8 score fragments per warp and tile
  constexpr int DIM_ATOMS = HEAD_DIM / 8;        // n=8 output fragments
  constexpr int ROWS = 2 * M_ATOMS;              // accumulator rows per thread

  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* const sQ = reinterpret_cast<T*>(smem_raw);
  T* const sK = sQ + cfg::q_elems;                        // [kv_stages][BLOCK_N][PITCH]
  T* const sV = sK + cfg::kv_stages * cfg::kv_tile_elems;  // [kv_stages][BLOCK_N][PITCH]
  // FP8: [2][K, V][BLOCK_N][HEAD_DIM] e4m3 bytes (16-byte aligned: PITCH is a multiple of 8),
  // then [2][K, V][BLOCK_N] scales.
  std::uint8_t* const staging = reinterpret_cast<std::uint8_t*>(sV + cfg::kv_stages * cfg::kv_tile_elems);
  float* const scale_ring = reinterpret_cast<float*>(staging + cfg::fp8_staging_bytes);

  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;
  const int warp_m = warp % WARPS_M;
  const int warp_n = warp / WARPS_M;
  const int group = p.group;

  // ---- which sequence, which rows ---------------------------------------------------------
  const int x = blockIdx.x;
  int seq = 0;
  {
    int lo = 0, hi = p.n_seqs - 1;
    while (lo < hi) {
      const int mid = (lo + hi + 1) >> 1;
      if (mid + (p.seq_start[mid] * group) / BLOCK_M <= x) lo = mid;
      else hi = mid - 1;
    }
    seq = lo;
  }
  const int tok_begin = p.seq_start[seq];
  const int n_new = p.seq_start[seq + 1] - tok_begin;
  const int rows_total = n_new * group;
  const int n_row_tiles = (rows_total + BLOCK_M - 1) / BLOCK_M;
  const int tile_in_seq = x - (seq + (tok_begin * group) / BLOCK_M);
  if (tile_in_seq >= n_row_tiles) return;  // surplus CTA of this sequence (uniform per CTA)
  // Late rows of a causal chunk see the most keys: schedule them first.
  const int row0 = (n_row_tiles - 1 - tile_in_seq) * BLOCK_M;
  const int row_end = min(row0 + BLOCK_M, rows_total);

  const int kv_head = blockIdx.y;
  const int kv_len = p.seq_kv_len[seq];
  const int q_pos0 = kv_len - n_new;  // position of the sequence's first new token
  const int pos_first = q_pos0 + row0 / group;
  const int pos_last = q_pos0 + (row_end - 1) / group;
  const int window = p.window;
  const int kv_lo = window > 0 ? max(0, pos_first - window + 1) : 0;
  const int kv_hi = pos_last + 1;

  // Split-KV: this CTA's share of the key tiles.
  const int n_kv_tiles = (kv_hi - kv_lo + BLOCK_N - 1) / BLOCK_N;
  const int tiles_per_split = (n_kv_tiles + gridDim.z - 1) / gridDim.z;
  const int first_tile = blockIdx.z * tiles_per_split;
  const int n_iter = max(0, min(n_kv_tiles, first_tile + tiles_per_split) - first_tile);
  const int kv_begin = kv_lo + first_tile * BLOCK_N;
  const int kv_end = min(kv_hi, kv_begin + n_iter * BLOCK_N);

  const T* const qkv = static_cast<const T*>(p.qkv);
  const T* const cache = static_cast<const T*>(p.cache);
  const std::int32_t* const table = p.block_tables + std::int64_t(seq) * p.max_blocks_per_seq;

  // ---- async loads ------------------------------------------------------------------------
  for (int c = tid; c < BLOCK_M * CPR; c += cfg::threads) {
    const int r = c / CPR, col = c % CPR;
    const int row = row0 + r;
    const bool valid = row < row_end;
    const T* src = qkv;
    if (valid) {
      const int token = tok_begin + row / group;
      const int head = kv_head * group + row % group;
      src = qkv + std::int64_t(token) * p.qkv_stride + head * HEAD_DIM + col * 8;
    }
    cp_async_16(shared_address(sQ + r * PITCH + col * 8), src, valid);
  }

  const std::int64_t head_offset = std::int64_t(kv_head) * p.block_size * HEAD_DIM;
  const int in_block_mask = p.block_size - 1;
  auto load_kv_tile = [&](int k0, int stage) {
    T* const k_dst = sK + stage * cfg::kv_tile_elems;
    T* const v_dst = sV + stage * cfg::kv_tile_elems;
    for (int c = tid; c < BLOCK_N * CPR; c += cfg::threads) {
      const int r = c / CPR, col = c % CPR;
      const int key = k0 + r;
      const bool valid = key < kv_end;
      const T* src = cache;
      if (valid) {
        const std::int64_t block = table[key >> p.block_size_log2];
        src = cache + block * p.block_stride + head_offset + (key & in_block_mask) * HEAD_DIM + col * 8;
      }
      cp_async_16(shared_address(k_dst + r * PITCH + col * 8), src, valid);
      cp_async_16(shared_address(v_dst + r * PITCH + col * 8), valid ? src + p.value_offset : src, valid);
    }
  };

  // FP8 cache: the tile's bytes, FP8_CHUNKS chunks of K and of V per thread, and the scales of its
  // keys' K and V vectors. Keys past the range: zero-filled bytes and scale 0 (finite zeros).
  constexpr int FP8_CPR = cfg::fp8_chunks_per_row;
  constexpr int FP8_CHUNKS = KV_FP8 ? cfg::fp8_chunks_per_thread : 1;
  constexpr bool FP8_EVEN = BLOCK_N * FP8_CPR % cfg::threads == 0;  // every thread has FP8_CHUNKS chunks
  const std::uint8_t* const cache_bytes = static_cast<const std::uint8_t*>(p.cache);
  auto load_fp8_tile = [&](int k0, int stage) {
    std::uint8_t* const k_dst = staging + stage * 2 * cfg::fp8_tile_bytes;
    std::uint8_t* const v_dst = k_dst + cfg::fp8_tile_bytes;
#pragma unroll
    for (int i = 0; i < FP8_CHUNKS; ++i) {
      const int c = tid + i * cfg::threads;
      if (!FP8_EVEN && c >= BLOCK_N * FP8_CPR) break;
      const int r = c / FP8_CPR, col = c % FP8_CPR;
      const int key = k0 + r;
      const bool valid = key < kv_end;
      const std::uint8_t* src = cache_bytes;
      if (valid) {
        const std::uint8_t* const block = cache_bytes + std::int64_t(table[key >> p.block_size_log2]) * p.block_stride;
        src = block + head_offset + (key & in_block_mask) * HEAD_DIM + col * 16;
      }
      cp_async_16(shared_address(k_dst + r * HEAD_DIM + col * 16), src, valid);
      cp_async_16(shared_address(v_dst + r * HEAD_DIM + col * 16), valid ? src + p.value_offset : src, valid);
    }
    for (int c = tid; c < 2 * BLOCK_N; c += cfg::threads) {  // which 0: the key's K scale, 1: its V scale
      const int r = c % BLOCK_N, which = c / BLOCK_N;
      const int key = k0 + r;
      const bool valid = key < kv_end;
      const std::uint8_t* src = cache_bytes;
      if (valid) {
        const std::uint8_t* const block = cache_bytes + std::int64_t(table[key >> p.block_size_log2]) * p.block_stride;
        src = block + p.scale_offset + ((which * p.kv_heads + kv_head) * p.block_size + (key & in_block_mask)) * 4;
      }
      cp_async_4(shared_address(scale_ring + (stage * 2 + which) * BLOCK_N + r), src, valid);
    }
  };
  // The chunks this thread copied into ring stage `stage` -> the T tiles, times their keys' scales.
  auto dequantize_fp8_tile = [&](int stage) {
    const std::uint8_t* const k_src = staging + stage * 2 * cfg::fp8_tile_bytes;
    const std::uint8_t* const v_src = k_src + cfg::fp8_tile_bytes;
#pragma unroll
    for (int i = 0; i < FP8_CHUNKS; ++i) {
      const int c = tid + i * cfg::threads;
      if (!FP8_EVEN && c >= BLOCK_N * FP8_CPR) break;
      const int r = c / FP8_CPR, col = c % FP8_CPR;
      const float* const sc = scale_ring + stage * 2 * BLOCK_N;
      dequantize_chunk<T>(k_src + r * HEAD_DIM + col * 16, sc[r], sK + r * PITCH + col * 16);
      dequantize_chunk<T>(v_src + r * HEAD_DIM + col * 16, sc[BLOCK_N + r], sV + r * PITCH + col * 16);
    }
  };

  if (n_iter > 0) {
    if constexpr (KV_FP8) load_fp8_tile(kv_begin, 0);
    else load_kv_tile(kv_begin, 0);
  }
  cp_async_commit();  // group: Q + first K/V tile

  // ---- per-thread row state ---------------------------------------------------------------
  // Accumulator rows of this thread: g and g + 8 of each of the warp's 16-row mma tiles;
  // row index i = 2 * m_atom + h is local row m_atom * 16 + g + 8 * h of the warp.
  const int g = lane >> 2, tq = lane & 3;
  const int warp_row0 = warp_m * cfg::warp_rows;
  int row_pos[ROWS];
#pragma unroll
  for (int i = 0; i < ROWS; ++i) {
    const int row = row0 + warp_row0 + (i >> 1) * 16 + g + 8 * (i & 1);
    row_pos[i] = row < row_end ? q_pos0 + row / group : -1;  // -1: no key passes the mask
  }
  const float sl2 = Variant::exp2_scale(p);  // scores times this are base-2 exponents

  float o[M_ATOMS][DIM_ATOMS][4];
#pragma unroll
  for (int ma = 0; ma < M_ATOMS; ++ma)
#pragma unroll
    for (int a = 0; a < DIM_ATOMS; ++a) o[ma][a][0] = o[ma][a][1] = o[ma][a][2] = o[ma][a][3] = 0.f;
  float row_max[ROWS], row_sum[ROWS];  // row_sum: partial over this thread's columns until the end
#pragma unroll
  for (int i = 0; i < ROWS; ++i) row_max[i] = -INFINITY, row_sum[i] = 0.f;

  unsigned q_frag[cfg::q_in_registers ? HEAD_DIM / 16 : 1][4];
  const T* const sQ_warp = sQ + warp_row0 * PITCH;
  // ldmatrix.x4 address of this lane for a 16x16 A block at column k: matrices (rows 0-7, k),
  // (rows 8-15, k), (rows 0-7, k+8), (rows 8-15, k+8) = fragments a0..a3.
  const int a_row = lane & 15, a_col = (lane >> 4) * 8;
  // K as the col-major B operand: matrices (keys 0-7, k), (keys 0-7, k+8), (keys 8-15, k),
  // (keys 8-15, k+8) = b0,b1 of key atom 0, b0,b1 of key atom 1.
  const int k_row = (lane & 7) + ((lane >> 4) << 3), k_col = ((lane >> 3) & 1) * 8;
  // V through ldmatrix.trans: matrices (keys 0-7, d), (keys 8-15, d), (keys 0-7, d+8),
  // (keys 8-15, d+8) = b0,b1 of dim atom 0, b0,b1 of dim atom 1.
  const int v_row = (lane & 7) + (((lane >> 3) & 1) << 3), v_col = (lane >> 4) * 8;
  const int warp_key0 = warp_n * cfg::warp_keys;
  const bool warp_has_rows = row0 + warp_row0 < row_end;

  for (int it = 0; it < n_iter; ++it) {
    cp_async_wait_all();
    __syncthreads();  // tile `it` visible to all; everyone is done with the stage we refill next
    if constexpr (KV_FP8) {
      // The other ring stage was last read before the barrier: refill it first, so that the
      // copies fly during the conversion too. This thread's byte copies of tile `it` landed
      // (its wait); the scales others copied landed and the T tiles are free (the barrier).
      if (it + 1 < n_iter) load_fp8_tile(kv_begin + (it + 1) * BLOCK_N, (it + 1) & 1);
      cp_async_commit();
      dequantize_fp8_tile(it & 1);
      __syncthreads();  // the converted tile visible to all
    } else {
      if (it + 1 < n_iter) load_kv_tile(kv_begin + (it + 1) * BLOCK_N, (it + 1) & 1);
      cp_async_commit();
    }

    if constexpr (cfg::q_in_registers) {
      if (it == 0 && warp_has_rows) {
#pragma unroll
        for (int kk = 0; kk < HEAD_DIM / 16; ++kk)
          ldmatrix_x4(q_frag[kk], shared_address(sQ_warp + a_row * PITCH + kk * 16 + a_col));
      }
    }
    // A warp whose rows are all past the end of the sequence's rows (a decode token in a
    // prefill-shaped tile) has nothing to compute; it still joins the loads and barriers.
    if (!warp_has_rows) continue;
    const int stage = KV_FP8 ? 0 : (it & 1);
    const T* const k_tile = sK + stage * cfg::kv_tile_elems + warp_key0 * PITCH;
    const T* const v_tile = sV + stage * cfg::kv_tile_elems + warp_key0 * PITCH;

    // S = Q K^T over this warp's keys; each K fragment serves all M_ATOMS row tiles.
    float s[M_ATOMS][KEY_ATOMS][4];
#pragma unroll
    for (int ma = 0; ma < M_ATOMS; ++ma)
#pragma unroll
      for (int a = 0; a < KEY_ATOMS; ++a) s[ma][a][0] = s[ma][a][1] = s[ma][a][2] = s[ma][a][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < HEAD_DIM / 16; ++kk) {
      unsigned qa[M_ATOMS][4];
#pragma unroll
      for (int ma = 0; ma < M_ATOMS; ++ma) {
        if constexpr (cfg::q_in_registers) {
#pragma unroll
          for (int r = 0; r < 4; ++r) qa[ma][r] = q_frag[kk][r];
        } else {
          ldmatrix_x4(qa[ma], shared_address(sQ_warp + (ma * 16 + a_row) * PITCH + kk * 16 + a_col));
        }
      }
#pragma unroll
      for (int np = 0; np < KEY_ATOMS / 2; ++np) {
        unsigned kb[4];
        ldmatrix_x4(kb, shared_address(k_tile + (np * 16 + k_row) * PITCH + kk * 16 + k_col));
#pragma unroll
        for (int ma = 0; ma < M_ATOMS; ++ma) {
          mma_16816<T>(s[ma][2 * np], qa[ma], kb[0], kb[1]);
          mma_16816<T>(s[ma][2 * np + 1], qa[ma], kb[2], kb[3]);
        }
      }
    }

    // The variant's score transform (soft-capping), before the mask as transformers applies it.
#pragma unroll
    for (int ma = 0; ma < M_ATOMS; ++ma)
#pragma unroll
      for (int a = 0; a < KEY_ATOMS; ++a)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[ma][a][e] = Variant::score(s[ma][a][e], p);

    // Mask keys outside [kv_begin, kv_end), after the row's position or before its window.
    const int k0 = kv_begin + it * BLOCK_N;
    const int first_key = k0 + warp_key0;
    const bool need_mask = first_key + cfg::warp_keys > min(kv_end, pos_first + 1) ||
                           (window > 0 && first_key <= pos_last - window);
    if (need_mask) {
#pragma unroll
      for (int ma = 0; ma < M_ATOMS; ++ma)
#pragma unroll
        for (int a = 0; a < KEY_ATOMS; ++a)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int key = first_key + a * 8 + 2 * tq + (e & 1);
            const int pos = row_pos[2 * ma + (e >> 1)];
            const bool visible = key < kv_end && key <= pos && (window == 0 || key > pos - window);
            if (!visible) s[ma][a][e] = -INFINITY;
          }
    }

    // Online softmax, per accumulator row (elements 2h, 2h+1 of each fragment of tile ma).
#pragma unroll
    for (int ma = 0; ma < M_ATOMS; ++ma) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int i = 2 * ma + h;
        float mx = row_max[i];
#pragma unroll
        for (int a = 0; a < KEY_ATOMS; ++a) mx = fmaxf(mx, fmaxf(s[ma][a][2 * h], s[ma][a][2 * h + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        // A row that has seen only masked keys keeps max -inf; subtract 0 then so exp2 gives 0.
        const float base = mx == -INFINITY ? 0.f : mx * sl2;
        const float alpha = fast_exp2(row_max[i] * sl2 - base);  // 0 on the first visible tile
        row_max[i] = mx;
        float sum = 0.f;
#pragma unroll
        for (int a = 0; a < KEY_ATOMS; ++a) {
          s[ma][a][2 * h] = fast_exp2(fmaf(s[ma][a][2 * h], sl2, -base));
          s[ma][a][2 * h + 1] = fast_exp2(fmaf(s[ma][a][2 * h + 1], sl2, -base));
          sum += s[ma][a][2 * h] + s[ma][a][2 * h + 1];
        }
        row_sum[i] = row_sum[i] * alpha + sum;
#pragma unroll
        for (int a = 0; a < DIM_ATOMS; ++a) {
          o[ma][a][2 * h] *= alpha;
          o[ma][a][2 * h + 1] *= alpha;
        }
      }
    }

    // O += P V: the score accumulators of key atoms 2kb, 2kb+1 are exactly the A fragment of
    // a 16-key step; each V fragment serves all M_ATOMS row tiles.
#pragma unroll
    for (int kb = 0; kb < KEY_ATOMS / 2; ++kb) {
      unsigned pa[M_ATOMS][4];
#pragma unroll
      for (int ma = 0; ma < M_ATOMS; ++ma) {
        pa[ma][0] = pack2<T>(s[ma][2 * kb][0], s[ma][2 * kb][1]);
        pa[ma][1] = pack2<T>(s[ma][2 * kb][2], s[ma][2 * kb][3]);
        pa[ma][2] = pack2<T>(s[ma][2 * kb + 1][0], s[ma][2 * kb + 1][1]);
        pa[ma][3] = pack2<T>(s[ma][2 * kb + 1][2], s[ma][2 * kb + 1][3]);
      }
#pragma unroll
      for (int dp = 0; dp < DIM_ATOMS / 2; ++dp) {
        unsigned vb[4];
        ldmatrix_x4_trans(vb, shared_address(v_tile + (kb * 16 + v_row) * PITCH + dp * 16 + v_col));
#pragma unroll
        for (int ma = 0; ma < M_ATOMS; ++ma) {
          mma_16816<T>(o[ma][2 * dp], pa[ma], vb[0], vb[1]);
          mma_16816<T>(o[ma][2 * dp + 1], pa[ma], vb[2], vb[3]);
        }
      }
    }
  }
  cp_async_wait_all();  // nothing may still be landing in shared memory we reuse below

#pragma unroll
  for (int i = 0; i < ROWS; ++i) {
    row_sum[i] += __shfl_xor_sync(0xffffffffu, row_sum[i], 1);
    row_sum[i] += __shfl_xor_sync(0xffffffffu, row_sum[i], 2);
  }

  // In-CTA split-K: warps with warp_n > 0 hand their (max, sum, O) to warp_n == 0.
  if constexpr (WARPS_N > 1) {
    __shared__ float merge_max[WARPS_N][BLOCK_M];
    __shared__ float merge_sum[WARPS_N][BLOCK_M];
    float* const merge_o = reinterpret_cast<float*>(sK);  // [WARPS_N][BLOCK_M][HEAD_DIM]
    int r_local[ROWS];
#pragma unroll
    for (int i = 0; i < ROWS; ++i) r_local[i] = warp_row0 + (i >> 1) * 16 + g + 8 * (i & 1);
    __syncthreads();  // all warps are done reading K/V stages
    if (tq == 0) {
#pragma unroll
      for (int i = 0; i < ROWS; ++i) {
        merge_max[warp_n][r_local[i]] = row_max[i];
        merge_sum[warp_n][r_local[i]] = row_sum[i];
      }
    }
    __syncthreads();
    float scale_self[ROWS];
#pragma unroll
    for (int i = 0; i < ROWS; ++i) {
      float m_all = -INFINITY;
      for (int w = 0; w < WARPS_N; ++w) m_all = fmaxf(m_all, merge_max[w][r_local[i]]);
      const float base = m_all == -INFINITY ? 0.f : m_all * sl2;
      float l_all = 0.f;
      for (int w = 0; w < WARPS_N; ++w)
        l_all += merge_sum[w][r_local[i]] * fast_exp2(merge_max[w][r_local[i]] * sl2 - base);
      scale_self[i] = fast_exp2(row_max[i] * sl2 - base);
      row_max[i] = m_all;
      row_sum[i] = l_all;
    }
    if (warp_n > 0) {
      float* const dst = merge_o + std::int64_t(warp_n) * BLOCK_M * HEAD_DIM;
#pragma unroll
      for (int ma = 0; ma < M_ATOMS; ++ma)
#pragma unroll
        for (int a = 0; a < DIM_ATOMS; ++a)
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const float f = scale_self[2 * ma + h];
            *reinterpret_cast<float2*>(dst + r_local[2 * ma + h] * HEAD_DIM + a * 8 + 2 * tq) =
                make_float2(o[ma][a][2 * h] * f, o[ma][a][2 * h + 1] * f);
          }
    }
    __syncthreads();
    if (warp_n > 0) return;
#pragma unroll
    for (int ma = 0; ma < M_ATOMS; ++ma)
#pragma unroll
      for (int a = 0; a < DIM_ATOMS; ++a)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const float f = scale_self[2 * ma + h];
          float v0 = o[ma][a][2 * h] * f, v1 = o[ma][a][2 * h + 1] * f;
          for (int w = 1; w < WARPS_N; ++w) {
            const float2 v = *reinterpret_cast<const float2*>(merge_o + std::int64_t(w) * BLOCK_M * HEAD_DIM +
                                                              r_local[2 * ma + h] * HEAD_DIM + a * 8 + 2 * tq);
            v0 += v.x;
            v1 += v.y;
          }
          o[ma][a][2 * h] = v0;
          o[ma][a][2 * h + 1] = v1;
        }
  }

  // ---- write rows -------------------------------------------------------------------------
#pragma unroll
  for (int i = 0; i < ROWS; ++i) {
    const int ma = i >> 1, h = i & 1;
    const int row = row0 + warp_row0 + ma * 16 + g + 8 * h;
    if (row >= row_end) continue;
    const int token = tok_begin + row / group;
    const int head = kv_head * group + row % group;
    const float inv = row_sum[i] > 0.f ? 1.f / row_sum[i] : 0.f;
    const std::int64_t out_row = std::int64_t(token) * p.heads + head;
    if (p.n_splits == 1) {
      T* const dst = static_cast<T*>(p.out) + out_row * HEAD_DIM + 2 * tq;
#pragma unroll
      for (int a = 0; a < DIM_ATOMS; ++a)
        *reinterpret_cast<unsigned*>(dst + a * 8) = pack2<T>(o[ma][a][2 * h] * inv, o[ma][a][2 * h + 1] * inv);
    } else {
      const std::int64_t prow = std::int64_t(blockIdx.z) * p.n_tokens * p.heads + out_row;
      float* const dst = p.partial_out + prow * HEAD_DIM + 2 * tq;
#pragma unroll
      for (int a = 0; a < DIM_ATOMS; ++a)
        *reinterpret_cast<float2*>(dst + a * 8) = make_float2(o[ma][a][2 * h] * inv, o[ma][a][2 * h + 1] * inv);
      if (tq == 0) p.partial_lse[prow] = row_sum[i] > 0.f ? row_max[i] * sl2 + __log2f(row_sum[i]) : -INFINITY;
    }
  }
}

// ---- launch -------------------------------------------------------------------------------

// Opting in to more than 48 KiB of dynamic shared memory is a per-device function attribute;
// set it once per (kernel, device): `done_devices` must be a static of the caller's template
// instantiation, one per kernel. Never a stream operation, so safe while a graph is captured.
template <class Kernel>
void allow_dynamic_smem(Kernel* kernel, int bytes, int device, std::atomic<std::uint64_t>& done_devices) {
  const std::uint64_t bit = device >= 0 && device < 64 ? (std::uint64_t(1) << device) : 0;
  if (bit && (done_devices.load(std::memory_order_acquire) & bit)) return;
  MII_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  done_devices.fetch_or(bit, std::memory_order_acq_rel);
}

template <class T, class Variant, int HEAD_DIM, int WARPS_M, int WARPS_N, int M_ATOMS, int BLOCK_N, bool KV_FP8>
void launch_flash_config(const attention_params& p, int device, cudaStream_t stream) {
  using cfg = flash_config<HEAD_DIM, WARPS_M, WARPS_N, M_ATOMS, BLOCK_N, KV_FP8>;
  auto* kernel = &flash_attention_kernel<T, Variant, HEAD_DIM, WARPS_M, WARPS_N, M_ATOMS, BLOCK_N, KV_FP8>;
  static std::atomic<std::uint64_t> smem_configured{0};  // per kernel instantiation
  allow_dynamic_smem(kernel, cfg::smem_bytes, device, smem_configured);
  const dim3 grid(unsigned(p.n_seqs + (std::int64_t(p.n_tokens) * p.group) / cfg::block_m), unsigned(p.kv_heads),
                  unsigned(p.n_splits));
  kernel<<<grid, cfg::threads, cfg::smem_bytes, stream>>>(p);
  MII_CUDA_CHECK_LAUNCH();
}

template <int HEAD_DIM, class T, class Variant, bool KV_FP8>
void launch_flash_attention(const attention_params& p, bool decode_config, int device, cudaStream_t stream) {
  using dev_t = device_t<T>;
  constexpr tile_shape d = decode_shape;
  constexpr tile_shape f = prefill_shape(HEAD_DIM);
  if (decode_config) {
    launch_flash_config<dev_t, Variant, HEAD_DIM, d.warps_m, d.warps_n, d.m_atoms, d.block_n, KV_FP8>(p, device,
                                                                                                       stream);
  } else {
    launch_flash_config<dev_t, Variant, HEAD_DIM, f.warps_m, f.warps_n, f.m_atoms, f.block_n, KV_FP8>(p, device,
                                                                                                       stream);
  }
}

// One head_dim, variant and cache kind, bf16 and fp16. The compute-dtype cache's kernels live in
// attention_hd<D>[_softcap].cu, the FP8 cache's in attention_hd<D>[_softcap]_fp8kv.cu.
#define MII_INSTANTIATE_FLASH_ATTENTION_CACHE(HEAD_DIM, VARIANT, KV_FP8)                                          \
  template void launch_flash_attention<HEAD_DIM, ::mii::bf16_t, VARIANT, KV_FP8>(const attention_params&, bool, int, \
                                                                                  cudaStream_t);                    \
  template void launch_flash_attention<HEAD_DIM, ::mii::fp16_t, VARIANT, KV_FP8>(const attention_params&, bool, int, \
                                                                                  cudaStream_t);
#define MII_INSTANTIATE_FLASH_ATTENTION_VARIANT(HEAD_DIM, VARIANT) \
  MII_INSTANTIATE_FLASH_ATTENTION_CACHE(HEAD_DIM, VARIANT, false)
#define MII_INSTANTIATE_FLASH_ATTENTION(HEAD_DIM) MII_INSTANTIATE_FLASH_ATTENTION_VARIANT(HEAD_DIM, plain_scores)
#define MII_INSTANTIATE_FLASH_ATTENTION_FP8KV_VARIANT(HEAD_DIM, VARIANT) \
  MII_INSTANTIATE_FLASH_ATTENTION_CACHE(HEAD_DIM, VARIANT, true)
#define MII_INSTANTIATE_FLASH_ATTENTION_FP8KV(HEAD_DIM) \
  MII_INSTANTIATE_FLASH_ATTENTION_FP8KV_VARIANT(HEAD_DIM, plain_scores)

}  // namespace mii::kernels::attn

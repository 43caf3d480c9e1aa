// The FP8 GEMV of linear_fp8 (src/cuda/gemm_fp8.cu) for decode steps: up to 8 token rows against
// an e4m3 weight read once.
//
// Measured on an H200 (tests/gpu/fp8_ops_test.cpp, "[.fp8bench]"; quantization of x included,
// from a CUDA graph): 20 us for a 4096 x 14336 weight at 1 row, 21 us at 8 rows, 2.8-2.9 TB/s,
// 66-69% of the 4.27 TB/s device copy rate (the goal is 90%); cuBLASLt's FP8 GEMM takes 30 us
// (48 us for 14336 x 4096) at any row count up to 16. Leads for the rest: the e4m3 mma is not
// native on Hopper (ptxas unpacks the bytes to fp16, F2FP.F16.E4M3, then two HMMA.16816; an fp16
// copy of x made by the quantization kernel, leaving only the weight's conversions, measured
// no faster at 1 row), so a wgmma (QGMMA) version with x in shared memory, or a persistent
// grid; and at 72 registers only 3 blocks fit an SM.
//
// A CUDA-core GEMV (one warp per output, as the bf16 one in src/cuda/gemm.cu) would have to
// decode every e4m3 byte of w and x to fp32 before its FMA: about 4 instructions per weight
// byte at one row and 20 at eight, so that from a few rows on the instruction issue, not memory,
// would bound it. Here the tensor cores do the decoding and the products: one
// mma.sync.m16n8k32 (e4m3 inputs, fp32 accumulators, sm_89+) multiplies a 16-output x 32-byte
// tile of w by the same 32 bytes of all 8 rows of x (n = 8: rows beyond `rows` are zeros), so a
// step costs the same from 1 to 8 rows. The products of two e4m3 values are exact; each mma
// sums its 32 with a zero accumulator and the result is added in fp32 registers, which keeps
// the tensor cores' own accumulation (not IEEE fp32 on Hopper) to 32 terms at a time.
//
// A block computes 16 outputs; its 8 warps split `in` (interleaved 64-byte chunks, so that the
// block's loads at one time cover a contiguous stretch of each of its 16 weight rows), each
// lane keeping `unroll` chunks of 16-byte streaming loads in flight, and the warps' partial
// sums meet in shared memory, added in a fixed order (the results do not depend on timing).
//
// The reduction over k may be done in any order as long as w and x use the same one, so each
// lane simply loads 16 contiguous bytes of one weight row and of one x row and feeds them to
// two mmas as the fragments' k positions: lane (g = lane / 4, t = lane % 4) holds for A rows g
// and g + 8, and for B column (x row) g, the bytes [t * 16, t * 16 + 16) of the chunk; the
// first mma takes their words 0, 1 (A a0 / a2 and B b0 / b1 "k = 4t..4t+3" and "16 + 4t.."),
// the second words 2, 3. Accumulator c0..c3 of lane (g, t) are outputs g, g, g + 8, g + 8 of
// x rows 2t, 2t + 1, 2t, 2t + 1 (PTX ISA, "Matrix Fragments for mma.m16n8k32").
//
// Block-wise weights (fp8_gemv_blocks; backend/fp8.hpp): the scales change along k, every C
// columns, so they cannot wait for the end. With C % 64 == 0 each 64-byte chunk lies in one
// group g, and the two mmas of a chunk are one group's partial sum: the lane multiplies its
// four accumulators' share by xs[g][row] * ws[o / R][g] (its outputs g / g + 8, its x rows 2t /
// 2t + 1) before adding them into acc, and the store applies no scale. The per-row path is the
// same kernel without that step. With 128-column groups (every release's blocks) each warp takes
// 4 adjacent chunks per step instead of every 8th, so that two chunks share one group: their four
// mmas are summed and scaled once, with scales loaded beside the step's x, one step ahead.
// Measured on an H200 (gpu-kernels-bench --what fp8, bench/RESULTS.md), Llama-3-8B's gate|up
// weight at 1 row: 51.8 us with a 64-bit division for each chunk's group and its scales loaded
// where they are used, 46.4 us with the division a shift, 38.4 us paired and prefetched (35.0 us
// per row). Other C (% 64 == 0): one chunk at a time, its group by a 32-bit division.
#include <cstdint>

#include "common.cuh"
#include "cuda/check.hpp"
#include "fp8.cuh"
#include "moe_gemv.cuh"
#include "pdl.cuh"

namespace mii::kernels {
namespace {

constexpr int gemv_outputs = 16;  // the mma's m: outputs per block
constexpr int gemv_warps = 8;     // k-slices of a block
constexpr int gemv_unroll = 4;    // 64-byte chunks per warp in flight
constexpr int chunk_bytes = 64;   // one warp step: 4 lanes x 16 bytes of each of the 16 rows

// D = A * B for one m16n8k32 tile, e4m3 inputs, fp32 output, zero accumulator. (On Hopper the
// tensor cores take e4m3 through fp16: ptxas unpacks the bytes and issues two m16n8k16 HMMAs,
// products and sums exact as before.) Volatile, as the loads below: the compiler keeps them in
// source order, so a step's loads are all issued before its first mma waits for one.
__device__ __forceinline__ void mma_e4m3(float (&d)[4], std::uint32_t a0, std::uint32_t a1, std::uint32_t a2,
                                         std::uint32_t a3, std::uint32_t b0, std::uint32_t b1) {
#if __CUDA_ARCH__ >= 890  // e4m3 mma: Ada and Hopper (linear_fp8 refuses older GPUs)
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %10, %10, %10};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "f"(0.0f));
#else
  __trap();
#endif
}

// 16 bytes at p + k: weights with a streaming load (read once; kept out of L1), x cached (every
// block re-reads it); unaligned rows (in % 16 != 0 or unaligned pointers) gathered byte by byte,
// bytes at or past `limit` reading as zero.
template <bool Aligned, bool Stream>
__device__ __forceinline__ uint4 load16(const std::uint8_t* p, std::int64_t k, std::int64_t limit) {
  uint4 v;
  if constexpr (Aligned) {
    if constexpr (Stream)
      asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                   : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                   : "l"(p + k));
    else
      asm volatile("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p + k));
  } else {
    std::uint32_t w[4] = {0, 0, 0, 0};
#pragma unroll
    for (int i = 0; i < 16; ++i)
      if (k + i < limit) w[i / 4] |= std::uint32_t(__ldg(p + k + i)) << (8 * (i % 4));
    v = make_uint4(w[0], w[1], w[2], w[3]);
  }
  return v;
}

// Aligned: in % 16 == 0 and 16-byte aligned xq and wq (every lane's 16 bytes then lie inside
// the row or wholly past its end). Group: 0, one scale per row of x and of w (`blocks` unused);
// else block-wise scales (`blocks`, group % 64 == 0) of Group columns, or of blocks.group columns
// when Group is -1.
// Block `block`'s 16 outputs.
template <class Out, bool Aligned, int Group>
__device__ __forceinline__ void fp8_gemv_block(const std::uint8_t* __restrict__ xq, const float* __restrict__ xs,
                                               int rows, std::int64_t in, const std::uint8_t* __restrict__ wq,
                                               const float* __restrict__ ws, std::int64_t out, fp8_block_scales blocks,
                                               const Out* __restrict__ bias, Out* __restrict__ y, bool accumulate,
                                               unsigned block) {
  __shared__ float partial[gemv_warps][gemv_outputs][fp8_gemv_rows];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const std::int64_t o0 = std::int64_t(block) * gemv_outputs;
  // Rows past `out` / `rows` read a row that exists instead (the last): their products land only
  // in accumulator rows / columns that are never stored, and the loads need no branch.
  const std::uint8_t* w_lo = wq + std::min(o0 + g, out - 1) * in;
  const std::uint8_t* w_hi = wq + std::min(o0 + g + 8, out - 1) * in;
  const std::uint8_t* x_row = xq + std::int64_t(min(g, rows - 1)) * in;
  const std::int64_t chunks = (in + chunk_bytes - 1) / chunk_bytes;
  const std::int64_t step = std::int64_t(gemv_warps) * gemv_unroll;  // chunks per block iteration
  const uint4 zero = make_uint4(0, 0, 0, 0);

  // A lane's 16 bytes of chunk c start at byte k of the row; past the row's end it loads the
  // row's first 16 instead, and they count as zeros (in both operands, so that no NaN code times
  // zero can leak in).
  // Chunk u of a warp's step: interleaved across the warps (the block's loads of one step cover
  // a contiguous stretch of each weight row); with 128-column groups (Paired), each warp takes 4
  // adjacent chunks instead, two groups, so that a pair of chunks shares its scales (the step
  // still covers the same stretch).
  constexpr bool Paired = Group == 128;
  auto chunk_of = [&](std::int64_t base, int u) {
    return Paired ? base - warp + std::int64_t(warp) * gemv_unroll + u : base + std::int64_t(u) * gemv_warps;
  };
  auto offset = [&](std::int64_t base, int u) {
    const std::int64_t k = chunk_of(base, u) * chunk_bytes + t * 16;
    return k < in ? k : -1;
  };
  uint4 a_lo[gemv_unroll], a_hi[gemv_unroll], b[gemv_unroll];
  auto load_w = [&](std::int64_t base) {
#pragma unroll
    for (int u = 0; u < gemv_unroll; ++u) {
      const std::int64_t k = offset(base, u);
      a_lo[u] = load16<Aligned, true>(w_lo, k < 0 ? 0 : k, in);
      a_hi[u] = load16<Aligned, true>(w_hi, k < 0 ? 0 : k, in);
    }
  };
  auto load_x = [&](std::int64_t base) {
#pragma unroll
    for (int u = 0; u < gemv_unroll; ++u) {
      const std::int64_t k = offset(base, u);
      b[u] = load16<Aligned, false>(x_row, k < 0 ? 0 : k, in);
    }
  };
  // Blocked: the lane's x rows and weight scale rows (clamped as the loads are: what they scale
  // is never stored), and its accumulators' scales for the chunk starting at byte k (of one group).
  const int x_row0 = min(2 * t, rows - 1), x_row1 = min(2 * t + 1, rows - 1);
  const float* ws_lo = ws + (std::min(o0 + g, out - 1) / blocks.block_rows) * blocks.scale_ld;
  const float* ws_hi = ws + (std::min(o0 + g + 8, out - 1) / blocks.block_rows) * blocks.scale_ld;
  constexpr bool Blocked = Group != 0;
  const unsigned runtime_group = unsigned(blocks.group);
  auto chunk_scales = [&](std::int64_t k, float (&s)[4]) {
    const unsigned group = Group > 0 ? unsigned(k) / unsigned(Group) : unsigned(k) / runtime_group;
    const float* xg = xs + group * blocks.xs_stride;
    const float x0 = __ldg(xg + x_row0), x1 = __ldg(xg + x_row1);
    const float w_lo = __ldg(ws_lo + group), w_hi = __ldg(ws_hi + group);
    s[0] = __fmul_rn(x0, w_lo), s[1] = __fmul_rn(x1, w_lo), s[2] = __fmul_rn(x0, w_hi), s[3] = __fmul_rn(x1, w_hi);
  };
  // Paired: the scales of a step's two pairs, loaded with the step's x (after the wait for the
  // quantization kernel), so that they arrive with the weights instead of stalling the mmas.
  float pair_scales[gemv_unroll / 2][4];
  auto load_scales = [&](std::int64_t base) {
    if constexpr (Paired) {
#pragma unroll
      for (int p = 0; p < gemv_unroll / 2; ++p) {
        const std::int64_t k = chunk_of(base, 2 * p) * chunk_bytes;
        if (k < in) chunk_scales(k, pair_scales[p]);
      }
    }
  };

  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  std::int64_t base = warp;
  // The first step's weights are requested before waiting for x: they stream in while the
  // quantization kernel finishes.
  if (base < chunks) load_w(base);
  wait_for_previous_kernel();
  if (base < chunks) {
    load_x(base);
    load_scales(base);
  }
  while (base < chunks) {
#pragma unroll
    for (int u = 0; u < gemv_unroll; ++u) {
      const std::int64_t k = offset(base, u);
      if (k < 0) a_lo[u] = a_hi[u] = b[u] = zero;
      if constexpr (Paired) {
        // Both chunks of a pair lie in one group (in % 128 == 0): their four mmas' sums, then
        // the pair's scales. The pair is done at its even chunk.
        if (u % 2 == 1) continue;
        float d[4], e[4], d2[4], e2[4];
        mma_e4m3(d, a_lo[u].x, a_hi[u].x, a_lo[u].y, a_hi[u].y, b[u].x, b[u].y);
        mma_e4m3(e, a_lo[u].z, a_hi[u].z, a_lo[u].w, a_hi[u].w, b[u].z, b[u].w);
        if (offset(base, u + 1) < 0) a_lo[u + 1] = a_hi[u + 1] = b[u + 1] = zero;
        mma_e4m3(d2, a_lo[u + 1].x, a_hi[u + 1].x, a_lo[u + 1].y, a_hi[u + 1].y, b[u + 1].x, b[u + 1].y);
        mma_e4m3(e2, a_lo[u + 1].z, a_hi[u + 1].z, a_lo[u + 1].w, a_hi[u + 1].w, b[u + 1].z, b[u + 1].w);
        if (chunk_of(base, u) * chunk_bytes < in) {
#pragma unroll
          for (int i = 0; i < 4; ++i) acc[i] = fmaf((d[i] + e[i]) + (d2[i] + e2[i]), pair_scales[u / 2][i], acc[i]);
        }
      } else if constexpr (Blocked) {
        // The chunk's two mmas are one group's partial sums: scaled together, then added.
        float d[4], e[4];
        mma_e4m3(d, a_lo[u].x, a_hi[u].x, a_lo[u].y, a_hi[u].y, b[u].x, b[u].y);
        mma_e4m3(e, a_lo[u].z, a_hi[u].z, a_lo[u].w, a_hi[u].w, b[u].z, b[u].w);
        // The accumulators sum all four lanes' bytes of the chunk: its group is the chunk's
        // (not this lane's 16 bytes, which may lie past the row's end when the others do not).
        const std::int64_t chunk_k = chunk_of(base, u) * chunk_bytes;
        if (chunk_k < in) {  // a chunk past the row's end has no group (and contributes zeros)
          float s[4];
          chunk_scales(chunk_k, s);
#pragma unroll
          for (int i = 0; i < 4; ++i) acc[i] = fmaf(d[i] + e[i], s[i], acc[i]);
        }
      } else {
        float d[4];
        mma_e4m3(d, a_lo[u].x, a_hi[u].x, a_lo[u].y, a_hi[u].y, b[u].x, b[u].y);
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[i] += d[i];
        mma_e4m3(d, a_lo[u].z, a_hi[u].z, a_lo[u].w, a_hi[u].w, b[u].z, b[u].w);
#pragma unroll
        for (int i = 0; i < 4; ++i) acc[i] += d[i];
      }
    }
    base += step;
    if (base < chunks) {  // every load of the next step is issued before its first mma
      load_w(base);
      load_x(base);
      load_scales(base);
    }
  }
  partial[warp][g][2 * t] = acc[0];
  partial[warp][g][2 * t + 1] = acc[1];
  partial[warp][g + 8][2 * t] = acc[2];
  partial[warp][g + 8][2 * t + 1] = acc[3];
  __syncthreads();

  // Thread i < 128 finishes output i % 16 of row i / 16: a row's 16 outputs are adjacent in y.
  if (threadIdx.x < gemv_outputs * fp8_gemv_rows) {
    const int f = threadIdx.x % gemv_outputs, r = threadIdx.x / gemv_outputs;
    const std::int64_t o = o0 + f;
    if (r < rows && o < out) {
      float sum = 0.0f;
#pragma unroll
      for (int w = 0; w < gemv_warps; ++w) sum += partial[w][f][r];
      // The host's order and roundings (no contraction into an fma): dot * xs * ws, + bias, y +.
      // Blocked: the scales are in the partial sums already.
      float v = Blocked ? sum : __fmul_rn(__fmul_rn(sum, xs[r]), ws[o]);
      if (bias) v = __fadd_rn(v, to_f32(bias[o]));
      Out* dst = y + std::int64_t(r) * out + o;
      if (accumulate) v = __fadd_rn(to_f32(*dst), v);
      *dst = from_f32<Out>(v);
    }
  }
}

template <class Out, bool Aligned, int Group>
__global__ void __launch_bounds__(gemv_warps * 32)
    fp8_gemv_kernel(const std::uint8_t* __restrict__ xq, const float* __restrict__ xs, int rows, std::int64_t in,
                    const std::uint8_t* __restrict__ wq, const float* __restrict__ ws, std::int64_t out,
                    fp8_block_scales blocks, const Out* __restrict__ bias, Out* __restrict__ y, bool accumulate) {
  fp8_gemv_block<Out, Aligned, Group>(xq, xs, rows, in, wq, ws, out, blocks, bias, y, accumulate, blockIdx.x);
}

// kernels/moe_gemv.cuh: block row g takes the g-th expert in use and its slice of the slots. The
// routing arrays were written before the quantization kernel started, so they are read before
// the programmatic wait, as the weights are.
template <class Out, int Group>
__global__ void __launch_bounds__(gemv_warps * 32)
    moe_fp8_gemv_kernel(const std::uint8_t* __restrict__ xq, const float* __restrict__ xs, std::int64_t in,
                        const __grid_constant__ moe_expert_table table, std::int64_t out, fp8_block_scales blocks,
                        moe_groups groups, Out* __restrict__ y) {
  const int e = groups.used[blockIdx.y];
  if (e < 0) return;
  const std::int64_t begin = groups.first[e];
  const int rows = groups.first[e + 1] - int(begin);
  // Per-row scales: one per slot; block-wise: group-major over all slots (blocks.xs_stride).
  fp8_gemv_block<Out, true, Group>(xq + begin * in, xs + begin, rows, in,
                                   static_cast<const std::uint8_t*>(table.weight[e]), table.scale[e], out, blocks,
                                   nullptr, y + begin * out, false, blockIdx.x);
}

// A launch behind the quantization of x (programmatic: fp8_gemv's comment; kernels/pdl.cuh).
template <class Kernel, class... Args>
void launch_programmatic(dim3 grid, cudaStream_t stream, Kernel kernel, Args... args) {
  launch_maybe_programmatic(true, grid, dim3(gemv_warps * 32), stream, kernel, args...);
}

template <class Out>
void launch_gemv(const std::uint8_t* xq, const float* xs, int rows, std::int64_t in, const std::uint8_t* wq,
                 const float* ws, std::int64_t out, const fp8_block_scales* scales, const Out* bias, Out* y,
                 bool accumulate, cudaStream_t stream) {
  if (rows <= 0 || out <= 0) return;
  if (rows > fp8_gemv_rows) fail("internal: the FP8 GEMV takes at most ", fp8_gemv_rows, " rows, got ", rows);
  const std::int64_t blocks = (out + gemv_outputs - 1) / gemv_outputs;
  if (blocks > 0x7fffffff) fail("fp8 linear: ", out, " outputs is more than one launch takes");
  // Launched as a programmatic dependent of the kernel before it (the quantization of x, which
  // lets its dependents start at once): the blocks start streaming weights while it finishes,
  // and wait for it (griddepcontrol.wait) before reading x. Everything else the kernel reads
  // before that wait (w, ws) was written before the quantization started.
  const bool aligned = in % 16 == 0 && aligned16(xq) && aligned16(wq);
  const fp8_block_scales b = scales ? *scales : fp8_block_scales{};
  auto kernel = !scales            ? (aligned ? fp8_gemv_kernel<Out, true, 0> : fp8_gemv_kernel<Out, false, 0>)
                : b.group == 128 ? (aligned ? fp8_gemv_kernel<Out, true, 128> : fp8_gemv_kernel<Out, false, 128>)
                                 : (aligned ? fp8_gemv_kernel<Out, true, -1> : fp8_gemv_kernel<Out, false, -1>);
  launch_programmatic(dim3(unsigned(blocks)), stream, kernel, xq, xs, rows, in, wq, ws, out, b, bias, y, accumulate);
}

}  // namespace

template <class Out>
void fp8_gemv(const std::uint8_t* xq, const float* xs, int rows, std::int64_t in, const std::uint8_t* wq,
              const float* ws, std::int64_t out, const Out* bias, Out* y, bool accumulate, cudaStream_t stream) {
  launch_gemv(xq, xs, rows, in, wq, ws, out, nullptr, bias, y, accumulate, stream);
}

template <class Out>
void fp8_gemv_blocks(const std::uint8_t* xq, const float* xs, int rows, std::int64_t in, const std::uint8_t* wq,
                     const float* ws, std::int64_t out, fp8_block_scales blocks, const Out* bias, Out* y,
                     bool accumulate, cudaStream_t stream) {
  if (blocks.group <= 0 || blocks.group % chunk_bytes != 0 || blocks.block_rows <= 0)
    fail("internal: the FP8 GEMV takes blocks of a multiple of ", chunk_bytes, " columns, got ", blocks.block_rows, " x ",
         blocks.group);
  launch_gemv(xq, xs, rows, in, wq, ws, out, &blocks, bias, y, accumulate, stream);
}

template <class Out>
void moe_fp8_gemv(const std::uint8_t* xq, const float* xs, std::int64_t in, const moe_expert_table& w,
                  std::int64_t out, const fp8_block_scales* blocks, moe_groups groups, Out* y, cudaStream_t stream) {
  if (groups.groups <= 0 || out <= 0) return;
  if (groups.max_rows > fp8_gemv_rows)
    fail("internal: the MoE FP8 GEMV takes at most ", fp8_gemv_rows, " rows per expert, got ", groups.max_rows);
  if (in % 16 != 0 || !aligned16(xq)) fail("internal: the MoE FP8 GEMV needs 16-byte rows, got in = ", in);
  if (blocks && (blocks->group <= 0 || blocks->group % chunk_bytes != 0 || blocks->block_rows <= 0))
    fail("internal: the MoE FP8 GEMV takes blocks of a multiple of ", chunk_bytes, " columns, got ",
         blocks->block_rows, " x ", blocks->group);
  const std::int64_t tiles = (out + gemv_outputs - 1) / gemv_outputs;
  if (tiles > 0x7fffffff) fail("fp8 linear: ", out, " outputs is more than one launch takes");
  const fp8_block_scales b = blocks ? *blocks : fp8_block_scales{};
  auto kernel = !blocks ? moe_fp8_gemv_kernel<Out, 0>
                : b.group == 128 ? moe_fp8_gemv_kernel<Out, 128>
                                 : moe_fp8_gemv_kernel<Out, -1>;
  launch_programmatic(dim3(unsigned(tiles), unsigned(groups.groups)), stream, kernel, xq, xs, in, w, out, b, groups, y);
}

template void moe_fp8_gemv<__nv_bfloat16>(const std::uint8_t*, const float*, std::int64_t, const moe_expert_table&,
                                          std::int64_t, const fp8_block_scales*, moe_groups, __nv_bfloat16*,
                                          cudaStream_t);
template void moe_fp8_gemv<__half>(const std::uint8_t*, const float*, std::int64_t, const moe_expert_table&,
                                   std::int64_t, const fp8_block_scales*, moe_groups, __half*, cudaStream_t);

template void fp8_gemv<__nv_bfloat16>(const std::uint8_t*, const float*, int, std::int64_t, const std::uint8_t*,
                                      const float*, std::int64_t, const __nv_bfloat16*, __nv_bfloat16*, bool,
                                      cudaStream_t);
template void fp8_gemv<__half>(const std::uint8_t*, const float*, int, std::int64_t, const std::uint8_t*, const float*,
                               std::int64_t, const __half*, __half*, bool, cudaStream_t);
template void fp8_gemv_blocks<__nv_bfloat16>(const std::uint8_t*, const float*, int, std::int64_t, const std::uint8_t*,
                                             const float*, std::int64_t, fp8_block_scales, const __nv_bfloat16*,
                                             __nv_bfloat16*, bool, cudaStream_t);
template void fp8_gemv_blocks<__half>(const std::uint8_t*, const float*, int, std::int64_t, const std::uint8_t*,
                                      const float*, std::int64_t, fp8_block_scales, const __half*, __half*, bool,
                                      cudaStream_t);

}  // namespace mii::kernels

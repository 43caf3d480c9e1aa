// The block-wise FP8 linear (backend/fp8.hpp) for block shapes the tensor-core paths do not take:
// block columns C % 64 != 0 (the GEMV steps 64 bytes of k at a time, each step in one group;
// cuBLASLt takes only 128 x 128 blocks). Such blocks are unusual (the test fixtures use 16 x 32
// and 32 x 64; DeepSeek-V3's layout is 128 x 128), so this kernel is written to be plainly
// correct for any C, R and row count rather than fast: one warp per (output, row), e4m3 decoded
// to fp32 on the CUDA cores (every product exact), each group's products summed in fp32 across
// the warp, scaled by xs * ws and added, then bias and y in the host's order.
#include <cstdint>

#include "common.cuh"
#include "cuda/check.hpp"
#include "fp8.cuh"
#include "fp8_convert.cuh"

namespace mii::kernels {
namespace {

constexpr int generic_warps = 8;  // outputs per block

template <class Out>
__global__ void __launch_bounds__(generic_warps * 32)
    fp8_blocks_generic_kernel(const std::uint8_t* __restrict__ xq, const float* __restrict__ xs, std::int64_t rows,
                              std::int64_t in, const std::uint8_t* __restrict__ wq, const float* __restrict__ ws,
                              std::int64_t out, fp8_block_scales blocks, const Out* __restrict__ bias,
                              Out* __restrict__ y, bool accumulate) {
  const int lane = threadIdx.x & 31;
  const std::int64_t o = std::int64_t(blockIdx.x) * generic_warps + (threadIdx.x >> 5);
  if (o >= out) return;
  const std::uint8_t* w_row = wq + o * in;
  const float* w_scale = ws + (o / blocks.block_rows) * blocks.scale_ld;
  const std::int64_t groups = (in + blocks.group - 1) / blocks.group;
  for (std::int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const std::uint8_t* x_row = xq + r * in;
    float total = 0.0f;
    for (std::int64_t g = 0; g < groups; ++g) {
      const std::int64_t end = std::min(in, (g + 1) * blocks.group);
      float sum = 0.0f;
      for (std::int64_t i = g * blocks.group + lane; i < end; i += 32)
        sum = fmaf(e4m3_to_float(x_row[i]), e4m3_to_float(w_row[i]), sum);
#pragma unroll
      for (int offset = 16; offset > 0; offset >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
      // As the host: dot * xs * ws, added to the row's sum.
      total = __fadd_rn(total, __fmul_rn(__fmul_rn(sum, xs[g * blocks.xs_stride + r]), w_scale[g]));
    }
    if (lane == 0) {
      float v = total;
      if (bias) v = __fadd_rn(v, to_f32(bias[o]));
      Out* dst = y + r * out + o;
      if (accumulate) v = __fadd_rn(to_f32(*dst), v);
      *dst = from_f32<Out>(v);
    }
  }
}

}  // namespace

template <class Out>
void fp8_linear_blocks_generic(const std::uint8_t* xq, const float* xs, std::int64_t rows, std::int64_t in,
                               const std::uint8_t* wq, const float* ws, std::int64_t out, fp8_block_scales blocks,
                               const Out* bias, Out* y, bool accumulate, cudaStream_t stream) {
  if (rows <= 0 || out <= 0) return;
  if (blocks.group <= 0 || blocks.block_rows <= 0)
    fail("internal: FP8 blocks of ", blocks.block_rows, " x ", blocks.group, " (both must be >= 1)");
  const std::int64_t grid_x = (out + generic_warps - 1) / generic_warps;
  if (grid_x > 0x7fffffff) fail("fp8 linear: ", out, " outputs is more than one launch takes");
  const dim3 grid(unsigned(grid_x), unsigned(std::min<std::int64_t>(rows, 65535)));
  fp8_blocks_generic_kernel<Out><<<grid, generic_warps * 32, 0, stream>>>(xq, xs, rows, in, wq, ws, out, blocks, bias, y,
                                                                         accumulate);
  MII_CUDA_CHECK_LAUNCH();
}

template void fp8_linear_blocks_generic<__nv_bfloat16>(const std::uint8_t*, const float*, std::int64_t, std::int64_t,
                                                       const std::uint8_t*, const float*, std::int64_t,
                                                       fp8_block_scales, const __nv_bfloat16*, __nv_bfloat16*, bool,
                                                       cudaStream_t);
template void fp8_linear_blocks_generic<__half>(const std::uint8_t*, const float*, std::int64_t, std::int64_t,
                                                const std::uint8_t*, const float*, std::int64_t, fp8_block_scales,
                                                const __half*, __half*, bool, cudaStream_t);

}  // namespace mii::kernels

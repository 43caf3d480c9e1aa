// FP8 (backend/fp8.hpp) kernels the cuda backend's ops and weight loading launch: row
// quantization (kernels/fp8.cu), the FP8 GEMV (kernels/fp8_gemv.cu) and the CUDA-core kernel
// for block-wise weights the GEMV does not take (kernels/fp8_blocks.cu). Host-side declarations
// only, so that plain C++ (src/cuda/context.cpp) can call them.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace mii::kernels {

// Per row r of x [rows, cols]: s = fp8_scale(max |x[r][:]|) computed as the host does (fp32,
// IEEE division), scale[r] = s, q[r][i] = e4m3(x[r][i] / s) rounded to nearest even: the same
// bytes as mii::to_e4m3 on the host. In: __nv_bfloat16, __half or float. static_scale (device,
// one float): every row uses it instead (scale[r] = *static_scale) and x / s saturates at +-448.
template <class In>
void quantize_fp8_rows(const In* x, std::int64_t rows, std::int64_t cols, std::uint8_t* q, float* scale,
                       cudaStream_t stream, const float* static_scale = nullptr);

// Block-wise weights (backend/fp8.hpp): every group of `group` columns of a row (the last one
// of a row may be shorter) quantized as quantize_fp8_rows quantizes a row (the same bytes, and
// the scale the host computes for that group), the scales group-major: scale[g * rows + r].
// That is cuBLASLt's layout of VEC128_32F scales for the activation operand (N-major, N = rows)
// and what the block-wise GEMV below reads.
template <class In>
void quantize_fp8_groups(const In* x, std::int64_t rows, std::int64_t cols, std::int64_t group, std::uint8_t* q,
                         float* scale, cudaStream_t stream);

// y[r][o] = (sum_i xq[r][i] * wq[o][i]) * xs[r] * ws[o] (+ bias[o]) (+ y[r][o] when accumulate)
// for rows <= fp8_gemv_rows (any in, out and alignment). Out: __nv_bfloat16 or __half. Launched
// as a programmatic dependent of the kernel before it, which must be the one that wrote xq / xs
// (or a kernel that does not trigger its dependents early).
constexpr int fp8_gemv_rows = 8;
template <class Out>
void fp8_gemv(const std::uint8_t* xq, const float* xs, int rows, std::int64_t in, const std::uint8_t* wq,
              const float* ws, std::int64_t out, const Out* bias, Out* y, bool accumulate, cudaStream_t stream);

// The scales of a block-wise linear: weight scale of (o, i) at ws[(o / block_rows) * scale_ld +
// i / group], input scale of (r, i) at xs[(i / group) * xs_stride + r] (quantize_fp8_groups).
struct fp8_block_scales {
  std::int64_t block_rows = 1, group = 0, scale_ld = 1, xs_stride = 0;
};

// fp8_gemv for block-wise weights with group % 64 == 0 (each 64-byte step of the GEMV lies in
// one group): y[r][o] = sum_g (sum_{i in g} xq[r][i] * wq[o][i]) * xs[g][r] * ws[o / R][g]
// (+ bias[o]) (+ y[r][o]). xs points at row 0's scale of group 0, rows <= fp8_gemv_rows; launched
// as fp8_gemv is.
template <class Out>
void fp8_gemv_blocks(const std::uint8_t* xq, const float* xs, int rows, std::int64_t in, const std::uint8_t* wq,
                     const float* ws, std::int64_t out, fp8_block_scales blocks, const Out* bias, Out* y,
                     bool accumulate, cudaStream_t stream);

// The same for any group size and any number of rows, on the CUDA cores (e4m3 decoded to fp32,
// each group's products summed in fp32, then scaled): slow, for the block shapes neither the
// GEMV nor cuBLASLt takes. Launched normally (after the kernel before it has finished).
template <class Out>
void fp8_linear_blocks_generic(const std::uint8_t* xq, const float* xs, std::int64_t rows, std::int64_t in,
                               const std::uint8_t* wq, const float* ws, std::int64_t out, fp8_block_scales blocks,
                               const Out* bias, Out* y, bool accumulate, cudaStream_t stream);

}  // namespace mii::kernels

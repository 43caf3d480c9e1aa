// FP8 (backend/fp8.hpp) kernels the cuda backend's ops and weight loading launch: row
// quantization (kernels/fp8.cu) and the FP8 GEMV (kernels/fp8_gemv.cu). Host-side declarations
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

// y[r][o] = (sum_i xq[r][i] * wq[o][i]) * xs[r] * ws[o] (+ bias[o]) (+ y[r][o] when accumulate)
// for rows <= fp8_gemv_rows (any in, out and alignment). Out: __nv_bfloat16 or __half. Launched
// as a programmatic dependent of the kernel before it, which must be the one that wrote xq / xs
// (or a kernel that does not trigger its dependents early).
constexpr int fp8_gemv_rows = 8;
template <class Out>
void fp8_gemv(const std::uint8_t* xq, const float* xs, int rows, std::int64_t in, const std::uint8_t* wq,
              const float* ws, std::int64_t out, const Out* bias, Out* y, bool accumulate, cudaStream_t stream);

}  // namespace mii::kernels

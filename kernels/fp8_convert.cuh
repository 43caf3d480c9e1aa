// e4m3 <-> float on the device, shared by the FP8 linear layers (kernels/fp8.cu) and the FP8 KV
// cache (kernels/rope_kv.cu, kernels/attention*.cu), so that every kernel writes the bytes the
// host writes (mii::to_e4m3) and reads back the values it reads (mii::e4m3_to_float).
#pragma once
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

namespace mii::kernels {

// float -> e4m3, rounded to nearest even with subnormals kept: the hardware conversion equals
// mii::to_e4m3 for every |v| <= 448, which is all a scaled value x / fp8_scale(amax) can be
// (saturation never triggers).
__device__ __forceinline__ std::uint8_t e4m3(float v) {
  return std::uint8_t(__nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3));
}

// The scale of a vector whose largest magnitude is amax (mii::fp8_scale): fp32 and IEEE division,
// never a reciprocal multiply, so the bits equal the host's.
__device__ __forceinline__ float fp8_scale(float amax) { return amax > 0.0f ? __fdiv_rn(amax, 448.0f) : 1.0f; }

// Two e4m3 bytes (the first element in the low byte) -> two floats, exactly: every e4m3 value is
// an fp16 value, and one cvt.f16x2.e4m3x2 decodes both on sm_89+.
__device__ __forceinline__ float2 e4m3x2_to_float2(std::uint16_t pair) {
  const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(__nv_fp8x2_storage_t(pair), __NV_E4M3);
  return __half22float2(__half2(h));
}

__device__ __forceinline__ float e4m3_to_float(std::uint8_t byte) {
  return __half2float(__half(__nv_cvt_fp8_to_halfraw(__nv_fp8_storage_t(byte), __NV_E4M3)));
}

}  // namespace mii::kernels

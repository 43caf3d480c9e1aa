// Checkpoint dtype -> compute dtype on the device, for weight uploads (src/cuda/weight_upload.cpp):
// the host copies the checkpoint's bytes as they are and this kernel converts them, the same
// integer arithmetic as mii/dtype.hpp and src/dtype.cpp so both backends hold the same bits.
#include <cstdint>

#include "common.cuh"
#include "convert.cuh"
#include "cuda/check.hpp"

namespace mii::kernels {
namespace {

__device__ __forceinline__ float bits_to_f32(std::uint32_t u) { return __uint_as_float(u); }

__device__ __forceinline__ float bf16_to_f32(std::uint16_t b) { return bits_to_f32(std::uint32_t(b) << 16); }

// As mii::to_float(fp16_t): subnormal halves become normal floats.
__device__ __forceinline__ float f16_to_f32(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
  std::uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000u | (mant << 13));
  if (exp == 0) {
    if (mant == 0) return bits_to_f32(sign);
    int e = -1;
    do {
      ++e;
      mant <<= 1;
    } while ((mant & 0x400u) == 0);
    return bits_to_f32(sign | (std::uint32_t(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13));
  }
  return bits_to_f32(sign | ((exp + 127 - 15) << 23) | (mant << 13));
}

// As mii::to_bf16: round to nearest even, NaN quieted.
__device__ __forceinline__ std::uint16_t f32_to_bf16(float f) {
  std::uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return std::uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return std::uint16_t(u >> 16);
}

// As mii::to_fp16: round to nearest even, overflow to infinity, subnormals in units of 2^-24.
__device__ __forceinline__ std::uint16_t f32_to_f16(float f) {
  const std::uint32_t u = __float_as_uint(f);
  const std::uint16_t sign = std::uint16_t((u >> 16) & 0x8000u);
  const std::uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return std::uint16_t(sign | 0x7e00u);
  if (abs >= 0x477ff000u) return std::uint16_t(sign | 0x7c00u);
  if (abs < 0x38800000u) return std::uint16_t(sign | std::uint16_t(rintf(fabsf(f) * 16777216.0f)));
  const std::uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);
  return std::uint16_t(sign | ((rounded - (112u << 23)) >> 13));
}

template <dtype From>
__device__ __forceinline__ float load_f32(const void* in, std::int64_t i) {
  if constexpr (From == dtype::f32) return static_cast<const float*>(in)[i];
  else if constexpr (From == dtype::bf16) return bf16_to_f32(static_cast<const std::uint16_t*>(in)[i]);
  else return f16_to_f32(static_cast<const std::uint16_t*>(in)[i]);
}

template <dtype From, dtype To>
__global__ void convert_kernel(const void* in, void* out, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n; i += std::int64_t(gridDim.x) * blockDim.x) {
    const float v = load_f32<From>(in, i);
    if constexpr (To == dtype::f32) static_cast<float*>(out)[i] = v;
    else if constexpr (To == dtype::bf16) static_cast<std::uint16_t*>(out)[i] = f32_to_bf16(v);
    else static_cast<std::uint16_t*>(out)[i] = f32_to_f16(v);
  }
}

template <dtype From>
void launch_from(const void* in, void* out, dtype to, std::int64_t n, unsigned blocks, cudaStream_t stream) {
  switch (to) {
    case dtype::f32: convert_kernel<From, dtype::f32><<<blocks, 256, 0, stream>>>(in, out, n); break;
    case dtype::f16: convert_kernel<From, dtype::f16><<<blocks, 256, 0, stream>>>(in, out, n); break;
    case dtype::bf16: convert_kernel<From, dtype::bf16><<<blocks, 256, 0, stream>>>(in, out, n); break;
    case dtype::f8_e4m3: break;  // refused by convert_dtype
  }
}

}  // namespace

void convert_dtype(const void* in, dtype from, void* out, dtype to, std::int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  // FP8 bytes are copied as they are (pre-quantized weights, cuda<D>::load_fp8), never converted.
  if (from == dtype::f8_e4m3 || to == dtype::f8_e4m3)
    fail("internal: no device conversion ", dtype_name(from), " -> ", dtype_name(to));
  const unsigned blocks = unsigned(std::min<std::int64_t>((n + 255) / 256, 8192));
  switch (from) {
    case dtype::f32: launch_from<dtype::f32>(in, out, to, n, blocks, stream); break;
    case dtype::f16: launch_from<dtype::f16>(in, out, to, n, blocks, stream); break;
    case dtype::bf16: launch_from<dtype::bf16>(in, out, to, n, blocks, stream); break;
    case dtype::f8_e4m3: break;
  }
  MII_CUDA_CHECK_LAUNCH();
}

}  // namespace mii::kernels

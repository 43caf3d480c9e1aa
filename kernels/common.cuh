// Shared device-side helpers: storage <-> CUDA type mapping, conversions, launch helpers.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include <mii/dtype.hpp>

namespace mii::kernels {

// mii's host storage types and the CUDA types with the same bits.
template <class D> struct device_type;
template <> struct device_type<mii::bf16_t> { using type = __nv_bfloat16; };
template <> struct device_type<mii::fp16_t> { using type = __half; };
template <> struct device_type<float> { using type = float; };
template <class D> using device_t = typename device_type<D>::type;

template <class D>
inline device_t<D>* dev(D* p) { return reinterpret_cast<device_t<D>*>(p); }
template <class D>
inline const device_t<D>* dev(const D* p) { return reinterpret_cast<const device_t<D>*>(p); }

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }

template <class T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }

inline unsigned ceil_div(std::int64_t a, std::int64_t b) { return unsigned((a + b - 1) / b); }

}  // namespace mii::kernels

namespace mii::kernels {

// Two-element vector types, for the packed conversions that 16-byte loads unpack into.
template <class T> struct pair_type;
template <> struct pair_type<__nv_bfloat16> { using type = __nv_bfloat162; };
template <> struct pair_type<__half> { using type = __half2; };

__device__ __forceinline__ float2 to_f32x2(__nv_bfloat162 v) { return __bfloat1622float2(v); }
__device__ __forceinline__ float2 to_f32x2(__half2 v) { return __half22float2(v); }
template <class P> __device__ __forceinline__ P from_f32x2(float a, float b);
template <> __device__ __forceinline__ __nv_bfloat162 from_f32x2<__nv_bfloat162>(float a, float b) {
  return __floats2bfloat162_rn(a, b);
}
template <> __device__ __forceinline__ __half2 from_f32x2<__half2>(float a, float b) { return __floats2half2_rn(a, b); }

// Eight 16-bit values in one 16-byte word (the widest load a thread can issue).
template <class T>
__device__ __forceinline__ void unpack8(const uint4& v, float (&f)[8]) {
  using P = typename pair_type<T>::type;
  const P* p = reinterpret_cast<const P*>(&v);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 t = to_f32x2(p[i]);
    f[2 * i] = t.x;
    f[2 * i + 1] = t.y;
  }
}
template <class T>
__device__ __forceinline__ uint4 pack8(const float (&f)[8]) {
  using P = typename pair_type<T>::type;
  uint4 v;
  P* p = reinterpret_cast<P*>(&v);
#pragma unroll
  for (int i = 0; i < 4; ++i) p[i] = from_f32x2<P>(f[2 * i], f[2 * i + 1]);
  return v;
}

// A 16-byte load of data read once (weights in a GEMV): kept out of L1 so that the reused
// operand stays there.
__device__ __forceinline__ uint4 load_streaming(const void* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

inline bool aligned16(const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0; }

// Threads per block for a row-wise kernel over `work` items: a warp multiple, at most `cap`.
inline unsigned row_block_threads(std::int64_t work, unsigned cap = 512) {
  const std::int64_t warps = (work + 31) / 32;
  return unsigned(std::min<std::int64_t>(std::max<std::int64_t>(warps, 1) * 32, cap));
}

}  // namespace mii::kernels

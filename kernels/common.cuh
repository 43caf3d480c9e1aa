// Shared device-side helpers: storage <-> CUDA type mapping, conversions, launch helpers.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

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

#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include <mii/dtype.hpp>

namespace mii::kernels {
// out[i] = in[i] converted from `from` to `to` (F32/F16/BF16), bit for bit as the host's
// io::convert (round to nearest even, NaN kept quiet): weight uploads convert on the device.
void convert_dtype(const void* in, dtype from, void* out, dtype to, std::int64_t n, cudaStream_t stream);
}  // namespace mii::kernels

#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace mii::kernels {
// out[i] = plan_entry::synthetic_value(first + i) for an entry with this key / constant / kind
// (D: bf16_t, fp16_t, or float for load_fp8, which quantizes the fp32 values; `first` lets it
// make an entry a few rows at a time).
template <class D>
void fill_synthetic(D* out, std::int64_t n, std::uint64_t key, float constant, bool is_vector, cudaStream_t stream,
                    std::int64_t first = 0);
}  // namespace mii::kernels

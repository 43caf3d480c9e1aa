#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace mii::kernels {
// out[i] = plan_entry::synthetic_value(i) for an entry with this key / constant / kind.
template <class D>
void fill_synthetic(D* out, std::int64_t n, std::uint64_t key, float constant, bool is_vector, cudaStream_t stream);
}  // namespace mii::kernels

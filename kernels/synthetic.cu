// Random weights made on the device (model_config.random_weights): the values
// model::plan_entry::synthetic_value(i) gives on the host, without a byte crossing PCIe.
#include <cstdint>

#include "common.cuh"
#include "cuda/check.hpp"
#include "synthetic.cuh"

namespace mii::kernels {
namespace {

template <class T>
__global__ void fill_synthetic_kernel(T* out, std::int64_t n, std::uint64_t key, float constant, bool is_vector,
                                      std::int64_t first) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n; i += std::int64_t(gridDim.x) * blockDim.x) {
    float v = constant;
    if (!is_vector) {
      std::uint64_t z = std::uint64_t(first + i) + key;  // splitmix64 finalizer, as on the host
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      z ^= z >> 31;
      v = (float(z >> 40) * (1.0f / 16777216.0f) - 0.5f) * 0.04f;
    }
    out[i] = from_f32<T>(v);
  }
}

}  // namespace

template <class D>
void fill_synthetic(D* out, std::int64_t n, std::uint64_t key, float constant, bool is_vector, cudaStream_t stream,
                    std::int64_t first) {
  if (n <= 0) return;
  const unsigned blocks = unsigned(std::min<std::int64_t>((n + 255) / 256, 4096));
  fill_synthetic_kernel<<<blocks, 256, 0, stream>>>(dev(out), n, key, constant, is_vector, first);
  MII_CUDA_CHECK_LAUNCH();
}

template void fill_synthetic<mii::bf16_t>(mii::bf16_t*, std::int64_t, std::uint64_t, float, bool, cudaStream_t, std::int64_t);
template void fill_synthetic<mii::fp16_t>(mii::fp16_t*, std::int64_t, std::uint64_t, float, bool, cudaStream_t, std::int64_t);
// fp32 for load_fp8: the values themselves, exactly plan_entry::synthetic_value's (the products
// in the formula are by powers of two or single roundings, so no contraction changes them).
template void fill_synthetic<float>(float*, std::int64_t, std::uint64_t, float, bool, cudaStream_t, std::int64_t);

}  // namespace mii::kernels

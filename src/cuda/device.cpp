#include <cuda_runtime.h>

#include <mii/backend/device.hpp>
#include <mii/error.hpp>

std::string mii::cuda_unavailable_reason() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error so later CUDA calls are not poisoned
    return detail::concat("cudaGetDeviceCount failed: ", cudaGetErrorName(err), " (", int(err),
                          "): ", cudaGetErrorString(err));
  }
  if (count == 0) return "no CUDA device found";
  return {};
}

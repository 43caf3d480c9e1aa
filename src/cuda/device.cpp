// Whether this process can use a CUDA GPU, and what to tell a user when it cannot: the runtime's
// own words ("CUDA driver version is insufficient for CUDA runtime version") name a cause but
// not what to change.
#include <cuda_runtime.h>

#include <cstdlib>

#include <mii/backend/device.hpp>
#include <mii/error.hpp>

#include "cuda/check.hpp"

namespace mii {
namespace cuda_detail {
namespace {

std::string cuda_version(int v) { return detail::concat(v / 1000, ".", v % 1000 / 10); }

// What the user should look at, by cause.
std::string what_to_check(cudaError_t err) {
  switch (err) {
    case cudaErrorNoDevice:
      if (const char* visible = std::getenv("CUDA_VISIBLE_DEVICES"))
        return detail::concat("CUDA_VISIBLE_DEVICES=\"", visible, "\" hides every GPU: unset it or name one that `nvidia-smi -L` lists");
      return "no GPU was found: check `nvidia-smi`";
    case cudaErrorInsufficientDriver:
    case cudaErrorStubLibrary:
    case cudaErrorSystemDriverMismatch:
    case cudaErrorCompatNotSupportedOnDevice: {
      int driver = 0;
      (void)cudaDriverGetVersion(&driver);  // 0 when there is no driver at all
      const std::string needed = cuda_version(CUDART_VERSION);
      if (driver == 0) return "no NVIDIA driver is installed (this mii needs one for CUDA " + needed + "; check `nvidia-smi`)";
      return "the NVIDIA driver supports CUDA " + cuda_version(driver) + " but this mii was built with CUDA " + needed +
             ": update the driver (check `nvidia-smi`)";
    }
    case cudaErrorDevicesUnavailable:
      return "every visible GPU is busy or reserved (compute mode: `nvidia-smi -q -d COMPUTE`)";
    default:
      return "check the NVIDIA driver with `nvidia-smi` and CUDA_VISIBLE_DEVICES";
  }
}

}  // namespace

bool means_no_usable_gpu(cudaError_t err) {
  switch (err) {
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorStubLibrary:
    case cudaErrorSystemDriverMismatch:
    case cudaErrorCompatNotSupportedOnDevice:
    case cudaErrorDevicesUnavailable:
    case cudaErrorSystemNotReady:
    case cudaErrorInitializationError:
      return true;
    default:
      return false;
  }
}

std::string no_usable_gpu(cudaError_t err, std::string_view call, std::string_view alternative) {
  return detail::concat("no usable CUDA GPU (", call, ": ", cudaGetErrorName(err), " (", int(err), "): ",
                        cudaGetErrorString(err), "); ", what_to_check(err), "; or ", alternative);
}

}  // namespace cuda_detail

std::string cuda_unavailable_reason() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky error so later CUDA calls are not poisoned
    return cuda_detail::no_usable_gpu(err, "cudaGetDeviceCount");
  }
  if (count == 0) return "no usable CUDA GPU (cudaGetDeviceCount: 0 devices); check `nvidia-smi` and CUDA_VISIBLE_DEVICES";
  return {};
}

}  // namespace mii

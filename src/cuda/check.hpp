// Every CUDA, cuBLASLt and NCCL call is checked: a failure becomes a mii::error naming the call,
// the file:line and the library's own error string. Kernel launches are followed by
// MII_CUDA_CHECK_LAUNCH() (launch-configuration errors surface there, not later).
//
// Errors that mean "this machine has no GPU we can use" (no driver, a driver too old, no device
// visible) are not a bug at a line of ours: they become one message for the user, "no usable
// CUDA GPU (call: error)", saying what to change (src/cuda/device.cpp).
#pragma once
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <string>
#include <string_view>

#include <mii/error.hpp>

namespace mii::cuda_detail {
[[noreturn]] void throw_cuda(cudaError_t err, const char* what, const char* file, int line);
[[noreturn]] void throw_cublas(cublasStatus_t st, const char* what, const char* file, int line);

// True for the errors that say no GPU can be used at all (as opposed to a failing call).
bool means_no_usable_gpu(cudaError_t err);
// "no usable CUDA GPU (<call>: <error name> (<code>): <error text>); <what to check>, or
// <alternative>". `call` is the CUDA function's name.
std::string no_usable_gpu(cudaError_t err, std::string_view call,
                          std::string_view alternative = "run on the host backend (model_config.backend = \"host\", "
                                                         "mii-generate --backend host)");
}  // namespace mii::cuda_detail

#define MII_CUDA_CHECK(expr)                                                             \
  do {                                                                                   \
    const cudaError_t mii_err_ = (expr);                                                 \
    if (mii_err_ != cudaSuccess) ::mii::cuda_detail::throw_cuda(mii_err_, #expr, __FILE__, __LINE__); \
  } while (0)

#define MII_CUDA_CHECK_LAUNCH() MII_CUDA_CHECK(cudaGetLastError())

#define MII_CUBLAS_CHECK(expr)                                                           \
  do {                                                                                   \
    const cublasStatus_t mii_st_ = (expr);                                               \
    if (mii_st_ != CUBLAS_STATUS_SUCCESS) ::mii::cuda_detail::throw_cublas(mii_st_, #expr, __FILE__, __LINE__); \
  } while (0)

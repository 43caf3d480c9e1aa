// Every CUDA, cuBLASLt and NCCL call is checked: a failure becomes a mii::error naming the call,
// the file:line and the library's own error string. Kernel launches are followed by
// MII_CUDA_CHECK_LAUNCH() (launch-configuration errors surface there, not later).
#pragma once
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <mii/error.hpp>

namespace mii::cuda_detail {
[[noreturn]] void throw_cuda(cudaError_t err, const char* what, const char* file, int line);
[[noreturn]] void throw_cublas(cublasStatus_t st, const char* what, const char* file, int line);
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

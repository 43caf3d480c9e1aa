// What a cuda backend context holds. Internal: kernels and src/cuda reach the stream and the
// library handles through ctx.impl().
#pragma once
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <vector>

#include <mii/backend/cuda/cuda_backend.hpp>

namespace mii::backend {

struct cuda_context_state {
  int device = 0;
  cudaStream_t stream = nullptr;
  cublasLtHandle_t lt = nullptr;
  void* workspace = nullptr;              // cuBLASLt workspace
  std::size_t workspace_bytes = 0;
  // Pinned staging for step metadata (one copy per step) and its device copy.
  std::int32_t* step_host = nullptr;
  std::int32_t* step_device = nullptr;
  std::size_t step_capacity = 0;          // int32 elements
};

template <class DType>
struct cuda<DType>::context::state : cuda_context_state {};

}  // namespace mii::backend

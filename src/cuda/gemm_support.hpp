// What the cuBLASLt GEMMs of src/cuda/gemm.cu and src/cuda/gemm_fp8.cu share: the CUDA data type
// of an element type, the pointer alignment a plan is keyed by, the heuristic's preferences, and
// the bias kernel for outputs
// whose bias the cuBLASLt epilogue cannot take (fp32 logits, a bias not 16-byte aligned).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cublasLt.h>
#include <library_types.h>

#include <cstdint>

#include "common.cuh"
#include "cuda/check.hpp"
#include "cuda/context_state.hpp"

namespace mii::backend {

template <class T> constexpr cudaDataType_t cuda_type = CUDA_R_32F;
template <> constexpr cudaDataType_t cuda_type<__nv_bfloat16> = CUDA_R_16BF;
template <> constexpr cudaDataType_t cuda_type<__half> = CUDA_R_16F;

// The largest power of two up to 16 that divides the address: cuBLASLt picks algorithms by it.
inline std::uint8_t alignment(const void* p) {
  const auto v = reinterpret_cast<std::uintptr_t>(p);
  for (std::uint8_t a = 16; a > 1; a = std::uint8_t(a / 2))
    if (v % a == 0) return a;
  return 1;
}

// What both GEMM plans ask cuBLASLt's heuristic with: the context's workspace and the key's
// pointer alignments.
inline void set_preference(const cuda_context_state& st, const gemm_key& key, cublasLtMatmulPreference_t pref) {
  const std::uint64_t workspace = st.workspace_bytes;
  MII_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                                        sizeof(workspace)));
  const std::uint32_t align_a = key.align_w, align_b = key.align_x, align_c = key.align_y, align_d = key.align_y;
  MII_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a, sizeof(align_a)));
  MII_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b, sizeof(align_b)));
  MII_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c, sizeof(align_c)));
  MII_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_d, sizeof(align_d)));
}

// y[r][o] += bias[o] over rows x out, grid-stride.
template <class T, class Out>
__global__ void add_bias_kernel(Out* __restrict__ y, const T* __restrict__ bias, std::int64_t rows, std::int64_t out) {
  const std::int64_t n = rows * out;
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += std::int64_t(gridDim.x) * blockDim.x)
    y[i] = kernels::from_f32<Out>(kernels::to_f32(y[i]) + kernels::to_f32(bias[i % out]));
}

}  // namespace mii::backend

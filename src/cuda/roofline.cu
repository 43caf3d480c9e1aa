// Measures the machine's ceilings (see include/mii/backend/cuda/roofline.hpp).
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include <mii/backend/cuda/roofline.hpp>

#include "cuda/check.hpp"

namespace mii::cuda_roofline {
namespace {

__global__ void fill_random_bf16(__nv_bfloat16* p, std::size_t n, std::uint32_t seed) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x) {
    std::uint32_t z = std::uint32_t(i) * 2654435761u ^ seed;
    z ^= z >> 15;
    z *= 2246822519u;
    z ^= z >> 13;
    p[i] = __float2bfloat16(float(z & 0xffff) / 65536.0f - 0.5f);  // random data, never zeros
  }
}

__global__ void bf16_to_e4m3(const __nv_bfloat16* in, __nv_fp8_e4m3* out, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x)
    out[i] = __nv_fp8_e4m3(__bfloat162float(in[i]) * 448.0f);  // random bytes over e4m3's whole range
}

template <class F>
double median_ms(cudaStream_t s, int reps, F&& f) {
  cudaEvent_t a, b;
  MII_CUDA_CHECK(cudaEventCreate(&a));
  MII_CUDA_CHECK(cudaEventCreate(&b));
  std::vector<float> ms;
  for (int i = 0; i < reps + 2; ++i) {
    MII_CUDA_CHECK(cudaEventRecord(a, s));
    f();
    MII_CUDA_CHECK(cudaEventRecord(b, s));
    MII_CUDA_CHECK(cudaEventSynchronize(b));
    float t = 0;
    MII_CUDA_CHECK(cudaEventElapsedTime(&t, a, b));
    if (i >= 2) ms.push_back(t);  // the first two are warm-up
  }
  MII_CUDA_CHECK(cudaEventDestroy(a));
  MII_CUDA_CHECK(cudaEventDestroy(b));
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

device_info query(int device) {
  device_info d;
  cudaDeviceProp p{};
  MII_CUDA_CHECK(cudaGetDeviceProperties(&p, device));
  d.name = p.name;
  d.sm_count = p.multiProcessorCount;
  MII_CUDA_CHECK(cudaSetDevice(device));
  std::size_t free = 0, total = 0;
  MII_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  d.memory_total = total;
  d.memory_used = total - free;
  MII_CUDA_CHECK(cudaDriverGetVersion(&d.driver_version));
  MII_CUDA_CHECK(cudaRuntimeGetVersion(&d.runtime_version));
  return d;
}

ceilings measure(int device, std::size_t copy_bytes, int n) {
  MII_CUDA_CHECK(cudaSetDevice(device));
  cudaStream_t s;
  MII_CUDA_CHECK(cudaStreamCreate(&s));
  ceilings c;
  c.copy_bytes = copy_bytes;
  c.gemm_size = n;

  // Copy: two buffers, alternating direction so neither stays in L2.
  void *x = nullptr, *y = nullptr;
  MII_CUDA_CHECK(cudaMalloc(&x, copy_bytes));
  MII_CUDA_CHECK(cudaMalloc(&y, copy_bytes));
  fill_random_bf16<<<1024, 256, 0, s>>>(static_cast<__nv_bfloat16*>(x), copy_bytes / 2, 1);
  MII_CUDA_CHECK_LAUNCH();
  const double copy_ms = median_ms(s, 10, [&] { MII_CUDA_CHECK(cudaMemcpyAsync(y, x, copy_bytes, cudaMemcpyDeviceToDevice, s)); });
  c.copy_bytes_per_s = 2.0 * double(copy_bytes) / (copy_ms * 1e-3);
  MII_CUDA_CHECK(cudaFree(x));
  MII_CUDA_CHECK(cudaFree(y));

  // GEMM: D[n,n] = A[n,n] * B[n,n], bf16 in/out, fp32 compute, random inputs.
  const std::size_t elems = std::size_t(n) * n;
  __nv_bfloat16 *a, *b, *d;
  MII_CUDA_CHECK(cudaMalloc(&a, elems * 2));
  MII_CUDA_CHECK(cudaMalloc(&b, elems * 2));
  MII_CUDA_CHECK(cudaMalloc(&d, elems * 2));
  fill_random_bf16<<<1024, 256, 0, s>>>(a, elems, 2);
  MII_CUDA_CHECK_LAUNCH();
  fill_random_bf16<<<1024, 256, 0, s>>>(b, elems, 3);
  MII_CUDA_CHECK_LAUNCH();
  cublasLtHandle_t lt;
  MII_CUBLAS_CHECK(cublasLtCreate(&lt));
  cublasLtMatmulDesc_t op;
  MII_CUBLAS_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  cublasLtMatrixLayout_t la, lb, ld;
  MII_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, n, n, n));
  MII_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, n, n, n));
  MII_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ld, CUDA_R_16BF, n, n, n));
  std::size_t ws_bytes = std::size_t(64) << 20;
  void* ws;
  MII_CUDA_CHECK(cudaMalloc(&ws, ws_bytes));
  cublasLtMatmulPreference_t pref;
  MII_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  MII_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes, sizeof ws_bytes));
  cublasLtMatmulHeuristicResult_t heur{};
  int found = 0;
  MII_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, ld, ld, pref, 1, &heur, &found));
  if (!found) fail("cuBLASLt found no bf16 GEMM algorithm for ", n, "^3");
  const float alpha = 1.0f, beta = 0.0f;
  const double gemm_ms = median_ms(s, 10, [&] {
    MII_CUBLAS_CHECK(cublasLtMatmul(lt, op, &alpha, a, la, b, lb, &beta, d, ld, d, ld, &heur.algo, ws, ws_bytes, s));
  });
  c.bf16_flops_per_s = 2.0 * double(n) * n * n / (gemm_ms * 1e-3);

  // The same product with e4m3 operands (FP8 GEMMs must be "TN": A transposed), bf16 out, unit scales.
  {
    __nv_fp8_e4m3 *a8, *b8;
    MII_CUDA_CHECK(cudaMalloc(&a8, elems));
    MII_CUDA_CHECK(cudaMalloc(&b8, elems));
    bf16_to_e4m3<<<1024, 256, 0, s>>>(a, a8, elems);
    MII_CUDA_CHECK_LAUNCH();
    bf16_to_e4m3<<<1024, 256, 0, s>>>(b, b8, elems);
    MII_CUDA_CHECK_LAUNCH();
    cublasLtMatmulDesc_t op8;
    MII_CUBLAS_CHECK(cublasLtMatmulDescCreate(&op8, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t transpose = CUBLAS_OP_T;
    MII_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op8, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof transpose));
    cublasLtMatrixLayout_t la8, lb8;
    MII_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&la8, CUDA_R_8F_E4M3, n, n, n));
    MII_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lb8, CUDA_R_8F_E4M3, n, n, n));
    cublasLtMatmulHeuristicResult_t heur8{};
    int found8 = 0;
    MII_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(lt, op8, la8, lb8, ld, ld, pref, 1, &heur8, &found8));
    if (found8) {
      const double ms8 = median_ms(s, 10, [&] {
        MII_CUBLAS_CHECK(cublasLtMatmul(lt, op8, &alpha, a8, la8, b8, lb8, &beta, d, ld, d, ld, &heur8.algo, ws, ws_bytes, s));
      });
      c.e4m3_flops_per_s = 2.0 * double(n) * n * n / (ms8 * 1e-3);
    }
    MII_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(la8));
    MII_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(lb8));
    MII_CUBLAS_CHECK(cublasLtMatmulDescDestroy(op8));
    MII_CUDA_CHECK(cudaFree(a8));
    MII_CUDA_CHECK(cudaFree(b8));
  }
  MII_CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
  MII_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(la));
  MII_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(lb));
  MII_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(ld));
  MII_CUBLAS_CHECK(cublasLtMatmulDescDestroy(op));
  MII_CUBLAS_CHECK(cublasLtDestroy(lt));
  MII_CUDA_CHECK(cudaFree(ws));
  MII_CUDA_CHECK(cudaFree(a));
  MII_CUDA_CHECK(cudaFree(b));
  MII_CUDA_CHECK(cudaFree(d));
  MII_CUDA_CHECK(cudaStreamDestroy(s));
  return c;
}

}  // namespace mii::cuda_roofline

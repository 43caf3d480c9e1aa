// linear_fp8 (backend/fp8.hpp): y = (xq wq^T) * xs * ws (+ bias) (+ y) with x quantized per row
// into the caller's scratch (kernels/fp8.cu) first.
//
// - Up to fp8_gemv_max_rows rows (decode): the tensor-core FP8 GEMV (kernels/fp8_gemv.cu).
// - More rows: cuBLASLt's FP8 GEMM ("TN", e4m3 operands, fp32 accumulation), with the weight's
//   per-row and x's per-row scales applied by cuBLASLt itself: A and B scale mode
//   CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F multiplies element (i, j) of A*B by
//   a_scale[i] * b_scale[j], which is exactly ws[o] * xs[r]; bias by the BIAS epilogue.
// - Fallback, for a shape whose outer-vector plan cuBLASLt refuses (no algorithm, or the mode
//   unsupported by the library at hand), or everywhere with MII_CUDA_FP8_GEMM=fallback: the
//   same FP8 GEMM with unit scales into an fp32 buffer, then a kernel applying xs, ws, bias and
//   accumulate. The decision is remembered per shape (the plan cache holds the refusal).
// - Shapes no FP8 GEMM takes at all (in % 16 != 0: FP8 operands need 16-byte rows), the GEMV
//   8 rows at a time: slow for long inputs, but correct.
#include <cstdint>

#include "common.cuh"
#include "cuda/check.hpp"
#include "cuda/context_state.hpp"
#include "cuda/gemm_support.hpp"
#include "fp8.cuh"

namespace mii::backend {
namespace {

// ---- kernels after the GEMM --------------------------------------------------------------------

inline unsigned elementwise_blocks(std::int64_t n) {
  return unsigned(std::min<std::int64_t>(kernels::ceil_div(std::max<std::int64_t>(n, 1), 256), 4096));
}

// The fallback's epilogue: y = (acc * xs[r]) * ws[o] (+ bias[o]) (+ y), in the host's order and
// roundings (backend/host, linear_fp8).
template <class T>
__global__ void apply_fp8_scales_kernel(const float* __restrict__ acc, const float* __restrict__ xs,
                                        const float* __restrict__ ws, const T* __restrict__ bias, T* __restrict__ y,
                                        std::int64_t rows, std::int64_t out, bool accumulate) {
  const std::int64_t n = rows * out;
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t r = i / out, o = i - r * out;
    float v = __fmul_rn(__fmul_rn(acc[i], xs[r]), ws[o]);
    if (bias) v = __fadd_rn(v, kernels::to_f32(bias[o]));
    if (accumulate) v = __fadd_rn(kernels::to_f32(y[i]), v);
    y[i] = kernels::from_f32<T>(v);
  }
}

// ---- cuBLASLt plans ------------------------------------------------------------------------------

constexpr std::uint8_t outer_vector = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;

// What a call of an FP8 plan points at; set on the descriptor before each matmul (and before the
// heuristic query, which may look at them).
struct fp8_pointers {
  const float* w_scale = nullptr;
  const float* x_scale = nullptr;
  const void* bias = nullptr;
};

// A status that means "this combination is not available here" (an FP8 plan then takes the next
// path) against a real failure (thrown).
bool available(cublasStatus_t status, const char* what) {
  if (status == CUBLAS_STATUS_SUCCESS) return true;
  if (status == CUBLAS_STATUS_NOT_SUPPORTED || status == CUBLAS_STATUS_INVALID_VALUE) return false;
  ::mii::cuda_detail::throw_cublas(status, what, __FILE__, __LINE__);
}

void release(gemm_plan& p) noexcept {
  if (p.desc) cublasLtMatmulDescDestroy(p.desc);
  if (p.w) cublasLtMatrixLayoutDestroy(p.w);
  if (p.x) cublasLtMatrixLayoutDestroy(p.x);
  if (p.y) cublasLtMatrixLayoutDestroy(p.y);
  p = gemm_plan{.found = false};
}

void set_pointers(const gemm_plan& plan, const gemm_key& key, const fp8_pointers& p) {
  if (key.scale_mode == outer_vector) {
    MII_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &p.w_scale,
                                                    sizeof(p.w_scale)));
    MII_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &p.x_scale,
                                                    sizeof(p.x_scale)));
  }
  if (key.bias_epilogue)
    MII_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &p.bias, sizeof(p.bias)));
}

// The plan for an FP8 key, made at the first call of the shape: found == false when cuBLASLt has
// nothing for it (kept, so that the question is asked once).
gemm_plan& fp8_plan(cuda_context_state& st, const gemm_key& key, const fp8_pointers& ptrs) {
  if (auto it = st.gemm_plans.find(key); it != st.gemm_plans.end()) return it->second;
  gemm_plan plan;
  cublasLtMatmulPreference_t pref = nullptr;
  struct guard {  // releases what was made so far unless the plan is kept
    gemm_plan& p;
    cublasLtMatmulPreference_t& pref;
    bool keep = false;
    ~guard() {
      if (pref) cublasLtMatmulPreferenceDestroy(pref);
      if (!keep) release(p);
    }
  } g{plan, pref};
  auto refused = [&]() -> gemm_plan& { return st.gemm_plans.emplace(key, gemm_plan{.found = false}).first->second; };

  // As the bf16 GEMM (src/cuda/gemm.cu): column-major y^T[out, rows] = w^T * x^T, "TN" with
  // m = out, n = rows, k = in; the only layout cuBLASLt's FP8 kernels take.
  const auto out_type = cudaDataType_t(key.out_type);
  MII_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t transpose = CUBLAS_OP_T, keep = CUBLAS_OP_N;
  MII_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof(transpose)));
  MII_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, &keep, sizeof(keep)));
  if (key.scale_mode == outer_vector) {
    const std::int32_t mode = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
    if (!available(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode, sizeof(mode)),
                   "cublasLtMatmulDescSetAttribute(A_SCALE_MODE)") ||
        !available(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode, sizeof(mode)),
                   "cublasLtMatmulDescSetAttribute(B_SCALE_MODE)"))
      return refused();
  }
  if (key.bias_epilogue) {
    const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    MII_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
    const cudaDataType_t bias_type = out_type;  // FP8 GEMMs with 16-bit outputs take a bias of that type
    MII_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type)));
  }
  set_pointers(plan, key, ptrs);
  MII_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.w, CUDA_R_8F_E4M3, std::uint64_t(key.in), std::uint64_t(key.out), key.in));
  MII_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.x, CUDA_R_8F_E4M3, std::uint64_t(key.in), std::uint64_t(key.rows), key.in));
  MII_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.y, out_type, std::uint64_t(key.out), std::uint64_t(key.rows), key.out));

  MII_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  set_preference(st, key, pref);

  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  if (!available(cublasLtMatmulAlgoGetHeuristic(st.lt, plan.desc, plan.w, plan.x, plan.y, plan.y, pref, 1, &result, &found),
                 "cublasLtMatmulAlgoGetHeuristic") ||
      found == 0)
    return refused();
  plan.algo = result.algo;
  g.keep = true;
  return st.gemm_plans.emplace(key, plan).first->second;
}

gemm_key fp8_key(std::int64_t rows, std::int64_t in, std::int64_t out, const std::uint8_t* x, const std::uint8_t* w) {
  gemm_key key;
  key.rows = rows;
  key.in = in;
  key.out = out;
  key.in_type = int(CUDA_R_8F_E4M3);
  key.align_x = alignment(x);
  key.align_w = alignment(w);
  return key;
}

// ---- the paths -----------------------------------------------------------------------------------

// The GEMV, 8 rows at a time, right after the quantization (fp8_gemv's programmatic launch).
template <class T>
void gemv_rows(cuda_context_state& st, fp8_scratch xq, std::int64_t rows, std::int64_t in, fp8_weight w,
               std::int64_t out, const T* bias, T* y, bool accumulate) {
  for (std::int64_t r = 0; r < rows; r += kernels::fp8_gemv_rows)
    kernels::fp8_gemv(xq.data + r * in, xq.scale + r, int(std::min<std::int64_t>(kernels::fp8_gemv_rows, rows - r)), in,
                      w.data, w.scale, out, bias, y + r * out, accumulate, st.stream);
}

// cuBLASLt applying the scales itself; false (nothing run) where it has no plan for the shape.
template <class T>
bool gemm_outer(cuda_context_state& st, fp8_scratch xq, std::int64_t rows, std::int64_t in, fp8_weight w,
                std::int64_t out, const T* bias, T* y, bool accumulate) {
  const bool bias_epilogue = bias && kernels::aligned16(bias);
  gemm_key key = fp8_key(rows, in, out, xq.data, w.data);
  key.out_type = int(cuda_type<T>);
  key.bias_epilogue = bias_epilogue;
  key.align_y = alignment(y);
  key.align_bias = bias_epilogue ? alignment(bias) : 0;
  key.scale_mode = outer_vector;
  const fp8_pointers ptrs{w.scale, xq.scale, bias_epilogue ? bias : nullptr};
  gemm_plan& plan = fp8_plan(st, key, ptrs);
  if (!plan.found) return false;
  set_pointers(plan, key, ptrs);
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  const cublasStatus_t status = cublasLtMatmul(st.lt, plan.desc, &alpha, w.data, plan.w, xq.data, plan.x, &beta, y,
                                               plan.y, y, plan.y, &plan.algo, st.workspace, st.workspace_bytes, st.stream);
  // A library whose heuristic offers the mode but whose matmul refuses it: that shape falls back.
  if (!available(status, "cublasLtMatmul (FP8, outer-vector scales)")) {
    release(plan);
    return false;
  }
  if (bias && !bias_epilogue) {
    add_bias_kernel<<<elementwise_blocks(rows * out), 256, 0, st.stream>>>(y, bias, rows, out);
    MII_CUDA_CHECK_LAUNCH();
  }
  return true;
}

// Unit-scale FP8 GEMM into fp32, then the scales; false where cuBLASLt has no plan for it either.
template <class T>
bool gemm_fallback(cuda_context_state& st, fp8_scratch xq, std::int64_t rows, std::int64_t in, fp8_weight w,
                   std::int64_t out, const T* bias, T* y, bool accumulate) {
  gemm_key key = fp8_key(rows, in, out, xq.data, w.data);
  key.out_type = int(CUDA_R_32F);
  key.align_y = 16;  // fp8_gemm_out and the stream-ordered allocator give at least 256
  const gemm_plan& plan = fp8_plan(st, key, {});
  if (!plan.found) return false;
  // Outside capture, the context's grow-only buffer. A graph being captured must not point into
  // it (a later, larger call outside capture would free it under the graph), and cudaMalloc
  // cannot be captured: there the product takes stream-ordered memory, which becomes the graph's
  // own allocation and free.
  const std::size_t bytes = std::size_t(rows * out) * sizeof(float);
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  MII_CUDA_CHECK(cudaStreamIsCapturing(st.stream, &capture));
  const bool captured = capture != cudaStreamCaptureStatusNone;
  void* acc = nullptr;
  if (captured) MII_CUDA_CHECK(cudaMallocAsync(&acc, bytes, st.stream));
  else acc = st.fp8_gemm_out.reserve(bytes);
  const float alpha = 1.0f, beta = 0.0f;
  MII_CUBLAS_CHECK(cublasLtMatmul(st.lt, plan.desc, &alpha, w.data, plan.w, xq.data, plan.x, &beta, acc, plan.y, acc,
                                  plan.y, &plan.algo, st.workspace, st.workspace_bytes, st.stream));
  apply_fp8_scales_kernel<<<elementwise_blocks(rows * out), 256, 0, st.stream>>>(
      static_cast<const float*>(acc), xq.scale, w.scale, bias, y, rows, out, accumulate);
  MII_CUDA_CHECK_LAUNCH();
  if (captured) MII_CUDA_CHECK(cudaFreeAsync(acc, st.stream));
  return true;
}

template <class T>
void linear_fp8_impl(cuda_context_state& st, const T* x, std::int64_t rows, std::int64_t in, fp8_weight w,
                     std::int64_t out, const T* bias, T* y, bool accumulate, fp8_scratch xq) {
  if (rows <= 0 || out <= 0) return;
  if (in <= 0) fail("linear_fp8: in must be >= 1, got ", in);
  kernels::quantize_fp8_rows(x, rows, in, xq.data, xq.scale, st.stream, w.input_scale);
  const bool gemm_possible = in % 16 == 0;  // FP8 operands: 16-byte rows (lda = ldb = in bytes)
  if (rows <= st.fp8_gemv_max_rows || !gemm_possible) {
    gemv_rows(st, xq, rows, in, w, out, bias, y, accumulate);
    return;
  }
  if (!st.fp8_gemm_fallback && gemm_outer(st, xq, rows, in, w, out, bias, y, accumulate)) return;
  if (gemm_fallback(st, xq, rows, in, w, out, bias, y, accumulate)) return;
  gemv_rows(st, xq, rows, in, w, out, bias, y, accumulate);
}

}  // namespace

template <class DType>
void cuda<DType>::linear_fp8(context& ctx, const T* x, std::int64_t rows, std::int64_t in, fp8_weight w,
                             std::int64_t out, const T* bias, T* y, bool accumulate, fp8_scratch scratch) {
  linear_fp8_impl(ctx.impl(), kernels::dev(x), rows, in, w, out, kernels::dev(bias), kernels::dev(y), accumulate, scratch);
}

template void cuda<bf16_t>::linear_fp8(context&, const T*, std::int64_t, std::int64_t, fp8_weight, std::int64_t,
                                       const T*, T*, bool, fp8_scratch);
template void cuda<fp16_t>::linear_fp8(context&, const T*, std::int64_t, std::int64_t, fp8_weight, std::int64_t,
                                       const T*, T*, bool, fp8_scratch);

}  // namespace mii::backend

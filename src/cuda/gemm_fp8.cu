// linear_fp8 (backend/fp8.hpp): y = (xq wq^T) * xs * ws (+ bias) (+ y) with x quantized per row
// into the caller's scratch (kernels/fp8.cu) first; per-row (per-channel) weights:
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
//
// Block-wise weights (w.blocks R x C, DeepSeek-V3's 128 x 128; backend/fp8.hpp) change scales
// along k, which no per-row epilogue can apply, so x is quantized per group of C columns with
// group-major scales (xs[g * rows + r], kernels/fp8.cu) and:
// - up to fp8_gemv_max_rows rows, and every row where neither below applies: the GEMV with the
//   scales applied to each 64-byte step's partial sums (C % 64 == 0), 8 rows at a time, or for
//   other C a plain CUDA-core kernel (kernels/fp8_blocks.cu; no real checkpoint uses such blocks);
// - more rows with 128 x 128 blocks: cuBLASLt's block-scaled FP8 GEMM, the weight (A) with
//   CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F (its scales K-major with a row stride that is a
//   multiple of 4: load_fp8 pads scale_ld so) and x (B) with VEC128_32F (N-major: group-major),
//   "TN" as above. cuBLASLt needs M = out and N = rows to be multiples of 4, so the rows past the
//   last multiple of 4 are quantized apart (their scales after the others', group-major among
//   themselves) and take the GEMV. Where cuBLASLt refuses the BIAS epilogue with block scales, the
//   bias is added by a kernel; where it refuses beta = 1, the product goes to fp32 and a kernel
//   adds bias and y; where it refuses the shape, the GEMV. MII_CUDA_FP8_GEMM=fallback sends
//   block-wise weights to the GEMV at every row count.
#include <cstdint>
#include <utility>

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

// The block-scaled route's epilogue: its fp32 product carries the scales already; y = acc
// (+ bias[o]) (+ y), in the host's order.
template <class T>
__global__ void finish_fp8_product_kernel(const float* __restrict__ acc, const T* __restrict__ bias, T* __restrict__ y,
                                          std::int64_t rows, std::int64_t out, bool accumulate) {
  const std::int64_t n = rows * out;
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += std::int64_t(gridDim.x) * blockDim.x) {
    float v = acc[i];
    if (bias) v = __fadd_rn(v, kernels::to_f32(bias[i % out]));
    if (accumulate) v = __fadd_rn(kernels::to_f32(y[i]), v);
    y[i] = kernels::from_f32<T>(v);
  }
}

// ---- cuBLASLt plans ------------------------------------------------------------------------------

constexpr std::uint8_t outer_vector = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
// Block-wise FP8 plans (gemm_key::scale_mode): A (the weight) BLK128x128_32F, B (x) VEC128_32F.
constexpr std::uint8_t block_scales = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;

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
  if (key.scale_mode != 0) {
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
  if (key.scale_mode != 0) {
    const std::int32_t a_mode = key.scale_mode;
    const std::int32_t b_mode =
        key.scale_mode == block_scales ? CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F : CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
    if (!available(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &a_mode, sizeof(a_mode)),
                   "cublasLtMatmulDescSetAttribute(A_SCALE_MODE)") ||
        !available(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &b_mode, sizeof(b_mode)),
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

// An fp32 product of rows x out for the paths that finish with a kernel. Outside capture, the
// context's grow-only buffer. A graph being captured must not point into it (a later, larger
// call outside capture would free it under the graph), and cudaMalloc cannot be captured: there
// the product takes stream-ordered memory, which becomes the graph's own allocation and free.
struct fp32_product {
  cuda_context_state& st;
  void* ptr = nullptr;
  bool captured = false;
  fp32_product(cuda_context_state& s, std::int64_t rows, std::int64_t out) : st(s) {
    const std::size_t bytes = std::size_t(rows * out) * sizeof(float);
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    MII_CUDA_CHECK(cudaStreamIsCapturing(st.stream, &capture));
    captured = capture != cudaStreamCaptureStatusNone;
    if (captured) MII_CUDA_CHECK(cudaMallocAsync(&ptr, bytes, st.stream));
    else ptr = st.fp8_gemm_out.reserve(bytes);
  }
  // After the kernels that read it, in stream order. (The destructor: where a throw or a refusal
  // left it unreleased.)
  void release() {
    if (captured && ptr) MII_CUDA_CHECK(cudaFreeAsync(std::exchange(ptr, nullptr), st.stream));
  }
  ~fp32_product() {
    if (captured && ptr) (void)cudaFreeAsync(ptr, st.stream);
  }
  fp32_product(const fp32_product&) = delete;
  fp32_product& operator=(const fp32_product&) = delete;
};

// Unit-scale FP8 GEMM into fp32, then the scales; false where cuBLASLt has no plan for it either.
template <class T>
bool gemm_fallback(cuda_context_state& st, fp8_scratch xq, std::int64_t rows, std::int64_t in, fp8_weight w,
                   std::int64_t out, const T* bias, T* y, bool accumulate) {
  gemm_key key = fp8_key(rows, in, out, xq.data, w.data);
  key.out_type = int(CUDA_R_32F);
  key.align_y = 16;  // fp8_gemm_out and the stream-ordered allocator give at least 256
  const gemm_plan& plan = fp8_plan(st, key, {});
  if (!plan.found) return false;
  fp32_product acc(st, rows, out);
  const float alpha = 1.0f, beta = 0.0f;
  MII_CUBLAS_CHECK(cublasLtMatmul(st.lt, plan.desc, &alpha, w.data, plan.w, xq.data, plan.x, &beta, acc.ptr, plan.y,
                                  acc.ptr, plan.y, &plan.algo, st.workspace, st.workspace_bytes, st.stream));
  apply_fp8_scales_kernel<<<elementwise_blocks(rows * out), 256, 0, st.stream>>>(
      static_cast<const float*>(acc.ptr), xq.scale, w.scale, bias, y, rows, out, accumulate);
  MII_CUDA_CHECK_LAUNCH();
  acc.release();
  return true;
}

// ---- block-wise weights ----------------------------------------------------------------------

// The GEMV over `rows` rows quantized group-major together (xs[g * rows + r]), 8 at a time, or
// the CUDA-core kernel for block columns the GEMV does not take.
template <class T>
void block_gemv_rows(cuda_context_state& st, const std::uint8_t* xq, const float* xs, std::int64_t rows,
                     std::int64_t in, fp8_weight w, std::int64_t out, const T* bias, T* y, bool accumulate) {
  const kernels::fp8_block_scales scales{w.blocks.rows, w.blocks.cols, w.scale_ld, rows};
  if (w.blocks.cols % 64 != 0) {
    kernels::fp8_linear_blocks_generic(xq, xs, rows, in, w.data, w.scale, out, scales, bias, y, accumulate, st.stream);
    return;
  }
  for (std::int64_t r = 0; r < rows; r += kernels::fp8_gemv_rows)
    kernels::fp8_gemv_blocks(xq + r * in, xs + r, int(std::min<std::int64_t>(kernels::fp8_gemv_rows, rows - r)), in,
                             w.data, w.scale, out, scales, bias, y + r * out, accumulate, st.stream);
}

// cuBLASLt's block-scaled GEMM over `rows` rows (a multiple of 4) quantized group-major together;
// false (nothing run) where it has no plan. First the plan writing y directly (the BIAS epilogue,
// or without it where refused, beta = 1 to accumulate), then, where its matmul refuses, one
// writing an fp32 product that a kernel finishes.
template <class T>
bool gemm_blocks(cuda_context_state& st, const std::uint8_t* xq, const float* xs, std::int64_t rows, std::int64_t in,
                 fp8_weight w, std::int64_t out, const T* bias, T* y, bool accumulate) {
  bool bias_epilogue = bias && kernels::aligned16(bias);
  gemm_key key = fp8_key(rows, in, out, xq, w.data);
  key.out_type = int(cuda_type<T>);
  key.align_y = alignment(y);
  key.scale_mode = block_scales;
  key.bias_epilogue = bias_epilogue;
  key.align_bias = bias_epilogue ? alignment(bias) : 0;
  fp8_pointers ptrs{w.scale, xs, bias_epilogue ? bias : nullptr};
  gemm_plan* plan = &fp8_plan(st, key, ptrs);
  if (!plan->found && bias_epilogue) {  // no BIAS epilogue with block scales: the bias after
    bias_epilogue = false;
    key.bias_epilogue = false;
    key.align_bias = 0;
    ptrs.bias = nullptr;
    plan = &fp8_plan(st, key, ptrs);
  }
  if (plan->found && !(accumulate && plan->accumulate_refused)) {
    set_pointers(*plan, key, ptrs);
    const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    const cublasStatus_t status = cublasLtMatmul(st.lt, plan->desc, &alpha, w.data, plan->w, xq, plan->x, &beta, y,
                                                 plan->y, y, plan->y, &plan->algo, st.workspace, st.workspace_bytes,
                                                 st.stream);
    if (available(status, "cublasLtMatmul (FP8, block scales)")) {
      if (bias && !bias_epilogue) {
        add_bias_kernel<<<elementwise_blocks(rows * out), 256, 0, st.stream>>>(y, bias, rows, out);
        MII_CUDA_CHECK_LAUNCH();
      }
      return true;
    }
    // Refused at run time: beta = 1 (remembered for accumulating calls only) or the plan itself.
    if (accumulate) plan->accumulate_refused = true;
    else release(*plan);
  }
  gemm_key product_key = fp8_key(rows, in, out, xq, w.data);
  product_key.out_type = int(CUDA_R_32F);
  product_key.align_y = 16;  // as gemm_fallback's
  product_key.scale_mode = block_scales;
  const fp8_pointers product_ptrs{w.scale, xs, nullptr};
  gemm_plan& product_plan = fp8_plan(st, product_key, product_ptrs);
  if (!product_plan.found) return false;
  set_pointers(product_plan, product_key, product_ptrs);
  fp32_product acc(st, rows, out);
  const float alpha = 1.0f, beta = 0.0f;
  const cublasStatus_t status =
      cublasLtMatmul(st.lt, product_plan.desc, &alpha, w.data, product_plan.w, xq, product_plan.x, &beta, acc.ptr,
                     product_plan.y, acc.ptr, product_plan.y, &product_plan.algo, st.workspace, st.workspace_bytes,
                     st.stream);
  if (!available(status, "cublasLtMatmul (FP8, block scales, fp32 product)")) {
    release(product_plan);
    return false;
  }
  finish_fp8_product_kernel<<<elementwise_blocks(rows * out), 256, 0, st.stream>>>(static_cast<const float*>(acc.ptr),
                                                                                   bias, y, rows, out, accumulate);
  MII_CUDA_CHECK_LAUNCH();
  acc.release();
  return true;
}

template <class T>
void linear_fp8_blocks(cuda_context_state& st, const T* x, std::int64_t rows, std::int64_t in, fp8_weight w,
                       std::int64_t out, const T* bias, T* y, bool accumulate, fp8_scratch xq) {
  const fp8_blocks blocks = w.blocks;
  if (blocks.rows < 1 || blocks.cols < 1)
    fail("internal: linear_fp8 with FP8 blocks of ", blocks.rows, " x ", blocks.cols, " (both must be >= 1)");
  if (w.input_scale)
    fail("internal: linear_fp8: a static input scale needs per-row FP8 weights, got ", blocks.rows, " x ", blocks.cols,
         " blocks");
  const std::int64_t groups = blocks.groups(in);
  if (w.scale_ld < groups) fail("internal: linear_fp8: scale_ld ", w.scale_ld, " < ", groups, " groups");
  // cuBLASLt: 128 x 128 blocks, its scale layouts (the weight's row stride exactly the groups
  // rounded up to 4, 16-byte aligned scales), M = out and N = rows multiples of 4.
  const bool gemm = !st.fp8_gemm_fallback && rows > st.fp8_gemv_max_rows && rows >= 4 &&
                    blocks == fp8_blocks{128, 128} && in % 128 == 0 && out % 4 == 0 &&
                    w.scale_ld == (groups + 3) / 4 * 4 && kernels::aligned16(w.scale) && kernels::aligned16(xq.scale);
  // The first `head` rows for cuBLASLt, the rest (all rows without it) for the GEMV, each part
  // quantized with its own group-major scales, the tail's after the head's (rows * groups in all).
  const std::int64_t head = gemm ? rows / 4 * 4 : 0, tail = rows - head;
  float* tail_xs = xq.scale + head * groups;
  if (head > 0) kernels::quantize_fp8_groups(x, head, in, blocks.cols, xq.data, xq.scale, st.stream);
  if (tail > 0) {  // right behind its quantization (the GEMV's programmatic launch)
    kernels::quantize_fp8_groups(x + head * in, tail, in, blocks.cols, xq.data + head * in, tail_xs, st.stream);
    block_gemv_rows(st, xq.data + head * in, tail_xs, tail, in, w, out, bias, y + head * out, accumulate);
  }
  if (head > 0 && !gemm_blocks(st, xq.data, xq.scale, head, in, w, out, bias, y, accumulate))
    block_gemv_rows(st, xq.data, xq.scale, head, in, w, out, bias, y, accumulate);
}

template <class T>
void linear_fp8_impl(cuda_context_state& st, const T* x, std::int64_t rows, std::int64_t in, fp8_weight w,
                     std::int64_t out, const T* bias, T* y, bool accumulate, fp8_scratch xq) {
  if (rows <= 0 || out <= 0) return;
  if (in <= 0) fail("linear_fp8: in must be >= 1, got ", in);
  if (!w.blocks.per_row()) {
    linear_fp8_blocks(st, x, rows, in, w, out, bias, y, accumulate, xq);
    return;
  }
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

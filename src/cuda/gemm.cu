// y[rows, out] = x[rows, in] * w[out, in]^T (+ bias) (+ y): the cuda backend's linear layers.
//
// A single row (decode of one sequence) goes to a GEMV kernel that streams w with 16-byte loads,
// one warp per output feature; everything else goes to cuBLASLt (bf16/fp16 operands, fp32
// accumulation), with the matmul descriptors and the heuristic's algorithm cached per shape.
// Measured on an H100 for a 4096 x 14336 weight (tests/gpu/gemm_bench_test.cpp): at 1 row the
// GEMV kernel reads w at ~2.7 TB/s (90% of the device-to-device copy rate) against ~2.6 TB/s for
// cuBLASLt; from 2 rows up cuBLASLt stays at ~2.6 TB/s while a GEMV re-reading x per output
// falls off (2.2 TB/s at 2 rows, 0.9 at 8), so only single rows take the kernel.
#include <cstdint>
#include <type_traits>

#include "common.cuh"
#include "cuda/check.hpp"
#include "cuda/context_state.hpp"
#include "cuda/gemm_support.hpp"
#include "moe_gemv.cuh"
#include "pdl.cuh"

namespace mii::backend {
namespace {

using kernels::device_t;

// ---- GEMV for few rows ----------------------------------------------------------------------

constexpr int gemv_warps = 8;    // output features per block
constexpr int gemv_unroll = 4;   // 16-byte loads of w in flight per lane

template <int Rows, class T>
__device__ __forceinline__ void gemv_chunk(float (&acc)[Rows], const uint4& wv, const uint4* __restrict__ x,
                                           std::int64_t chunk, std::int64_t chunks_per_row, int rows) {
  float wf[8];
  kernels::unpack8<T>(wv, wf);
#pragma unroll
  for (int m = 0; m < Rows; ++m) {
    if (m < rows) {
      float xf[8];
      kernels::unpack8<T>(__ldg(x + m * chunks_per_row + chunk), xf);
#pragma unroll
      for (int i = 0; i < 8; ++i) acc[m] = fmaf(wf[i], xf[i], acc[m]);
    }
  }
}

// Block `block`'s outputs of y = x w^T (+ bias) (+ y). Requires in % 8 == 0 and 16-byte aligned
// x and w. Rows: a compile-time bound on rows (the dense layers launch 1; an expert of the
// MoE GEMV below may have up to 8).
template <class T, class Out, int Rows>
__device__ __forceinline__ void gemv_block(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                                           Out* __restrict__ y, int rows, std::int64_t in, std::int64_t out,
                                           bool accumulate, unsigned block) {
  const int lane = threadIdx.x & 31;
  const std::int64_t o = std::int64_t(block) * gemv_warps + (threadIdx.x >> 5);
  if (o >= out) return;  // whole warps leave together
  const std::int64_t chunks = in / 8;
  const uint4* wrow = reinterpret_cast<const uint4*>(w + o * in);
  const uint4* xv = reinterpret_cast<const uint4*>(x);
  float acc[Rows];
#pragma unroll
  for (int m = 0; m < Rows; ++m) acc[m] = 0.0f;
  std::int64_t c = lane;
  // All loads of w for gemv_unroll chunks are issued before any is used. The first ones go out
  // before waiting for the kernel that wrote x (a programmatic launch: kernels/pdl.cuh).
  uint4 wv[gemv_unroll];
  auto load_w = [&](std::int64_t at) {
#pragma unroll
    for (int u = 0; u < gemv_unroll; ++u) wv[u] = kernels::load_streaming(wrow + at + u * 32);
  };
  if (c + (gemv_unroll - 1) * 32 < chunks) load_w(c);
  kernels::wait_for_previous_kernel();
  for (; c + (gemv_unroll - 1) * 32 < chunks; c += gemv_unroll * 32) {
    if (c != lane) load_w(c);
#pragma unroll
    for (int u = 0; u < gemv_unroll; ++u) gemv_chunk<Rows, T>(acc, wv[u], xv, c + u * 32, chunks, rows);
  }
  for (; c < chunks; c += 32) gemv_chunk<Rows, T>(acc, kernels::load_streaming(wrow + c), xv, c, chunks, rows);
#pragma unroll
  for (int m = 0; m < Rows; ++m)
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], offset);
  if (lane == 0) {
    const float b = bias ? kernels::to_f32(bias[o]) : 0.0f;
#pragma unroll
    for (int m = 0; m < Rows; ++m) {
      if (m < rows) {
        Out* dst = y + std::int64_t(m) * out + o;
        float v = acc[m] + b;
        if (accumulate) v += kernels::to_f32(*dst);
        *dst = kernels::from_f32<Out>(v);
      }
    }
  }
}

template <class T, class Out, int Rows>
__global__ void __launch_bounds__(gemv_warps * 32)
    gemv_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias, Out* __restrict__ y,
                int rows, std::int64_t in, std::int64_t out, bool accumulate) {
  gemv_block<T, Out, Rows>(x, w, bias, y, rows, in, out, accumulate, blockIdx.x);
}

// kernels/moe_gemv.cuh: block row g takes the g-th expert in use and its slice of the slots.
template <class T, int Rows>
__global__ void __launch_bounds__(gemv_warps * 32)
    moe_gemv_kernel(const T* __restrict__ x, std::int64_t in, const __grid_constant__ kernels::moe_expert_table table,
                    std::int64_t out, kernels::moe_groups groups, T* __restrict__ y) {
  const int e = groups.used[blockIdx.y];
  if (e < 0) return;
  const std::int64_t begin = groups.first[e];
  const int rows = groups.first[e + 1] - int(begin);
  gemv_block<T, T, Rows>(x + begin * in, static_cast<const T*>(table.weight[e]), nullptr, y + begin * out, rows, in,
                         out, false, blockIdx.x);
}

template <class T, class Out>
void launch_gemv(cudaStream_t stream, bool programmatic, const T* x, int rows, std::int64_t in, const T* w,
                 std::int64_t out, const T* bias, Out* y, bool accumulate) {
  if (rows != 1) fail("internal: the GEMV kernel is instantiated for one row, got ", rows);
  const dim3 grid(kernels::ceil_div(out, gemv_warps)), block(gemv_warps * 32);
  kernels::launch_maybe_programmatic(programmatic, grid, block, stream, gemv_kernel<T, Out, 1>, x, w, bias, y, rows, in,
                                     out, accumulate);
}

// ---- cuBLASLt --------------------------------------------------------------------------------

const gemm_plan& prepare_plan(cuda_context_state& st, const gemm_key& key) {
  if (auto it = st.gemm_plans.find(key); it != st.gemm_plans.end()) return it->second;
  gemm_plan plan;
  cublasLtMatmulPreference_t pref = nullptr;
  // Releases what was made so far if a call below throws.
  struct guard {
    gemm_plan& p;
    cublasLtMatmulPreference_t& pref;
    bool keep = false;
    ~guard() {
      if (pref) cublasLtMatmulPreferenceDestroy(pref);
      if (keep) return;
      if (p.desc) cublasLtMatmulDescDestroy(p.desc);
      if (p.w) cublasLtMatrixLayoutDestroy(p.w);
      if (p.x) cublasLtMatrixLayoutDestroy(p.x);
      if (p.y) cublasLtMatrixLayoutDestroy(p.y);
    }
  } g{plan, pref};
  // Column-major view: y^T[out, rows] = w[in, out]^T * x^T[in, rows], i.e. a "TN" GEMM with
  // m = out, n = rows, k = in, and every matrix's leading dimension its row length.
  const auto in_type = cudaDataType_t(key.in_type), out_type = cudaDataType_t(key.out_type);
  MII_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t transpose = CUBLAS_OP_T, keep = CUBLAS_OP_N;
  MII_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof(transpose)));
  MII_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, &keep, sizeof(keep)));
  if (key.bias_epilogue) {
    const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    MII_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
    const cudaDataType_t bias_type = in_type;
    MII_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type)));
  }
  MII_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.w, in_type, std::uint64_t(key.in), std::uint64_t(key.out), key.in));
  MII_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.x, in_type, std::uint64_t(key.in), std::uint64_t(key.rows), key.in));
  MII_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.y, out_type, std::uint64_t(key.out), std::uint64_t(key.rows), key.out));

  MII_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  set_preference(st, key, pref);

  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  MII_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(st.lt, plan.desc, plan.w, plan.x, plan.y, plan.y, pref, 1, &result, &found));
  if (found == 0)
    fail("cuBLASLt has no algorithm for the GEMM y[", key.rows, ", ", key.out, "] = x[", key.rows, ", ", key.in, "] * w[",
         key.out, ", ", key.in, "]^T (pointer alignments x ", int(key.align_x), ", w ", int(key.align_w), ", y ",
         int(key.align_y), " bytes)");
  plan.algo = result.algo;
  g.keep = true;
  return st.gemm_plans.emplace(key, plan).first->second;
}

template <class T, class Out>
void linear_impl(cuda_context_state& st, const T* x, std::int64_t rows, std::int64_t in, const T* w, std::int64_t out,
                 const T* bias, Out* y, bool accumulate) {
  if (rows <= 0 || out <= 0) return;
  if (in <= 0) fail("linear: in must be >= 1, got ", in);
  if (rows <= st.gemv_max_rows && in % 8 == 0 && kernels::aligned16(x) && kernels::aligned16(w)) {
    launch_gemv(st.stream, st.gemv_programmatic, x, int(rows), in, w, out, bias, y, accumulate);
    return;
  }
  // The bias epilogue reads a bias of the operands' type; fp32 outputs (logits) add it after.
  const bool bias_epilogue = bias && std::is_same_v<Out, T> && kernels::aligned16(bias);
  gemm_key key;
  key.rows = rows;
  key.in = in;
  key.out = out;
  key.in_type = int(cuda_type<T>);
  key.out_type = int(cuda_type<Out>);
  key.bias_epilogue = bias_epilogue;
  key.align_x = alignment(x);
  key.align_w = alignment(w);
  key.align_y = alignment(y);
  key.align_bias = bias_epilogue ? alignment(bias) : 0;
  const gemm_plan& plan = prepare_plan(st, key);
  if (bias_epilogue)
    MII_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  MII_CUBLAS_CHECK(cublasLtMatmul(st.lt, plan.desc, &alpha, w, plan.w, x, plan.x, &beta, y, plan.y, y, plan.y, &plan.algo,
                                  st.workspace, st.workspace_bytes, st.stream));
  if (bias && !bias_epilogue) {
    const unsigned blocks = unsigned(std::min<std::int64_t>(kernels::ceil_div(rows * out, 256), 4096));
    add_bias_kernel<<<blocks, 256, 0, st.stream>>>(y, bias, rows, out);
    MII_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

}  // namespace mii::backend

namespace mii::kernels {

template <class T>
void moe_gemv(const T* x, std::int64_t in, const moe_expert_table& w, std::int64_t out, moe_groups groups, T* y,
              bool programmatic, cudaStream_t stream) {
  if (groups.groups <= 0 || out <= 0) return;
  if (in % 8 != 0) fail("internal: the MoE GEMV needs in % 8 == 0, got ", in);
  const dim3 grid(ceil_div(out, backend::gemv_warps), unsigned(groups.groups)), block(backend::gemv_warps * 32);
  // Each bound's accumulators live in registers: the smallest that holds max_rows.
  auto kernel = groups.max_rows <= 1   ? backend::moe_gemv_kernel<T, 1>
                : groups.max_rows <= 2 ? backend::moe_gemv_kernel<T, 2>
                : groups.max_rows <= 4 ? backend::moe_gemv_kernel<T, 4>
                : groups.max_rows <= 8 ? backend::moe_gemv_kernel<T, 8>
                                       : nullptr;
  if (!kernel) fail("internal: the MoE GEMV takes at most 8 rows per expert, got ", groups.max_rows);
  launch_maybe_programmatic(programmatic, grid, block, stream, kernel, x, in, w, out, groups, y);
}

template void moe_gemv<__nv_bfloat16>(const __nv_bfloat16*, std::int64_t, const moe_expert_table&, std::int64_t,
                                      moe_groups, __nv_bfloat16*, bool, cudaStream_t);
template void moe_gemv<__half>(const __half*, std::int64_t, const moe_expert_table&, std::int64_t, moe_groups, __half*,
                               bool, cudaStream_t);

}  // namespace mii::kernels

namespace mii::backend {

template <class DType>
void cuda<DType>::linear(context& ctx, const T* x, std::int64_t rows, std::int64_t in, const T* w, std::int64_t out,
                         const T* bias, T* y, bool accumulate) {
  linear_impl(ctx.impl(), kernels::dev(x), rows, in, kernels::dev(w), out, kernels::dev(bias), kernels::dev(y), accumulate);
}

template <class DType>
void cuda<DType>::linear_f32(context& ctx, const T* x, std::int64_t rows, std::int64_t in, const T* w, std::int64_t out,
                             const T* bias, float* y) {
  linear_impl(ctx.impl(), kernels::dev(x), rows, in, kernels::dev(w), out, kernels::dev(bias), y, false);
}

template void cuda<bf16_t>::linear(context&, const T*, std::int64_t, std::int64_t, const T*, std::int64_t, const T*, T*, bool);
template void cuda<bf16_t>::linear_f32(context&, const T*, std::int64_t, std::int64_t, const T*, std::int64_t, const T*, float*);
template void cuda<fp16_t>::linear(context&, const T*, std::int64_t, std::int64_t, const T*, std::int64_t, const T*, T*, bool);
template void cuda<fp16_t>::linear_f32(context&, const T*, std::int64_t, std::int64_t, const T*, std::int64_t, const T*, float*);

}  // namespace mii::backend

// What a cuda backend context holds. Internal: kernels and src/cuda reach the stream and the
// library handles through ctx.impl().
#pragma once
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include <mii/backend/cuda/cuda_backend.hpp>

#include "cuda/weight_upload.hpp"

namespace mii::backend {

// Device scratch that only grows. Growing frees the old block with cudaFree, which waits for
// the device, so work still reading the old block finishes first.
struct device_scratch {
  void* ptr = nullptr;
  std::size_t bytes = 0;
  void* reserve(std::size_t need);  // returns ptr, at least `need` bytes
  template <class T>
  T* as(std::size_t count) { return static_cast<T*>(reserve(count * sizeof(T))); }
  void release() noexcept;
};

// Pinned host scratch that only grows. The caller makes sure no copy still reads it before a
// reserve() that may reallocate (the stream is synchronized before freeing).
struct pinned_scratch {
  void* ptr = nullptr;
  std::size_t bytes = 0;
  void* reserve(std::size_t need, cudaStream_t stream);
  template <class T>
  T* as(std::size_t count, cudaStream_t stream) { return static_cast<T*>(reserve(count * sizeof(T), stream)); }
  void release() noexcept;
};

// A cuBLASLt matmul prepared for one GEMM shape: the decode path runs the same few shapes every
// step, so descriptors and the heuristic's choice are made once and reused.
struct gemm_key {
  std::int64_t rows = 0, in = 0, out = 0;
  int in_type = 0, out_type = 0;     // cudaDataType_t
  bool bias_epilogue = false;
  std::uint8_t align_x = 0, align_w = 0, align_y = 0, align_bias = 0;  // pointer alignment, bytes (<= 16)
  // cublasLtMatmulMatrixScale_t of the weight (A): 0 (scalar; bf16/fp16 plans and FP8 plans with
  // unit scales), CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F (FP8 per-row / per-token scales, both
  // operands) or CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F (block-wise FP8: x, B, then takes
  // VEC128_32F), so that block plans are cached apart from outer-vector ones.
  std::uint8_t scale_mode = 0;
  bool operator==(const gemm_key&) const = default;
};
struct gemm_key_hash {
  std::size_t operator()(const gemm_key& k) const noexcept {
    std::size_t h = std::hash<std::int64_t>{}(k.rows);
    auto mix = [&h](std::size_t v) { h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2); };
    mix(std::size_t(k.in));
    mix(std::size_t(k.out));
    mix(std::size_t(k.in_type) * 131 + std::size_t(k.out_type));
    mix(std::size_t(k.bias_epilogue) | std::size_t(k.align_x) << 1 | std::size_t(k.align_w) << 9 |
        std::size_t(k.align_y) << 17 | std::size_t(k.align_bias) << 25 | std::size_t(k.scale_mode) << 33);
    return h;
  }
};
struct gemm_plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t w = nullptr, x = nullptr, y = nullptr;
  cublasLtMatmulAlgo_t algo{};
  // False for an FP8 plan cuBLASLt has no algorithm for (descriptors released): the shape's
  // decision to take linear_fp8's fallback, remembered (src/cuda/gemm_fp8.cu).
  bool found = true;
  // A block-scaled FP8 plan whose matmul refused beta = 1 (accumulating into y): such calls
  // take the plan's fp32-product route instead, the others keep the plan (src/cuda/gemm_fp8.cu).
  bool accumulate_refused = false;
};

struct cuda_context_state {
  cuda_context_state() = default;
  cuda_context_state(const cuda_context_state&) = delete;
  cuda_context_state& operator=(const cuda_context_state&) = delete;
  ~cuda_context_state();  // releases whatever was created, also after a failed constructor

  int device = 0;
  cudaStream_t stream = nullptr;
  cublasLtHandle_t lt = nullptr;
  void* workspace = nullptr;              // cuBLASLt workspace
  std::size_t workspace_bytes = 0;
  // Pinned staging for step metadata (one copy per step) and its device copy.
  std::int32_t* step_host = nullptr;
  std::int32_t* step_device = nullptr;
  std::size_t step_capacity = 0;          // int32 elements
  cudaEvent_t step_copied = nullptr;      // the last step copy has left step_host

  // Weight uploads (cuda_backend.hpp, load): made at the first load that reads a checkpoint.
  std::unique_ptr<weight_uploader> uploader;
  std::size_t upload_slot_bytes = std::size_t(8) << 20;
  // The weight arena of reserve_weights: the allocation (shared with the buffers cut from it; the
  // context lets go of it once it is used up or another reservation replaces it) and what is left.
  std::shared_ptr<void> arena;
  std::byte* arena_next = nullptr;
  std::size_t arena_left = 0;

  // GEMM: prepared cuBLASLt plans; rows up to gemv_max_rows (1) go to the GEMV kernel instead
  // (MII_CUDA_GEMV_MAX_ROWS=0 sends everything to cuBLASLt, for comparisons).
  std::unordered_map<gemm_key, gemm_plan, gemm_key_hash> gemm_plans;
  int gemv_max_rows = 1;
  // The GEMV (dense and MoE) is launched as a programmatic dependent of the kernel before it, so
  // that its weights stream in while that kernel ends (kernels/pdl.cuh); MII_CUDA_PDL=0 launches
  // it in the usual order, for comparisons.
  bool gemv_programmatic = true;

  // FP8 linear layers (src/cuda/gemm_fp8.cu). Up to fp8_gemv_max_rows rows take the FP8 GEMV:
  // 8, the most its n = 8 tile holds, and on an H200 it beats cuBLASLt at every count up to 8
  // (20-21 us against 30 us for a 4096 x 14336 weight); MII_CUDA_FP8_GEMV_MAX_ROWS=0..8 for
  // comparisons. More rows take cuBLASLt with per-row / per-token scales (outer-vector scale
  // mode), or, for a shape cuBLASLt refuses that mode for (or with MII_CUDA_FP8_GEMM=fallback),
  // an FP8 GEMM with unit scales into fp32 (fp8_gemm_out) and a kernel applying the scales.
  int fp8_gemv_max_rows = 8;
  bool fp8_gemm_fallback = false;
  // The fallback's fp32 product. Grown outside graph capture only (growing frees the old block);
  // a call being captured takes memory of its own from the stream-ordered allocator instead (a
  // memory node of the graph), so no graph ever points into this buffer.
  device_scratch fp8_gemm_out;
  // load_fp8: an FP8 entry's values as fp32, fp8_staging_elements at most at a time (whole rows;
  // at least one), quantized on the device before the next piece is uploaded into it (the
  // uploader's copies wait for the stream). Reserved by reserve_weights; kept with the context.
  device_scratch fp8_staging;
  std::int64_t fp8_staging_elements = std::int64_t(4) << 20;  // 16 MiB of fp32

  // Sampler scratch.
  device_scratch sample_meta, sample_keys, sample_keys_sorted, sample_ids, sample_ids_sorted, sample_temp, sample_out;
  pinned_scratch sample_host;
  // Logit operations around sampling (kernels/logits.cu).
  device_scratch logits_meta, logits_out;
  pinned_scratch logits_host;

  // MoE scratch (kernels/moe.cu): the host-routed path's buffers grow with the rows; the device
  // path's one block is reserved at that path's largest size by its first call and never moves
  // after, since CUDA graphs of decode steps point into it (a context serves one model).
  device_scratch moe_logits, moe_topk_ids, moe_topk_w, moe_order, moe_x, moe_gate_up, moe_inner, moe_y;
  pinned_scratch moe_host;
  device_scratch moe_device;
  // Up to this many rows MoE layers route on the device (8, the expert-indexed GEMVs' bound);
  // MII_CUDA_MOE_DEVICE_ROWS=0..8 for comparisons (0: always through the host).
  int moe_device_max_rows = 8;

  // Split-KV attention partials (kernels/attention.cu): fp32 outputs and log2-sum-exps of the
  // key-range slices, merged by a combine kernel. Grown outside graph capture only: the first
  // uncaptured tensor-core attention call reserves the decode-sized bound (4 * SMs * 16 rows *
  // (head_dim + 1) floats, 4.4 MB at head_dim 128), and a step needing more while a graph is
  // being captured runs unsplit instead. Owning (freed with the context).
  cuda_detail::device_buffer<float> attention_partials;
  // Decode steps use their own partials buffer, sized once for the decode bound and never
  // reallocated: CUDA graphs captured for decode steps keep pointing at it.
  cuda_detail::device_buffer<float> attention_partials_decode;
};

template <class DType>
struct cuda<DType>::context::state : cuda_context_state {};

}  // namespace mii::backend

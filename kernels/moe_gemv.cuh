// Expert-indexed GEMVs: the MoE layer's few-row path (kernels/moe.cu) runs every chosen expert's
// projection in one launch, without the host knowing which experts were chosen. The routing
// kernels (kernels/moe_routing.cuh) leave the slots in expert-major order; block row g of the
// launch takes the g-th expert in use, its rows of the gathered input and its weight from a
// table passed by value in the kernel parameters (so that a CUDA graph captures it too), and
// writes that expert's slice of the output. Groups past the number of experts in use return at
// once. Host-side declarations only.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "fp8.cuh"

namespace mii::kernels {

// Every expert's weight of one projection (and its FP8 scales), indexed by expert id.
struct moe_expert_table {
  static constexpr int capacity = 256;  // DeepSeek-V3's 256 routed experts; more take the host path
  const void* weight[capacity];
  const float* scale[capacity];
};

// Where each block row finds its expert and rows (device arrays the routing kernels wrote):
// expert = used[g] (-1: none), rows [first[expert], first[expert + 1]) of the expert-major slots.
// `groups` is the launch's block rows (min(slots, experts)); `max_rows` bounds any expert's rows
// (the layer's token rows: a row chooses an expert at most once).
struct moe_groups {
  const std::int32_t* used = nullptr;
  const std::int32_t* first = nullptr;
  int groups = 0;
  int max_rows = 0;
};

// y[s][o] = sum_i x[s][i] * W_e[o][i] for every slot s of every expert e in use, bf16/fp16 weights
// (T: __nv_bfloat16 or __half), in % 8 == 0 and every pointer 16-byte aligned; max_rows <= 8.
// Defined beside the dense GEMV (src/cuda/gemm.cu), which it shares; `programmatic`: launched as a
// programmatic dependent of the kernel before it (kernels/pdl.cuh), as the dense one is.
template <class T>
void moe_gemv(const T* x, std::int64_t in, const moe_expert_table& w, std::int64_t out, moe_groups groups, T* y,
              bool programmatic, cudaStream_t stream);

// The same over FP8 experts (fp8_gemv's kernel): xq / xs the quantized slots (quantize_fp8_rows,
// or quantize_fp8_groups with blocks->xs_stride = all slots), weights and scales from the table;
// in % 16 == 0 and 16-byte aligned pointers; max_rows <= fp8_gemv_rows. Launched as a
// programmatic dependent of the quantization, as fp8_gemv is.
template <class Out>
void moe_fp8_gemv(const std::uint8_t* xq, const float* xs, std::int64_t in, const moe_expert_table& w,
                  std::int64_t out, const fp8_block_scales* blocks, moe_groups groups, Out* y, cudaStream_t stream);

}  // namespace mii::kernels

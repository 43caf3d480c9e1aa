// The routing kernels of the MoE layer (kernels/moe.cu; backend/moe_weights.hpp): top-k of the
// router's softmax, the grouping of (row, choice) slots by expert on the device, and the
// weighted combination of the experts' outputs. Host-side declarations only.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace mii::kernels {

// Per row: softmax over all experts (fp32), the top k (ties: lower expert id, as the host's
// stable sort), weights renormalised over the k chosen when `renormalise`.
void moe_router_topk(const float* logits, int rows, int experts, int top_k, bool renormalise, std::int32_t* ids,
                     float* weights, cudaStream_t stream);

// Groups the slots (slot i = row i / top_k's choice i % top_k, expert ids[i]) by expert, in the
// host path's order (expert-major, slots of one expert in slot order): first[e] (experts + 1
// entries) is expert e's first position, order[p] the row of position p, slot_of[i] slot i's
// position; used[g] the g-th expert with at least one slot (ascending), -1 for g past them
// (`groups` entries). One block; slots up to a few thousand.
void moe_group_by_expert(const std::int32_t* ids, int slots, int experts, int top_k, std::int32_t* first,
                         std::int32_t* used, int groups, std::int32_t* order, std::int32_t* slot_of,
                         cudaStream_t stream);

// out[r] = sum over the row's k slots of weight * y[slot_of[r * k + s]] (+ sigmoid(x[r] . gate) *
// shared[r] when `shared` is given; an absent gate scales by 1), in fp32, rounded once.
// T: __nv_bfloat16 or __half.
template <class T>
void moe_combine(const T* y, const std::int32_t* slot_of, const float* weights, int top_k, std::int64_t rows,
                 std::int64_t hidden, const T* shared, const T* x, const T* gate, T* out, cudaStream_t stream);

}  // namespace mii::kernels

// One mixture-of-experts layer's weights and routing options, as Backend::moe takes them (host and
// CUDA alike). Pointers are in the backend's memory; T is its compute type.
//
//   routed(x)  = sum over the top_k experts e of w_e * down_e(act(gate_e x) * up_e x), where the
//                w_e are the softmax (fp32, over all experts) probabilities of the k chosen
//                experts, divided by their sum when `renormalise` (Mixtral; Qwen's norm_topk_prob);
//   shared(x)  = down_s(act(gate_s x) * up_s x), times sigmoid(x . shared_gate) when that is given;
//   out        = routed(x) + shared(x).
// Under tensor parallelism every expert (and the shared one) holds this rank's slice of its
// inner dimension, so `out` is a partial sum that the caller all-reduces; the router and the
// shared gate are replicated, so every rank routes alike and scales its partial sum alike.
// FP8 experts (backend/fp8.hpp): an expert whose up_fp8 / down_fp8 entry is given runs those
// through linear_fp8 (its input rows quantized per token, as in a dense layer) instead of the
// compute-dtype pointer; the same for the shared expert; `fp8_scratch` holds the quantized rows
// of one expert call at a time (rows x the widest input).
#pragma once
#include <cstdint>
#include <span>

#include <mii/backend/fp8.hpp>

namespace mii::backend {

template <class T>
struct moe_weights {
  const T* router = nullptr;            // [experts, hidden]
  std::int64_t experts = 0, top_k = 0;
  bool renormalise = true;
  std::span<const T* const> up, down;   // per expert: [2 * ffn, hidden] (gate rows first), [hidden, ffn]
  std::int64_t ffn = 0;                 // an expert's inner size on this rank
  // Optional shared expert (Qwen2-MoE): null shared_up means none.
  const T* shared_up = nullptr;         // [2 * shared_ffn, hidden] (gate rows first)
  const T* shared_down = nullptr;       // [hidden, shared_ffn]
  const T* shared_gate = nullptr;       // [1, hidden]; null: the shared output is added unscaled
  std::int64_t shared_ffn = 0;
  // FP8 (empty / null data: the compute-dtype weights above).
  std::span<const fp8_weight> up_fp8, down_fp8;  // per expert, as up / down
  fp8_weight shared_up_fp8{}, shared_down_fp8{};
  fp8_scratch scratch{};
  bool has_shared() const { return shared_up || shared_up_fp8.data; }
};

}  // namespace mii::backend

// Mixture of experts (Mixtral, Qwen2-MoE, Qwen3-MoE; backend/moe_weights.hpp): router logits in
// fp32, softmax + top-k (+ renormalised weights when the router policy says so) on the GPU, then
// the work grouped by expert (kernels/moe_routing.cuh), in one of two ways:
//
// Few rows (decode: up to moe_device_rows, 8), all on the device and so capturable in a CUDA
// graph: a kernel groups the (row, choice) slots by expert, one gather puts x in that
// expert-major order, and each projection is one expert-indexed GEMV launch over every expert
// in use (kernels/moe_gemv.cuh), which reads each chosen expert's weight once.
//
// More rows (prefill, large batches): the chosen ids come to the host (rows * top_k ints) and
// are counting-sorted there, so that each expert's slice is a GEMM of a size the host knows;
// per expert two GEMMs (up: [gate | up], down) on its slice.
//
// Both then run one gated activation over all slots, the shared expert when there is one (two
// GEMMs and a gated activation over all rows) and one combine kernel: out[r] = sum_k w_k *
// y[slot of (r, k)] + sigmoid(x_r . g) * shared[r], in fp32, rounded once. The two ways put the
// slots in the same order and use the same kernels for everything but the projections.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "common.cuh"
#include "cuda/check.hpp"
#include "cuda/context_state.hpp"
#include "fp8.cuh"
#include "moe_gemv.cuh"
#include "moe_routing.cuh"

namespace mii::backend {
namespace {

// Where one call keeps its intermediates. The device path carves them from one block reserved
// at its largest size on first use, so that it never moves (CUDA graphs point into it); the
// host path uses the context's grow-only buffers.
template <class T>
struct moe_buffers {
  float* logits = nullptr;
  std::int32_t *ids = nullptr, *order = nullptr, *slot_of = nullptr, *first = nullptr, *used = nullptr;
  float* weights = nullptr;
  T *xg = nullptr, *gate_up = nullptr, *inner = nullptr, *y = nullptr;
  T *shared_gate_up = nullptr, *shared_inner = nullptr, *shared = nullptr;
  std::uint8_t* xq = nullptr;  // FP8 experts: the quantized slots and their scales
  float* xs = nullptr;
};

// Whether every routed expert carries FP8 weights (up and down), none does (empty spans, or
// entries without data: the transformer keeps one entry per expert either way), or some do.
enum class fp8_experts { none, all, mixed };
template <class T>
fp8_experts fp8_experts_of(const moe_weights<T>& w) {
  std::int64_t with = 0;
  for (std::int64_t e = 0; e < w.experts; ++e) {
    const auto i = std::size_t(e);
    const bool up = i < w.up_fp8.size() && w.up_fp8[i].data, down = i < w.down_fp8.size() && w.down_fp8[i].data;
    if (up != down) return fp8_experts::mixed;
    with += up;
  }
  return with == 0 ? fp8_experts::none : with == w.experts ? fp8_experts::all : fp8_experts::mixed;
}

// Lays out the pieces of `b` for `rows` rows in one allocation (groups_in_row: 0 without FP8
// experts, else the most quantization groups of an expert's input row); with base null, only
// counts the bytes.
template <class T>
std::size_t carve(std::byte* base, const moe_weights<T>& w, std::int64_t rows, std::int64_t hidden,
                  std::int64_t groups_in_row, moe_buffers<T>& b) {
  const std::int64_t slots = rows * w.top_k;
  std::size_t at = 0;
  auto take = [&](auto*& p, std::int64_t count) {
    using P = std::remove_pointer_t<std::remove_reference_t<decltype(p)>>;
    at = (at + 255) / 256 * 256;
    p = base ? reinterpret_cast<P*>(base + at) : nullptr;
    at += std::size_t(count) * sizeof(P);
  };
  take(b.logits, rows * w.experts);
  take(b.ids, slots);
  take(b.weights, slots);
  take(b.order, slots);
  take(b.slot_of, slots);
  take(b.first, w.experts + 1);
  take(b.used, std::min(slots, w.experts));
  take(b.xg, slots * hidden);
  take(b.gate_up, slots * 2 * w.ffn);
  take(b.inner, slots * w.ffn);
  take(b.y, slots * hidden);
  if (w.has_shared()) {
    take(b.shared_gate_up, rows * 2 * w.shared_ffn);
    take(b.shared_inner, rows * w.shared_ffn);
    take(b.shared, rows * hidden);
  }
  if (groups_in_row > 0) {
    take(b.xq, slots * std::max(hidden, w.ffn));
    take(b.xs, slots * groups_in_row);
  }
  return at;
}

// Whether all experts of one projection share one FP8 layout the expert-indexed GEMV takes (it
// reads every expert with expert 0's scale layout): per row, or blocks of a multiple of 64 columns.
bool one_gemv_fp8_layout(std::span<const fp8_weight> v, std::int64_t experts) {
  const fp8_weight& a = v[0];
  for (std::int64_t e = 0; e < experts; ++e) {
    const fp8_weight& q = v[std::size_t(e)];
    if (!q.data || !q.scale || q.input_scale || !(q.blocks == a.blocks) || q.scale_ld != a.scale_ld ||
        !kernels::aligned16(q.data))
      return false;
  }
  return a.blocks.per_row() || (a.blocks.cols % 64 == 0 && a.blocks.rows >= 1);
}

}  // namespace

template <class DType>
std::int64_t cuda<DType>::moe_device_rows(context& ctx, const moe_weights<T>& w, std::int64_t hidden) {
  const std::int64_t most = std::min<std::int64_t>(ctx.impl().moe_device_max_rows, kernels::fp8_gemv_rows);
  const std::int64_t experts = w.experts;
  if (experts < 1 || experts > kernels::moe_expert_table::capacity || w.top_k < 1 || w.top_k > experts) return 0;
  if (std::int64_t(w.up.size()) < experts || std::int64_t(w.down.size()) < experts) return 0;
  const fp8_experts fp8 = fp8_experts_of(w);
  if (fp8 == fp8_experts::mixed) return 0;
  if (fp8 == fp8_experts::none) {
    if (hidden % 8 != 0 || w.ffn % 8 != 0) return 0;
    for (std::int64_t e = 0; e < experts; ++e)
      if (!kernels::aligned16(w.up[std::size_t(e)]) || !kernels::aligned16(w.down[std::size_t(e)])) return 0;
    return most;
  }
  if (hidden % 16 != 0 || w.ffn % 16 != 0) return 0;
  return one_gemv_fp8_layout(w.up_fp8, experts) && one_gemv_fp8_layout(w.down_fp8, experts) ? most : 0;
}

namespace {

// One projection of every expert in use, on the device path: the expert-indexed GEMV over the
// compute-dtype weights, or the quantization of the slots and the FP8 one.
template <class D, class T>
void project_on_device(const cuda_context_state& st, const D* in, std::int64_t slots, std::int64_t in_dim,
                       std::span<const T* const> weights, std::span<const fp8_weight> fp8, std::int64_t experts,
                       std::int64_t out_dim, kernels::moe_groups groups, const moe_buffers<T>& b, D* out) {
  const cudaStream_t stream = st.stream;
  kernels::moe_expert_table table{};
  if (fp8.empty()) {
    for (std::int64_t e = 0; e < experts; ++e) table.weight[e] = weights[std::size_t(e)];
    kernels::moe_gemv(in, in_dim, table, out_dim, groups, out, st.gemv_programmatic, stream);
    return;
  }
  for (std::int64_t e = 0; e < experts; ++e) {
    table.weight[e] = fp8[std::size_t(e)].data;
    table.scale[e] = fp8[std::size_t(e)].scale;
  }
  const fp8_weight& a = fp8[0];
  if (a.blocks.per_row()) {
    kernels::quantize_fp8_rows(in, slots, in_dim, b.xq, b.xs, stream);
    kernels::moe_fp8_gemv(b.xq, b.xs, in_dim, table, out_dim, nullptr, groups, out, stream);
  } else {
    kernels::quantize_fp8_groups(in, slots, in_dim, a.blocks.cols, b.xq, b.xs, stream);
    const kernels::fp8_block_scales scales{a.blocks.rows, a.blocks.cols, a.scale_ld, slots};
    kernels::moe_fp8_gemv(b.xq, b.xs, in_dim, table, out_dim, &scales, groups, out, stream);
  }
}

}  // namespace

template <class DType>
template <layers::activation A>
void cuda<DType>::moe(context& ctx, const T* x, std::int64_t rows, std::int64_t hidden, const moe_weights<T>& w,
                      T* out) {
  if (rows <= 0) return;
  const std::int64_t experts = w.experts, top_k = w.top_k, ffn = w.ffn;
  if (top_k < 1 || top_k > experts)
    fail("moe: top_k must be in [1, experts = ", experts, "], got ", top_k);
  if (std::int64_t(w.up.size()) < experts || std::int64_t(w.down.size()) < experts)
    fail("moe: ", experts, " experts but ", w.up.size(), " up and ", w.down.size(), " down weights");
  cuda_context_state& st = ctx.impl();  // the non-dependent base: its scratch members are plain
  const cudaStream_t stream = st.stream;
  using D = kernels::device_t<DType>;
  const std::int64_t slots = rows * top_k;
  const std::int64_t device_rows = moe_device_rows(ctx, w, hidden);
  const bool on_device = rows <= device_rows;

  moe_buffers<T> b;
  // On the device path the experts are all FP8 or none is (moe_device_rows).
  const std::int64_t groups_in_row =
      !on_device || fp8_experts_of(w) == fp8_experts::none
          ? 0
          : std::max(w.up_fp8[0].blocks.groups(hidden), w.down_fp8[0].blocks.groups(ffn));
  if (on_device) {
    // Sized for the path's most rows whatever this call's, so that it is reserved once.
    moe_buffers<T> sizing;
    auto* base = static_cast<std::byte*>(st.moe_device.reserve(carve(nullptr, w, device_rows, hidden, groups_in_row, sizing)));
    carve(base, w, rows, hidden, groups_in_row, b);
  } else {
    b.logits = st.moe_logits.as<float>(std::size_t(rows * experts));
    b.ids = st.moe_topk_ids.as<std::int32_t>(std::size_t(slots));
    b.weights = st.moe_topk_w.as<float>(std::size_t(slots));
    b.order = st.moe_order.as<std::int32_t>(std::size_t(2 * slots));
    b.slot_of = b.order + slots;
    b.xg = st.moe_x.as<T>(std::size_t(slots * hidden));
    b.gate_up = st.moe_gate_up.as<T>(std::size_t(slots * 2 * ffn));
    b.inner = st.moe_inner.as<T>(std::size_t(slots * ffn));
    b.y = st.moe_y.as<T>(std::size_t(slots * hidden));
  }

  // Route.
  linear_f32(ctx, x, rows, hidden, w.router, experts, nullptr, b.logits);
  kernels::moe_router_topk(b.logits, int(rows), int(experts), int(top_k), w.renormalise, b.ids, b.weights, stream);

  if (on_device) {
    const int groups = int(std::min(slots, experts));
    kernels::moe_group_by_expert(b.ids, int(slots), int(experts), int(top_k), b.first, b.used, groups, b.order,
                                 b.slot_of, stream);
    gather_rows(ctx, x, hidden, b.order, std::int32_t(slots), b.xg);
    const kernels::moe_groups g{b.used, b.first, groups, int(rows)};
    const bool fp8 = groups_in_row > 0;
    project_on_device(st, kernels::dev(b.xg), slots, hidden, w.up, fp8 ? w.up_fp8 : std::span<const fp8_weight>{},
                      experts, 2 * ffn, g, b, kernels::dev(b.gate_up));
    gated_act<A>(ctx, b.gate_up, slots, ffn, b.inner);
    project_on_device(st, kernels::dev(b.inner), slots, ffn, w.down,
                      fp8 ? w.down_fp8 : std::span<const fp8_weight>{}, experts, hidden, g, b, kernels::dev(b.y));
  } else {
    // Group the slots by expert on the host: order[slot] = source row, slot_of[r * k + s] = slot.
    auto* host = st.moe_host.as<std::int32_t>(std::size_t(3 * slots), stream);
    MII_CUDA_CHECK(cudaMemcpyAsync(host, b.ids, std::size_t(slots) * sizeof(std::int32_t), cudaMemcpyDeviceToHost, stream));
    MII_CUDA_CHECK(cudaStreamSynchronize(stream));
    std::vector<std::int64_t> first(std::size_t(experts) + 1, 0);
    for (std::int64_t i = 0; i < slots; ++i) {
      const std::int32_t e = host[i];
      if (e < 0 || e >= experts) fail("internal: moe router chose expert ", e, " of ", experts);
      ++first[std::size_t(e) + 1];
    }
    for (std::int64_t e = 0; e < experts; ++e) first[std::size_t(e) + 1] += first[std::size_t(e)];
    std::int32_t* order = host + slots;
    std::int32_t* slot_of = host + 2 * slots;
    {
      std::vector<std::int64_t> next(first.begin(), first.end() - 1);
      for (std::int64_t i = 0; i < slots; ++i) {
        const std::int64_t slot = next[std::size_t(host[i])]++;
        order[slot] = std::int32_t(i / top_k);
        slot_of[i] = std::int32_t(slot);
      }
    }
    MII_CUDA_CHECK(cudaMemcpyAsync(b.order, order, std::size_t(2 * slots) * sizeof(std::int32_t), cudaMemcpyHostToDevice,
                                   stream));
    gather_rows(ctx, x, hidden, b.order, std::int32_t(slots), b.xg);
    // Experts, each on its contiguous slice of gathered rows: FP8 where the expert has it (its
    // rows quantized per token into the shared scratch, which the stream's next call reuses only
    // after this one), else the GEMM.
    auto project = [&](const T* in, std::int64_t n, std::int64_t in_dim, const T* wt, const fp8_weight* q,
                       std::int64_t out_dim, T* out_rows) {
      if (q && q->data) linear_fp8(ctx, in, n, in_dim, *q, out_dim, nullptr, out_rows, false, w.scratch);
      else linear(ctx, in, n, in_dim, wt, out_dim, nullptr, out_rows);
    };
    auto fp8_of = [](std::span<const fp8_weight> v, std::int64_t e) {
      return std::int64_t(v.size()) > e ? &v[std::size_t(e)] : nullptr;
    };
    for (std::int64_t e = 0; e < experts; ++e) {
      const std::int64_t begin = first[std::size_t(e)], n = first[std::size_t(e) + 1] - begin;
      if (n > 0)
        project(b.xg + begin * hidden, n, hidden, w.up[std::size_t(e)], fp8_of(w.up_fp8, e), 2 * ffn,
                b.gate_up + begin * 2 * ffn);
    }
    gated_act<A>(ctx, b.gate_up, slots, ffn, b.inner);
    for (std::int64_t e = 0; e < experts; ++e) {
      const std::int64_t begin = first[std::size_t(e)], n = first[std::size_t(e) + 1] - begin;
      if (n > 0)
        project(b.inner + begin * ffn, n, ffn, w.down[std::size_t(e)], fp8_of(w.down_fp8, e), hidden,
                b.y + begin * hidden);
    }
    // The shared expert's intermediates reuse the routed experts' scratch, which the stream has
    // finished with (work on one stream runs in order; a scratch that grows frees its old block
    // only after the device is idle), and its output goes where the gathered rows were.
    if (w.has_shared()) {
      b.shared_gate_up = st.moe_gate_up.as<T>(std::size_t(rows * 2 * w.shared_ffn));
      b.shared_inner = st.moe_inner.as<T>(std::size_t(rows * w.shared_ffn));
      b.shared = st.moe_x.as<T>(std::size_t(slots * hidden));
    }
  }

  // The shared expert over all rows.
  if (w.has_shared()) {
    auto project = [&](const T* in, std::int64_t in_dim, const T* wt, const fp8_weight& q, std::int64_t out_dim, T* y) {
      if (q.data) linear_fp8(ctx, in, rows, in_dim, q, out_dim, nullptr, y, false, w.scratch);
      else linear(ctx, in, rows, in_dim, wt, out_dim, nullptr, y);
    };
    project(x, hidden, w.shared_up, w.shared_up_fp8, 2 * w.shared_ffn, b.shared_gate_up);
    gated_act<A>(ctx, b.shared_gate_up, rows, w.shared_ffn, b.shared_inner);
    project(b.shared_inner, w.shared_ffn, w.shared_down, w.shared_down_fp8, hidden, b.shared);
  }

  // Mix.
  kernels::moe_combine<D>(kernels::dev(b.y), b.slot_of, b.weights, int(top_k), rows, hidden,
                          kernels::dev(w.has_shared() ? b.shared : nullptr), kernels::dev(x),
                          kernels::dev(w.has_shared() ? w.shared_gate : nullptr), kernels::dev(out), stream);
}

#define MII_CUDA_MOE(D, A)                                                                                          \
  template void cuda<D>::moe<layers::activation::A>(context&, const T*, std::int64_t, std::int64_t,               \
                                                    const moe_weights<T>&, T*);
MII_CUDA_MOE(bf16_t, silu)
MII_CUDA_MOE(bf16_t, gelu)
MII_CUDA_MOE(bf16_t, gelu_tanh)
MII_CUDA_MOE(bf16_t, relu)
MII_CUDA_MOE(fp16_t, silu)
MII_CUDA_MOE(fp16_t, gelu)
MII_CUDA_MOE(fp16_t, gelu_tanh)
MII_CUDA_MOE(fp16_t, relu)
#undef MII_CUDA_MOE

template std::int64_t cuda<bf16_t>::moe_device_rows(context&, const moe_weights<T>&, std::int64_t);
template std::int64_t cuda<fp16_t>::moe_device_rows(context&, const moe_weights<T>&, std::int64_t);

}  // namespace mii::backend

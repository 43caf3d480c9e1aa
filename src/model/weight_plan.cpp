#include <mii/model/weight_plan.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>

#include <mii/error.hpp>

#include "model/unused_tensors.hpp"

namespace mii::model {
namespace {

using std::int64_t;

struct planner {
  const arch_description& arch;
  const weight_names& n;
  const model_shape& s;
  const io::checkpoint& ckpt;
  // Every tensor name the plan asked for, on any rank: what the checkpoint may hold beyond these
  // is refused (refuse_unused_tensors), so a config that disagrees with it cannot load silently.
  std::set<std::string, std::less<>>& used;

  std::string layer_name(int64_t layer, std::string_view name, std::string_view suffix = ".weight") const {
    return std::string(n.layer) + std::to_string(layer) + "." + std::string(name) + std::string(suffix);
  }

  // The tensor, which must have exactly `shape`.
  const io::tensor_view& tensor(const std::string& name, std::vector<int64_t> shape) const {
    used.insert(name);
    return ckpt.get(name, shape);
  }

  // A whole 1-D tensor (norm weight, unsharded bias) as one run.
  plan_entry vector(std::string what, const std::string& name, int64_t len) const {
    plan_entry e{std::move(what), {{&tensor(name, {len}), 0, len}}, len, 1, 0, true};
    return e;
  }
  // Whole matrix, optionally a column range of it.
  plan_entry matrix(std::string what, const std::string& name, int64_t rows, int64_t cols, int64_t col_begin = 0,
                    int64_t col_count = -1) const {
    if (col_count < 0) col_count = cols;
    return plan_entry{std::move(what), {{&tensor(name, {rows, cols}), 0, rows}}, rows, col_count, col_begin, false};
  }

  // ---- attention ----
  enum class part { q, k, v };
  // Where head `h` of `p` starts, as (tensor, row), for the checkpoint's q/k/v layout.
  row_run head_rows(int64_t layer, part p, int64_t h, bool bias) const {
    const int64_t hd = s.head_dim, nq = s.heads, nkv = s.kv_heads, in = s.hidden;
    const char* suffix = bias ? ".bias" : ".weight";
    auto shaped = [&](const std::string& name, int64_t rows) -> const io::tensor_view& {
      return bias ? tensor(name, {rows}) : tensor(name, {rows, in});
    };
    switch (n.qkv) {
      case qkv_layout::separate: {
        const std::string_view name = p == part::q ? n.q : p == part::k ? n.k : n.v;
        return {&shaped(layer_name(layer, name, suffix), (p == part::q ? nq : nkv) * hd), h * hd, hd};
      }
      case qkv_layout::fused: {
        const auto& t = shaped(layer_name(layer, n.fused_qkv, suffix), (nq + 2 * nkv) * hd);
        const int64_t base = p == part::q ? 0 : p == part::k ? nq * hd : (nq + nkv) * hd;
        return {&t, base + h * hd, hd};
      }
      case qkv_layout::falcon: {
        const std::string name = layer_name(layer, n.fused_qkv, suffix);
        if (s.grouped_fused_qkv) {
          // new decoder architecture: per kv group [q heads of the group | k | v]
          const int64_t per = nq / nkv;
          const auto& t = shaped(name, (nq + 2 * nkv) * hd);
          if (p == part::q) return {&t, ((h / per) * (per + 2) + h % per) * hd, hd};
          return {&t, (h * (per + 2) + per + (p == part::v ? 1 : 0)) * hd, hd};
        }
        if (nkv == 1) {  // multi-query: [all q | k | v]
          const auto& t = shaped(name, (nq + 2) * hd);
          return {&t, p == part::q ? h * hd : (nq + (p == part::v ? 1 : 0)) * hd, hd};
        }
        // multi-head: per head [q | k | v]
        const auto& t = shaped(name, 3 * nq * hd);
        return {&t, (3 * h + int64_t(p)) * hd, hd};
      }
    }
    fail("unreachable qkv layout");
  }

  plan_entry qkv(int64_t layer, bool bias) const {
    plan_entry e;
    e.what = "layer " + std::to_string(layer) + (bias ? " qkv bias" : " qkv");
    e.vector = bias;
    for (int64_t i = 0; i < s.local_heads; ++i) e.runs.push_back(head_rows(layer, part::q, s.rank * s.local_heads + i, bias));
    for (part p : {part::k, part::v})
      for (int64_t i = 0; i < s.local_kv_heads; ++i) e.runs.push_back(head_rows(layer, p, s.kv_head_begin + i, bias));
    e.rows = s.qkv_dim();
    e.cols = bias ? 1 : s.hidden;
    return e;
  }

  // ---- MLP ----
  // Rows [rank * local, +local) of an [ffn, hidden] source at `row0` in tensor `t`: this rank's
  // column-parallel slice of an MLP (dense: local_ffn, an expert: local_expert_ffn, the shared
  // expert: local_shared_ffn).
  row_run ffn_slice(const io::tensor_view& t, int64_t row0, int64_t local) const {
    return {&t, row0 + s.rank * local, local};
  }

  plan_entry gated_up(std::string what, const io::tensor_view& gate, int64_t gate_row0, const io::tensor_view& up,
                      int64_t up_row0, int64_t local) const {
    return plan_entry{std::move(what), {ffn_slice(gate, gate_row0, local), ffn_slice(up, up_row0, local)}, 2 * local,
                      s.hidden, 0, false};
  }
  // The row-parallel projection back to hidden: this rank's columns of [hidden, ffn].
  plan_entry down(std::string what, const io::tensor_view& t, int64_t row0, int64_t local) const {
    return plan_entry{std::move(what), {{&t, row0, s.hidden}}, s.hidden, local, s.rank * local, false};
  }

  void plan_mlp(weight_plan& w, int64_t L) const {
    auto& e = w.layers[std::size_t(L)];
    const std::string l = "layer " + std::to_string(L);
    const int64_t F = s.ffn, H = s.hidden, local = s.local_ffn;
    if (s.sparse(L)) {
      plan_moe(w, L);
      return;
    }
    // Dense: a gated MLP (an MoE architecture's dense layers are of its experts' kind) or a plain one.
    if (arch.mlp != layers::mlp_kind::plain) {
      if (n.gate_up == gate_up_layout::fused) {
        const auto& t = tensor(layer_name(L, n.fused_gate_up), {2 * F, H});
        e[std::size_t(layer_slot::up_w)] = gated_up(l + " gate_up", t, 0, t, F, local);
      } else {
        e[std::size_t(layer_slot::up_w)] = gated_up(l + " gate_up", tensor(layer_name(L, n.gate), {F, H}), 0,
                                                    tensor(layer_name(L, n.up), {F, H}), 0, local);
      }
    } else {
      e[std::size_t(layer_slot::up_w)] =
          plan_entry{l + " fc1", {ffn_slice(tensor(layer_name(L, n.up), {F, H}), 0, local)}, local, H, 0, false};
      if (s.mlp_bias)
        e[std::size_t(layer_slot::up_b)] =
            plan_entry{l + " fc1 bias", {ffn_slice(tensor(layer_name(L, n.up, ".bias"), {F}), 0, local)}, local, 1, 0, true};
    }
    e[std::size_t(layer_slot::down_w)] = down(l + " down", tensor(layer_name(L, n.down), {H, F}), 0, local);
    // A row-parallel bias is added once, by rank 0, before the all-reduce; every rank checks it
    // exists with its shape (and counts it as used).
    if (s.mlp_bias) {
      plan_entry b = vector(l + " down bias", layer_name(L, n.down, ".bias"), H);
      if (s.rank == 0) e[std::size_t(layer_slot::down_b)] = std::move(b);
    }
  }

  void plan_moe(weight_plan& w, int64_t L) const {
    const int64_t E = s.experts, F = s.expert_ffn, H = s.hidden, local = s.local_expert_ffn;
    const std::string l = "layer " + std::to_string(L);
    auto& e = w.layers[std::size_t(L)];
    auto& ups = w.expert_up[std::size_t(L)];
    auto& downs = w.expert_down[std::size_t(L)];
    ups.clear();
    downs.clear();
    if (s.shared_ffn) plan_shared_expert(w, L);
    // transformers 5 re-saves experts stacked ([E, 2F, H], gate rows first, and [E, H, F], no
    // ".weight"); the hub keeps one tensor per expert and projection. Qwen's router has the
    // same name in both, so the stacked tensor is what tells them apart.
    const std::string stacked = n.experts_gate_up_v5.empty() ? "" : layer_name(L, n.experts_gate_up_v5, "");
    if (stacked.empty() || !ckpt.find(stacked)) {
      e[std::size_t(layer_slot::router_w)] = matrix(l + " router", layer_name(L, n.router), E, H);
      for (int64_t x = 0; x < E; ++x) {
        const std::string pre = std::string(n.expert) + std::to_string(x) + ".";
        const auto& g = tensor(layer_name(L, pre + std::string(n.expert_gate)), {F, H});
        const auto& u = tensor(layer_name(L, pre + std::string(n.expert_up)), {F, H});
        ups.push_back(gated_up(l + " expert " + std::to_string(x) + " gate_up", g, 0, u, 0, local));
        downs.push_back(down(l + " expert " + std::to_string(x) + " down",
                             tensor(layer_name(L, pre + std::string(n.expert_down)), {H, F}), 0, local));
      }
      return;
    }
    e[std::size_t(layer_slot::router_w)] = matrix(l + " router", layer_name(L, n.router_v5), E, H);
    const auto& gu = tensor(stacked, {E, 2 * F, H});
    const auto& dn = tensor(layer_name(L, n.experts_down_v5, ""), {E, H, F});
    for (int64_t x = 0; x < E; ++x) {
      ups.push_back(gated_up(l + " expert " + std::to_string(x) + " gate_up", gu, x * 2 * F, gu, x * 2 * F + F, local));
      downs.push_back(down(l + " expert " + std::to_string(x) + " down", dn, x * H, local));
    }
  }

  // Qwen2-MoE's shared expert: sliced like a dense MLP; its [1, hidden] output gate replicated.
  void plan_shared_expert(weight_plan& w, int64_t L) const {
    auto& e = w.layers[std::size_t(L)];
    const std::string l = "layer " + std::to_string(L);
    const int64_t F = s.shared_ffn, H = s.hidden, local = s.local_shared_ffn;
    e[std::size_t(layer_slot::shared_up_w)] =
        gated_up(l + " shared expert gate_up", tensor(layer_name(L, n.shared_gate), {F, H}), 0,
                 tensor(layer_name(L, n.shared_up), {F, H}), 0, local);
    e[std::size_t(layer_slot::shared_down_w)] =
        down(l + " shared expert down", tensor(layer_name(L, n.shared_down), {H, F}), 0, local);
    if (s.shared_expert_gated)
      e[std::size_t(layer_slot::shared_gate_w)] = matrix(l + " shared expert gate", layer_name(L, n.shared_expert_gate), 1, H);
  }

  void plan_norms(weight_plan& w, int64_t L) const {
    auto& e = w.layers[std::size_t(L)];
    const bool ln = arch.norm == layers::norm_kind::layer;
    const std::string l = "layer " + std::to_string(L);
    auto put = [&](layer_slot ws, layer_slot bs, std::string_view name, const char* label) {
      e[std::size_t(ws)] = vector(l + " " + label, layer_name(L, name), s.hidden);
      if (ln) e[std::size_t(bs)] = vector(l + " " + label + " bias", layer_name(L, name, ".bias"), s.hidden);
    };
    switch (s.wiring) {
      case layers::wiring::sequential:
      case layers::wiring::post_norm:
        put(layer_slot::attn_norm_w, layer_slot::attn_norm_b, n.attn_norm, "attention norm");
        put(layer_slot::mlp_norm_w, layer_slot::mlp_norm_b, n.mlp_norm, "mlp norm");
        break;
      case layers::wiring::parallel_shared_norm:
        put(layer_slot::attn_norm_w, layer_slot::attn_norm_b, n.attn_norm, "input norm");
        break;
      case layers::wiring::parallel_two_norms:
        put(layer_slot::attn_norm_w, layer_slot::attn_norm_b, n.alt_attn_norm, "attention norm");
        put(layer_slot::mlp_norm_w, layer_slot::mlp_norm_b, n.alt_mlp_norm, "mlp norm");
        break;
      case layers::wiring::sandwich:
        put(layer_slot::attn_norm_w, layer_slot::attn_norm_b, n.attn_norm, "attention norm");
        put(layer_slot::post_attn_norm_w, layer_slot::post_attn_norm_b, n.post_attn_norm, "post-attention norm");
        put(layer_slot::mlp_norm_w, layer_slot::mlp_norm_b, n.mlp_norm, "mlp norm");
        put(layer_slot::post_mlp_norm_w, layer_slot::post_mlp_norm_b, n.post_mlp_norm, "post-mlp norm");
        break;
    }
  }

  weight_plan plan() const {
    weight_plan w;
    const int64_t H = s.hidden, D = s.embed_dim;
    // Embedding and lm_head are vocab-parallel: this rank's rows.
    const auto& embed = tensor(std::string(n.embed) + ".weight", {s.vocab, D});
    w[global_slot::embed] = plan_entry{"embedding", {{&embed, s.vocab_begin, s.local_vocab}}, s.local_vocab, D, 0, false};
    if (s.learned_positions) {
      const int64_t rows = s.max_positions + s.position_offset;
      w[global_slot::positions] = matrix("position embedding", std::string(n.positions) + ".weight", rows, H);
    }
    if (s.project_in_out) {
      w[global_slot::project_in] = matrix("project_in", std::string(n.project_in) + ".weight", H, D);
      w[global_slot::project_out] = matrix("project_out", std::string(n.project_out) + ".weight", D, H);
    }
    if (s.final_norm) {
      w[global_slot::final_norm_w] = vector("final norm", std::string(n.final_norm) + ".weight", H);
      if (arch.norm == layers::norm_kind::layer)
        w[global_slot::final_norm_b] = vector("final norm bias", std::string(n.final_norm) + ".bias", H);
    }
    const std::string head = std::string(n.lm_head) + ".weight";
    if (!s.tied_embeddings || ckpt.find(head)) {
      // Some tied checkpoints still store lm_head; it must then equal the embedding's shape.
      const auto& t = tensor(head, {s.vocab, D});
      w[global_slot::lm_head_w] = plan_entry{"lm_head", {{&t, s.vocab_begin, s.local_vocab}}, s.local_vocab, D, 0, false};
    }
    if (s.lm_head_bias) {
      const auto& t = tensor(std::string(n.lm_head) + ".bias", {s.vocab});
      w[global_slot::lm_head_b] = plan_entry{"lm_head bias", {{&t, s.vocab_begin, s.local_vocab}}, s.local_vocab, 1, 0, true};
    }

    w.layers.resize(std::size_t(s.layers));
    w.expert_up.resize(std::size_t(s.layers));
    w.expert_down.resize(std::size_t(s.layers));
    for (int64_t L = 0; L < s.layers; ++L) {
      auto& e = w.layers[std::size_t(L)];
      const std::string l = "layer " + std::to_string(L);
      plan_norms(w, L);
      e[std::size_t(layer_slot::qkv_w)] = qkv(L, false);
      if (s.qkv_bias) e[std::size_t(layer_slot::qkv_b)] = qkv(L, true);
      if (s.qk_norm) {  // [head_dim], shared by every head: replicated on every rank
        e[std::size_t(layer_slot::q_norm_w)] = vector(l + " q norm", layer_name(L, n.q_norm), s.head_dim);
        e[std::size_t(layer_slot::k_norm_w)] = vector(l + " k norm", layer_name(L, n.k_norm), s.head_dim);
      }
      e[std::size_t(layer_slot::o_w)] = matrix(l + " o_proj", layer_name(L, n.o), H, s.heads * s.head_dim,
                                               s.rank * s.q_dim(), s.q_dim());
      if (s.o_bias) {  // added by rank 0 only, as the down bias
        plan_entry b = vector(l + " o_proj bias", layer_name(L, n.o, ".bias"), H);
        if (s.rank == 0) e[std::size_t(layer_slot::o_b)] = std::move(b);
      }
      plan_mlp(w, L);
    }
    return w;
  }
};

// Pre-quantized FP8 checkpoints: an entry of a linear weight (MoE experts too) whose tensors hold e4m3 bytes
// takes the matching rows of their `.weight_scale` tensors (per channel [rows, 1] or [rows], per
// tensor [1] or []), or of their `.weight_scale_inv` tensors (block-wise: [ceil(rows / R),
// ceil(cols / C)] for config.json's weight_block_size [R, C]); e4m3 anywhere else is refused
// naming the tensor.
float static_input_scale_value(const io::tensor_view& t) {
  float v = 0;
  io::convert(t, dtype::f32, &v, 0, 1);
  return v;
}

std::string where(const io::tensor_view& t) {
  return (t.file ? t.file->string() + ": " : std::string()) + "tensor '" + t.name + "'";
}

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

// Run r's per-row (or per-tensor) weight_scale, and its static input_scale if it has one.
void attach_row_scales(plan_entry& e, const row_run& r, const std::string& base, const io::checkpoint& ckpt,
                       std::set<std::string, std::less<>>& used) {
  const io::tensor_view& t = *r.tensor;
  if (const auto* inv = ckpt.find(base + ".weight_scale_inv"))
    fail(where(*inv), " is a block-wise FP8 scale, but config.json's quantization_config does not describe block-wise "
         "FP8 (\"quant_method\": \"fp8\" with its weight_block_size)");
  if (const auto* in = ckpt.find(base + ".input_scale")) {  // static input scales (one per tensor)
    if (in->numel() != 1) fail(where(*in), " has shape ", in->shape_string(), "; a static input scale is one value");
    if (in->type == dtype::f8_e4m3) fail(where(*in), " is F8_E4M3; scales must be F32, BF16 or F16");
    used.insert(in->name);
    e.input_scales.push_back(in);
  }
  const std::string scale_name = base + ".weight_scale";
  const io::tensor_view& sc = ckpt.get(scale_name);
  used.insert(scale_name);
  const std::int64_t rows = t.shape.empty() ? 0 : t.shape[0];
  const bool per_tensor = sc.numel() == 1;
  const bool per_row = sc.numel() == rows && (sc.shape.size() == 1 || (sc.shape.size() == 2 && sc.shape[1] == 1));
  if (!per_tensor && !per_row)
    fail(where(sc), " has shape ", sc.shape_string(), "; the scales of ", t.name, " ", t.shape_string(),
         " must be [", rows, ", 1] (per channel) or [1] (per tensor)");
  if (sc.type == dtype::f8_e4m3) fail(where(sc), " is F8_E4M3; scales must be F32, BF16 or F16");
  e.scale_runs.push_back(row_run{&sc, per_tensor ? 0 : r.row, r.count});
}

// Run r's block scales (weight_scale_inv), checked against the weight's shape and the blocks.
void attach_block_scales(plan_entry& e, const row_run& r, const std::string& base, backend::fp8_blocks blocks,
                         const io::checkpoint& ckpt, std::set<std::string, std::less<>>& used) {
  const io::tensor_view& t = *r.tensor;
  const std::string scale_name = base + ".weight_scale_inv";
  const io::tensor_view& sc = ckpt.get(scale_name);
  used.insert(scale_name);
  const std::int64_t rows = t.shape.size() == 2 ? t.shape[0] : 0, cols = t.shape.size() == 2 ? t.shape[1] : 0;
  const std::vector<std::int64_t> want{ceil_div(rows, blocks.rows), ceil_div(cols, blocks.cols)};
  if (sc.shape != want)
    fail(where(sc), " has shape ", sc.shape_string(), "; the block scales of ", t.name, " ", t.shape_string(), " in ",
         blocks.rows, " x ", blocks.cols, " blocks (quantization_config.weight_block_size) must be [", want[0], ", ",
         want[1], "]");
  if (sc.type == dtype::f8_e4m3) fail(where(sc), " is F8_E4M3; scales must be F32, BF16 or F16");
  if (cols % blocks.cols != 0)
    fail(where(t), " has ", cols, " columns, not a multiple of the FP8 blocks' ", blocks.cols,
         " (quantization_config.weight_block_size): its inputs cannot be quantized per block");
  e.scale_runs.push_back(row_run{&sc, r.row, r.count});
}

// A block-wise entry's columns must be whole blocks (tensor parallelism slices row-parallel
// layers by columns), and its scales keep their blocks where every run starts on a block
// boundary of both its tensor and the canonical rows (fusing q|k|v or gate|up, slicing heads),
// else each row takes its own copy of its block's scales.
void settle_blocks(plan_entry& e, backend::fp8_blocks blocks) {
  if (e.col_begin % blocks.cols != 0 || e.cols % blocks.cols != 0)
    fail(where(*e.runs.front().tensor), ": tensor parallelism gives this rank columns [", e.col_begin, ", ",
         e.col_begin + e.cols, ") of ", e.what, ", which cut through the checkpoint's ", blocks.cols,
         "-column FP8 blocks (quantization_config.weight_block_size); choose a tensor-parallel size that splits "
         "the layer at multiples of ", blocks.cols, " columns");
  bool aligned = true;
  std::int64_t at = 0;
  for (const row_run& r : e.runs) {
    aligned &= r.row % blocks.rows == 0 && at % blocks.rows == 0;
    at += r.count;
  }
  e.checkpoint_blocks = blocks;
  e.fp8_blocks = aligned ? blocks : backend::fp8_blocks{1, blocks.cols};
}

void refuse_f8(const plan_entry& e) {
  for (const auto& r : e.runs)
    if (r.tensor->type == dtype::f8_e4m3)
      fail(where(*r.tensor), " is F8_E4M3, but mii runs FP8 for the linear layers only (attention qkv / o, MLP "
           "gate-up / down, MoE experts and shared experts); ", e.what, " must be stored as BF16, F16 or F32");
}

// One linear entry of a pre-quantized checkpoint: its scales attached and checked when its
// tensors hold e4m3 bytes. Returns whether it is FP8.
bool attach_entry_scales(plan_entry& e, const io::checkpoint& ckpt, const io::checkpoint_quantization& q,
                         std::set<std::string, std::less<>>& used) {
  std::size_t f8 = 0;
  for (const auto& r : e.runs) f8 += r.tensor->type == dtype::f8_e4m3;
  if (f8 == 0) return false;
  const bool block_wise = q.block_cols > 0;
  const backend::fp8_blocks blocks{q.block_rows, q.block_cols};
  for (const auto& r : e.runs) {
    const io::tensor_view& t = *r.tensor;
    if (t.type != dtype::f8_e4m3)
      fail(where(t), " is ", dtype_name(t.type), " while the rest of ", e.what,
           " is F8_E4M3: a quantized checkpoint must quantize all of it");
    // transformers 5 re-saves experts stacked ([experts, rows, cols]); FP8 checkpoints, its own
    // included, keep one tensor per expert and projection, each with its scales.
    if (t.shape.size() != 2)
      fail(where(t), " is F8_E4M3 of shape ", t.shape_string(), ": FP8 experts stacked in one tensor are not "
           "supported; store one tensor per expert and projection (the hub's layout, as FP8 checkpoints are released)");
    const std::string base = t.name.ends_with(".weight") ? t.name.substr(0, t.name.size() - 7) : t.name;
    if (block_wise) attach_block_scales(e, r, base, blocks, ckpt, used);
    else attach_row_scales(e, r, base, ckpt, used);
  }
  if (block_wise) settle_blocks(e, blocks);
  if (!e.input_scales.empty() && e.input_scales.size() != e.runs.size())
    fail(where(*e.runs.front().tensor), ": some projections of ", e.what,
         " have a static input_scale and others none; a checkpoint quantizes all of them one way");
  for (const auto* in : e.input_scales)
    if (!(static_input_scale_value(*in) > 0.0f) || !std::isfinite(static_input_scale_value(*in)))
      fail(where(*in), " is ", static_input_scale_value(*in), "; an input scale must be a finite number > 0");
  e.fp8 = true;
  return true;
}

// The layer slots that hold linear weights FP8 may quantize.
bool fp8_linear_slot(layer_slot slot) {
  return slot == layer_slot::qkv_w || slot == layer_slot::o_w || slot == layer_slot::up_w ||
         slot == layer_slot::down_w || slot == layer_slot::shared_up_w || slot == layer_slot::shared_down_w;
}

void attach_fp8_scales(weight_plan& plan, const io::checkpoint& ckpt, const io::checkpoint_quantization& q,
                       std::set<std::string, std::less<>>& used) {
  for (const auto& e : plan.globals) refuse_f8(e);
  std::size_t quantized = 0;
  for (auto& layer : plan.layers)
    for (std::size_t s = 0; s < layer.size(); ++s) {
      plan_entry& e = layer[s];
      if (!fp8_linear_slot(layer_slot(s)) || !e.present()) refuse_f8(e);
      else quantized += attach_entry_scales(e, ckpt, q, used);
    }
  for (auto* group : {&plan.expert_up, &plan.expert_down})
    for (auto& l : *group)
      for (auto& e : l) {
        // A static input scale per expert would give each expert's rows their own scale; vLLM
        // takes the largest over the experts instead. Neither is checked against an oracle here.
        if (attach_entry_scales(e, ckpt, q, used) && !e.input_scales.empty())
          fail(where(*e.input_scales.front()), ": static input scales on MoE experts are not supported (the "
               "checkpoint's experts quantize their inputs with fixed scales); use a checkpoint with dynamic "
               "activation scales (compressed-tensors FP8_DYNAMIC, or transformers' block-wise FP8)");
        else quantized += e.fp8;
      }
  // A config that says FP8 over unquantized weights would otherwise run them unquantized, silently.
  if (q.fp8 && quantized == 0) {
    const bool block_wise = q.block_cols > 0;
    const io::tensor_view* any = nullptr;
    for (const auto& e : plan.globals)
      if (e.present() && !any) any = e.runs.front().tensor;
    fail(any && any->file ? any->file->string() + ": " : std::string(),
         "no linear weight is F8_E4M3, but config.json's quantization_config says the checkpoint is FP8 (",
         block_wise ? "quant_method \"fp8\"" : "compressed-tensors",
         "); remove quantization_config to run these weights as they are (model_config.quantization = \"fp8\" "
         "quantizes them while loading)");
  }
}

// Static KV-cache scales (compressed-tensors' kv_cache_scheme): each attention layer's k_scale and
// v_scale beside its projections (`<attention>.k_scale`, as llm-compressor writes them now) or on
// the k / v projections (`k_proj.output_scale`, its older layout); one value each, finite and > 0.
void attach_kv_scales(weight_plan& plan, const arch_description& arch, const model_shape& shape,
                      const io::checkpoint& ckpt, std::set<std::string, std::less<>>& used) {
  const weight_names& n = *arch.names;
  const std::string_view o = n.o;
  const std::string attention(o.substr(0, o.rfind('.')));
  plan.kv_scales.resize(std::size_t(shape.layers));
  for (std::int64_t L = 0; L < shape.layers; ++L) {
    const std::string prefix = std::string(n.layer) + std::to_string(L) + ".";
    auto find = [&](const char* which, std::string_view projection) -> const io::tensor_view* {
      std::vector<std::string> names{prefix + attention + "." + which + "_scale"};
      if (!projection.empty()) names.push_back(prefix + std::string(projection) + ".output_scale");
      for (const auto& name : names)
        if (const auto* t = ckpt.find(name)) {
          if (t->numel() != 1) fail(where(*t), " has shape ", t->shape_string(), "; a KV-cache scale is one value");
          if (t->type == dtype::f8_e4m3) fail(where(*t), " is F8_E4M3; scales must be F32, BF16 or F16");
          const float v = kv_scale_value(*t);
          if (!(v > 0.0f) || !std::isfinite(v))
            fail(where(*t), " is ", v, "; a KV-cache scale must be a finite number > 0");
          used.insert(t->name);
          return t;
        }
      std::string tried;
      for (const auto& name : names) tried += (tried.empty() ? "'" : " or '") + name + "'";
      fail(ckpt.root().string(), ": config.json's quantization_config.kv_cache_scheme says the checkpoint has static KV-cache scales, but layer ",
           L, " has no tensor ", tried);
    };
    plan.kv_scales[std::size_t(L)] = {find("k", n.k), find("v", n.v)};
  }
}

}  // namespace

float kv_scale_value(const io::tensor_view& t) {
  float v = 0;
  io::convert(t, dtype::f32, &v, 0, 1);
  return v;
}

weight_quantization parse_quantization(std::string_view name) {
  if (name.empty() || name == "none") return weight_quantization::none;
  if (name == "fp8") return weight_quantization::fp8;
  fail("model_config.quantization must be \"fp8\" or empty (no quantization), got \"", name, "\"");
}

weight_plan plan_weights(const arch_description& arch, const model_shape& shape, const io::checkpoint& ckpt,
                         weight_quantization quantization, const io::checkpoint_quantization& checkpoint_quantization) {
  std::set<std::string, std::less<>> used;
  weight_plan plan = planner{arch, *arch.names, shape, ckpt, used}.plan();
  if (!ckpt.is_synthetic()) {
    attach_fp8_scales(plan, ckpt, checkpoint_quantization, used);
    if (checkpoint_quantization.kv_cache_scales) attach_kv_scales(plan, arch, shape, ckpt, used);
    refuse_unused_tensors(arch, shape, ckpt, used);
  }
  if (quantization == weight_quantization::fp8) {
    for (auto& layer : plan.layers)
      for (std::size_t s = 0; s < layer.size(); ++s)
        if (auto& e = layer[s]; fp8_linear_slot(layer_slot(s)) && e.present() && !e.vector) e.fp8 = true;
    for (auto* group : {&plan.expert_up, &plan.expert_down})
      for (auto& l : *group)
        for (auto& e : l) e.fp8 = true;
  }
  return plan;
}

std::size_t weight_plan::total_bytes(dtype as) const {
  std::size_t n = 0;
  auto add = [&](const plan_entry& e) {
    n += e.fp8 ? std::size_t(e.numel()) + std::size_t(e.fp8_scale_count()) * sizeof(float)
               : std::size_t(e.numel()) * dtype_size(as);
  };
  for (const auto& e : globals) add(e);
  for (const auto& l : layers)
    for (const auto& e : l) add(e);
  for (const auto& l : expert_up)
    for (const auto& e : l) add(e);
  for (const auto& l : expert_down)
    for (const auto& e : l) add(e);
  return n;
}

bool plan_entry::synthetic() const {
  return !runs.empty() && runs.front().tensor->synthetic();
}

std::uint64_t plan_entry::synthetic_key() const { return 0x9E3779B97F4A7C15ull * (std::hash<std::string>{}(what) | 1); }

float plan_entry::synthetic_constant() const { return what.find("bias") != std::string::npos ? 0.0f : 1.0f; }

float plan_entry::synthetic_value(std::int64_t i) const {
  // Norm weights 1, biases 0, matrices uniform in [-0.02, 0.02): finite activations at any depth.
  // kernels/synthetic.cu computes the same values on the device.
  if (vector) return synthetic_constant();
  std::uint64_t z = std::uint64_t(i) + synthetic_key();
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;  // splitmix64 finalizer
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (float(z >> 40) * (1.0f / 16777216.0f) - 0.5f) * 0.04f;
}

void materialize_fp8(const plan_entry& e, std::uint8_t* data, float* scale) {
  materialize_fp8_scales(e, scale);
  materialize(e, dtype::f8_e4m3, data);
}

void materialize_fp8_scales(const plan_entry& e, float* scale, std::int64_t scale_ld) {
  if (!e.prequantized()) fail("internal: ", e.what, " is not a pre-quantized FP8 entry");
  if (e.fp8_blocks.per_row()) {
    if (scale_ld > 1) fail("internal: ", e.what, " has one scale per row; scale_ld must be 1, got ", scale_ld);
    std::int64_t written = 0;
    for (const row_run& s : e.scale_runs) {
      if (s.tensor->numel() == 1) {
        float v = 0;
        io::convert(*s.tensor, dtype::f32, &v, 0, 1);
        std::fill(scale + written, scale + written + s.count, v);
      } else {
        io::convert(*s.tensor, dtype::f32, scale + written, s.row, s.count);
      }
      written += s.count;
    }
    return;
  }
  // Block-wise: scale row i covers canonical rows from i * fp8_blocks.rows, which lie in one
  // block of one source tensor (settle_blocks); its groups are the entry's columns' blocks.
  const backend::fp8_blocks to = e.fp8_blocks, from = e.checkpoint_blocks;
  const std::int64_t groups = to.groups(e.cols), ld = scale_ld > 0 ? scale_ld : groups;
  if (ld < groups) fail("internal: scale_ld ", ld, " < ", groups, " groups of ", e.what);
  const std::int64_t first_group = e.col_begin / from.cols, rows = to.scale_rows(e.rows);
  std::fill(scale, scale + rows * ld, 0.0f);
  std::size_t run = 0;
  std::int64_t at = 0;  // canonical row of scale_runs[run]'s first row
  for (std::int64_t i = 0; i < rows; ++i) {
    const std::int64_t c = i * to.rows;
    while (c >= at + e.scale_runs[run].count) at += e.scale_runs[run++].count;
    const row_run& s = e.scale_runs[run];
    const std::int64_t source_block_row = (s.row + (c - at)) / from.rows;
    io::convert(*s.tensor, dtype::f32, scale + i * ld, source_block_row * s.tensor->shape[1] + first_group, groups);
  }
}

float static_input_scale(const plan_entry& e) {
  if (e.input_scales.empty()) fail("internal: ", e.what, " has no static input scale");
  float m = 0;
  for (const auto* t : e.input_scales) m = std::max(m, static_input_scale_value(*t));
  return m;
}

void materialize(const plan_entry& e, dtype to, void* out) {
  auto* dst = static_cast<std::byte*>(out);
  if (e.synthetic()) {
    std::vector<float> tmp(static_cast<std::size_t>(e.numel()));
    for (std::int64_t i = 0; i < e.numel(); ++i) tmp[std::size_t(i)] = e.synthetic_value(i);
    io::convert(tmp.data(), dtype::f32, to, out, e.numel());
    return;
  }
  const std::size_t esize = dtype_size(to);
  std::int64_t written = 0;
  for (const row_run& r : e.runs) {
    const io::tensor_view& t = *r.tensor;
    const std::int64_t src_cols = e.vector ? 1 : t.shape.back();
    if (e.vector) {
      io::convert(t, to, dst + std::size_t(written) * esize, r.row, r.count);
      written += r.count;
      continue;
    }
    if (e.col_begin == 0 && e.cols == src_cols) {  // whole rows: one contiguous conversion
      io::convert(t, to, dst + std::size_t(written * e.cols) * esize, r.row * src_cols, r.count * src_cols);
    } else {
      for (std::int64_t i = 0; i < r.count; ++i)
        io::convert(t, to, dst + std::size_t((written + i) * e.cols) * esize, (r.row + i) * src_cols + e.col_begin, e.cols);
    }
    written += r.count;
  }
  if (written != e.rows) fail("internal: plan for ", e.what, " has ", written, " rows, expected ", e.rows);
}

}  // namespace mii::model

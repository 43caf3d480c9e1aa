// The model's cost per token, for mii-bench's floors: weight bytes a decode step reads, matmul
// multiply-adds per token, KV bytes per cached token, attention FLOPs per (query, key) pair; and
// the floors made of them (decode step, offline throughput, the throughput grid's request plan).
// Header-only so that tests/model/bench_cost_test.cpp checks the counts without the benchmark;
// bench/results_md.py recomputes throughput_floor() from the JSON (tests/bench checks both agree).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include <mii/config.hpp>
#include <mii/layers/policies.hpp>
#include <mii/model/model_shape.hpp>

namespace mii::bench {

struct cost_model {
  double weight_bytes = 0;     // every weight on the device (memory_report::weight_bytes)
  // What a step does not read of those: lookup tables (the token embedding when lm_head is a
  // matrix of its own, learned positions) are read one row per token, and an MoE layer reads only
  // the experts its tokens are routed to.
  double table_bytes = 0;      // the lookup tables, whole
  double table_row_bytes = 0;  // their rows one token reads
  double expert_bytes = 0;     // one routed expert of one layer (gate, up, down)
  std::int64_t sparse_layers = 0, experts = 0, top_k = 0;
  double matmul_params = 0;    // multiply-adds per token through the layers (no embedding lookup)
  double fp8_matmul_params = 0;  // of those, the FP8 linear layers' (their FLOPs at the e4m3 GEMM rate)
  double head_params = 0;      // lm_head multiply-adds per sampled row
  double kv_bytes_per_token = 0;
  double attn_flops_per_pair = 0;  // q·k and p·v FLOPs per (query, key) pair, all layers and heads

  // Distinct experts a layer runs for `batch` tokens, each routed to top_k of `experts`: with
  // uniform routing an expert is missed by one token with probability 1 - k/E, by all of them with
  // (1 - k/E)^B, so E·(1 − (1 − k/E)^B) are touched (k at B = 1, → E as B grows). Real routers are
  // not uniform; skewed routing touches fewer, so this floor is a little high for large batches.
  double experts_touched(double batch) const {
    if (experts <= 0) return 0;
    const double E = double(experts), k = double(std::min(top_k, experts));
    return E * (1.0 - std::pow(1.0 - k / E, std::max(batch, 1.0)));
  }
  // Weight bytes one decode step of `batch` tokens reads: everything, less the lookup tables but
  // their rows, less the experts no token of the step is routed to.
  double step_weight_bytes(double batch) const {
    const double b = std::max(batch, 1.0);
    return weight_bytes - table_bytes + b * table_row_bytes -
           double(sparse_layers) * (double(experts) - experts_touched(b)) * expert_bytes;
  }
};

// Hidden x ffn matrices per MLP: gated MLPs (Llama, Mistral, Qwen2, Phi-3) have gate, up and
// down; plain ones (OPT, Falcon, Phi-2) fc1 and fc2; an MoE token runs top_k gated experts.
// (Until issue 17 every dense MLP was counted as three matrices, overstating OPT, Falcon and
// Phi-2's FLOPs by half of their MLP.)
inline double mlp_matrices(layers::mlp_kind mlp, std::int64_t top_k) {
  switch (mlp) {
    case layers::mlp_kind::gated: return 3.0;
    case layers::mlp_kind::plain: return 2.0;
    case layers::mlp_kind::moe: return double(top_k) * 3.0;
  }
  return 0.0;
}

// `mlp`: the architecture's MLP kind (arch_description::mlp); `elem`: bytes per weight and KV
// element (the compute dtype's); `kv_fp8`: the KV cache holds e4m3 bytes and a 4-byte scale per
// vector (backend/kv_fp8.hpp); `fp8_linears`: the linear layers run in FP8 (attention, dense
// MLPs, MoE experts and shared experts; one byte per weight and a 4-byte scale per output row).
// Counts are for the whole model (one rank, no tensor parallelism).
inline cost_model cost_of(const model::model_shape& s, layers::mlp_kind mlp, const memory_report& m, std::size_t elem,
                          bool kv_fp8 = false, bool fp8_linears = false) {
  cost_model c;
  c.weight_bytes = double(m.weight_bytes);
  const double H = double(s.hidden), F = double(s.ffn), e = double(elem);
  const double qkv = H * double((s.heads + 2 * s.kv_heads) * s.head_dim), o = double(s.heads * s.head_dim) * H;
  const bool moe = mlp == layers::mlp_kind::moe;
  const double expert_ffn = double(s.expert_ffn > 0 ? s.expert_ffn : s.ffn);
  for (std::int64_t L = 0; L < s.layers; ++L) {
    // A hand-made MoE shape without sparse_mlp routes every layer.
    const bool sparse = moe && (s.sparse_mlp.empty() || s.sparse(L));
    c.matmul_params += qkv + o;
    if (fp8_linears) c.fp8_matmul_params += qkv + o;
    if (sparse) {
      const double routed = double(s.top_k) * 3.0 * H * expert_ffn + 3.0 * H * double(s.shared_ffn);
      c.matmul_params += routed;
      if (fp8_linears) c.fp8_matmul_params += routed;
      ++c.sparse_layers;
    } else {
      const double dense = mlp_matrices(moe ? layers::mlp_kind::gated : mlp, s.top_k) * H * F;
      c.matmul_params += dense;
      if (fp8_linears) c.fp8_matmul_params += dense;
    }
  }
  if (moe) {
    c.experts = s.experts;
    c.top_k = s.top_k;
    c.expert_bytes = fp8_linears ? 3.0 * H * expert_ffn + 4.0 * (2.0 * expert_ffn + H) : 3.0 * H * expert_ffn * e;
  }
  c.head_params = double(s.vocab) * double(s.embed_dim);
  if (!s.tied_embeddings) {  // tied: the table is the lm_head, read whole for the sampled rows
    c.table_bytes += double(s.vocab) * double(s.embed_dim) * e;
    c.table_row_bytes += double(s.embed_dim) * e;
  }
  if (s.learned_positions) {
    c.table_bytes += double(s.max_positions + s.position_offset) * H * e;
    c.table_row_bytes += H * e;
  }
  c.kv_bytes_per_token = double(s.layers) * 2.0 * double(s.kv_heads) *
                         (kv_fp8 ? double(s.head_dim) + 4.0 : double(s.head_dim) * e);
  c.attn_flops_per_pair = double(s.layers) * double(s.heads) * 4.0 * double(s.head_dim);
  return c;
}

// The measured ceilings the floors are made of (mii-bench --roofline).
struct ceilings {
  double copy_bytes_per_s = 0, gemm_flops_per_s = 0;
  double fp8_flops_per_s = 0;  // the e4m3 GEMM rate (0: not measured; FP8 layers then count at the bf16 rate)
  bool known() const { return copy_bytes_per_s > 0 && gemm_flops_per_s > 0; }
};

// FLOPs of one prompt of `prompt` tokens: the layers for every token, causal attention over the
// prompt, lm_head for the one row that samples.
inline double prompt_flops(const cost_model& c, double prompt) {
  return prompt * 2.0 * c.matmul_params + 2.0 * c.head_params + c.attn_flops_per_pair * prompt * prompt / 2.0;
}

// Seconds of compute for `tokens` tokens through the layers' matmuls plus `other_flops` (lm_head,
// attention) at the GEMM rate, the FP8 linear layers' share at the e4m3 rate where it was measured.
inline double compute_s(const cost_model& c, const ceilings& m, double tokens, double other_flops) {
  const double fp8 = m.fp8_flops_per_s > 0 ? c.fp8_matmul_params : 0.0;
  const double s = (tokens * 2.0 * (c.matmul_params - fp8) + other_flops) / m.gemm_flops_per_s;
  return fp8 > 0 ? s + tokens * 2.0 * fp8 / m.fp8_flops_per_s : s;
}

// One prompt's compute (prompt_flops at the rates of compute_s).
inline double prompt_compute_s(const cost_model& c, const ceilings& m, double prompt) {
  return compute_s(c, m, prompt, 2.0 * c.head_params + c.attn_flops_per_pair * prompt * prompt / 2.0);
}

// One prompt's forward, alone (time to first token): the longer of its compute and the weight
// bytes its tokens read at the copy rate. A dense model's prompt of a few hundred tokens is
// compute-bound; an MoE's touches nearly every expert (Mixtral-8x7B at 512 tokens: 93 GB, 22 ms
// on an H200, against 16 ms of compute).
inline double prompt_floor_s(const cost_model& c, const ceilings& m, double prompt) {
  const double bytes = m.copy_bytes_per_s > 0 ? c.step_weight_bytes(prompt) / m.copy_bytes_per_s : 0.0;
  return std::max(m.gemm_flops_per_s > 0 ? prompt_compute_s(c, m, prompt) : 0.0, bytes);
}

// Batch-1 decode step at `context` cached tokens: the weights it reads and the KV it reads.
inline double decode_step_floor_s(const cost_model& c, const ceilings& m, double context) {
  return m.copy_bytes_per_s > 0 ? (c.step_weight_bytes(1) + c.kv_bytes_per_token * context) / m.copy_bytes_per_s : 0.0;
}

// Offline throughput of `requests` requests of (prompt, output) tokens, `concurrency` of them in
// flight: every prompt at the GEMM rate (FP8 linear layers' FLOPs at the e4m3 rate: compute_s),
// then the decode steps. The first output token comes from
// the prompt's forward, so each request decodes output - 1 more, B at a time: requests·(output-1)/B
// steps. A step of B tokens reads the weights it needs once (MoE: the experts its tokens touch)
// and each sequence's KV (on average prompt + output/2 tokens) at the copy rate, and computes B
// tokens' layers, lm_head and attention at the GEMM rate: it takes the longer of the two.
// Prompts and decode steps are counted one after the other, as the brief for issue 19 states the
// floor: an engine that hides prompt FLOPs under memory-bound decode steps (SplitFuse mixes them
// in one forward) can beat it by up to the prompt term.
struct throughput_floor_parts {
  double prefill_s = 0, decode_steps = 0, step_s = 0, total_s = 0;
  bool memory_bound = false;  // the decode step is bound by bytes, not FLOPs
};
inline throughput_floor_parts throughput_floor(const cost_model& c, const ceilings& m, double prompt, double output,
                                               double requests, double concurrency) {
  throughput_floor_parts f;
  if (!m.known() || requests <= 0) return f;
  const double B = std::max(1.0, std::min(concurrency, requests));
  const double ctx = prompt + output / 2.0;
  f.prefill_s = requests * prompt_compute_s(c, m, prompt);
  f.decode_steps = requests * std::max(output - 1.0, 0.0) / B;
  const double bytes_s = (c.step_weight_bytes(B) + B * ctx * c.kv_bytes_per_token) / m.copy_bytes_per_s;
  const double flops_s = compute_s(c, m, B, B * (2.0 * c.head_params + c.attn_flops_per_pair * ctx));
  f.step_s = std::max(bytes_s, flops_s);
  f.memory_bound = bytes_s >= flops_s;
  f.total_s = f.prefill_s + f.decode_steps * f.step_s;
  return f;
}

// The throughput grid's plan for one (prompt, output) cell: how many requests, how many in flight.
// In flight: as many as one forward may hold (max_ragged_sequence_count) and the KV cache holds at
// full length (kv_blocks / blocks per sequence; no preemption, as trtllm-bench's default
// guaranteed-no-evict scheduling). Requests: trtllm-bench's count for the cell (`reference`,
// thousands of short ones, fewer long ones), cut to whole waves of that concurrency whose floor
// fits `seconds`, at least one wave. When one wave's floor alone exceeds `seconds` (long outputs
// at high concurrency), the concurrency is lowered until one wave fits: the cell's wall time stays
// bounded, and the floor is computed for the concurrency used. Without ceilings: one wave.
struct grid_cell_plan {
  std::int64_t requests = 0, concurrency = 0;
  std::int64_t kv_sequences = 0;  // sequences of prompt + output tokens the KV cache holds at once
  std::string cap;                // what set the concurrency: "sequences", "kv" or "time"
};
inline grid_cell_plan plan_grid_cell(const cost_model& c, const ceilings& m, std::int64_t prompt, std::int64_t output,
                                     std::int64_t max_seqs, std::int64_t kv_blocks, std::int64_t block_size,
                                     std::int64_t reference, double seconds) {
  grid_cell_plan p;
  const std::int64_t per_seq = (prompt + output + block_size - 1) / std::max<std::int64_t>(block_size, 1);
  p.kv_sequences = per_seq > 0 ? kv_blocks / per_seq : 0;
  p.concurrency = std::max<std::int64_t>(1, std::min(max_seqs, p.kv_sequences));
  p.cap = p.kv_sequences < max_seqs ? "kv" : "sequences";
  auto wave_s = [&](std::int64_t b) {
    return throughput_floor(c, m, double(prompt), double(output), double(b), double(b)).total_s;
  };
  if (!m.known() || seconds <= 0) {
    p.requests = p.concurrency;
    return p;
  }
  if (wave_s(p.concurrency) > seconds) {
    std::int64_t lo = 1, hi = p.concurrency;  // the largest concurrency whose wave fits
    while (lo < hi) {
      const std::int64_t mid = (lo + hi + 1) / 2;
      if (wave_s(mid) <= seconds) lo = mid;
      else hi = mid - 1;
    }
    p.concurrency = lo;
    p.cap = "time";
    p.requests = lo;
    return p;
  }
  const std::int64_t waves = std::max<std::int64_t>(
      1, std::min(std::int64_t(seconds / wave_s(p.concurrency)), reference / p.concurrency));
  p.requests = waves * p.concurrency;
  return p;
}

}  // namespace mii::bench

// The host backend: every op in plain fp32 C++ over a ragged batch with a blocked KV cache.
// It is the reference implementation (CI runs every model on it; GPU tests compare the CUDA
// kernels against it), so it is written for clarity: straightforward loops, one op per function,
// results per row independent of how rows are batched (the scheduler tests rely on that).
//
// The op set and its semantics are the backend contract; backend/cuda mirrors it with the
// compute dtype T = bf16 or fp16. Shapes are row-major [rows, cols]; a weight is [out, in].
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include <mii/backend/fp8.hpp>
#include <mii/backend/kv_fp8.hpp>
#include <mii/backend/moe_weights.hpp>
#include <mii/backend/step_batch.hpp>
#include <mii/dtype.hpp>
#include <mii/layers/policies.hpp>
#include <mii/model/weight_plan.hpp>
#include <mii/runtime/sampling.hpp>
#include <mii/runtime/step_builder.hpp>

namespace mii::backend {


struct host {
  using compute_t = float;
  static constexpr std::string_view name = "host";
  static constexpr dtype compute_dtype = dtype::f32;

  // Owns the worker threads ops split their rows over. One per engine (per rank).
  class context {
   public:
    explicit context(int threads = 0);  // 0: hardware concurrency
    ~context();
    context(const context&) = delete;
    context& operator=(const context&) = delete;
    int threads() const;
    // Calls fn(begin, end) over a partition of [0, n) and waits for all parts.
    void parallel_for(std::int64_t n, const std::function<void(std::int64_t, std::int64_t)>& fn);
    void synchronize() {}

   private:
    struct pool;
    std::unique_ptr<pool> pool_;
  };

  template <class T>
  using buffer = std::vector<T>;
  template <class T>
  static buffer<T> alloc(context&, std::int64_t n) { return buffer<T>(std::size_t(n)); }
  // Host "upload" of n elements already in `dtype` layout (weights are materialized as fp32).
  static buffer<float> upload(context&, const float* data, std::int64_t n) { return buffer<float>(data, data + n); }
  static void fill(context&, float* data, std::int64_t n, float value);
  template <class T>
  static void copy_to_device(context&, T* dst, const T* src, std::int64_t n) { std::copy(src, src + n, dst); }
  template <class T>
  static void copy_to_host(context&, T* dst, const T* src, std::int64_t n) { std::copy(src, src + n, dst); }

  // out[t] = table[token_ids[t] - vocab_begin] when the id is in this rank's slice, else 0.
  static void embed(context&, const step_batch&, const float* table, std::int64_t vocab_begin, std::int64_t local_vocab,
                    std::int64_t dim, float* out);
  // out[t] += table[positions[t] + offset]  (learned positions)
  static void add_positions(context&, const step_batch&, const float* table, int offset, std::int64_t dim, float* out);

  // residual += delta (when delta is not null); out = norm(residual) * w (+ bias). out may alias residual.
  template <layers::norm_kind K>
  static void add_norm(context&, float* residual, const float* delta, const float* w, const float* bias, float eps,
                       std::int64_t rows, std::int64_t cols, float* out);

  // x[i] *= factor rounded to the compute dtype (Gemma's embedding normalizer: transformers
  // multiplies by a tensor of the activations' dtype).
  static void scale(context&, float* x, std::int64_t n, float factor);
  // Soft-capping of fp32 logits: x[i] = cap * tanh(x[i] / cap).
  static void softcap(context&, float* x, std::int64_t n, float cap);

  // Per-head RMSNorm of q and k (layers::qk_norm), in place in qkv[rows][q heads | k heads | v
  // heads] (as.heads q heads, then as.kv_heads k heads, head_dim each): every head vector becomes
  // x * rsqrt(mean(x^2) + eps) * (weight_offset + w), with q_w for q heads and k_w for k heads.
  // v is untouched.
  static void head_rms_norm(context&, float* qkv, std::int64_t rows, const attention_shape& as, const float* q_w,
                            const float* k_w, float eps, float weight_offset);

  // y[rows, out] = x[rows, in] * w[out, in]^T (+ bias[out]) (+ y when accumulate).
  static void linear(context&, const float* x, std::int64_t rows, std::int64_t in, const float* w, std::int64_t out,
                     const float* bias, float* y, bool accumulate = false);
  // FP8 (backend/fp8.hpp): x's rows quantized to e4m3 with a scale each (into `scratch`, which
  // holds rows * in bytes and rows scales), then y = (xq wq^T) * xs * ws (+ bias) (+ y).
  static void linear_fp8(context&, const float* x, std::int64_t rows, std::int64_t in, fp8_weight w, std::int64_t out,
                         const float* bias, float* y, bool accumulate, fp8_scratch scratch);
  // The quantization step of linear_fp8 alone: out.data[r][i] = e4m3(x[r][i] / s_r), out.scale[r]
  // = s_r = fp8_scale(max_i |x[r][i]|).
  static void quantize_fp8(context&, const float* x, std::int64_t rows, std::int64_t cols, fp8_scratch out);
  // Same, with fp32 output whatever the compute dtype (logits).
  static void linear_f32(context& c, const float* x, std::int64_t rows, std::int64_t in, const float* w,
                         std::int64_t out, const float* bias, float* y) {
    linear(c, x, rows, in, w, out, bias, y, false);
  }

  // Rotates the q and k heads of qkv[n_tokens][q | k | v] in place (first rot_dim dims of each
  // head, pattern S, angle = position * inv_freq, cos/sin times the row's scale), then stores k
  // and v of every token into the cache at its position.
  template <layers::rotary_style S>
  static void rope_store_kv(context&, const step_batch&, float* qkv, const attention_shape&, const rope_table&,
                            kv_layer<float> cache);

  // out[t][heads * head_dim] = softmax(cap(q k^T * scale)) v over the keys token t may see (causal,
  // optional window), read from the cache through the block tables; cap(s) = softcap * tanh(s /
  // softcap) when attention_shape::softcap > 0, else s.
  static void attention(context&, const step_batch&, const float* qkv, const attention_shape&,
                        kv_layer<const float> cache, float* out);

  // The same two ops over an FP8 KV cache (backend/kv_fp8.hpp): rope_store_kv quantizes each
  // token's k and v per kv head (scale fp8_scale(max |x|), bytes to_e4m3(x / scale)); attention
  // reads them back as byte value times scale and is otherwise the op above.
  template <layers::rotary_style S>
  static void rope_store_kv(context&, const step_batch&, float* qkv, const attention_shape&, const rope_table&,
                            fp8_kv_layer<std::uint8_t> cache);
  static void attention(context&, const step_batch&, const float* qkv, const attention_shape&,
                        fp8_kv_layer<const std::uint8_t> cache, float* out);

  // out[r][i] = act(gate_up[r][i]) * gate_up[r][f + i]
  template <layers::activation A>
  static void gated_act(context&, const float* gate_up, std::int64_t rows, std::int64_t f, float* out);
  template <layers::activation A>
  static void act(context&, float* x, std::int64_t rows, std::int64_t cols);

  static void gather_rows(context&, const float* x, std::int64_t cols, const std::int32_t* rows, std::int32_t n,
                          float* out);
  // x[i] += d[i]
  static void add(context&, float* x, const float* d, std::int64_t n);
  // Copies `height` rows of `width` elements between pitched layouts (logits shards -> full rows).
  static void copy_2d(context&, float* dst, std::int64_t dst_pitch, const float* src, std::int64_t src_pitch,
                      std::int64_t width, std::int64_t height);
  // Copies whole KV blocks (keys and values of every layer, and an FP8 cache's scales) in list
  // order, as if one after the other: `kv` is the cache, [layers][blocks_per_layer][block_bytes].
  static void copy_kv_blocks(context&, std::uint8_t* kv, std::int64_t layers, std::int64_t blocks_per_layer,
                             std::int64_t block_bytes, std::span<const block_copy> copies);
  // The step's metadata where ops can read it (host: the builder's own memory).
  static step_batch upload_step(context&, const runtime::step_builder& s) { return s.bind(s.data().data()); }
  // Samples one id per logits row (runtime::sample_row per row) into host memory.
  static void sample(context&, const float* logits, std::int32_t rows, std::int64_t vocab,
                     std::span<const runtime::sample_params> params, std::span<const std::int32_t> eos_ids,
                     std::int32_t* out);
  // Log-probability inputs of the listed rows, from the logits as they are: log(sum(exp(x))) and
  // the top_n largest logits with their ids (descending, lower id first on ties). Host memory out:
  // lse[rows.size()], top_ids / top_logits[rows.size() * top_n].
  static void summarize_rows(context&, const float* logits, std::int64_t vocab, std::span<const std::int32_t> rows,
                             std::int32_t top_n, float* lse, std::int32_t* top_ids, float* top_logits);
  // Applies the edits in place (runtime::apply_edit); `replaced` (host, edits.size(), or null)
  // receives each logit as it was. At most one edit per (row, token).
  static void edit_logits(context&, float* logits, std::int64_t vocab, std::span<const runtime::logit_edit> edits,
                          float* replaced);
  // out[i] = logits[rows[i] * vocab + tokens[i]], into host memory.
  static void gather_logits(context&, const float* logits, std::int64_t vocab, std::span<const std::int32_t> rows,
                            std::span<const std::int32_t> tokens, float* out);
  // Bytes the KV cache may take: memory_fraction of 1 GiB on the host (override with
  // model_config.kv_cache_blocks).
  static std::size_t kv_budget_bytes(context&, double memory_fraction) { return std::size_t(memory_fraction * double(1u << 30)); }
  // Weights: materializes a plan entry (checkpoint rows, columns, dtype conversion) into memory.
  static buffer<float> load(context&, const model::plan_entry& e);
  // An FP8 entry (plan_entry::fp8): its values as fp32, quantized row by row as quantize_fp8 does.
  using fp8_buffers = fp8_weight_buffers<buffer>;
  static fp8_buffers load_fp8(context&, const model::plan_entry& e);

  // Mixture of experts (backend/moe_weights.hpp): router logits -> softmax (fp32) -> top-k ->
  // weights (renormalised over the k chosen when w.renormalise); out[r] = sum_k w_k *
  // down_e(act(gate_e x) * up_e x), plus the shared expert, scaled by sigmoid(x . shared_gate).
  template <layers::activation A>
  static void moe(context&, const float* x, std::int64_t rows, std::int64_t hidden, const moe_weights<float>& w,
                  float* out);
};

}  // namespace mii::backend

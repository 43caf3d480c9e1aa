// transformer<Arch, Backend>: the forward pass every architecture shares, specialised at compile
// time by the architecture's policies (norm kind, rotary style, MLP kind, activation) and by the
// backend (host fp32, CUDA bf16/fp16). Run-time values come from model_shape.
//
// One call to forward() runs one step over a ragged batch: embeddings, N blocks (attention reads
// and writes the blocked KV cache), final norm and lm_head for the sampled rows only. Under
// tensor parallelism each rank holds its slice (model_shape) and the communicator all-reduces
// the row-parallel outputs and gathers the vocab-parallel logits.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include <mii/backend/fp8.hpp>
#include <mii/backend/kv_fp8.hpp>
#include <mii/backend/moe_weights.hpp>
#include <mii/backend/step_batch.hpp>
#include <mii/error.hpp>
#include <mii/model/architecture.hpp>
#include <mii/model/model_shape.hpp>
#include <mii/model/weight_plan.hpp>

namespace mii::model {

// The whole KV cache as forward() sees it: `blocks` blocks of `block_size` tokens per layer,
// [layers][blocks][block bytes], values in the compute dtype or FP8 (backend/kv_fp8.hpp).
struct kv_cache_ref {
  std::uint8_t* data = nullptr;
  std::int32_t blocks = 0;
  std::int32_t block_size = 0;
  backend::kv_cache_dtype dtype = backend::kv_cache_dtype::compute;
};

// Called once per loaded tensor: (done, total) for progress reporting.
using load_progress = void (*)(std::size_t done, std::size_t total, void* user);

template <class Arch, class Backend>
class transformer {
 public:
  using T = typename Backend::compute_t;
  using traits = typename Arch::traits;
  using context = typename Backend::context;
  template <class U>
  using buffer = typename Backend::template buffer<U>;

  // Uploads the planned weights and sizes the activations for up to `max_tokens` tokens and
  // `max_sample` sampled rows per step.
  transformer(context& ctx, model_shape shape, const weight_plan& plan, std::int64_t max_tokens, std::int64_t max_sample,
              load_progress progress = nullptr, void* progress_user = nullptr)
      : shape_(std::move(shape)), max_tokens_(max_tokens), max_sample_(max_sample) {
    load_weights(ctx, plan, progress, progress_user);
    for (const auto& s : plan.kv_scales) kv_scales_.push_back({kv_scale_value(*s.k), kv_scale_value(*s.v)});
    allocate(ctx);
    upload_rope(ctx);
  }

  const model_shape& shape() const { return shape_; }
  std::int64_t max_tokens() const { return max_tokens_; }
  std::int64_t max_sample() const { return max_sample_; }

  // Bytes of one layer's KV cache per block (keys and values, and an FP8 cache's scales).
  std::int64_t kv_block_bytes(std::int32_t block_size, backend::kv_cache_dtype d) const {
    return backend::kv_block_bytes(d, std::int32_t(shape_.local_kv_heads), block_size, std::int32_t(shape_.head_dim),
                                   std::int64_t(sizeof(T)));
  }

  // One step over the cache `kv`; `logits` receives [n_sample, vocab] fp32 (the full vocabulary,
  // on every rank).
  template <class Comm>
  void forward(context& ctx, Comm& comm, const backend::step_batch& b, kv_cache_ref kv, float* logits) {
    const std::int64_t n = b.n_tokens, H = shape_.hidden;
    if (n > max_tokens_ || b.n_sample > max_sample_)
      fail("internal: step of ", n, " tokens / ", b.n_sample, " samples exceeds the model's workspace (", max_tokens_,
           " / ", max_sample_, ")");
    const bool tp = comm.size() > 1;
    T* x = x_.data();

    // Embedding (vocab-parallel), optional projection, learned positions.
    if (shape_.project_in_out) {
      Backend::embed(ctx, b, g(global_slot::embed), shape_.vocab_begin, shape_.local_vocab, shape_.embed_dim, emb_.data());
      if (tp) comm.all_reduce_sum(ctx, emb_.data(), n * shape_.embed_dim);
      Backend::linear(ctx, emb_.data(), n, shape_.embed_dim, g(global_slot::project_in), H, nullptr, x);
    } else {
      Backend::embed(ctx, b, g(global_slot::embed), shape_.vocab_begin, shape_.local_vocab, H, x);
      if (tp) comm.all_reduce_sum(ctx, x, n * H);
    }
    if constexpr (traits::embedding::has_positions)
      Backend::add_positions(ctx, b, g(global_slot::positions), traits::embedding::position_offset, H, x);
    if constexpr (requires { traits::embedding::scale(H); })  // Gemma: x sqrt(hidden)
      Backend::scale(ctx, x, n * H, float(traits::embedding::scale(H)));

    const T* delta = nullptr;  // the previous sub-block's output, not yet added to x
    for (std::int64_t L = 0; L < shape_.layers; ++L) {
      const layer_kv cache{kv.data + L * kv.blocks * kv_block_bytes(kv.block_size, kv.dtype), kv.block_size,
                           std::int32_t(shape_.local_kv_heads), std::int32_t(shape_.head_dim), kv.dtype};
      T* a = a_.data();
      switch (shape_.wiring) {
        case layers::wiring::sequential:
          norm(ctx, L, layer_slot::attn_norm_w, x, delta, h_.data(), n);
          attention_block(ctx, b, L, h_.data(), cache, a);
          if (tp) comm.all_reduce_sum(ctx, a, n * H);
          norm(ctx, L, layer_slot::mlp_norm_w, x, a, h_.data(), n);
          mlp_block(ctx, L, h_.data(), n, m_.data(), false);
          if (tp) comm.all_reduce_sum(ctx, m_.data(), n * H);
          delta = m_.data();
          break;
        case layers::wiring::parallel_shared_norm:
        case layers::wiring::parallel_two_norms: {
          norm(ctx, L, layer_slot::attn_norm_w, x, delta, h_.data(), n);
          const T* mlp_in = h_.data();
          if (shape_.wiring == layers::wiring::parallel_two_norms) {
            norm(ctx, L, layer_slot::mlp_norm_w, x, nullptr, h2_.data(), n);
            mlp_in = h2_.data();
          }
          attention_block(ctx, b, L, h_.data(), cache, a);
          mlp_block(ctx, L, mlp_in, n, a, true);  // attention + MLP in one sum, one all-reduce
          if (tp) comm.all_reduce_sum(ctx, a, n * H);
          delta = a;  // consumed by the next norm() before anything writes a_ again
          break;
        }
        case layers::wiring::sandwich:  // wirings that carry their own forward (layers::sandwich_norms)
          if constexpr (requires(layer_view<Comm>& v) { traits::wiring::forward(v); }) {
            layer_view<Comm> v{*this, ctx, comm, b, L, cache, n, x, delta, h_.data(), a, m_.data()};
            traits::wiring::forward(v);
            delta = v.pending;
          }
          break;
        case layers::wiring::post_norm:
          attention_block(ctx, b, L, x, cache, a);
          if (tp) comm.all_reduce_sum(ctx, a, n * H);
          norm(ctx, L, layer_slot::attn_norm_w, x, a, x, n);
          mlp_block(ctx, L, x, n, m_.data(), false);
          if (tp) comm.all_reduce_sum(ctx, m_.data(), n * H);
          norm(ctx, L, layer_slot::mlp_norm_w, x, m_.data(), x, n);
          delta = nullptr;
          break;
      }
    }

    // Only the sampled rows go through the final norm and lm_head.
    const std::int64_t ns = b.n_sample;
    if (ns == 0) return;  // a step of prompt chunks that all continue next step
    Backend::gather_rows(ctx, x, H, b.sample_rows, b.n_sample, gx_.data());
    if (delta) Backend::gather_rows(ctx, delta, H, b.sample_rows, b.n_sample, gd_.data());
    T* final_rows = gx_.data();
    if (shape_.final_norm) {
      Backend::template add_norm<traits::norm_kind>(ctx, gx_.data(), delta ? gd_.data() : nullptr,
                                                    g(global_slot::final_norm_w), g(global_slot::final_norm_b),
                                                    shape_.eps, ns, H, gx_.data());
    } else if (delta) {
      Backend::add(ctx, gx_.data(), gd_.data(), ns * H);
    }
    if (shape_.project_in_out) {
      Backend::linear(ctx, gx_.data(), ns, H, g(global_slot::project_out), shape_.embed_dim, nullptr, gp_.data());
      final_rows = gp_.data();
    }
    const T* head = has(global_slot::lm_head_w) ? g(global_slot::lm_head_w) : g(global_slot::embed);
    float* local_logits = tp ? shard_logits_.data() : logits;
    Backend::linear_f32(ctx, final_rows, ns, shape_.embed_dim, head, shape_.local_vocab, g(global_slot::lm_head_b),
                        local_logits);
    if (shape_.final_softcap > 0)  // Gemma 2: element-wise, so each rank caps its own shard
      Backend::softcap(ctx, local_logits, ns * shape_.local_vocab, shape_.final_softcap);
    if (tp) {
      // [tp][ns][local_vocab] -> [ns][vocab]
      comm.all_gather(ctx, shard_logits_.data(), ns * shape_.local_vocab, gathered_logits_.data());
      for (int r = 0; r < comm.size(); ++r)
        Backend::copy_2d(ctx, logits + r * shape_.local_vocab, shape_.vocab,
                         gathered_logits_.data() + r * ns * shape_.local_vocab, shape_.local_vocab, shape_.local_vocab, ns);
    }
  }


 private:
  // Layer L's slice of the KV cache, either dtype.
  struct layer_kv {
    std::uint8_t* data;
    std::int32_t block_size, kv_heads, head_dim;
    backend::kv_cache_dtype dtype;
  };

  const T* g(global_slot s) const {
    const auto& b = globals_[std::size_t(s)];
    return b.empty() ? nullptr : b.data();
  }
  bool has(global_slot s) const { return !globals_[std::size_t(s)].empty(); }
  const T* lw(std::int64_t L, layer_slot s) const {
    const auto& b = layers_[std::size_t(L)].w[std::size_t(s)];
    return b.empty() ? nullptr : b.data();
  }

  // y[n, out_dim] = in[n, in_dim] * W^T (+ bias) (+ y) with layer L's weight in `slot`: the FP8
  // path when the plan quantized it (plan_entry::fp8), else the compute dtype's GEMM.
  void linear(context& ctx, std::int64_t L, layer_slot slot, const T* in, std::int64_t n, std::int64_t in_dim,
              std::int64_t out_dim, const T* bias, T* y, bool accumulate = false) {
    const auto& q = layers_[std::size_t(L)].q[std::size_t(slot)];
    if (!q.empty())
      Backend::linear_fp8(ctx, in, n, in_dim, q.view(), out_dim, bias, y, accumulate,
                          backend::fp8_scratch{fp8_x_.data(), fp8_scale_.data()});
    else
      Backend::linear(ctx, in, n, in_dim, lw(L, slot), out_dim, bias, y, accumulate);
  }

  // What a wiring policy with its own forward (layers::sandwich_norms) sees of layer L: its norms
  // by role, attention and MLP with their all-reduces, the residual stream and scratch rows.
  template <class Comm>
  struct layer_view {
    transformer& t;
    context& ctx;
    Comm& comm;
    const backend::step_batch& b;
    std::int64_t L;
    layer_kv cache;
    std::int64_t n;
    T* x;              // residual stream
    const T* pending;  // a sub-block output not yet added to x (the next norm adds it)
    T *h, *a, *m;      // scratch rows [n, hidden]

    void norm(layers::block_norm which, T* residual, const T* delta, T* out) {
      constexpr layer_slot slots[] = {layer_slot::attn_norm_w, layer_slot::mlp_norm_w, layer_slot::post_attn_norm_w,
                                      layer_slot::post_mlp_norm_w};
      t.norm(ctx, L, slots[std::size_t(which)], residual, delta, out, n);
    }
    void attention(const T* in, T* out) {
      t.attention_block(ctx, b, L, in, cache, out);
      if (comm.size() > 1) comm.all_reduce_sum(ctx, out, n * t.shape_.hidden);
    }
    void mlp(const T* in, T* out) {
      t.mlp_block(ctx, L, in, n, out, false);
      if (comm.size() > 1) comm.all_reduce_sum(ctx, out, n * t.shape_.hidden);
    }
  };

  // residual += delta; out = norm_L(residual). The bias slot follows the weight slot.
  void norm(context& ctx, std::int64_t L, layer_slot weight, T* residual, const T* delta, T* out, std::int64_t n) {
    Backend::template add_norm<traits::norm_kind>(ctx, residual, delta, lw(L, weight),
                                                  lw(L, layer_slot(std::size_t(weight) + 1)), shape_.eps, n,
                                                  shape_.hidden, out);
  }

  void attention_block(context& ctx, const backend::step_batch& b, std::int64_t L, const T* in, layer_kv cache,
                       T* out) {
    const std::int64_t n = b.n_tokens;
    linear(ctx, L, layer_slot::qkv_w, in, n, shape_.hidden, shape_.qkv_dim(), lw(L, layer_slot::qkv_b), qkv_.data());
    const layer_attributes la = shape_.layer(L);  // window, rope and soft-cap of this layer
    const backend::attention_shape as{std::int32_t(shape_.local_heads), std::int32_t(shape_.local_kv_heads),
                                      std::int32_t(shape_.head_dim), shape_.attention_scale(),
                                      std::int32_t(la.window), la.attn_softcap};
    const backend::rope_table& rope = la.rope > 0 ? layer_rope_views_[std::size_t(la.rope - 1)] : rope_view_;
    if constexpr (traits::qk_norm::enabled)  // per-head RMSNorm of q and k, before rope (Qwen3)
      Backend::head_rms_norm(ctx, qkv_.data(), n, as, lw(L, layer_slot::q_norm_w), lw(L, layer_slot::k_norm_w),
                             shape_.eps, shape_.qk_norm_offset);
    if (cache.dtype == backend::kv_cache_dtype::fp8_e4m3) {
      backend::fp8_kv_layer<std::uint8_t> store{cache.data, cache.block_size, cache.kv_heads, cache.head_dim};
      if (!kv_scales_.empty()) {  // the checkpoint's static scales (kv_cache_scheme)
        store.k_scale = kv_scales_[std::size_t(L)].first;
        store.v_scale = kv_scales_[std::size_t(L)].second;
      }
      Backend::template rope_store_kv<traits::rotary_style>(ctx, b, qkv_.data(), as, rope, store);
      Backend::attention(
          ctx, b, qkv_.data(), as,
          backend::fp8_kv_layer<const std::uint8_t>{cache.data, cache.block_size, cache.kv_heads, cache.head_dim},
          att_.data());
    } else {
      T* const values = reinterpret_cast<T*>(cache.data);  // the runner's allocation, aligned for T
      Backend::template rope_store_kv<traits::rotary_style>(
          ctx, b, qkv_.data(), as, rope, backend::kv_layer<T>{values, cache.block_size, cache.kv_heads, cache.head_dim});
      Backend::attention(ctx, b, qkv_.data(), as,
                         backend::kv_layer<const T>{values, cache.block_size, cache.kv_heads, cache.head_dim},
                         att_.data());
    }
    linear(ctx, L, layer_slot::o_w, att_.data(), n, shape_.q_dim(), shape_.hidden, lw(L, layer_slot::o_b), out);
  }

  void mlp_block(context& ctx, std::int64_t L, const T* in, std::int64_t n, T* out, bool accumulate) {
    if constexpr (traits::mlp_kind == layers::mlp_kind::moe) {
      if (shape_.sparse(L)) return moe_block(ctx, L, in, n, out, accumulate);
      dense_mlp<traits::mlp::expert::kind>(ctx, L, in, n, out, accumulate);  // Qwen MoE's dense layers
    } else {
      dense_mlp<traits::mlp_kind>(ctx, L, in, n, out, accumulate);
    }
  }

  template <layers::mlp_kind K>
  void dense_mlp(context& ctx, std::int64_t L, const T* in, std::int64_t n, T* out, bool accumulate) {
    const std::int64_t H = shape_.hidden, F = shape_.local_ffn;
    constexpr auto A = traits::activation;
    if constexpr (K == layers::mlp_kind::gated) {
      linear(ctx, L, layer_slot::up_w, in, n, H, 2 * F, nullptr, gu_.data());
      Backend::template gated_act<A>(ctx, gu_.data(), n, F, inner_.data());
      linear(ctx, L, layer_slot::down_w, inner_.data(), n, F, H, lw(L, layer_slot::down_b), out, accumulate);
    } else {
      static_assert(K == layers::mlp_kind::plain, "an MoE architecture's dense layers are of its experts' kind");
      linear(ctx, L, layer_slot::up_w, in, n, H, F, lw(L, layer_slot::up_b), inner_.data());
      Backend::template act<A>(ctx, inner_.data(), n, F);
      linear(ctx, L, layer_slot::down_w, inner_.data(), n, F, H, lw(L, layer_slot::down_b), out, accumulate);
    }
  }

  void moe_block(context& ctx, std::int64_t L, const T* in, std::int64_t n, T* out, bool accumulate) {
    T* dst = accumulate ? moe_out_.data() : out;
    Backend::template moe<traits::activation>(ctx, in, n, shape_.hidden, moe_weights_of(L), dst);
    if (accumulate) Backend::add(ctx, out, dst, n * shape_.hidden);
  }

 public:
  // The most token rows every MoE layer runs without waiting for the host (Backend::
  // moe_device_rows), 0 when some layer cannot: the largest decode batch a CUDA graph may hold.
  std::int64_t moe_device_rows(context& ctx) {
    std::int64_t rows = std::numeric_limits<std::int64_t>::max();
    for (std::int64_t L = 0; L < shape_.layers; ++L)
      if (shape_.sparse(L)) rows = std::min(rows, Backend::moe_device_rows(ctx, moe_weights_of(L), shape_.hidden));
    return rows;
  }

 private:
  backend::moe_weights<T> moe_weights_of(std::int64_t L) {
    const auto& lay = layers_[std::size_t(L)];
    backend::moe_weights<T> w;
    w.router = lw(L, layer_slot::router_w);
    w.experts = shape_.experts;
    w.top_k = shape_.top_k;
    w.renormalise = shape_.renormalise_topk;
    w.up = std::span<const T* const>(lay.expert_up_ptrs);
    w.down = std::span<const T* const>(lay.expert_down_ptrs);
    w.up_fp8 = std::span<const backend::fp8_weight>(lay.expert_up_fp8);
    w.down_fp8 = std::span<const backend::fp8_weight>(lay.expert_down_fp8);
    w.ffn = shape_.local_expert_ffn;
    if (shape_.shared_ffn) {
      w.shared_up = lw(L, layer_slot::shared_up_w);
      w.shared_down = lw(L, layer_slot::shared_down_w);
      if (const auto& q = lay.q[std::size_t(layer_slot::shared_up_w)]; !q.empty()) w.shared_up_fp8 = q.view();
      if (const auto& q = lay.q[std::size_t(layer_slot::shared_down_w)]; !q.empty()) w.shared_down_fp8 = q.view();
      w.shared_gate = lw(L, layer_slot::shared_gate_w);
      w.shared_ffn = shape_.local_shared_ffn;
    }
    if (quantized_) w.scratch = backend::fp8_scratch{fp8_x_.data(), fp8_scale_.data()};
    return w;
  }

  void load_weights(context& ctx, const weight_plan& plan, load_progress progress, void* user) {
    std::size_t total = 0, done = 0;
    auto count = [&](const plan_entry& e) { total += e.present() ? 1 : 0; };
    for (const auto& e : plan.globals) count(e);
    for (const auto& l : plan.layers)
      for (const auto& e : l) count(e);
    for (const auto& l : plan.expert_up) total += l.size();
    for (const auto& l : plan.expert_down) total += l.size();
    auto load = [&](const plan_entry& e) -> buffer<T> {
      if (!e.present()) return {};
      auto b = Backend::load(ctx, e);
      if (progress) progress(++done, total, user);
      return b;
    };
    auto load_fp8 = [&](const plan_entry& e) {
      auto b = Backend::load_fp8(ctx, e);
      if (progress) progress(++done, total, user);
      quantized_ = true;
      fp8_groups_ = std::max(fp8_groups_, e.fp8_blocks.groups(e.cols));
      return b;
    };
    for (std::size_t i = 0; i < plan.globals.size(); ++i) globals_[i] = load(plan.globals[i]);
    layers_.resize(plan.layers.size());
    for (std::size_t L = 0; L < plan.layers.size(); ++L) {
      auto& lay = layers_[L];
      for (std::size_t s = 0; s < plan.layers[L].size(); ++s) {
        const plan_entry& e = plan.layers[L][s];
        if (e.present() && e.fp8) lay.q[s] = load_fp8(e);
        else lay.w[s] = load(e);
      }
      // Experts: each in the compute dtype or FP8 (the other vector holds an empty entry).
      auto load_experts = [&](const std::vector<plan_entry>& entries, std::vector<buffer<T>>& plain,
                              std::vector<typename Backend::fp8_buffers>& fp8, std::vector<const T*>& ptrs,
                              std::vector<backend::fp8_weight>& views) {
        for (const auto& e : entries) {
          plain.push_back(e.fp8 ? buffer<T>{} : load(e));
          fp8.push_back(e.fp8 ? load_fp8(e) : typename Backend::fp8_buffers{});
        }
        for (const auto& b : plain) ptrs.push_back(b.empty() ? nullptr : b.data());
        for (const auto& q : fp8) views.push_back(q.empty() ? backend::fp8_weight{} : q.view());
      };
      load_experts(plan.expert_up[L], lay.expert_up, lay.expert_up_q, lay.expert_up_ptrs, lay.expert_up_fp8);
      load_experts(plan.expert_down[L], lay.expert_down, lay.expert_down_q, lay.expert_down_ptrs, lay.expert_down_fp8);
    }
  }

  void allocate(context& ctx) {
    const std::int64_t n = max_tokens_, ns = max_sample_, H = shape_.hidden;
    auto make = [&](std::int64_t count) { return Backend::template alloc<T>(ctx, std::max<std::int64_t>(count, 1)); };
    x_ = make(n * H);
    h_ = make(n * H);
    h2_ = make(shape_.wiring == layers::wiring::parallel_two_norms ? n * H : 1);
    a_ = make(n * H);
    m_ = make(n * H);
    qkv_ = make(n * shape_.qkv_dim());
    att_ = make(n * shape_.q_dim());
    const bool gated_dense = traits::mlp_kind == layers::mlp_kind::gated ||
                             (traits::mlp_kind == layers::mlp_kind::moe && shape_.has_dense_mlp());
    gu_ = make(gated_dense ? n * 2 * shape_.local_ffn : 1);
    inner_ = make(traits::mlp_kind != layers::mlp_kind::moe || shape_.has_dense_mlp() ? n * shape_.local_ffn : 1);
    moe_out_ = make(traits::mlp_kind == layers::mlp_kind::moe ? n * H : 1);
    emb_ = make(shape_.project_in_out ? n * shape_.embed_dim : 1);
    gx_ = make(ns * H);
    gd_ = make(ns * H);
    gp_ = make(shape_.project_in_out ? ns * shape_.embed_dim : 1);
    if (quantized_) {  // an FP8 linear's input rows, quantized: sized for the widest input
      // (an MoE expert quantizes at most n rows per call: a token picks an expert once)
      const std::int64_t widest =
          std::max({H, shape_.q_dim(), shape_.local_ffn, shape_.local_expert_ffn, shape_.local_shared_ffn});
      fp8_x_ = Backend::template alloc<std::uint8_t>(ctx, n * widest);
      fp8_scale_ = Backend::template alloc<float>(ctx, n * fp8_groups_);  // a scale per row and group
    }
    if (shape_.tp > 1) {
      shard_logits_ = Backend::template alloc<float>(ctx, ns * shape_.local_vocab);
      gathered_logits_ = Backend::template alloc<float>(ctx, ns * shape_.vocab);
    }
  }

  void upload_rope(context& ctx) {
    if (shape_.rope.style == layers::rotary_style::none) return;
    rope_view_ = upload_rope_table(ctx, shape_.rope, rope_inv_freq_, rope_scale_);
    // Layer types with a rope of their own (Gemma 3's local layers): one table each.
    layer_rope_freq_.resize(shape_.layer_ropes.size());
    layer_rope_scale_.resize(shape_.layer_ropes.size());
    for (std::size_t i = 0; i < shape_.layer_ropes.size(); ++i)
      layer_rope_views_.push_back(upload_rope_table(ctx, shape_.layer_ropes[i], layer_rope_freq_[i], layer_rope_scale_[i]));
  }

  // One rope variant's tables in backend memory (`freq`, `scale` own them) and the descriptor the
  // rope op takes: its rows (longrope: short, long) and the rule that picks them per token.
  static backend::rope_table upload_rope_table(context& ctx, const rope_frequencies& r, buffer<float>& freq,
                                               buffer<float>& scale) {
    std::vector<float> table(r.inv_freq);
    std::vector<float> scales{r.attention_factor};
    if (!r.long_inv_freq.empty()) {
      table.insert(table.end(), r.long_inv_freq.begin(), r.long_inv_freq.end());
      scales.push_back(r.attention_factor);
    }
    freq = Backend::template alloc<float>(ctx, std::int64_t(table.size()));
    scale = Backend::template alloc<float>(ctx, std::int64_t(scales.size()));
    Backend::copy_to_device(ctx, freq.data(), table.data(), std::int64_t(table.size()));
    Backend::copy_to_device(ctx, scale.data(), scales.data(), std::int64_t(scales.size()));
    backend::rope_table t{freq.data(), scale.data(), std::int32_t(scales.size()), r.rot_dim};
    t.rule = r.rule();
    t.original_len = std::int32_t(r.switch_length);
    t.theta = r.theta;
    t.factor = r.dynamic_factor;
    return t;
  }

  struct layer_buffers {
    std::array<buffer<T>, std::size_t(layer_slot::count)> w;
    std::array<typename Backend::fp8_buffers, std::size_t(layer_slot::count)> q;  // FP8 weights (plan_entry::fp8)
    std::vector<buffer<T>> expert_up, expert_down;
    std::vector<const T*> expert_up_ptrs, expert_down_ptrs;
    std::vector<typename Backend::fp8_buffers> expert_up_q, expert_down_q;  // FP8 experts
    std::vector<backend::fp8_weight> expert_up_fp8, expert_down_fp8;
  };

  model_shape shape_;
  std::int64_t max_tokens_, max_sample_;
  std::array<buffer<T>, std::size_t(global_slot::count)> globals_;
  std::vector<layer_buffers> layers_;
  buffer<T> x_, h_, h2_, a_, m_, qkv_, att_, gu_, inner_, moe_out_, emb_, gx_, gd_, gp_;
  buffer<float> shard_logits_, gathered_logits_, rope_inv_freq_, rope_scale_;
  bool quantized_ = false;         // some weight is FP8: fp8_x_ / fp8_scale_ are the linears' scratch
  // Per layer, the checkpoint's static KV-cache scales of keys and values (empty: none; used only
  // with an FP8 KV cache, as vLLM's "auto" cache ignores them).
  std::vector<std::pair<float, float>> kv_scales_;
  std::int64_t fp8_groups_ = 1;    // most scale groups per input row of any FP8 weight (block-wise: in / block columns)
  buffer<std::uint8_t> fp8_x_;
  buffer<float> fp8_scale_;
  backend::rope_table rope_view_{};
  std::vector<buffer<float>> layer_rope_freq_, layer_rope_scale_;
  std::vector<backend::rope_table> layer_rope_views_;
};

}  // namespace mii::model

// model_runner: a loaded model with its KV cache, run one step at a time. The engine drives it
// through the scheduler; tests drive it directly (whole prompts, chunks, ragged mixes) and
// compare its logits with transformers'.
#pragma once
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <type_traits>
#include <utility>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <unistd.h>
#include <vector>

#include <mii/config.hpp>
#include <mii/error.hpp>
#include <mii/io/finite_check.hpp>
#include <mii/io/hf_config.hpp>
#include <mii/io/progress.hpp>
#include <mii/io/safetensors.hpp>
#include <mii/model/model_shape.hpp>
#include <mii/model/transformer.hpp>
#include <mii/model/weight_plan.hpp>
#include <mii/parallel/agree.hpp>
#include <mii/runtime/sampling.hpp>
#include <mii/runtime/step_builder.hpp>
#include <mii/runtime/step_gap_clock.hpp>

namespace mii::runtime {

// MII_CUDA_GRAPHS=0 turns the decode steps' CUDA graphs off (to compare against plain launches,
// or to debug); unset, empty or 1 leaves the choice to model_config.cuda_graphs. Other values
// are refused: the variable used to disable graphs whatever its value, MII_CUDA_GRAPHS=1 included.
inline bool cuda_graphs_allowed_by_environment() {
  const char* v = std::getenv("MII_CUDA_GRAPHS");
  if (!v || !*v || std::string_view(v) == "1") return true;
  if (std::string_view(v) == "0") return false;
  fail("environment variable MII_CUDA_GRAPHS must be 0 (graphs off) or 1, got \"", v, "\"");
}

template <class Model, class Backend, class Comm>
class model_runner {
 public:
  using T = typename Backend::compute_t;
  using context = typename Backend::context;

  // Loads config.json and the checkpoint in `dir`, plans this rank's weights, uploads them and
  // allocates the KV cache (model_config.kv_cache_blocks, or the memory fraction).
  model_runner(context& ctx, Comm& comm, const std::filesystem::path& dir, const model_config& cfg)
      : ctx_(ctx), comm_(comm) {
    using clock = std::chrono::steady_clock;
    auto since = [](clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); };
    const auto t_open = clock::now();
    kv_dtype_ = backend::parse_kv_cache_dtype(cfg.kv_cache_dtype);  // before anything slow: a typo fails at once
    config_ = io::load_hf_config(dir);
    shape_ = model::resolve_shape(Model::describe(Model::name), config_, comm.size(), comm.rank());
    const io::checkpoint ckpt = cfg.random_weights ? io::checkpoint::synthetic() : io::checkpoint::open(dir);
    const model::weight_plan plan =
        model::plan_weights(Model::describe(Model::name), shape_, ckpt, model::parse_quantization(cfg.quantization),
                            config_.quantization);
    // Before anything is uploaded: NaN or infinity in a weight would run silently (all-NaN
    // logits, token 0 under greedy decoding). One pass over the mapped file.
    if (cfg.check_weights && !ckpt.is_synthetic()) io::require_finite(ckpt);
    const std::int64_t max_tokens = std::max<std::int64_t>(cfg.max_ragged_batch_size, 1);
    const std::int64_t max_sample = std::max<std::int64_t>(std::min(cfg.max_ragged_sequence_count, max_tokens), 1);
    load_open_s_ = since(t_open);
    const auto t_weights = clock::now();
    io::progress_bar bar("loading " + dir.filename().string(), cfg.show_progress && comm.rank() == 0);
    // A backend that can place every weight in one allocation does so before the uploads start.
    if constexpr (requires { Backend::reserve_weights(ctx, plan); }) Backend::reserve_weights(ctx, plan);
    model_.emplace(ctx, shape_, plan, max_tokens, max_sample, &io::progress_bar::callback, &bar);
    weight_bytes_ = plan.total_bytes(Backend::compute_dtype);
    ctx.synchronize();  // uploads run asynchronously: the weights phase ends when they are on the device
    load_weights_s_ = since(t_weights);
    bar.finish();
    const auto t_kv = clock::now();
    block_size_ = cfg.kv_block_size;
    if (block_size_ < 1) fail("model_config.kv_block_size must be >= 1, got ", block_size_);
    const std::int64_t per_block = model_->kv_block_bytes(block_size_, kv_dtype_) * shape_.layers;
    if (cfg.kv_cache_blocks) {
      if (*cfg.kv_cache_blocks < 1 || *cfg.kv_cache_blocks > std::numeric_limits<std::int32_t>::max())
        fail("model_config.kv_cache_blocks must be in [1, 2^31), got ", *cfg.kv_cache_blocks);
      kv_blocks_ = std::int32_t(*cfg.kv_cache_blocks);
    } else {
      if (!(cfg.kv_cache_memory_fraction > 0 && cfg.kv_cache_memory_fraction <= 1))
        fail("model_config.kv_cache_memory_fraction must be in (0, 1], got ", cfg.kv_cache_memory_fraction);
      kv_blocks_ = std::int32_t(std::min<std::int64_t>(
          std::int64_t(Backend::kv_budget_bytes(ctx, cfg.kv_cache_memory_fraction)) / per_block, 1 << 30));
      // On the host the budget is a cap, not a target: room for 16 sequences of max_context is
      // plenty for the reference backend, and a tiny model should not zero a gigabyte.
      if constexpr (std::is_same_v<T, float>)
        kv_blocks_ = std::int32_t(std::min<std::int64_t>(kv_blocks_, 16 * ((cfg.max_context + block_size_ - 1) / block_size_)));
    }
    // Under tensor parallelism each rank measured its own free memory; all must plan the same
    // cache, or their schedulers (which run in lockstep without messages) would diverge.
    if (!cfg.kv_cache_blocks && comm.size() > 1)
      kv_blocks_ = std::int32_t(parallel::min_value<Backend>(ctx, comm, kv_blocks_));
    if (kv_blocks_ < 1) fail("the KV cache budget holds no block of ", per_block, " bytes");
    kv_total_blocks_ = kv_blocks_;
    kv_ = Backend::template alloc<std::uint8_t>(ctx, std::int64_t(kv_blocks_) * per_block);
    logits_ = Backend::template alloc<float>(ctx, max_sample * shape_.vocab);
    load_kv_s_ = since(t_kv);
    if constexpr (graph_capable) {
      // Decode steps replay CUDA graphs captured per (batch bucket, KV-length bucket). Padding
      // rows of a bucket write their keys into one block kept aside for them. MoE layers route
      // on the device up to a few rows (Backend::moe_device_rows); past that they wait on the
      // host for their routing, which a graph cannot contain, so graphs stop at that batch.
      std::int64_t graph_batch = std::min<std::int64_t>({model_->max_sample(), model_->max_tokens(), 256});
      if constexpr (Model::traits::mlp_kind == layers::mlp_kind::moe)
        graph_batch = std::min(graph_batch, model_->moe_device_rows(ctx_));
      graphs_enabled_ = cfg.cuda_graphs && kv_blocks_ > 1 && graph_batch >= 1 && cuda_graphs_allowed_by_environment();
      if (graphs_enabled_) {
        scratch_block_ = --kv_blocks_;
        max_graph_batch_ = std::int32_t(graph_batch);
      }
    }
  }

  const model::model_shape& shape() const { return shape_; }
  const io::hf_config& config() const { return config_; }  // config.json as read at load
  std::int32_t kv_blocks() const { return kv_blocks_; }
  std::int32_t block_size() const { return block_size_; }
  std::int64_t max_tokens() const { return model_->max_tokens(); }
  std::int64_t max_sample() const { return model_->max_sample(); }
  memory_report memory() const {
    return {weight_bytes_, std::size_t(kv_.size()), kv_blocks_, block_size_, load_open_s_, load_weights_s_,
            load_kv_s_};
  }

  // Runs one step; logits of the requested rows stay on the backend until sample()/logits().
  void forward(std::span<const step_chunk> chunks) {
    if constexpr (graph_capable) {
      if (graphs_enabled_ && decode_only(chunks)) {
        forward_graph(chunks);
        return;
      }
    }
    builder_.build(chunks);
    if constexpr (graph_capable) keep_step_buffer_fixed();
    gap_clock_.work_queued();
    const backend::step_batch b = Backend::upload_step(ctx_, builder_);
    model_->forward(ctx_, comm_, b, kv_cache(), logits_.data());
    n_sample_ = b.n_sample;
  }
  // Copy-on-write of KV blocks before the step that writes into them (scheduler::block_copies).
  void copy_blocks(std::span<const backend::block_copy> copies) {
    if (copies.empty()) return;
    gap_clock_.work_queued();
    Backend::copy_kv_blocks(ctx_, kv_.data(), shape_.layers, kv_total_blocks_, model_->kv_block_bytes(block_size_, kv_dtype_),
                            copies);
  }
  // The last step's logits, [n_sample, vocab], copied to the host.
  std::vector<float> logits() {
    std::vector<float> out(static_cast<std::size_t>(n_sample_ * shape_.vocab));
    Backend::copy_to_host(ctx_, out.data(), logits_.data(), std::int64_t(out.size()));
    ctx_.synchronize();
    gap_clock_.synchronized();
    return out;
  }
  // One id for each of the last step's first params.size() rows (the rows to sample come first:
  // step_chunk), drawn with params[i].
  std::vector<std::int32_t> sample(std::span<const sample_params> params, std::span<const std::int32_t> eos_ids) {
    if (std::int64_t(params.size()) > n_sample_)
      fail("internal: sampling ", params.size(), " rows of a step that computed ", n_sample_);
    std::vector<std::int32_t> ids(params.size());
    Backend::sample(ctx_, logits_.data(), std::int32_t(params.size()), shape_.vocab, params, eos_ids, ids.data());
    ctx_.synchronize();
    gap_clock_.synchronized();
    return ids;
  }
  // Log-probability inputs of rows of the last step that are not sampled (prompt log-probabilities):
  // log(sum(exp)), the logit of tokens[i] in rows[i] (in `sampled`) and the top_n largest logits.
  void summarize(std::span<const std::int32_t> rows, std::span<const std::int32_t> tokens, std::int32_t top_n,
                 sampled_logprobs& lp) {
    const std::size_t n = rows.size();
    lp.lse.resize(n);
    lp.sampled.resize(n);
    lp.top_ids.resize(n * std::size_t(top_n));
    lp.top_logits.resize(n * std::size_t(top_n));
    if (n == 0) return;
    Backend::summarize_rows(ctx_, logits_.data(), shape_.vocab, rows, top_n, lp.lse.data(), lp.top_ids.data(),
                            lp.top_logits.data());
    Backend::gather_logits(ctx_, logits_.data(), shape_.vocab, rows, tokens, lp.sampled.data());  // to the host: synchronizes
    gap_clock_.synchronized();
  }
  // The same, after `edits` (penalties, biases) change the logits; for `logprob_rows`, their
  // log-probability inputs from the logits before the edits (top_n alternatives each).
  std::vector<std::int32_t> sample(std::span<const sample_params> params, std::span<const std::int32_t> eos_ids,
                                   std::span<const logit_edit> edits, std::span<const std::int32_t> logprob_rows,
                                   std::int32_t top_n, sampled_logprobs& lp) {
    const std::size_t n_lp = logprob_rows.size();
    if (n_lp) {
      lp.lse.resize(n_lp);
      lp.top_ids.resize(n_lp * std::size_t(top_n));
      lp.top_logits.resize(n_lp * std::size_t(top_n));
      Backend::summarize_rows(ctx_, logits_.data(), shape_.vocab, logprob_rows, top_n, lp.lse.data(), lp.top_ids.data(),
                              lp.top_logits.data());
    }
    std::vector<float> replaced(edits.size());
    if (!edits.empty()) Backend::edit_logits(ctx_, logits_.data(), shape_.vocab, edits, replaced.data());
    std::vector<std::int32_t> ids = sample(params, eos_ids);
    if (n_lp) {
      // The sampled token's logit as the model made it: read back, or the value an edit replaced.
      std::vector<std::int32_t> tokens(n_lp);
      for (std::size_t i = 0; i < n_lp; ++i) tokens[i] = ids[std::size_t(logprob_rows[i])];
      lp.sampled.resize(n_lp);
      Backend::gather_logits(ctx_, logits_.data(), shape_.vocab, logprob_rows, tokens, lp.sampled.data());
      gap_clock_.synchronized();
      for (std::size_t e = 0; e < edits.size(); ++e)
        for (std::size_t i = 0; i < n_lp; ++i)
          if (edits[e].row == logprob_rows[i] && edits[e].token == tokens[i]) lp.sampled[i] = replaced[e];
    }
    return ids;
  }

  // Host time between steps with nothing queued on the device (step_gap_clock.hpp); the engine
  // calls idle() on it when it runs out of work.
  step_gap_clock& gap_clock() { return gap_clock_; }
  const step_gap_clock& gap_clock() const { return gap_clock_; }

 private:
  static constexpr bool graph_capable = requires(context& c) { Backend::graph_begin(c); };

  bool decode_only(std::span<const step_chunk> chunks) const {
    if (chunks.empty() || std::int64_t(chunks.size()) > max_graph_batch_) return false;
    for (const auto& c : chunks)
      if (c.tokens.size() != 1 || c.want != step_chunk::logits::last || c.copies != 1 || c.extra_end > c.extra_begin)
        return false;
    return true;
  }

  // Graphs read the step metadata from the backend's step buffer, so that buffer must not move
  // while graphs exist: it is reserved large once, and on the rare step that needs more the
  // graphs are dropped (and captured again later) before it grows.
  void keep_step_buffer_fixed() {
    if (!graphs_enabled_) return;
    const std::size_t need = builder_.data().size();
    if (need <= step_reserved_) return;
    if (step_reserved_ == 0) {
      const std::int64_t width = std::min<std::int64_t>(kv_total_blocks_, shape_.max_positions / block_size_ + 2);
      step_reserved_ = std::size_t(4 * model_->max_tokens() + model_->max_sample() * (4 + width) + 64);
    }
    if (need > step_reserved_) {
      graphs_.clear();
      step_reserved_ = need + need / 2;
    }
    ctx_.synchronize();  // graphs in flight read the buffer
    Backend::reserve_step(ctx_, step_reserved_);
  }

  // A decode step through a CUDA graph: the batch is padded to its bucket (a power of two) with
  // rows that read and write only the scratch block; the block table width and longest KV
  // length are fixed per bucket so one capture serves every step of that bucket.
  void forward_graph(std::span<const step_chunk> chunks) {
    std::int32_t batch = 1, kv_cap = 256;
    while (batch < std::int32_t(chunks.size())) batch *= 2;
    batch = std::min(batch, max_graph_batch_);
    std::int64_t longest = 0;
    for (const auto& c : chunks) longest = std::max(longest, c.start + 1);
    while (kv_cap < longest) kv_cap *= 2;
    padded_.assign(chunks.begin(), chunks.end());
    for (std::int32_t i = std::int32_t(chunks.size()); i < batch; ++i)
      padded_.push_back({std::span(&pad_token_, 1), 0, std::span(&scratch_block_, 1), 0, step_chunk::logits::last});
    const std::int32_t width = (kv_cap + block_size_ - 1) / block_size_;
    builder_.build(padded_, step_shape{width, kv_cap});
    keep_step_buffer_fixed();
    gap_clock_.work_queued();
    const backend::step_batch b = Backend::upload_step(ctx_, builder_);
    auto& g = graphs_[{batch, kv_cap}];
    if (g.empty()) {
      // One plain run first: GEMM plans and attention scratch are created outside the capture.
      model_->forward(ctx_, comm_, b, kv_cache(), logits_.data());
      Backend::graph_begin(ctx_);
      model_->forward(ctx_, comm_, b, kv_cache(), logits_.data());
      g = Backend::graph_end(ctx_);
    }
    Backend::graph_launch(ctx_, g);
    n_sample_ = std::int32_t(chunks.size());
  }

  model::kv_cache_ref kv_cache() { return {kv_.data(), kv_total_blocks_, block_size_, kv_dtype_}; }

  context& ctx_;
  Comm& comm_;
  io::hf_config config_;
  model::model_shape shape_;
  std::optional<model::transformer<Model, Backend>> model_;
  typename Backend::template buffer<std::uint8_t> kv_;  // [layers][blocks][block bytes]
  backend::kv_cache_dtype kv_dtype_ = backend::kv_cache_dtype::compute;
  typename Backend::template buffer<float> logits_;
  std::int32_t kv_blocks_ = 0, block_size_ = 0, n_sample_ = 0;
  std::size_t weight_bytes_ = 0;
  double load_open_s_ = 0, load_weights_s_ = 0, load_kv_s_ = 0;  // memory_report's load phases
  step_builder builder_;
  step_gap_clock gap_clock_;
  // CUDA graphs (cuda backend): one per (batch bucket, KV-length bucket)
  struct graph_holder {
    template <class B>
    static auto pick(int) -> typename B::graph;
    template <class B>
    static int pick(...);
    using type = decltype(pick<Backend>(0));
  };
  std::int32_t kv_total_blocks_ = 0;  // allocated (kv_blocks_ of them are the scheduler's)
  bool graphs_enabled_ = false;
  std::size_t step_reserved_ = 0;  // int32 elements of the backend's step buffer
  std::int32_t scratch_block_ = -1, max_graph_batch_ = 0, pad_token_ = 0;
  std::vector<step_chunk> padded_;
  std::map<std::pair<std::int32_t, std::int32_t>, typename graph_holder::type> graphs_;
};

}  // namespace mii::runtime

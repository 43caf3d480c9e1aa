// model_runner: a loaded model with its KV cache, run one step at a time. The engine drives it
// through the scheduler; tests drive it directly (whole prompts, chunks, ragged mixes) and
// compare its logits with transformers'.
#pragma once
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <unistd.h>
#include <vector>

#include <mii/config.hpp>
#include <mii/error.hpp>
#include <mii/io/hf_config.hpp>
#include <mii/io/progress.hpp>
#include <mii/io/safetensors.hpp>
#include <mii/model/model_shape.hpp>
#include <mii/model/transformer.hpp>
#include <mii/model/weight_plan.hpp>
#include <mii/runtime/sampling.hpp>
#include <mii/runtime/step_builder.hpp>

namespace mii::runtime {

template <class Model, class Backend, class Comm>
class model_runner {
 public:
  using T = typename Backend::compute_t;
  using context = typename Backend::context;

  // Loads config.json and the checkpoint in `dir`, plans this rank's weights, uploads them and
  // allocates the KV cache (model_config.kv_cache_blocks, or the memory fraction).
  model_runner(context& ctx, Comm& comm, const std::filesystem::path& dir, const model_config& cfg)
      : ctx_(ctx), comm_(comm) {
    const io::hf_config hf = io::load_hf_config(dir);
    shape_ = model::resolve_shape(Model::describe(Model::name), hf, comm.size(), comm.rank());
    const io::checkpoint ckpt = cfg.random_weights ? io::checkpoint::synthetic() : io::checkpoint::open(dir);
    const model::weight_plan plan = model::plan_weights(Model::describe(Model::name), shape_, ckpt);
    const std::int64_t max_tokens = std::max<std::int64_t>(cfg.max_ragged_batch_size, 1);
    const std::int64_t max_sample = std::max<std::int64_t>(std::min(cfg.max_ragged_sequence_count, max_tokens), 1);
    io::progress_bar bar("loading " + dir.filename().string(), cfg.show_progress);
    model_.emplace(ctx, shape_, plan, max_tokens, max_sample, &io::progress_bar::callback, &bar);
    weight_bytes_ = plan.total_bytes(Backend::compute_dtype);
    bar.finish();
    block_size_ = cfg.kv_block_size;
    if (block_size_ < 1) fail("model_config.kv_block_size must be >= 1, got ", block_size_);
    const std::int64_t per_block = model_->kv_block_elements(block_size_) * shape_.layers * std::int64_t(sizeof(T));
    if (cfg.kv_cache_blocks) {
      if (*cfg.kv_cache_blocks < 1) fail("model_config.kv_cache_blocks must be >= 1, got ", *cfg.kv_cache_blocks);
      kv_blocks_ = std::int32_t(*cfg.kv_cache_blocks);
    } else {
      if (!(cfg.kv_cache_memory_fraction > 0 && cfg.kv_cache_memory_fraction <= 1))
        fail("model_config.kv_cache_memory_fraction must be in (0, 1], got ", cfg.kv_cache_memory_fraction);
      kv_blocks_ = std::int32_t(std::min<std::int64_t>(
          std::int64_t(Backend::kv_budget_bytes(ctx, cfg.kv_cache_memory_fraction)) / per_block, 1 << 30));
    }
    if (kv_blocks_ < 1) fail("the KV cache budget holds no block of ", per_block, " bytes");
    kv_ = Backend::template alloc<T>(ctx, std::int64_t(kv_blocks_) * model_->kv_block_elements(block_size_) * shape_.layers);
    logits_ = Backend::template alloc<float>(ctx, max_sample * shape_.vocab);
  }

  const model::model_shape& shape() const { return shape_; }
  std::int32_t kv_blocks() const { return kv_blocks_; }
  std::int32_t block_size() const { return block_size_; }
  std::int64_t max_tokens() const { return model_->max_tokens(); }
  std::int64_t max_sample() const { return model_->max_sample(); }
  std::int32_t rope_row(std::int64_t len) const { return model_->rope_row(len); }
  memory_report memory() const {
    return {weight_bytes_, std::size_t(kv_.size()) * sizeof(T), kv_blocks_, block_size_};
  }

  // Runs one step; logits of the requested rows stay on the backend until sample()/logits().
  void forward(std::span<const step_chunk> chunks) {
    builder_.build(chunks);
    const backend::step_batch b = Backend::upload_step(ctx_, builder_);
    model_->forward(ctx_, comm_, b, kv_.data(), kv_blocks_, block_size_, logits_.data());
    n_sample_ = b.n_sample;
  }
  // The last step's logits, [n_sample, vocab], copied to the host.
  std::vector<float> logits() {
    std::vector<float> out(static_cast<std::size_t>(n_sample_ * shape_.vocab));
    Backend::copy_to_host(ctx_, out.data(), logits_.data(), std::int64_t(out.size()));
    ctx_.synchronize();
    return out;
  }
  // One id per sampled row of the last step.
  std::vector<std::int32_t> sample(std::span<const sample_params> params, std::span<const std::int32_t> eos_ids) {
    std::vector<std::int32_t> ids(static_cast<std::size_t>(n_sample_));
    Backend::sample(ctx_, logits_.data(), n_sample_, shape_.vocab, params, eos_ids, ids.data());
    ctx_.synchronize();
    return ids;
  }

 private:
  context& ctx_;
  Comm& comm_;
  model::model_shape shape_;
  std::optional<model::transformer<Model, Backend>> model_;
  typename Backend::template buffer<T> kv_;
  typename Backend::template buffer<float> logits_;
  std::int32_t kv_blocks_ = 0, block_size_ = 0, n_sample_ = 0;
  std::size_t weight_bytes_ = 0;
  step_builder builder_;
};

}  // namespace mii::runtime

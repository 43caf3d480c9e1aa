// mii::pipeline: a Hugging Face checkpoint directory in, a callable text generator out.
//
//   auto pipe = mii::pipeline<mii::models::mistral>("/models/Mistral-7B-v0.1");
//   auto out  = pipe({"DeepSpeed is", "Seattle is"}, {.max_new_tokens = 128});
//
// The model type (its layer policies), the backend and the communicator are compile-time
// parameters; `mii::pipeline(path)` without a type reads config.json and picks one of the
// built-in architectures (models/all.hpp). The default backend runs on the GPU (bf16) when one
// is usable and on the host (fp32 reference) otherwise.
#pragma once
#include <concepts>
#include <functional>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <mii/backend/device.hpp>
#include <mii/backend/host/host_backend.hpp>
#include <mii/config.hpp>
#include <mii/error.hpp>
#include <mii/parallel/launch_env.hpp>
#include <mii/parallel/nccl.hpp>
#include <mii/parallel/single.hpp>
#include <mii/runtime/engine.hpp>
#include <mii/tokenizer/tokenizer.hpp>
#if MII_WITH_CUDA
#include <mii/backend/cuda/cuda_backend.hpp>
#endif

namespace mii {

namespace backend {
// Backend selector: cuda<bf16_t> when a CUDA device is usable, else host.
struct automatic {};
}  // namespace backend

namespace detail {

class engine_iface {
 public:
  virtual ~engine_iface() = default;
  virtual std::vector<response> generate(std::span<const std::string> prompts, const generate_params& p) = 0;
  virtual std::vector<response> generate_ids(std::span<const std::vector<token_id>> prompts, const generate_params& p) = 0;
  virtual const tokenizer& tok() const = 0;
  virtual const model::model_shape& shape() const = 0;
  virtual std::string_view backend_name() const = 0;
  virtual std::string_view model_name() const = 0;
  virtual std::int32_t kv_blocks_in_use() const = 0;
  virtual memory_report memory() const = 0;
  virtual void serve(const std::function<void(std::vector<serve_request>&)>& poll,
                     const std::function<void(std::size_t, response)>& done, const std::function<bool()>& more) = 0;
};

template <class Model, class Backend, class Comm>
class engine_impl final : public engine_iface {
 public:
  engine_impl(const std::filesystem::path& dir, const model_config& cfg, Comm comm) : e_(dir, cfg, std::move(comm)) {}
  std::vector<response> generate(std::span<const std::string> prompts, const generate_params& p) override {
    return e_.generate(prompts, p);
  }
  std::vector<response> generate_ids(std::span<const std::vector<token_id>> prompts, const generate_params& p) override {
    return e_.generate_ids(prompts, p);
  }
  const tokenizer& tok() const override { return e_.tok(); }
  const model::model_shape& shape() const override { return e_.shape(); }
  std::string_view backend_name() const override { return Backend::name; }
  std::string_view model_name() const override { return Model::name; }
  std::int32_t kv_blocks_in_use() const override { return e_.sched().blocks().used_count(); }
  memory_report memory() const override { return e_.memory(); }
  void serve(const std::function<void(std::vector<serve_request>&)>& poll,
             const std::function<void(std::size_t, response)>& done, const std::function<bool()>& more) override {
    e_.serve(poll, done, more);
  }

 private:
  runtime::engine<Model, Backend, Comm> e_;
};

void check_dtype(const model_config& cfg, dtype compute);

}  // namespace detail

// What mii::pipeline returns: call it with prompts.
class generation_pipeline {
 public:
  explicit generation_pipeline(std::unique_ptr<detail::engine_iface> e) : e_(std::move(e)) {}

  // A list of prompts: one response each, in order. A prompt that cannot run gets
  // finish_reason error (and its message) while the others complete.
  std::vector<response> operator()(const std::vector<std::string>& prompts, const generate_params& p = {}) {
    return e_->generate(prompts, p);
  }
  // One prompt: its response, or mii::error when it cannot run.
  template <class S>
    requires std::convertible_to<const S&, std::string_view>
  response operator()(const S& prompt, const generate_params& p = {}) {
    const std::vector<std::string> one{std::string(std::string_view(prompt))};
    auto out = e_->generate(one, p);
    if (out.empty()) return {};  // a tensor-parallel rank without output
    if (out[0].finish_reason == generation_finish_reason::error) throw error(out[0].error);
    return std::move(out[0]);
  }
  // Token ids in (no prompt tokenization).
  std::vector<response> generate_ids(const std::vector<std::vector<token_id>>& prompts, const generate_params& p = {}) {
    return e_->generate_ids(prompts, p);
  }

  const tokenizer& tok() const { return e_->tok(); }
  const model::model_shape& shape() const { return e_->shape(); }
  std::string_view backend_name() const { return e_->backend_name(); }
  std::string_view model_name() const { return e_->model_name(); }
  std::int32_t kv_blocks_in_use() const { return e_->kv_blocks_in_use(); }
  memory_report memory() const { return e_->memory(); }
  // Requests arriving while it runs: `poll` appends new ones before every step, `done` receives
  // each finished response with its id, and serving ends when `more()` is false and all are done.
  void serve(const std::function<void(std::vector<serve_request>&)>& poll,
             const std::function<void(std::size_t, response)>& done, const std::function<bool()>& more) {
    e_->serve(poll, done, more);
  }

 private:
  std::unique_ptr<detail::engine_iface> e_;
};

// A pipeline for one architecture, specialized at compile time.
template <class Model, class Backend = backend::automatic, class Comm = parallel::single>
generation_pipeline pipeline(const std::filesystem::path& model_dir, const model_config& cfg = {}, Comm comm = {}) {
  if constexpr (std::is_same_v<Backend, backend::automatic>) {
    if (cfg.backend != "auto" && cfg.backend != "cuda" && cfg.backend != "host")
      fail("model_config.backend must be \"auto\", \"cuda\" or \"host\", got \"", cfg.backend, "\"");
#if MII_WITH_CUDA
    if (cfg.backend == "cuda" || (cfg.backend == "auto" && cuda_available()))
      return pipeline<Model, backend::cuda<bf16_t>, Comm>(model_dir, cfg, std::move(comm));
#else
    if (cfg.backend == "cuda") fail("model_config.backend is \"cuda\" but mii was built without the CUDA backend");
#endif
    return pipeline<Model, backend::host, Comm>(model_dir, cfg, std::move(comm));
  } else {
    detail::check_dtype(cfg, Backend::compute_dtype);
    if constexpr (std::is_same_v<Comm, parallel::single>) {
      if (cfg.tensor_parallel != 1)
        fail("model_config.tensor_parallel is ", cfg.tensor_parallel,
             " but this pipeline uses the single-rank communicator: launch the program with mii-launch --num_gpus ",
             cfg.tensor_parallel, " and use mii::pipeline_tp");
    } else if (cfg.tensor_parallel != comm.size()) {
      fail("model_config.tensor_parallel is ", cfg.tensor_parallel, " but the ", Comm::name, " communicator has ",
           comm.size(), " ranks");
    }
    return generation_pipeline(std::make_unique<detail::engine_impl<Model, Backend, Comm>>(model_dir, cfg, std::move(comm)));
  }
}

// Tensor parallelism across processes, one per GPU, as MII does it: start the program with
// `mii-launch --num_gpus N PROGRAM ARGS...` (or torchrun, mpirun, the deepspeed launcher) and set
// model_config.tensor_parallel = N. Each process loads its slice of the weights onto GPU
// LOCAL_RANK (this replaces model_config.device) and the ranks meet through NCCL. Every rank
// must make the same calls with the same arguments; responses come back on rank 0, and the other
// ranks get empty vectors unless model_config.all_rank_output is set. Without a launcher the
// process is a job of one (tensor_parallel must be 1). See docs/parallel.md.
template <class Model, class Backend = backend::automatic>
generation_pipeline pipeline_tp(const std::filesystem::path& model_dir, model_config cfg = {}) {
  const parallel::launch_env env = parallel::read_launch_env();
  if (cfg.tensor_parallel != env.world_size) {
    if (!env.launched())
      fail("model_config.tensor_parallel is ", cfg.tensor_parallel,
           " but no launcher started this process (RANK and WORLD_SIZE are not set): run it with mii-launch --num_gpus ",
           cfg.tensor_parallel, " PROGRAM ARGS...");
    fail("model_config.tensor_parallel is ", cfg.tensor_parallel, " but this process is rank ", env.rank, " of a job of ",
         env.world_size, " (", env.source, "): set tensor_parallel to the number of processes launched");
  }
  if (cfg.backend == "host")
    fail("model_config.backend is \"host\" but tensor parallelism across processes runs on the cuda backend (NCCL)");
  parallel::nccl comm = parallel::nccl::join(env, parallel::connect_timeout());
  cfg.device = comm.device();
  if constexpr (std::is_same_v<Backend, backend::automatic>) {
#if MII_WITH_CUDA
    return pipeline<Model, backend::cuda<bf16_t>, parallel::nccl>(model_dir, cfg, std::move(comm));
#else
    fail("mii::pipeline_tp needs the cuda backend, and this mii was built without it");
#endif
  } else {
    return pipeline<Model, Backend, parallel::nccl>(model_dir, cfg, std::move(comm));
  }
}

// The architecture comes from config.json's `architectures`, among the built-in ones, or else from
// its `model_type` (as transformers' Auto classes choose).
generation_pipeline pipeline(const std::filesystem::path& model_dir, const model_config& cfg = {});

// The names of the architectures mii::pipeline(path) knows.
std::vector<std::string_view> builtin_architectures();

}  // namespace mii

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
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <functional>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
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
#include <mii/runtime/async_engine.hpp>
#include <mii/runtime/engine.hpp>
#include <mii/runtime/request_channel.hpp>
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
  virtual request_handle submit(std::string_view prompt, const generate_params& p, bool add_special_tokens) = 0;
  virtual request_handle submit_ids(std::vector<token_id> prompt, const generate_params& p) = 0;
  virtual const tokenizer& tok() const = 0;
  virtual bool has_tokenizer() const = 0;
  virtual const model::model_shape& shape() const = 0;
  virtual std::string_view backend_name() const = 0;
  virtual std::string_view model_name() const = 0;
  virtual std::int64_t max_sequence_length() const = 0;
  virtual engine_stats stats() const = 0;
  virtual memory_report memory() const = 0;
  virtual void serve(const std::function<void(std::vector<serve_request>&)>& poll,
                     const std::function<void(std::size_t, response)>& done, const std::function<bool()>& more) = 0;
  virtual void follow() = 0;
  virtual void shutdown() = 0;
};

// Calls and submissions from any thread, through one engine thread (runtime::async_engine).
template <class Model, class Backend, class Comm>
class engine_impl final : public engine_iface {
 public:
  engine_impl(const std::filesystem::path& dir, const model_config& cfg, Comm comm)
      : e_(dir, cfg, std::move(comm)), async_(e_) {}

  std::vector<response> generate(std::span<const std::string> prompts, const generate_params& p) override {
    return generate_each(prompts.size(), p, [&](std::size_t i, std::uint64_t seed) {
      return e_.build_request(prompts[i], p, seed);
    });
  }
  std::vector<response> generate_ids(std::span<const std::vector<token_id>> prompts, const generate_params& p) override {
    return generate_each(prompts.size(), p, [&](std::size_t i, std::uint64_t seed) {
      return e_.build_request(prompts[i], p, seed);
    });
  }
  request_handle submit(std::string_view prompt, const generate_params& p, bool add_special_tokens) override {
    return async_.submit(e_.make_request(prompt, p, seed_of(p), add_special_tokens), p.stream);
  }
  request_handle submit_ids(std::vector<token_id> prompt, const generate_params& p) override {
    return async_.submit(e_.make_request(std::move(prompt), p, seed_of(p)), p.stream);
  }
  const tokenizer& tok() const override { return e_.tok(); }
  bool has_tokenizer() const override { return e_.has_tokenizer(); }
  const model::model_shape& shape() const override { return e_.shape(); }
  std::string_view backend_name() const override { return Backend::name; }
  std::string_view model_name() const override { return Model::name; }
  std::int64_t max_sequence_length() const override { return e_.limits().max_sequence; }
  engine_stats stats() const override { return async_.stats(); }
  memory_report memory() const override { return e_.memory(); }
  void serve(const std::function<void(std::vector<serve_request>&)>& poll,
             const std::function<void(std::size_t, response)>& done, const std::function<bool()>& more) override;
  void follow() override { async_.follow(); }
  void shutdown() override { async_.stop(); }

 private:
  // Unseeded requests draw a fresh seed (under tensor parallelism rank 0's is the one used).
  static std::uint64_t seed_of(const generate_params& p) {
    return p.seed ? *p.seed : runtime::engine<Model, Backend, Comm>::local_random_seed();
  }

  // A list of prompts: each is submitted, then all are awaited. Every prompt samples with
  // generate_params.seed when it is set (its text does not depend on its place in the list);
  // unseeded prompts each get their own random seed. A prompt that cannot run gets its error
  // response without being submitted.
  template <class Make>
  std::vector<response> generate_each(std::size_t count, const generate_params& p, Make&& make) {
    validate(p);
    const std::uint64_t random_base = seed_of(p);
    std::vector<response> out(count);
    std::vector<request_handle> handles(count);
    for (std::size_t i = 0; i < count; ++i) {
      // Unseeded: prompt i's samples draw with random_base + i * n + k, no seed twice in a call.
      std::unique_ptr<runtime::request> r = make(i, p.seed ? *p.seed : random_base + i * std::uint64_t(p.n));
      r->index = i;
      if (r->done) {
        out[i].prompt_length = std::int64_t(r->tokens.size());
        out[i].finish_reason = generation_finish_reason::error;
        out[i].error = r->error;
      } else {
        handles[i] = async_.submit(std::move(r), p.stream);
      }
    }
    for (std::size_t i = 0; i < count; ++i)
      if (handles[i].valid()) out[i] = handles[i].get();
    if (!e_.output_rank()) out.clear();
    return out;
  }

  runtime::engine<Model, Backend, Comm> e_;
  runtime::async_engine async_;  // declared after e_: stops (and joins its thread) before e_ goes
};

template <class Model, class Backend, class Comm>
void engine_impl<Model, Backend, Comm>::serve(const std::function<void(std::vector<serve_request>&)>& poll,
                                              const std::function<void(std::size_t, response)>& done,
                                              const std::function<bool()>& more) {
  // Finished ids arrive from the engine thread (the final stream event); `poll` and `done` run
  // here, on the caller's thread, as they did when serve() stepped the engine itself.
  struct finished_queue {
    std::mutex m;
    std::condition_variable cv;
    std::vector<std::size_t> ids;
  };
  auto finished = std::make_shared<finished_queue>();
  std::map<std::size_t, request_handle> running;
  std::vector<serve_request> incoming;
  auto answer = [&](std::size_t id, response r) {
    if (e_.output_rank()) done(id, std::move(r));
  };
  while (more() || !running.empty()) {
    incoming.clear();
    poll(incoming);
    for (auto& s : incoming) {
      const stream_callback user = s.params->stream;
      generate_params p = *s.params;
      p.stream = [user, finished, id = s.id](const stream_event& ev) {
        if (user) user(ev);
        if (!ev.finished) return;
        {
          const std::lock_guard lock(finished->m);
          finished->ids.push_back(id);
        }
        finished->cv.notify_one();
      };
      // A seeded request samples as the same prompt alone in generate() with that seed.
      auto r = e_.build_request(std::move(s.prompt), p, seed_of(p));
      r->index = s.id;
      if (r->done) {
        answer(s.id, response{.prompt_length = std::int64_t(r->tokens.size()),
                              .finish_reason = generation_finish_reason::error,
                              .error = r->error});
        continue;
      }
      running.emplace(s.id, async_.submit(std::move(r), p.stream));
    }
    std::vector<std::size_t> ids;
    {
      std::unique_lock lock(finished->m);
      finished->cv.wait_for(lock, std::chrono::microseconds(200), [&] { return !finished->ids.empty(); });
      ids.swap(finished->ids);
    }
    for (std::size_t id : ids) {
      const auto it = running.find(id);
      if (it == running.end()) continue;
      answer(id, it->second.get());
      running.erase(it);
    }
  }
}

void check_dtype(const model_config& cfg, dtype compute);
// `model_dir` itself when it exists, else the Hugging Face cache snapshot of the Hub id it names at
// cfg.revision, downloaded when missing (io::resolve_model, docs/hub.md).
std::filesystem::path resolve_model_dir(const std::filesystem::path& model_dir, const model_config& cfg);

}  // namespace detail

// What mii::pipeline returns: call it with prompts, from any number of threads at once. Every
// call and submission goes to one engine thread that batches everything in flight (continuous
// batching); each caller gets what it would get alone (greedy: the same tokens).
class generation_pipeline {
 public:
  explicit generation_pipeline(std::unique_ptr<detail::engine_iface> e) : e_(std::move(e)) {}

  // A list of prompts: one response each, in order. A prompt that cannot run gets
  // finish_reason error (and its message) while the others complete. Stream callbacks run on
  // the engine thread.
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

  // One request, returned at once: wait for it (get), pull its deltas (next), or cancel it.
  // Throws mii::error when it cannot run (invalid parameters, a prompt too long for the
  // context, invalid UTF-8). The text is tokenized on the calling thread; add_special_tokens
  // false leaves out the BOS the tokenizer would add (a chat template already wrote it).
  request_handle submit(std::string_view prompt, const generate_params& p = {}, bool add_special_tokens = true) {
    return e_->submit(prompt, p, add_special_tokens);
  }
  request_handle submit_ids(std::vector<token_id> prompt, const generate_params& p = {}) {
    return e_->submit_ids(std::move(prompt), p);
  }

  const tokenizer& tok() const { return e_->tok(); }
  bool has_tokenizer() const { return e_->has_tokenizer(); }
  const model::model_shape& shape() const { return e_->shape(); }
  std::string_view backend_name() const { return e_->backend_name(); }
  std::string_view model_name() const { return e_->model_name(); }
  // The longest sequence (prompt + generated) a request may reach.
  std::int64_t max_sequence_length() const { return e_->max_sequence_length(); }
  engine_stats stats() const { return e_->stats(); }
  std::int32_t kv_blocks_in_use() const { return e_->stats().kv_blocks_used; }
  memory_report memory() const { return e_->memory(); }
  // Requests arriving while it runs: `poll` appends new ones (every 200 µs at most while
  // requests run), `done` receives each finished response with its id (both on the calling
  // thread), and serving ends when `more()` is false and all are done.
  void serve(const std::function<void(std::vector<serve_request>&)>& poll,
             const std::function<void(std::size_t, response)>& done, const std::function<bool()>& more) {
    e_->serve(poll, done, more);
  }
  // Tensor parallelism, ranks other than 0 that make no calls of their own: run rank 0's
  // requests until rank 0's pipeline shuts down.
  void follow() { e_->follow(); }
  // Ends every request still running (finish_reason cancelled) and stops the engine thread;
  // later calls get error responses. The destructor does the same.
  void shutdown() { e_->shutdown(); }

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
    return generation_pipeline(std::make_unique<detail::engine_impl<Model, Backend, Comm>>(
        detail::resolve_model_dir(model_dir, cfg), cfg, std::move(comm)));
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

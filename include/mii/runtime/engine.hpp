// engine<Model, Backend, Comm>: requests in, responses out. Owns the model (model_runner), the
// tokenizer and the Dynamic SplitFuse scheduler; runs steps until every request has finished,
// sampling, applying stop criteria and streaming text as tokens arrive.
#pragma once
#include <algorithm>
#include <cstdint>
#include <deque>
#include <exception>
#include <limits>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <mii/config.hpp>
#include <mii/error.hpp>
#include <mii/io/hf_config.hpp>
#include <mii/parallel/agree.hpp>
#include <mii/runtime/model_runner.hpp>
#include <mii/runtime/request.hpp>
#include <mii/runtime/scheduler.hpp>
#include <mii/tokenizer/tokenizer.hpp>

namespace mii::runtime {

// Settings that come from the checkpoint rather than the call: EOS ids and the longest sequence.
// Temperatures below this sample greedily (see engine::prepare).
inline constexpr double min_sampling_temperature = 1e-10;

struct engine_limits {
  std::vector<std::int32_t> eos_ids;
  std::int64_t max_sequence = 0;
};
engine_limits resolve_limits(const model_config& cfg, const model::model_shape& shape, const io::hf_config& hf,
                             const io::generation_config& gen, const tokenizer* tok);

template <class Model, class Backend, class Comm>
class engine {
 public:
  using context = typename Backend::context;

  engine(const std::filesystem::path& dir, const model_config& cfg, Comm comm = {})
      : cfg_(cfg),
        comm_(std::move(comm)),
        ctx_(std::make_unique<context>(context_arg(cfg))),
        runner_(std::make_unique<model_runner<Model, Backend, Comm>>(*ctx_, comm_, dir, cfg)),
        tok_(load_tokenizer(dir, cfg)) {
    limits_ = resolve_limits(cfg, runner_->shape(), runner_->config(), io::load_generation_config(dir),
                             tok_ ? &*tok_ : nullptr);
    sched_ = std::make_unique<scheduler>(
        scheduler_limits{runner_->max_tokens(), runner_->max_sample(), runner_->block_size()}, runner_->kv_blocks());
    if (!sched_->fits(limits_.max_sequence))
      fail("the KV cache (", runner_->kv_blocks(), " blocks of ", runner_->block_size(),
           " tokens) cannot hold one sequence of the maximum length ", limits_.max_sequence,
           "; lower model_config.max_length / max_context or give the cache more memory");
  }

  const tokenizer& tok() const {
    if (!tok_) fail("the model directory has no tokenizer.json: give model_config.tokenizer, or use token ids");
    return *tok_;
  }
  const model::model_shape& shape() const { return runner_->shape(); }
  const scheduler& sched() const { return *sched_; }
  const engine_limits& limits() const { return limits_; }
  memory_report memory() const { return runner_->memory(); }
  Comm& comm() { return comm_; }

  // Generates for every prompt. Invalid parameters throw before any work; a prompt that cannot
  // run (too long, invalid UTF-8, empty) gets finish_reason error and the others still run.
  std::vector<response> generate(std::span<const std::string> prompts, const generate_params& p) {
    return generate_each(prompts.size(), p, [&](request& r, std::size_t i) {
      r.prompt_text = prompts[i];
      r.tokens = tok().encode(prompts[i], /*add_special_tokens=*/true);
    });
  }

  // The same from token ids (no tokenizer in the loop for the prompt; text is still decoded).
  std::vector<response> generate_ids(std::span<const std::vector<token_id>> prompts, const generate_params& p) {
    return generate_each(prompts.size(), p, [&](request& r, std::size_t i) { r.tokens = prompts[i]; });
  }

  // One call: `fill(request, i)` sets prompt i's tokens (it may throw mii::error: that prompt
  // then gets an error response and the others run). Prompt i samples with seed + i.
  template <class Fill>
  std::vector<response> generate_each(std::size_t count, const generate_params& p, Fill&& fill) {
    validate(p);
    std::vector<std::unique_ptr<request>> reqs;
    const std::uint64_t seed = p.seed ? *p.seed : agreed_random_seed();
    for (std::size_t i = 0; i < count; ++i) {
      auto r = std::make_unique<request>();
      r->index = i;
      try {
        fill(*r, i);
        prepare(*r, p, seed + i);
      } catch (const error& e) {
        r->fail_with(e.what());
      }
      reqs.push_back(std::move(r));
    }
    run(reqs);
    return collect(reqs, p);
  }

  // Serving with requests that arrive over time (benchmarks, servers). Before every step the
  // engine asks `poll(now)` for new submissions; each finished request is handed to `done`.
  // A submission with invalid parameters or a prompt that cannot run is answered with
  // finish_reason error; the others are served on.
  // Per-token timing: the submission's params.stream is called for every token.
  template <class Poll, class Done, class More>
  void serve(Poll&& poll, Done&& done, More&& more) {
    std::vector<std::unique_ptr<request>> live;
    const abandon_on_unwind cleanup(*sched_);
    std::vector<serve_request> incoming;
    std::int64_t tracked = 0;
    std::deque<request*> queued;
    while (more() || !live.empty()) {
      incoming.clear();
      poll(incoming);
      for (auto& s : incoming) {
        auto r = std::make_unique<request>();
        r->index = s.id;
        r->tokens = std::move(s.prompt);
        // A server must not stop for one bad submission: invalid parameters, like a prompt that
        // cannot run, end that request with an error response.
        try {
          validate(*s.params);
          // A seeded request samples as the same prompt alone in generate() with that seed.
          const auto& seed = s.params->seed;
          prepare(*r, *s.params, seed ? *seed : agreed_random_seed() + s.id);
          queued.push_back(r.get());
        } catch (const error& e) {
          r->fail_with(e.what());
        }
        r->params = s.params;  // a failed request is collected with its own params too
        live.push_back(std::move(r));
      }
      while (!queued.empty() && tracked < cfg_.max_tracked_sequences) {
        sched_->add(queued.front());
        queued.pop_front();
        ++tracked;
      }
      if (!sched_->idle()) step(sched_->schedule(), tracked);
      for (auto it = live.begin(); it != live.end();) {
        if ((*it)->done) {
          std::vector<std::unique_ptr<request>> one;
          one.push_back(std::move(*it));
          auto res = collect(one, *one.front()->params);
          if (!res.empty()) done(one.front()->index, std::move(res.front()));
          it = live.erase(it);
        } else {
          ++it;
        }
      }
    }
  }

 private:
  static std::optional<tokenizer> load_tokenizer(const std::filesystem::path& dir, const model_config& cfg) {
    if (cfg.tokenizer) return tokenizer::from_file(*cfg.tokenizer);
    // Without tokenizer.json the engine still serves token ids (generate_ids, serve); text
    // prompts then fail with a message saying what is missing.
    if (!std::filesystem::exists(dir / "tokenizer.json")) return std::nullopt;
    return tokenizer::from_file(dir);
  }

  // A fresh random seed, the same on every tensor-parallel rank (rank 0's): the ranks sample in
  // lockstep from identical logits and must draw the same tokens.
  std::uint64_t agreed_random_seed() {
    const std::uint64_t mine = std::random_device{}() ^ (std::uint64_t(std::random_device{}()) << 32);
    return std::uint64_t(parallel::rank0_value<Backend>(*ctx_, comm_, std::int64_t(mine)));
  }

  static int context_arg(const model_config& cfg) {
    if constexpr (std::is_same_v<typename Backend::compute_t, float>) {
      return cfg.host_threads;
    } else {
      return cfg.device;
    }
  }

  void prepare(request& r, const generate_params& p, std::uint64_t seed) {
    const auto len = std::int64_t(r.tokens.size());
    if (len == 0) fail("the prompt encodes to no tokens");
    for (auto t : r.tokens)
      if (t < 0 || t >= runner_->shape().vocab)
        fail("prompt token id ", t, " is outside the model's vocabulary [0, ", runner_->shape().vocab, ")");
    if (len >= p.max_length)
      fail("the prompt is ", len, " tokens; generate_params.max_length is ", p.max_length,
           " (prompt + generated tokens)");
    if (len >= limits_.max_sequence)
      fail("the prompt is ", len, " tokens; the model's context is ", limits_.max_sequence,
           " tokens (model_config.max_length / max_context / max_position_embeddings)");
    r.prompt_len = len;
    r.max_new = std::min(p.max_new_tokens.value_or(p.max_length - len), limits_.max_sequence - len);
    r.min_new = std::min(p.min_new_tokens, r.max_new);
    r.ignore_eos = p.ignore_eos;
    r.total_tokens = len;
    r.kv_len = 0;
    r.max_total = len + r.max_new;
    // The sampler divides float logits by the temperature: below min_sampling_temperature that
    // overflows to inf (and NaN probabilities), and the distribution is a point mass anyway.
    const double temperature = p.temperature.value_or(1.0);
    r.sampling.greedy = !p.do_sample || temperature < min_sampling_temperature;
    r.sampling.temperature = float(std::min(temperature, double(std::numeric_limits<float>::max())));
    // top_k past the vocabulary keeps every token (it must not wrap around in 32 bits).
    r.sampling.top_k = std::int32_t(std::min<std::int64_t>(p.top_k.value_or(0), std::numeric_limits<std::int32_t>::max()));
    r.sampling.top_p = float(p.top_p);
    r.sampling.seed = seed;
    r.stop = stop_matcher(p.stop);
    if (tok_) r.detok.emplace(tok_->make_stream_decoder(/*skip_special_tokens=*/true, r.tokens));
    r.params = &p;
  }

  // Whatever ends a call early (a stream callback that throws, a backend error) must not leave
  // the scheduler pointing at the call's destroyed requests or holding their KV blocks.
  class abandon_on_unwind {
   public:
    explicit abandon_on_unwind(scheduler& s) : sched_(s), exceptions_(std::uncaught_exceptions()) {}
    abandon_on_unwind(const abandon_on_unwind&) = delete;
    abandon_on_unwind& operator=(const abandon_on_unwind&) = delete;
    ~abandon_on_unwind() {
      if (std::uncaught_exceptions() > exceptions_) sched_.abandon_all();
    }

   private:
    scheduler& sched_;
    int exceptions_;
  };

  void run(std::vector<std::unique_ptr<request>>& reqs) {
    const abandon_on_unwind cleanup(*sched_);
    std::deque<request*> queued;
    for (auto& r : reqs)
      if (!r->done) queued.push_back(r.get());
    std::int64_t tracked = 0;
    while (!queued.empty() || !sched_->idle()) {
      while (!queued.empty() && tracked < cfg_.max_tracked_sequences) {
        sched_->add(queued.front());
        queued.pop_front();
        ++tracked;
      }
      const auto plan = sched_->schedule();
      if (plan.empty()) fail("internal: the scheduler made no progress");
      step(plan, tracked);
    }
  }

  void step(const std::vector<scheduled_chunk>& plan, std::int64_t& tracked) {
    chunks_.clear();
    params_.clear();
    for (const auto& c : plan) {
      auto& r = static_cast<request&>(*c.seq);
      const std::int64_t end = r.kv_len + c.tokens;
      chunks_.push_back({std::span(r.tokens).subspan(std::size_t(r.kv_len), std::size_t(c.tokens)), r.kv_len, r.blocks,
                         runner_->rope_row(end), c.sample ? step_chunk::logits::last : step_chunk::logits::none});
      if (c.sample) {
        sample_params sp = r.sampling;
        sp.step = std::uint64_t(r.generated());
        sp.suppress_eos = r.generated() < r.min_new;
        params_.push_back(sp);
      }
    }
    runner_->forward(chunks_);
    std::vector<std::int32_t> ids;
    if (!params_.empty()) ids = runner_->sample(params_, limits_.eos_ids);
    scheduler::commit(plan);
    std::size_t next = 0;
    for (const auto& c : plan) {
      if (!c.sample) continue;
      auto& r = static_cast<request&>(*c.seq);
      accept(r, ids[next++], *r.params);
      if (r.done) {
        sched_->finish(&r);
        --tracked;
      }
    }
  }

  // A sampled token: append it, decode text, apply stop criteria, stream.
  void accept(request& r, token_id t, const generate_params& p) {
    r.tokens.push_back(t);
    r.total_tokens = std::int64_t(r.tokens.size());
    const bool is_eos = std::find(limits_.eos_ids.begin(), limits_.eos_ids.end(), t) != limits_.eos_ids.end();
    if (is_eos && !r.ignore_eos) {
      finish(r, generation_finish_reason::stop, p);
      return;
    }
    emit(r, r.stop.push(r.detok ? r.detok->push(t) : std::string()), t, p);
    if (r.stop.matched()) {
      finish(r, generation_finish_reason::stop, p);
    } else if (r.generated() >= r.max_new) {
      finish(r, generation_finish_reason::length, p);
    }
  }

  void emit(request& r, const std::string& text, token_id t, const generate_params& p) {
    r.text += text;
    if (p.stream && output_rank() && (t >= 0 || !text.empty()))
      p.stream(stream_event{r.index, text, t, false, generation_finish_reason::none});
  }

  void finish(request& r, generation_finish_reason why, const generate_params& p) {
    if (!r.stop.matched()) emit(r, r.stop.push(r.detok ? r.detok->flush() : std::string()) + r.stop.flush(), -1, p);
    r.done = true;
    r.reason = why;
    if (p.stream && output_rank()) p.stream(stream_event{r.index, {}, -1, true, why});
  }

  bool output_rank() const { return comm_.rank() == 0 || cfg_.all_rank_output; }

  std::vector<response> collect(std::vector<std::unique_ptr<request>>& reqs, const generate_params& p) {
    std::vector<response> out;
    if (!output_rank()) return out;
    for (auto& r : reqs) {
      response x;
      x.prompt_length = r->prompt_len ? r->prompt_len : std::int64_t(r->tokens.size());
      x.finish_reason = r->reason;
      x.error = r->error;
      if (r->reason != generation_finish_reason::error) {
        x.token_ids.assign(r->tokens.begin() + std::ptrdiff_t(r->prompt_len), r->tokens.end());
        x.generated_length = std::int64_t(x.token_ids.size());
        std::string prompt = r->prompt_text;
        if (p.return_full_text && prompt.empty() && tok_)  // a prompt given as ids
          prompt = tok_->decode(std::span(r->tokens).first(std::size_t(r->prompt_len)), /*skip_special_tokens=*/true);
        x.generated_text = p.return_full_text ? prompt + r->text : r->text;
      }
      out.push_back(std::move(x));
    }
    return out;
  }

  model_config cfg_;
  Comm comm_;
  std::unique_ptr<context> ctx_;
  std::unique_ptr<model_runner<Model, Backend, Comm>> runner_;
  std::optional<tokenizer> tok_;
  engine_limits limits_;
  std::unique_ptr<scheduler> sched_;
  std::vector<step_chunk> chunks_;
  std::vector<sample_params> params_;
};

}  // namespace mii::runtime

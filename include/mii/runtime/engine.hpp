// engine<Model, Backend, Comm>: requests in, responses out. Owns the model (model_runner), the
// tokenizer and the Dynamic SplitFuse scheduler. The core is vLLM's shape: add() requests,
// cancel() them, step() (admit → schedule → forward → sample → stop criteria → stream → answer
// finished requests through their channels). The async front (async_engine.hpp) runs step() on
// its own thread; generate()/serve() below run it on the caller's thread. A request with
// generate_params.n > 1 forks into n sequences at its first sample (fork(); docs/architecture.md),
// and one with prompt_logprobs records its prompt's log-probabilities as its prefill runs.
//
// Thread safety: make_request(), tok(), shape(), limits() and memory() may be called from any
// thread; everything else from one thread at a time (the engine thread, or the one caller of the
// synchronous API).
#pragma once
#include <algorithm>
#include <cstdint>
#include <deque>
#include <exception>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include <mii/config.hpp>
#include <mii/error.hpp>
#include <mii/io/hf_config.hpp>
#include <mii/parallel/agree.hpp>
#include <mii/runtime/engine_core.hpp>
#include <mii/runtime/model_runner.hpp>
#include <mii/runtime/request.hpp>
#include <mii/runtime/request_channel.hpp>
#include <mii/runtime/scheduler.hpp>
#include <mii/tokenizer/tokenizer.hpp>

namespace mii::runtime {

// Temperatures below this sample greedily (see engine::prepare).
inline constexpr double min_sampling_temperature = 1e-10;

// Settings that come from the checkpoint rather than the call: EOS ids and the longest sequence.
struct engine_limits {
  std::vector<std::int32_t> eos_ids;
  std::int64_t max_sequence = 0;
};
engine_limits resolve_limits(const model_config& cfg, const model::model_shape& shape, const io::hf_config& hf,
                             const io::generation_config& gen, const tokenizer* tok);

// The longest prompt, in bytes, that could still fit in `max_tokens` tokens: no token of `tok`
// covers more input bytes than its longest vocabulary string, and normalizers that shrink text
// (NFKC folds a 3-byte full-width letter to 1 byte) are allowed a factor of 4. Longer prompts are
// refused before tokenizing them (a 100 MB prompt would cost seconds and gigabytes first).
std::size_t max_prompt_bytes(const tokenizer& tok, std::int64_t max_tokens);

template <class Model, class Backend, class Comm>
class engine final : public engine_core {
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
        scheduler_limits{runner_->max_tokens(), runner_->max_sample(), runner_->block_size(), cfg.prefix_caching},
        runner_->kv_blocks());
    if (!sched_->fits(limits_.max_sequence))
      fail("the KV cache (", runner_->kv_blocks(), " blocks of ", runner_->block_size(),
           " tokens) cannot hold one sequence of the maximum length ", limits_.max_sequence,
           "; lower model_config.max_length / max_context or give the cache more memory");
    if (tok_) max_prompt_bytes_ = max_prompt_bytes(*tok_, limits_.max_sequence);
  }

  const tokenizer& tok() const {
    if (!tok_) fail("the model directory has no tokenizer.json: give model_config.tokenizer, or use token ids");
    return *tok_;
  }
  bool has_tokenizer() const { return tok_.has_value(); }
  const model::model_shape& shape() const { return runner_->shape(); }
  const scheduler& sched() const { return *sched_; }
  const engine_limits& limits() const { return limits_; }
  memory_report memory() const { return runner_->memory(); }
  Comm& comm() { return comm_; }

  // ---- building requests: any thread --------------------------------------------------------

  // A request for a text prompt, validated and tokenized, or mii::error saying why it cannot run.
  std::unique_ptr<request> make_request(std::string_view prompt, const generate_params& p, std::uint64_t seed,
                                        bool add_special_tokens = true) const {
    return or_throw(build_request(prompt, p, seed, add_special_tokens));
  }
  // The same from token ids (the prompt is not tokenized; generated text is still decoded).
  std::unique_ptr<request> make_request(std::vector<token_id> prompt, const generate_params& p,
                                        std::uint64_t seed) const {
    return or_throw(build_request(std::move(prompt), p, seed));
  }
  // The same, but a prompt that cannot run gives a request that is already done with
  // finish_reason error (and the prompt's tokens, when it got that far).
  std::unique_ptr<request> build_request(std::string_view prompt, const generate_params& p, std::uint64_t seed,
                                         bool add_special_tokens = true) const {
    auto r = std::make_unique<request>();
    try {
      validate(p);
      const tokenizer& t = tok();
      if (prompt.size() > max_prompt_bytes_)
        fail("the prompt is ", prompt.size(), " bytes, more than ", limits_.max_sequence,
             " tokens of this tokenizer can hold (the model's context is ", limits_.max_sequence, " tokens)");
      r->prompt_text = std::string(prompt);
      r->tokens = t.encode(prompt, add_special_tokens);
      prepare(*r, p, seed);
    } catch (const error& e) {
      r->fail_with(e.what());
    }
    return r;
  }
  std::unique_ptr<request> build_request(std::vector<token_id> prompt, const generate_params& p,
                                         std::uint64_t seed) const {
    auto r = std::make_unique<request>();
    r->tokens = std::move(prompt);
    try {
      validate(p);
      prepare(*r, p, seed);
    } catch (const error& e) {
      r->fail_with(e.what());
    }
    return r;
  }

  // A request that ends with finish_reason error as soon as it is added.
  static std::unique_ptr<request> failed_request(std::string why) {
    auto r = std::make_unique<request>();
    r->fail_with(std::move(why));
    return r;
  }

  // ---- the synchronous API: one caller at a time ---------------------------------------------

  // Generates for every prompt. Invalid parameters throw before any work; a prompt that cannot
  // run (too long, invalid UTF-8, empty) gets finish_reason error and the others still run.
  std::vector<response> generate(std::span<const std::string> prompts, const generate_params& p) {
    return generate_each(prompts.size(), p, [&](std::size_t i, std::uint64_t seed) {
      return build_request(prompts[i], p, seed);
    });
  }
  std::vector<response> generate_ids(std::span<const std::vector<token_id>> prompts, const generate_params& p) {
    return generate_each(prompts.size(), p, [&](std::size_t i, std::uint64_t seed) {
      return build_request(prompts[i], p, seed);
    });
  }

  // One call: `make(i, seed)` builds prompt i's request (a request already failed, or a
  // mii::error: that prompt gets an error response and the others run). Every prompt samples
  // with generate_params.seed when it is set, so a prompt's text does not depend on its place
  // in the list; unseeded prompts each get their own random seed.
  template <class Make>
  std::vector<response> generate_each(std::size_t count, const generate_params& p, Make&& make) {
    validate(p);
    const std::uint64_t random_base = p.seed ? 0 : agreed_random_seed();
    std::vector<std::shared_ptr<request_channel>> channels;
    for (std::size_t i = 0; i < count; ++i) {
      std::unique_ptr<request> r;
      try {
        // Unseeded: prompt i's samples draw with random_base + i * n + k, no seed twice in a call.
        r = make(i, p.seed ? *p.seed : random_base + i * std::uint64_t(p.n));
      } catch (const error& e) {
        r = failed_request(e.what());
      }
      // A prompt that cannot run gets its error response and no stream events.
      channels.push_back(attach(*r, i, r->done ? stream_callback{} : p.stream));
      add(std::move(r));
    }
    run_until_idle();
    std::vector<response> out;
    if (!output_rank()) return out;
    for (const auto& ch : channels) out.push_back(ch->wait());
    return out;
  }

  // Serving with requests that arrive over time, on the caller's thread (benchmarks and tests;
  // servers use the async front). Before every step the engine asks `poll` for new submissions;
  // each finished request is handed to `done` with its id. A submission with invalid parameters
  // or a prompt that cannot run is answered with finish_reason error; the others are served on.
  // params.stream is called for every token (per-token timing).
  template <class Poll, class Done, class More>
  void serve(Poll&& poll, Done&& done, More&& more) {
    const abandon_on_unwind cleanup(*this);
    std::vector<serve_request> incoming;
    std::map<std::uint64_t, std::pair<std::size_t, std::shared_ptr<request_channel>>> serving;
    while (more() || has_work()) {
      incoming.clear();
      poll(incoming);
      for (auto& s : incoming) {
        // A server must not stop for one bad submission: invalid parameters, like a prompt that
        // cannot run, end that request with an error response. A seeded request samples as the
        // same prompt alone in generate() with that seed.
        const auto& seed = s.params->seed;
        std::unique_ptr<request> r =
            build_request(std::move(s.prompt), *s.params, seed ? *seed : agreed_random_seed() + s.id);
        auto ch = attach(*r, s.id, r->done ? stream_callback{} : s.params->stream);
        serving.emplace(ch->id(), std::make_pair(s.id, ch));
        add(std::move(r));
      }
      apply_own_callback_failures();
      if (has_work()) step();
      for (auto it = serving.begin(); it != serving.end();) {
        if (it->second.second->done()) {
          if (output_rank()) done(it->second.first, it->second.second->wait());
          it = serving.erase(it);
        } else {
          ++it;
        }
      }
    }
  }

  // ---- engine_core: the engine thread ---------------------------------------------------------

  int rank() const override { return comm_.rank(); }
  int world_size() const override { return comm_.size(); }
  bool output_rank() const override { return comm_.rank() == 0 || cfg_.all_rank_output; }

  void bind_thread() override {
    if constexpr (requires(context& c) { Backend::bind_thread(c); }) Backend::bind_thread(*ctx_);
  }

  void adopt(request& r) const override {
    r.stop = stop_matcher(r.stop_strings);
    if (r.repetition_penalty != 1.0f) {
      r.prompt_vocabulary.assign(r.tokens.begin(), r.tokens.begin() + std::ptrdiff_t(r.prompt_len));
      std::sort(r.prompt_vocabulary.begin(), r.prompt_vocabulary.end());
      r.prompt_vocabulary.erase(std::unique(r.prompt_vocabulary.begin(), r.prompt_vocabulary.end()),
                                r.prompt_vocabulary.end());
    }
    if (tok_) r.detok.emplace(tok_->make_stream_decoder(/*skip_special_tokens=*/true, r.tokens));
    // What the scheduler counts in logits rows: n samples from the prompt's last row, and a row of
    // its own for every prompt position whose next token's log-probability is asked for.
    r.fanout = r.n;
    r.rows_begin = 0;
    r.rows_end = r.prompt_logprobs >= 0 && r.sample_index == 0 ? std::max<std::int64_t>(r.prompt_len - 1, 0) : 0;
  }

  void add(std::unique_ptr<request> r) override {
    request* raw = r.get();
    raw->token_ids = &raw->tokens;  // the scheduler keys cached blocks by these
    const auto [it, fresh] = live_.emplace(raw->id, std::move(r));
    if (!fresh) fail("internal: request id ", raw->id, " is already in the engine");
    if (raw->done) {
      finished_now_.push_back(raw);
    } else {
      queued_.push_back(raw);
    }
  }

  // Ends every sample of the request (generate_params.n) that still runs.
  void cancel(const cancel_order& c) override {
    const auto it = live_.find(c.id);
    if (it == live_.end() || it->second->all_done()) return;
    request& r = *it->second;
    if (!r.done && !r.in_scheduler) std::erase(queued_, &r);
    for_each_sample(r, [&](request& s) {
      if (s.done) return;
      if (s.in_scheduler) {
        sched_->finish(&s);
        s.in_scheduler = false;
        --tracked_;
      }
      s.done = true;
      s.reason = c.why;
      if (c.why == generation_finish_reason::error) s.error = c.message;
    });
    finished_now_.push_back(&r);
  }

  void cancel_all(generation_finish_reason why, const std::string& message) override {
    sched_->abandon_all();
    queued_.clear();
    tracked_ = 0;
    for (auto& [id, r] : live_) {
      const bool answered_already = r->all_done();  // in finished_now_
      for_each_sample(*r, [&](request& s) {
        s.in_scheduler = false;
        if (s.done) return;
        s.done = true;
        s.reason = why;
        if (why == generation_finish_reason::error) s.error = message;
      });
      if (!answered_already) finished_now_.push_back(r.get());
    }
    answer_finished();
  }

  bool has_work() const override { return !live_.empty(); }

  void step() override {
    admit();
    if (!sched_->idle()) {
      const auto plan = sched_->schedule();
      if (plan.empty()) fail("internal: the scheduler made no progress");
      run(plan);
    }
    answer_finished();
    if (!has_work()) runner_->gap_clock().idle();  // what follows is a wait for requests, not a gap
  }

  std::vector<cancel_order> take_callback_failures() override { return std::exchange(callback_failures_, {}); }

  std::vector<std::int32_t> broadcast(std::vector<std::int32_t> words) override {
    return parallel::broadcast_words<Backend>(*ctx_, comm_, std::move(words));
  }

  engine_stats stats() const override {
    const std::lock_guard lock(stats_mutex_);
    return stats_;
  }

 private:
  // The counters other threads may read (stats() is thread-safe). Refreshed before finished
  // requests are answered, so a caller woken by its response sees its KV blocks already freed.
  void publish_stats() {
    engine_stats s;
    s.waiting = std::int64_t(queued_.size() + sched_->waiting());
    s.running = std::int64_t(sched_->running());
    s.kv_blocks_used = sched_->blocks().used_count();
    s.kv_blocks_total = sched_->blocks().total();
    s.steps = steps_;
    s.preemptions = sched_->preemptions();
    s.requests_finished = finished_;
    s.prompt_tokens = prompt_tokens_;
    s.generated_tokens = generated_tokens_;
    s.prefix_cache_queried_tokens = sched_->prefix_cache().queried;
    s.prefix_cache_hit_tokens = sched_->prefix_cache().hit;
    s.kv_blocks_cached = sched_->blocks().cached_count();
    s.kv_block_copies = sched_->blocks().copies();
    s.host_gap_seconds = runner_->gap_clock().seconds();
    s.host_gaps = runner_->gap_clock().gaps();
    const std::lock_guard lock(stats_mutex_);
    stats_ = s;
  }

 public:

  // A fresh random seed, the same on every tensor-parallel rank (rank 0's): the ranks sample in
  // lockstep from identical logits and must draw the same tokens. A collective.
  std::uint64_t agreed_random_seed() {
    return std::uint64_t(parallel::rank0_value<Backend>(*ctx_, comm_, std::int64_t(local_random_seed())));
  }
  static std::uint64_t local_random_seed() {
    return std::random_device{}() ^ (std::uint64_t(std::random_device{}()) << 32);
  }

 private:
  static std::optional<tokenizer> load_tokenizer(const std::filesystem::path& dir, const model_config& cfg) {
    if (cfg.tokenizer) return tokenizer::from_file(*cfg.tokenizer);
    // Without tokenizer.json the engine still serves token ids (generate_ids, serve); text
    // prompts then fail with a message saying what is missing.
    if (!std::filesystem::exists(dir / "tokenizer.json")) return std::nullopt;
    return tokenizer::from_file(dir);
  }

  static std::unique_ptr<request> or_throw(std::unique_ptr<request> r) {
    if (r->done) throw error(r->error);
    return r;
  }

  static int context_arg(const model_config& cfg) {
    if constexpr (std::is_same_v<typename Backend::compute_t, float>) {
      return cfg.host_threads;
    } else {
      return cfg.device;
    }
  }

  // A channel for a request of the synchronous API (ids from this engine's own counter).
  std::shared_ptr<request_channel> attach(request& r, std::size_t index, const stream_callback& stream) {
    auto ch = std::make_shared<request_channel>(next_own_id_++, index, output_rank() ? stream : stream_callback{},
                                                request_channel::cancel_fn{});
    r.id = ch->id();
    r.index = index;
    r.channel = ch;
    return ch;
  }

  void run_until_idle() {
    const abandon_on_unwind cleanup(*this);
    while (has_work()) {
      apply_own_callback_failures();
      step();
    }
  }

  // The synchronous API's version of the async front's cancellation of requests whose stream
  // callback threw. Under tensor parallelism only rank 0 runs callbacks, so rank 0's list is
  // sent to every rank before each step (one small collective per step, TP only).
  void apply_own_callback_failures() {
    control_packet p;
    p.cancels = take_callback_failures();
    if (comm_.size() > 1) p = decode(broadcast(encode(p)));
    for (const auto& c : p.cancels) cancel(c);
  }

  void prepare(request& r, const generate_params& p, std::uint64_t seed) const {
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
    if (!p.stop.empty() && !tok_)
      fail("generate_params.stop needs a tokenizer (stop strings are matched on the generated text) but the model "
           "directory has no tokenizer.json: give model_config.tokenizer or leave generate_params.stop empty");
    r.prompt_len = len;
    // transformers computes the prompt in one forward: rope variants that depend on the length
    // see the prompt's length for all its tokens, however the scheduler splits it.
    r.rope_len = len;
    r.kv_variant = runner_->shape().rope.kv_variant(len);
    // Both limits apply, as in DeepSpeed-MII's Request.stop_generation: the sequence reaches
    // max_length, or max_new_tokens are generated, whichever comes first.
    r.max_new = std::min({p.max_new_tokens.value_or(std::numeric_limits<std::int64_t>::max()), p.max_length - len,
                          limits_.max_sequence - len});
    r.min_new = std::min(p.min_new_tokens, r.max_new);
    r.ignore_eos = p.ignore_eos;
    r.return_full_text = p.return_full_text;
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
    r.sampling.min_p = float(p.min_p);
    r.sampling.seed = seed;
    r.repetition_penalty = float(p.repetition_penalty);
    r.presence_penalty = float(p.presence_penalty);
    r.frequency_penalty = float(p.frequency_penalty);
    for (const auto& [id, bias] : p.logit_bias) {
      if (id >= runner_->shape().vocab)
        fail("generate_params.logit_bias: token id ", id, " is outside the model's vocabulary [0, ", runner_->shape().vocab,
             ")");
      r.logit_bias.emplace_back(id, float(bias));
    }
    r.logprobs = p.logprobs ? *p.logprobs : -1;
    r.prompt_logprobs = p.prompt_logprobs ? *p.prompt_logprobs : -1;
    // The n samples decode side by side: each is a sequence of the step, and the first sample
    // draws n rows of logits at once.
    const std::int64_t most = std::min(sched_->max_rows(), sched_->limits().max_seqs);
    if (p.n > most)
      fail("generate_params.n is ", p.n, ", but one step holds at most ", most,
           " sequences (model_config.max_ragged_sequence_count and max_ragged_batch_size)");
    r.n = p.n;
    r.stop_strings = p.stop;
    adopt(r);
  }

  // Whatever ends a synchronous call early (a backend error) must not leave the scheduler
  // pointing at destroyed requests or holding their KV blocks.
  class abandon_on_unwind {
   public:
    explicit abandon_on_unwind(engine& e) : e_(e), exceptions_(std::uncaught_exceptions()) {}
    abandon_on_unwind(const abandon_on_unwind&) = delete;
    abandon_on_unwind& operator=(const abandon_on_unwind&) = delete;
    ~abandon_on_unwind() {
      if (std::uncaught_exceptions() > exceptions_) {
        try {
          e_.cancel_all(generation_finish_reason::error, "the call ended early");
        } catch (...) {
        }
      }
    }

   private:
    engine& e_;
    int exceptions_;
  };

  void admit() {
    while (!queued_.empty() && tracked_ < cfg_.max_tracked_sequences) {
      request* r = queued_.front();
      queued_.pop_front();
      sched_->add(r);
      r->in_scheduler = true;
      ++tracked_;
      prompt_tokens_ += r->prompt_len;
    }
  }

  void run(const std::vector<scheduled_chunk>& plan) {
    runner_->copy_blocks(sched_->block_copies());  // copy on write, before anything writes
    chunks_.clear();
    params_.clear();
    edits_.clear();
    logprob_rows_.clear();
    prompt_rows_.clear();
    prompt_targets_.clear();
    std::int32_t top_n = 0, prompt_top_n = 0;
    // Logits rows: the sampled ones first (a request's first sample draws its n samples from n
    // copies of its last row), then the rows of prompt positions whose log-probabilities are asked for.
    std::int32_t extra_row = 0;
    for (const auto& c : plan)
      if (c.sample) extra_row += static_cast<request&>(*c.seq).fanout;
    for (const auto& c : plan) {
      auto& r = static_cast<request&>(*c.seq);
      step_chunk chunk{std::span(r.tokens).subspan(std::size_t(r.kv_len), std::size_t(c.tokens)), r.kv_len, r.blocks,
                       r.rope_len, c.sample ? step_chunk::logits::last : step_chunk::logits::none};
      chunk.copies = c.sample ? r.fanout : 1;
      const auto [from, to] = prompt_rows_of(r, c.tokens);
      if (from < to) {
        chunk.extra_begin = std::int32_t(from - r.kv_len);
        chunk.extra_end = std::int32_t(to - r.kv_len);
        for (std::int64_t pos = from; pos < to; ++pos) {
          prompt_rows_.push_back(extra_row++);
          prompt_targets_.push_back(r.tokens[std::size_t(pos + 1)]);
        }
        prompt_top_n = std::max(prompt_top_n, r.prompt_logprobs);
      }
      chunks_.push_back(chunk);
      if (!c.sample) continue;
      for (std::int32_t k = 0; k < r.fanout; ++k) {
        const auto row = std::int32_t(params_.size());
        sample_params sp = r.sampling;
        sp.seed = sample_seed(r.sampling.seed, k);
        sp.step = std::uint64_t(r.generated());
        sp.suppress_eos = r.generated() < r.min_new;
        params_.push_back(sp);
        if (r.edits_logits()) add_edits(r, row);
        if (r.logprobs >= 0) {
          logprob_rows_.push_back(row);
          top_n = std::max(top_n, r.logprobs);
        }
      }
    }
    runner_->forward(chunks_);
    std::vector<std::int32_t> ids;
    if (!params_.empty()) ids = runner_->sample(params_, limits_.eos_ids, edits_, logprob_rows_, top_n, logprobs_);
    if (!prompt_rows_.empty()) {
      runner_->summarize(prompt_rows_, prompt_targets_, prompt_top_n, prompt_logprobs_);
      prompt_top_n_ = prompt_top_n;
      std::size_t next_row = 0;
      for (const auto& c : plan) record_prompt_logprobs(static_cast<request&>(*c.seq), c.tokens, next_row);
    }
    sched_->commit(plan);
    ++steps_;
    std::size_t next = 0, next_logprob = 0;
    for (const auto& c : plan) {
      if (!c.sample) continue;
      auto& r = static_cast<request&>(*c.seq);
      const std::int32_t samples = r.fanout;
      if (samples > 1) fork(r);
      for (std::int32_t k = 0; k < samples; ++k) {
        request& s = k == 0 ? r : *r.siblings[std::size_t(k - 1)];
        if (s.logprobs >= 0) record_logprobs(s, next_logprob++, top_n, ids[next]);
        accept(s, ids[next++]);
        after_sample(s);
      }
    }
  }

  // Prompt positions [from, to) of a chunk of `tokens` tokens from r.kv_len whose next token's
  // log-probability is still to be recorded (each gets a logits row of its own).
  static std::pair<std::int64_t, std::int64_t> prompt_rows_of(const request& r, std::int64_t tokens) {
    return {std::max(r.kv_len, r.rows_begin), std::min(r.kv_len + tokens, r.rows_end)};
  }

  void record_prompt_logprobs(request& r, std::int64_t tokens, std::size_t& next_row) {
    const auto [from, to] = prompt_rows_of(r, tokens);
    for (std::int64_t pos = from; pos < to; ++pos, ++next_row) {
      if (std::int64_t(r.prompt_logprobs_out.size()) != pos)
        fail("internal: prompt log-probability of position ", pos, " after ", r.prompt_logprobs_out.size());
      r.prompt_logprobs_out.push_back(
          logprobs_entry(prompt_logprobs_, next_row, prompt_top_n_, r.prompt_logprobs, r.tokens[std::size_t(pos + 1)]));
    }
    if (from >= to) return;
    r.rows_begin = to;  // recorded: a recomputation (after preemption) needs no rows for them
    if (r.rows_begin == r.rows_end && r.channel && output_rank())
      guard_callback(r, [&] { r.channel->push_prompt_logprobs(r.prompt_logprobs_out); });
  }

  // Request r (sample 0) drew its n samples: samples 1..n-1 become sequences of their own that
  // share r's KV blocks from here on.
  void fork(request& r) {
    for (std::int32_t i = 1; i < r.n; ++i) {
      std::unique_ptr<request> s = make_sample(r, i);
      adopt(*s);
      sched_->fork(&r, s.get());
      s->in_scheduler = true;
      ++tracked_;
      r.siblings.push_back(std::move(s));
    }
    r.fanout = 1;
  }

  // After a sample's token was accepted: a finished sample leaves the scheduler (the request is
  // answered once all of its samples have).
  void after_sample(request& s) {
    if (s.done) {
      sched_->finish(&s);
      s.in_scheduler = false;
      --tracked_;
      request& first = s.first ? *s.first : s;
      if (first.n > 1 && s.channel && output_rank()) end_sample(s);
      if (first.all_done()) finished_now_.push_back(&first);
    }
  }

  void end_sample(request& s) {
    guard_callback(s, [&] { s.channel->end_sample(std::size_t(s.sample_index), s.reason); });
  }

  // Runs f, which calls r's stream callback: one that throws does not unwind the step (the batch
  // would be left half-updated); its request is cancelled with an error before the next step.
  template <class F>
  void guard_callback(request& r, F&& f) {
    try {
      f();
    } catch (const std::exception& e) {
      callback_failed(r, e.what());
    } catch (...) {
      callback_failed(r, "an exception that is not a std::exception");
    }
  }

  template <class F>
  static void for_each_sample(request& r, F&& f) {
    f(r);
    for (auto& s : r.siblings) f(*s);
  }

  // A sampled token: append it, decode text, apply stop criteria, stream.
  void accept(request& r, token_id t) {
    r.tokens.push_back(t);
    r.total_tokens = std::int64_t(r.tokens.size());
    ++generated_tokens_;
    if (r.edits_logits()) {
      const auto it = std::lower_bound(r.output_counts.begin(), r.output_counts.end(), std::make_pair(t, std::int32_t(0)));
      if (it != r.output_counts.end() && it->first == t) {
        ++it->second;
      } else {
        r.output_counts.insert(it, {t, 1});
      }
    }
    const bool is_eos = std::find(limits_.eos_ids.begin(), limits_.eos_ids.end(), t) != limits_.eos_ids.end();
    if (is_eos && !r.ignore_eos) {
      finish(r, generation_finish_reason::stop);
      return;
    }
    emit(r, r.stop.push(r.detok ? r.detok->push(t) : std::string()), t);
    if (r.stop.matched()) {
      finish(r, generation_finish_reason::stop);
    } else if (r.generated() >= r.max_new) {
      finish(r, generation_finish_reason::length);
    }
  }

  // New text to the request and its channel. A stream callback that throws does not unwind the
  // step (the batch would be left half-updated): its request is cancelled with an error before
  // the next step instead.
  void emit(request& r, const std::string& text, token_id t) {
    r.text += text;
    if (!r.channel || !output_rank() || (t < 0 && text.empty())) return;
    guard_callback(r, [&] {
      r.channel->push(text, t, t >= 0 && r.logprobs >= 0 ? &r.token_logprobs_out.back() : nullptr,
                      std::size_t(r.sample_index));
    });
  }
  void callback_failed(request& r, std::string_view what) {
    for (const auto& c : callback_failures_)
      if (c.id == r.id) return;
    callback_failures_.push_back(
        {r.id, generation_finish_reason::error, "generate_params.stream threw: " + std::string(what)});
  }

  void finish(request& r, generation_finish_reason why) {
    if (!r.stop.matched()) emit(r, r.stop.push(r.detok ? r.detok->flush() : std::string()) + r.stop.flush(), -1);
    r.done = true;
    r.reason = why;
  }

  // Finished requests: build each response, hand it to the channel, forget the request.
  void answer_finished() {
    publish_stats();
    for (request* r : finished_now_) {
      ++finished_;
      if (r->channel) r->channel->complete(make_response(*r));
      live_.erase(r->id);
    }
    finished_now_.clear();
  }

  // Sample 0's output and, with n > 1, every sample's. An error in any sample (a stream callback
  // that threw) is the request's; so is a cancellation that ended samples still running.
  response make_response(const request& r) const {
    response x;
    x.prompt_length = r.prompt_len ? r.prompt_len : std::int64_t(r.tokens.size());
    x.finish_reason = r.reason;
    x.error = r.error;
    for (const auto& s : r.siblings) {
      if (s->reason == generation_finish_reason::error && x.finish_reason != generation_finish_reason::error) {
        x.finish_reason = s->reason;
        x.error = s->error;
      } else if (s->reason == generation_finish_reason::cancelled && x.finish_reason != generation_finish_reason::error) {
        x.finish_reason = s->reason;
      }
    }
    if (x.finish_reason != generation_finish_reason::error && output_rank()) {
      const sample_output first = output_of(r);
      x.token_ids = first.token_ids;
      x.generated_length = first.generated_length;
      x.generated_text = first.generated_text;
      x.logprobs = first.logprobs;
      x.prompt_logprobs = r.prompt_logprobs_out;
      if (r.forked()) {
        x.samples.push_back(first);
        for (const auto& s : r.siblings) x.samples.push_back(output_of(*s));
      }
    }
    return x;
  }

  sample_output output_of(const request& r) const {
    sample_output o;
    o.index = std::size_t(r.sample_index);
    o.token_ids.assign(r.tokens.begin() + std::ptrdiff_t(r.prompt_len), r.tokens.end());
    o.generated_length = std::int64_t(o.token_ids.size());
    o.finish_reason = r.reason;
    std::string prompt = r.prompt_text;
    if (r.return_full_text && prompt.empty() && tok_)  // a prompt given as ids
      prompt = tok_->decode(std::span(r.tokens).first(std::size_t(r.prompt_len)), /*skip_special_tokens=*/true);
    o.generated_text = r.return_full_text ? prompt + r.text : r.text;
    o.logprobs = r.token_logprobs_out;
    return o;
  }


  // Row `row`'s logit edits for request r: transformers' repetition penalty on every token of
  // the prompt and the output, then OpenAI's presence and frequency penalties on the output's
  // tokens and the logit biases, added. One edit per token.
  void add_edits(const request& r, std::int32_t row) {
    const std::size_t first = edits_.size();
    auto edit_for = [&](token_id t) -> logit_edit& {
      for (std::size_t i = first; i < edits_.size(); ++i)
        if (edits_[i].token == t) return edits_[i];
      return edits_.emplace_back(logit_edit{row, t});
    };
    if (r.repetition_penalty != 1.0f) {
      auto penalize = [&](token_id t) {
        logit_edit& e = edit_for(t);
        e.scale_pos = 1.0f / r.repetition_penalty;
        e.scale_neg = r.repetition_penalty;
      };
      for (token_id t : r.prompt_vocabulary) penalize(t);
      for (const auto& [t, n] : r.output_counts)
        if (!std::binary_search(r.prompt_vocabulary.begin(), r.prompt_vocabulary.end(), t)) penalize(t);
    }
    if (r.presence_penalty != 0.0f || r.frequency_penalty != 0.0f)
      for (const auto& [t, n] : r.output_counts) edit_for(t).add -= r.presence_penalty + r.frequency_penalty * float(n);
    for (const auto& [t, bias] : r.logit_bias) edit_for(t).add += bias;
  }

  void record_logprobs(request& r, std::size_t i, std::int32_t top_n, token_id sampled) {
    r.token_logprobs_out.push_back(logprobs_entry(logprobs_, i, top_n, r.logprobs, sampled));
  }

  // Row `row` of a summary with `top_n` alternatives per row as the entry of `token`: its
  // log-probability and the first `wanted` alternatives (fewer where the vocabulary ran out).
  static token_logprobs logprobs_entry(const sampled_logprobs& s, std::size_t row, std::int32_t top_n,
                                       std::int32_t wanted, token_id token) {
    token_logprobs out;
    out.token = token;
    const float lse = s.lse[row];
    out.logprob = s.sampled[row] - lse;
    for (std::int32_t k = 0; k < wanted; ++k) {
      const std::size_t at = row * std::size_t(top_n) + std::size_t(k);
      if (s.top_ids[at] < 0) break;
      out.top.emplace_back(s.top_ids[at], s.top_logits[at] - lse);
    }
    return out;
  }

  model_config cfg_;
  Comm comm_;
  std::unique_ptr<context> ctx_;
  std::unique_ptr<model_runner<Model, Backend, Comm>> runner_;
  std::optional<tokenizer> tok_;
  engine_limits limits_;
  std::size_t max_prompt_bytes_ = std::numeric_limits<std::size_t>::max();
  std::unique_ptr<scheduler> sched_;
  std::unordered_map<std::uint64_t, std::unique_ptr<request>> live_;  // added, not yet answered
  std::deque<request*> queued_;        // added, waiting for room under max_tracked_sequences
  std::vector<request*> finished_now_;  // done, to be answered at the end of the step
  std::vector<cancel_order> callback_failures_;
  std::int64_t tracked_ = 0;
  std::uint64_t next_own_id_ = 1;
  std::int64_t steps_ = 0, finished_ = 0, prompt_tokens_ = 0, generated_tokens_ = 0;
  std::vector<step_chunk> chunks_;
  std::vector<sample_params> params_;
  std::vector<logit_edit> edits_;
  std::vector<std::int32_t> logprob_rows_;
  sampled_logprobs logprobs_;
  std::vector<std::int32_t> prompt_rows_, prompt_targets_;  // prompt_logprobs: rows and the tokens they predict
  sampled_logprobs prompt_logprobs_;
  std::int32_t prompt_top_n_ = 0;
  mutable std::mutex stats_mutex_;
  engine_stats stats_;
};

}  // namespace mii::runtime

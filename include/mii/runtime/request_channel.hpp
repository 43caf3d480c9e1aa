// One submitted request's way back to its caller: the engine thread pushes text deltas and, at
// the end, the response; any number of caller threads wait on it, pull deltas or cancel.
//
//   mii::request_handle h = pipe.submit("DeepSpeed is", {.max_new_tokens = 64});
//   while (auto d = h.next()) std::cout << d->text << std::flush;   // pull streaming
//   mii::response r = h.get();                                      // or just wait
//
// The channel is shared (shared_ptr) by the engine and the handles, so either may go first: a
// handle outliving its pipeline still holds the response (or a cancelled one if the pipeline
// was destroyed before the request ended).
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <mii/config.hpp>

namespace mii {

// New output of one request since the last pull. With generate_params.n > 1 a delta holds one
// sample's output (`sample`); the samples' deltas come in index order when several have some.
struct output_delta {
  std::string text;                 // may be empty (a token that completes no character yet)
  std::vector<token_id> token_ids;  // the tokens sampled since the last pull
  std::vector<token_logprobs> logprobs;  // theirs, when generate_params.logprobs is set
  bool finished = false;            // the last delta of the request
  generation_finish_reason finish_reason = generation_finish_reason::none;  // with finished or sample_finished
  std::size_t sample = 0;           // generate_params.n > 1: whose output this is
  bool sample_finished = false;     // n > 1: that sample ended (finish_reason says why)
  std::vector<token_logprobs> prompt_logprobs;  // generate_params.prompt_logprobs: in the first delta after they are known
};

// When a request passed through the engine (steady clock), for latency figures.
struct request_timing {
  using time_point = std::chrono::steady_clock::time_point;
  time_point submitted{};    // submit() called
  time_point first_token{};  // first token sampled (unset when none was)
  time_point finished{};     // response complete
};

namespace runtime {

class request_channel {
 public:
  using cancel_fn = std::function<void(std::uint64_t)>;
  request_channel(std::uint64_t id, std::size_t prompt_index, stream_callback stream, cancel_fn on_cancel);

  std::uint64_t id() const { return id_; }
  std::size_t prompt_index() const { return prompt_index_; }

  // ---- engine thread ----
  // Text and the token that produced it (token -1: text flushed at the end, no new token), with
  // the token's log-probabilities when asked for, for sample `sample` of the request. Calls the
  // request's stream callback, then wakes pullers.
  void push(std::string_view text, token_id token, const token_logprobs* logprobs = nullptr, std::size_t sample = 0);
  // generate_params.n > 1: sample `sample` ended (the request goes on until every sample has).
  void end_sample(std::size_t sample, generation_finish_reason why);
  // generate_params.prompt_logprobs, once all are known.
  void push_prompt_logprobs(const std::vector<token_logprobs>& lps);
  // The final response, then the stream callback's final event, then waiters wake: get()
  // returns only after every event of the request ran (inside the callback it returns at once).
  void complete(response r);

  // ---- any thread ----
  bool done() const;
  response wait() const;  // blocks until complete; a copy
  bool wait_for(std::chrono::steady_clock::duration d) const;
  // Everything pushed since the last call, merged; blocks until there is something or the
  // request ended (then the finished delta, once; later calls return nullopt). With a timeout,
  // an empty unfinished delta means "nothing yet".
  std::optional<output_delta> next(std::optional<std::chrono::steady_clock::duration> timeout = std::nullopt);
  // Asks the engine to end the request (finish_reason cancelled) and free its KV blocks at the
  // next step. Idempotent; a request that already ended keeps its response.
  void cancel();
  bool cancel_requested() const { return cancel_.load(std::memory_order_relaxed); }
  request_timing timing() const;

 private:
  const std::uint64_t id_;
  const std::size_t prompt_index_;
  stream_callback stream_;
  cancel_fn on_cancel_;
  std::atomic<bool> cancel_{false};
  mutable std::mutex m_;
  mutable std::condition_variable cv_;
  // What pullers have not taken yet, per sample (one entry unless generate_params.n > 1).
  struct pending_output {
    std::string text;
    std::vector<token_id> tokens;
    std::vector<token_logprobs> logprobs;
    bool ended = false;  // end_sample() came and no delta has said so yet
    generation_finish_reason why = generation_finish_reason::none;
    bool empty() const { return text.empty() && tokens.empty() && !ended; }
  };
  std::vector<pending_output> pending_{1};
  std::vector<token_logprobs> pending_prompt_logprobs_;
  pending_output& pending_for(std::size_t sample);  // with m_ held
  bool nothing_pending() const;                     // with m_ held
  bool visible() const;  // with m_ held

  bool done_ = false, published_ = false, end_pulled_ = false;
  std::thread::id completing_thread_;
  response response_;
  request_timing timing_;
};

}  // namespace runtime

// The caller's side of a submitted request (pipeline.submit). Copies share one request. Every
// member is safe to call from any thread.
class request_handle {
 public:
  request_handle() = default;
  explicit request_handle(std::shared_ptr<runtime::request_channel> ch) : ch_(std::move(ch)) {}

  bool valid() const { return ch_ != nullptr; }
  std::uint64_t id() const { return ch_->id(); }
  // Blocks until the request ends; its response (finish_reason error or cancelled included).
  response get() const { return ch_->wait(); }
  template <class Rep, class Period>
  bool wait_for(const std::chrono::duration<Rep, Period>& d) const {
    return ch_->wait_for(std::chrono::duration_cast<std::chrono::steady_clock::duration>(d));
  }
  bool done() const { return ch_->done(); }
  // Pull streaming (see request_channel::next).
  std::optional<output_delta> next() { return ch_->next(); }
  template <class Rep, class Period>
  std::optional<output_delta> next_for(const std::chrono::duration<Rep, Period>& d) {
    return ch_->next(std::chrono::duration_cast<std::chrono::steady_clock::duration>(d));
  }
  void cancel() { ch_->cancel(); }
  request_timing timing() const { return ch_->timing(); }

 private:
  std::shared_ptr<runtime::request_channel> ch_;
};

}  // namespace mii

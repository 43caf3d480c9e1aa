// One HTTP request's generation: the engine requests of its prompts (one choice each) and the
// way their output reaches the connection.
//
// The engine calls each request's stream callback on its own thread, for every token; the job
// only records the delta under its lock and, unless one is already pending, posts one flush to
// the connection's strand. So the engine thread never waits on a socket, and a burst of tokens
// that arrives while a flush is pending goes out as one write. The flush (on the strand) turns
// the deltas into SSE chunks, or, for a non-streamed request, waits for every choice to end and
// replies once.
//
// Lifetime: the connection owns the job while the exchange runs; the engine's callbacks hold
// only a weak reference, so a connection that goes away takes its job with it, and the job's
// destructor cancels whatever still runs (its KV blocks are freed at the engine's next step).
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <mii/config.hpp>
#include <mii/runtime/request_channel.hpp>

#include "serve/exchange.hpp"
#include "serve/metrics.hpp"
#include "serve/responses.hpp"

namespace mii::serve {

enum class api_kind { completion, chat, mii };

// Server-wide state a job reports to. Shared with the engine's callbacks, which may run after the
// server is gone (a request cancelled at the very end).
struct job_context {
  std::atomic<std::int64_t> in_flight{0};  // engine requests submitted and not yet ended
  server_metrics* metrics = nullptr;  // used on connection strands only, while the server runs
};

struct job_setup {
  api_kind kind = api_kind::completion;
  bool stream = false;
  bool include_usage = false;
  openai_meta meta;                // id, created, model (OpenAI kinds)
  std::vector<std::string> echo;   // per choice: text written before the completion (echo)
  std::vector<std::int64_t> prompt_tokens;  // per choice
  bool logprobs = false;                  // the answer carries log-probabilities (OpenAI shapes)
  const tokenizer* tok = nullptr;         // for the tokens' texts in them (null: "token_id:N")
};

class generation_job : public std::enable_shared_from_this<generation_job> {
 public:
  generation_job(job_setup setup, std::weak_ptr<response_sink> sink, std::shared_ptr<job_context> ctx);
  ~generation_job();
  generation_job(const generation_job&) = delete;
  generation_job& operator=(const generation_job&) = delete;

  std::size_t choices() const { return choices_.size(); }
  // The stream callback to submit choice i with (it runs on the engine thread). The caller has
  // counted the request in ctx->in_flight; the callback's final event uncounts it.
  stream_callback callback(std::size_t i);
  // The handle submit() returned for choice i. Call on the strand, before start().
  void attach(std::size_t i, request_handle h);
  // Every choice is submitted: a streamed answer begins (role chunks, echoed prompts).
  void start();
  // Ends every engine request of the job (idempotent, any thread).
  void cancel();

 private:
  struct choice {
    request_handle handle;
    std::string pending_text;             // engine thread -> strand, under m_
    std::vector<token_id> pending_tokens;
    std::vector<token_logprobs> pending_logprobs;
    std::int64_t text_offset = 0;         // strand: completions' text_offset of the next token
    bool finished = false;                // the engine's final event arrived (under m_)
    bool reported = false;                // its final chunk / response is written (strand)
    response result;                      // strand, once reported
  };

  void on_event(std::size_t i, const stream_event& ev);  // engine thread
  void flush();                                           // strand
  void finish_choice(std::size_t i, std::string& out);    // strand: the choice's end
  void reply_whole(response_sink& sink);                  // strand: non-streamed answer
  exchange_summary summary(int status) const;
  void stream_error(std::string& out, const std::string& message);

  job_setup setup_;
  std::weak_ptr<response_sink> sink_;
  std::shared_ptr<job_context> ctx_;
  std::mutex m_;
  std::vector<choice> choices_;
  bool flush_posted_ = false;  // under m_
  bool ended_ = false;         // strand: the exchange's answer is complete
  bool failed_ = false;        // strand: an error chunk was sent
};

}  // namespace mii::serve

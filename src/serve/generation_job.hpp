// One HTTP request's generation: the engine requests of its prompts (n choices each: the
// samples of generate_params.n) and the way their output reaches the connection.
//
// The engine calls each request's stream callback on its own thread, for every token; the job
// only records the delta under its lock and, unless one is already pending, posts one flush to
// the connection's strand. So the engine thread never waits on a socket, and a burst of tokens
// that arrives while a flush is pending goes out as one write. The flush (on the strand) turns
// the deltas into SSE chunks, or, for a non-streamed request, waits for every prompt to end and
// replies once.
//
// Choices are numbered as OpenAI and vLLM number them: prompt p's sample k is choice p * n + k.
//
// Lifetime: the connection owns the job while the exchange runs; the engine's callbacks hold
// only a weak reference, so a connection that goes away takes its job with it, and the job's
// destructor cancels whatever still runs (its KV blocks are freed at the engine's next step).
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
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
  std::vector<std::string> echo;   // per prompt: text written before each of its completions (echo)
  std::vector<std::int64_t> prompt_tokens;  // per prompt
  std::vector<token_id> first_tokens;     // per prompt: its first token (echo_logprobs)
  std::size_t n = 1;                      // choices per prompt (generate_params.n)
  bool logprobs = false;                  // the answer carries log-probabilities (OpenAI shapes)
  // Completions with echo and logprobs: the prompt's tokens lead each choice's logprobs (this many
  // alternatives each), as OpenAI's legacy API did.
  std::optional<std::int32_t> echo_logprobs;
  // vLLM's prompt_logprobs field (this many alternatives): per choice for completions, top level for chat.
  std::optional<std::int32_t> prompt_logprobs;
  const tokenizer* tok = nullptr;         // for the tokens' texts in them (null: "token_id:N")
};

class generation_job : public std::enable_shared_from_this<generation_job> {
 public:
  generation_job(job_setup setup, std::weak_ptr<response_sink> sink, std::shared_ptr<job_context> ctx);
  ~generation_job();
  generation_job(const generation_job&) = delete;
  generation_job& operator=(const generation_job&) = delete;

  std::size_t prompts() const { return prompts_.size(); }
  // The stream callback to submit prompt i with (it runs on the engine thread). The caller has
  // counted the request in ctx->in_flight; the callback's final event uncounts it.
  stream_callback callback(std::size_t i);
  // The handle submit() returned for prompt i. Call on the strand, before start().
  void attach(std::size_t i, request_handle h);
  // Every prompt is submitted: a streamed answer begins (role chunks, echoed prompts).
  void start();
  // Ends every engine request of the job (idempotent, any thread).
  void cancel();

 private:
  // One engine request (a prompt).
  struct prompt_state {
    request_handle handle;
    bool finished = false;                      // its final event arrived (under m_)
    bool reported = false;                      // strand: its result is read
    response result;                            // strand, once reported
    std::optional<std::vector<token_logprobs>> prompt_logprobs;  // under m_, once streamed
  };
  // One choice (a sample of a prompt).
  struct choice {
    std::string pending_text;             // engine thread -> strand, under m_
    std::vector<token_id> pending_tokens;
    std::vector<token_logprobs> pending_logprobs;
    std::optional<generation_finish_reason> ended;  // its sample ended (n > 1), under m_
    std::int64_t text_offset = 0;         // strand: completions' text_offset of the next token
    bool opened = false;                  // strand: its first chunk is written (echo, prompt logprobs)
    bool reported = false;                // strand: its final chunk is written
  };

  void on_event(std::size_t prompt, const stream_event& ev);  // engine thread
  void flush();                                               // strand
  void read_result(std::size_t prompt);                       // strand: the prompt's response
  void open_choice(std::size_t c, const std::vector<token_logprobs>* prompt_lps, std::string& out);  // strand
  void end_choice(std::size_t c, generation_finish_reason why, std::string& out);                  // strand
  void reply_whole(response_sink& sink);                      // strand: non-streamed answer
  std::string prompt_logprobs_for(std::size_t prompt, const std::vector<token_logprobs>& lps) const;
  std::string logprobs_for(std::size_t prompt, const std::vector<token_logprobs>& lps,
                           const std::vector<token_logprobs>* prompt_lps, std::int64_t text_offset) const;
  exchange_summary summary(int status) const;
  void stream_error(std::string& out, const std::string& message);

  job_setup setup_;
  std::weak_ptr<response_sink> sink_;
  std::shared_ptr<job_context> ctx_;
  std::mutex m_;
  std::vector<prompt_state> prompts_;
  std::vector<choice> choices_;  // prompts_.size() * n
  bool flush_posted_ = false;  // under m_
  bool ended_ = false;         // strand: the exchange's answer is complete
  bool failed_ = false;        // strand: an error chunk was sent
};

}  // namespace mii::serve

// The client side of mii-serve's benchmarks (mii-serve-load, mii-serve-overhead): one blocking
// keep-alive HTTP/1.1 connection, and the streamed /v1/completions exchange they both time --
// request sent, first chunk carrying a choice (the first token), `data: [DONE]` (the end).
// Timestamps are taken as the bytes arrive; everything else (the usage chunk's JSON) is read
// after the end, so that the client's own parsing stays out of the times it reports.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include <mii/config.hpp>

namespace mii::serve {

struct http_target {
  std::string host, port;
};
// "http://host[:port][/...]"; throws mii::error naming `url` otherwise.
http_target parse_http_url(const std::string& url);

// One keep-alive connection (TCP_NODELAY, as the server sets it), blocking calls.
class http_connection {
 public:
  // Connects; throws (boost::system::system_error) when nothing answers.
  explicit http_connection(const http_target& target);
  ~http_connection();
  http_connection(const http_connection&) = delete;
  http_connection& operator=(const http_connection&) = delete;

  // Sends `method` (GET, POST) `path` with a JSON `body`, then reads the answer; `on_piece` gets
  // the body as it arrives, one read at a time. Returns the HTTP status.
  int call(std::string_view method, const std::string& path, const std::string& body, const std::string& api_key,
           const std::function<void(std::string_view)>& on_piece);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// A streamed /v1/completions body: token-id prompt, greedy (temperature 0), ignore_eos, exactly
// `max_tokens` generated, stream with include_usage (the last chunk says how many were generated).
std::string completion_body(const std::string& model, std::span<const token_id> prompt, std::int64_t max_tokens);

// What one streamed completion showed its client.
struct stream_timing {
  using clock = std::chrono::steady_clock;
  clock::time_point sent;         // just before the request was written
  clock::time_point first_token;  // the read that completed the first chunk with a choice
  clock::time_point finished;     // the read that completed `data: [DONE]`
  bool got_first_token = false;
  bool done = false;              // the stream ended with data: [DONE]
  int status = 0;
  std::int64_t completion_tokens = -1;  // the usage chunk's count; -1 when there was none
  std::string error;              // empty when status 200, [DONE] and no error event
};

// POSTs `body` (a streamed completion, e.g. completion_body's) to /v1/completions on `c`.
// Network failures throw; an answer that is not a clean stream comes back with `error` set.
stream_timing stream_completion(http_connection& c, const std::string& body, const std::string& api_key);

// The served model's name from GET /v1/models (its first entry).
std::string served_model_name(http_connection& c, const std::string& api_key, const std::string& url_for_errors);

}  // namespace mii::serve

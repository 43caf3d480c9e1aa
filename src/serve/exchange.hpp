// One HTTP request and its answer, as the handlers see them: no Beast types, so that routing and
// generation jobs stay testable and quick to compile. http_session (the Beast side) implements
// response_sink.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace mii::serve {

struct incoming_request {
  std::string method;         // "GET", "POST"...
  std::string target;         // path and query, as sent
  std::string authorization;  // the Authorization header, or empty
  std::string body;
};

struct http_reply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra ones (Retry-After, Allow)
  bool close = false;  // end the connection after this answer
};

// What the request log line and the metrics say about a finished exchange.
struct exchange_summary {
  int status = 200;
  std::int64_t prompt_tokens = -1;      // -1: not a generation request
  std::int64_t completion_tokens = -1;
};

// The connection side of a request in progress. post() may be called from any thread while the
// sink is alive; every other member only inside a function run by post() (the connection's
// strand), where no other member runs at the same time.
class response_sink {
 public:
  virtual ~response_sink() = default;
  // Runs fn on the connection's strand.
  virtual void post(std::function<void()> fn) = 0;
  // The whole answer; ends the exchange.
  virtual void reply(http_reply r, exchange_summary s) = 0;
  // A 200 text/event-stream answer, sent in chunks as stream_write() supplies them.
  virtual void stream_begin() = 0;
  virtual void stream_write(std::string data) = 0;
  // The last chunk; ends the exchange.
  virtual void stream_end(exchange_summary s) = 0;
  // The client closed the connection (or a write timed out): nothing more will reach it.
  virtual bool gone() const = 0;
};

}  // namespace mii::serve

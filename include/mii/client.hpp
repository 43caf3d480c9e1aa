// mii::client: generation from a running mii-serve, for C++ programs that do not want to write
// HTTP code -- the counterpart of DeepSpeed-MII's `mii.client(deployment).generate(...)`.
//
//   mii::client c("http://127.0.0.1:8000", {.api_key = "..."});
//   std::vector<mii::response> out = c.generate({"DeepSpeed is", "Seattle is"}, {.max_new_tokens = 64});
//   c.generate_stream("DeepSpeed is", {.max_new_tokens = 64},
//                     [](const mii::stream_event& e) { std::cout << e.text << std::flush; });
//
// Requests go to the server's DeepSpeed-MII REST endpoint, POST /mii/{deployment}, with every
// generate_params field under MII's name, so a call means what the same call on a local
// mii::pipeline means (defaults included: max_length 1024, top_p 0.9, sampling on). Streaming
// uses mii-serve's server-sent-events extension of that endpoint. token_ids in the responses
// are empty (MII's REST responses do not carry them); streamed events carry them.
//
// Thread-safe: any number of threads may call one client at once; it keeps a small pool of
// keep-alive connections. Plain http:// only (put a TLS proxy in front for anything else).
#pragma once
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <mii/config.hpp>
#include <mii/error.hpp>

namespace mii {

// The server answered with an error status: status() is the HTTP status (400 for an invalid
// parameter, 401 for a bad key, 404 for an unknown deployment, 503 when busy or shutting down),
// what() says "HTTP <status> from <url>: <the server's message>".
struct http_error : error {
  http_error(int status, const std::string& message) : error(message), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

struct client_options {
  std::string api_key;     // sent as "Authorization: Bearer <key>" when not empty
  std::string deployment;  // /mii/{deployment}; empty: the model the server serves (GET /v1/models)
  // Longest wait for the server to accept a connection, take a request, or send the next piece of
  // an answer (a streamed answer may take longer in all, as long as it keeps coming).
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
};

class client {
 public:
  // `url`: "http://host:port" (a path prefix is allowed: "http://host:port/prefix"). Does not
  // connect yet. Throws mii::error for a URL it cannot use.
  explicit client(std::string_view url, client_options options = {});
  ~client();
  client(client&&) noexcept;
  client& operator=(client&&) noexcept;

  // One response per prompt, in order. p.stream, when set, receives the deltas of every prompt
  // (stream_event::prompt_index says which) on the calling thread. Throws http_error when the
  // server refuses the request, mii::error when it cannot be reached.
  std::vector<response> generate(const std::vector<std::string>& prompts, const generate_params& p = {}) const;
  response generate(std::string_view prompt, const generate_params& p = {}) const;
  // One prompt, streamed: `on_event` gets each piece of text as the server sends it (text, the
  // last token of the piece), then a final event with the finish reason. Throwing from it
  // closes the connection, which cancels the request on the server.
  response generate_stream(std::string_view prompt, const generate_params& p, const stream_callback& on_event) const;

  // The deployment requests go to (asks the server on first use when not given).
  std::string deployment() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace mii

// mii-serve's HTTP server: a listening socket, a pool of I/O threads running Boost.Asio, and the
// service (endpoints) over one pipeline. The engine keeps its own thread; the I/O threads only
// parse, tokenize, render chat templates and write.
//
//   auto pipe = mii::pipeline(dir, cfg);
//   mii::serve::server srv(pipe, mii::chat_template::find(dir), {.port = 0, ...});
//   std::cout << srv.url();          // http://127.0.0.1:<the port picked>
//   ...
//   srv.shutdown(std::chrono::seconds(30));   // graceful; the destructor does it with no grace
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <mii/chat.hpp>
#include <mii/pipeline.hpp>

#include "serve/service.hpp"

namespace mii::serve {

struct server_options {
  std::string host = "127.0.0.1";  // loopback unless told otherwise
  std::uint16_t port = 8000;       // 0: any free port (see port())
  int http_threads = 4;
  std::size_t max_body_bytes = 8u << 20;    // larger bodies: 413
  std::size_t max_header_bytes = 16u << 10; // larger headers: 431
  std::chrono::milliseconds read_timeout{60'000};
  std::chrono::milliseconds write_timeout{60'000};
  std::function<void(const std::string&)> log;  // one line per request; empty: silent
  service_options service;
};

class server {
 public:
  // Binds and starts serving; throws mii::error naming the address when it cannot listen.
  server(generation_pipeline& pipe, std::optional<chat_template> chat, server_options opts);
  // shutdown() with no grace period, if it has not run.
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  std::uint16_t port() const { return port_; }
  std::string url() const;
  service& svc() { return svc_; }

  // Stops accepting connections, answers /health with 503 and new generation requests with 503,
  // lets the requests in flight finish for up to `grace`, cancels the rest, sends what is left
  // to send (a few seconds at most), and stops the I/O threads. Idempotent; blocks.
  void shutdown(std::chrono::milliseconds grace);
  // From another thread during shutdown(): stop waiting for the requests in flight now.
  void cut_grace_short() { cut_short_.store(true); }

 private:
  struct impl;
  server_options opts_;
  service svc_;
  std::unique_ptr<impl> impl_;
  std::uint16_t port_ = 0;
  std::once_flag shutdown_once_;
  std::atomic<bool> cut_short_{false};
};

}  // namespace mii::serve

// One client connection, on Boost.Beast: reads requests (with size limits and a deadline), hands
// them to the service, and writes the answers -- whole, or as a chunked text/event-stream.
//
// While a generation runs, a read stays pending on the socket: it is how a client that goes
// away is noticed (EOF or a reset), and its request is then cancelled so that its KV blocks are
// freed. Bytes that arrive meanwhile (a pipelined next request) are kept for the next parse.
#pragma once
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "serve/exchange.hpp"
#include "serve/service.hpp"

namespace mii::serve {

// What every connection of one server shares.
struct session_env {
  service& svc;
  std::size_t max_body_bytes = 8u << 20;
  std::size_t max_header_bytes = 16u << 10;
  std::chrono::milliseconds read_timeout{60'000};   // the next request must arrive whole within it
  std::chrono::milliseconds write_timeout{60'000};  // each write must be taken by the client within it
  std::function<void(const std::string&)> log;      // one line per exchange; empty: no log
  std::atomic<int> active_exchanges{0};             // requests read and not yet fully answered

  // Every connection, so that shutdown can close the idle ones (and their sockets go with the
  // server, not with its destructor).
  std::mutex sessions_m;
  std::vector<std::weak_ptr<class http_session>> sessions;  // under sessions_m
  std::atomic<int> open_sessions{0};
};

class http_session final : public response_sink, public std::enable_shared_from_this<http_session> {
 public:
  http_session(boost::asio::ip::tcp::socket&& socket, session_env& env);
  ~http_session() override;
  void start();
  // Closes the connection on its strand (server shutdown; requests have ended by then).
  void close_from_server();

  // response_sink (see exchange.hpp)
  void post(std::function<void()> fn) override;
  void reply(http_reply r, exchange_summary s) override;
  void stream_begin() override;
  void stream_write(std::string data) override;
  void stream_end(exchange_summary s) override;
  bool gone() const override { return gone_; }

 private:
  using request_parser = boost::beast::http::request_parser<boost::beast::http::string_body>;

  void read_request();
  void on_header(boost::beast::error_code ec);
  void read_body();
  void on_body(boost::beast::error_code ec);
  void refuse_unreadable(boost::beast::error_code ec);  // a request that cannot be read: 4xx, close
  void dispatch();
  void send(http_reply r, exchange_summary s);
  void end_exchange(const exchange_summary& s);
  void watch();
  void on_watch(boost::beast::error_code ec, std::size_t n);
  void client_gone();
  void pump();
  void on_stream_written(boost::beast::error_code ec);
  void close();
  void linger_close();  // answer sent with input left unread: drain a little, then close
  void drain();
  void finish_active();  // the exchange is over (answered, or its client left)
  void log_exchange(const exchange_summary& s);

  boost::beast::tcp_stream stream_;
  session_env& env_;
  boost::beast::flat_buffer buffer_;
  std::optional<request_parser> parser_;
  std::string peer_;

  // The exchange in progress (strand only).
  bool exchange_active_ = false;
  bool keep_alive_ = true;
  std::string method_, target_;
  std::chrono::steady_clock::time_point started_;
  std::shared_ptr<generation_job> job_;
  bool watching_ = false;
  bool gone_ = false, closed_ = false;
  bool request_unread_ = false;  // refused before its end was read
  std::unique_ptr<std::array<char, 16384>> drain_buffer_;
  std::size_t drained_ = 0;

  // Streaming (strand only).
  std::unique_ptr<boost::beast::http::response<boost::beast::http::empty_body>> stream_head_;
  std::unique_ptr<boost::beast::http::response_serializer<boost::beast::http::empty_body>> stream_serializer_;
  std::string queued_, in_write_;
  bool writing_ = false, end_requested_ = false, last_chunk_sent_ = false;
  bool chunked_ = true;  // HTTP/1.0 clients get the stream unframed, ended by closing
  exchange_summary end_summary_;
};

}  // namespace mii::serve

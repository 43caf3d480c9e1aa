#include "serve/http_session.hpp"

#include <array>
#include <cstdio>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include "serve/responses.hpp"

namespace mii::serve {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;

namespace {

// Bytes of a pipelined next request kept while a generation runs; past this the connection
// stops reading (and so stops noticing a disconnect) until the answer is out.
constexpr std::size_t max_buffered_while_busy = 64u << 10;

constexpr std::string_view server_name = "mii-serve";

std::string format_ms(std::chrono::steady_clock::duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", std::chrono::duration<double, std::milli>(d).count());
  return buf;
}

}  // namespace

http_session::http_session(net::ip::tcp::socket&& socket, session_env& env) : stream_(std::move(socket)), env_(env) {
  env_.open_sessions.fetch_add(1);
  beast::error_code ec;
  const auto ep = stream_.socket().remote_endpoint(ec);
  if (!ec) peer_ = ep.address().to_string() + ":" + std::to_string(ep.port());
}

http_session::~http_session() {
  finish_active();
  env_.open_sessions.fetch_sub(1);
}

void http_session::start() {
  {
    const std::lock_guard lock(env_.sessions_m);
    std::erase_if(env_.sessions, [](const std::weak_ptr<http_session>& w) { return w.expired(); });
    env_.sessions.push_back(weak_from_this());
  }
  net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read_request(); });
}

void http_session::close_from_server() {
  net::post(stream_.get_executor(), [self = shared_from_this()] {
    if (self->job_) self->job_->cancel();
    self->job_.reset();
    self->finish_active();
    self->close();
  });
}

void http_session::post(std::function<void()> fn) { net::post(stream_.get_executor(), std::move(fn)); }

// ---- reading ------------------------------------------------------------------------------------

void http_session::read_request() {
  if (closed_) return;
  parser_.emplace();
  parser_->header_limit(std::uint32_t(std::min<std::size_t>(env_.max_header_bytes, UINT32_MAX)));
  parser_->body_limit(env_.max_body_bytes);
  // One deadline for the whole request, header and body: a client sending a byte a second
  // cannot hold the connection open for longer.
  stream_.expires_after(env_.read_timeout);
  http::async_read_header(stream_, buffer_, *parser_,
                          [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_header(ec); });
}

void http_session::on_header(beast::error_code ec) {
  if (ec) return refuse_unreadable(ec);
  exchange_active_ = true;
  env_.active_exchanges.fetch_add(1);
  started_ = std::chrono::steady_clock::now();
  const auto& req = parser_->get();
  method_ = std::string(req.method_string());
  target_ = std::string(req.target());
  // curl and others wait for "100 Continue" before sending a large body.
  const auto expect = req[http::field::expect];
  if (beast::iequals(expect, "100-continue")) {
    static const std::string continue_line = "HTTP/1.1 100 Continue\r\n\r\n";
    net::async_write(stream_, net::buffer(continue_line), [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->close();
      self->read_body();
    });
    return;
  }
  read_body();
}

void http_session::read_body() {
  http::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_body(ec); });
}

void http_session::on_body(beast::error_code ec) {
  if (ec) return refuse_unreadable(ec);
  dispatch();
}

void http_session::refuse_unreadable(beast::error_code ec) {
  // A client that closed, or went quiet, between requests: nothing to answer.
  if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == net::error::operation_aborted ||
      ec == net::error::connection_reset || ec == net::error::eof || closed_) {
    if (exchange_active_) log_exchange({.status = 408});  // gave up half way through a request
    finish_active();
    return close();
  }
  int status = 400;
  std::string message;
  if (ec == http::error::header_limit) {
    status = 431;
    message = "the request's header is larger than this server accepts (" + std::to_string(env_.max_header_bytes) +
              " bytes, --max-header-bytes)";
  } else if (ec == http::error::body_limit) {
    status = 413;
    message = "the request body is larger than this server accepts (" + std::to_string(env_.max_body_bytes) +
              " bytes, --max-body-bytes)";
  } else {
    message = "malformed HTTP request: " + ec.message();
  }
  if (!exchange_active_) {
    exchange_active_ = true;
    env_.active_exchanges.fetch_add(1);
    started_ = std::chrono::steady_clock::now();
  }
  keep_alive_ = false;  // the rest of the input cannot be trusted to start a request
  request_unread_ = true;
  send(http_reply{.status = status, .body = error_json(status, message), .close = true}, {.status = status});
}

void http_session::dispatch() {
  auto& req = parser_->get();
  keep_alive_ = req.keep_alive();
  incoming_request in{.method = method_,
                      .target = target_,
                      .authorization = std::string(req[http::field::authorization]),
                      .body = std::move(req.body())};
  service::outcome out = env_.svc.handle(in, shared_from_this());
  if (out.reply) {
    const int status = out.reply->status;
    return send(std::move(*out.reply), {.status = status});
  }
  job_ = std::move(out.job);
  // Started streams have already asked for writes; the watch read runs beside them.
  if (!closed_ && !watching_) watch();
}

// ---- noticing a client that leaves while its request runs -----------------------------------------

void http_session::watch() {
  watching_ = true;
  // No deadline on this read: a generation may take long. Only the read's timer is touched when
  // a write is pending (basic_stream keeps one timer per direction).
  stream_.expires_never();
  stream_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
    self->on_watch(ec, n);
  });
}

void http_session::on_watch(beast::error_code ec, std::size_t n) {
  watching_ = false;
  if (closed_) return;
  if (!ec) {
    buffer_.commit(n);
    if (!exchange_active_) return read_request();  // the answer went out meanwhile
    if (buffer_.size() < max_buffered_while_busy) watch();
    return;
  }
  // end_exchange cancelled this read to start the next one.
  if (ec == net::error::operation_aborted && !exchange_active_) return read_request();
  if (exchange_active_) return client_gone();
  close();
}

void http_session::client_gone() {
  if (gone_) return;
  gone_ = true;
  if (job_) job_->cancel();
  if (exchange_active_) {
    // 499: nginx's "client closed request"; the request was cancelled and its KV blocks freed.
    log_exchange({.status = 499});
    finish_active();
  }
  job_.reset();
  close();
}

// ---- whole answers --------------------------------------------------------------------------------

void http_session::reply(http_reply r, exchange_summary s) {
  if (closed_ || !exchange_active_) return;
  send(std::move(r), s);
}

void http_session::send(http_reply r, exchange_summary s) {
  auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(r.status),
                                                                 parser_ ? parser_->get().version() : 11);
  res->set(http::field::server, server_name);
  res->set(http::field::content_type, r.content_type);
  for (auto& [name, value] : r.headers) res->set(name, value);
  if (r.close || env_.svc.draining()) keep_alive_ = false;
  res->keep_alive(keep_alive_);
  res->body() = std::move(r.body);
  res->prepare_payload();
  s.status = r.status;
  stream_.expires_after(env_.write_timeout);
  http::async_write(stream_, *res, [self = shared_from_this(), res, s](beast::error_code ec, std::size_t) {
    if (ec) return self->client_gone();
    self->end_exchange(s);
  });
}

void http_session::end_exchange(const exchange_summary& s) {
  log_exchange(s);
  finish_active();
  job_.reset();
  stream_head_.reset();
  stream_serializer_.reset();
  end_requested_ = last_chunk_sent_ = false;
  if (!keep_alive_) return request_unread_ ? linger_close() : close();
  if (watching_) {
    // The watch read has no deadline; the next request's read has one. on_watch starts it.
    beast::error_code ignored;
    stream_.socket().cancel(ignored);
    return;
  }
  read_request();
}

// ---- streamed answers -----------------------------------------------------------------------------

void http_session::stream_begin() {
  if (closed_ || !exchange_active_) return;
  stream_head_ = std::make_unique<http::response<http::empty_body>>(http::status::ok, parser_->get().version());
  stream_head_->set(http::field::server, server_name);
  stream_head_->set(http::field::content_type, "text/event-stream");
  stream_head_->set(http::field::cache_control, "no-cache");
  stream_head_->set("X-Accel-Buffering", "no");  // proxies such as nginx: do not hold events back
  if (env_.svc.draining()) keep_alive_ = false;
  // HTTP/1.0 has no chunked encoding: the body runs until the connection closes.
  chunked_ = parser_->get().version() >= 11;
  if (!chunked_) keep_alive_ = false;
  stream_head_->keep_alive(keep_alive_);
  stream_head_->chunked(chunked_);
  stream_serializer_ = std::make_unique<http::response_serializer<http::empty_body>>(*stream_head_);
  writing_ = true;
  stream_.expires_after(env_.write_timeout);
  http::async_write_header(stream_, *stream_serializer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
    self->on_stream_written(ec);
  });
}

void http_session::stream_write(std::string data) {
  if (closed_ || !exchange_active_) return;
  queued_ += data;
  if (!writing_) pump();
}

void http_session::stream_end(exchange_summary s) {
  if (closed_ || !exchange_active_) return;
  end_summary_ = s;
  end_requested_ = true;
  if (!writing_) pump();
}

void http_session::pump() {
  if (closed_) return;
  if (!queued_.empty()) {
    in_write_.swap(queued_);
    queued_.clear();
    writing_ = true;
    stream_.expires_after(env_.write_timeout);
    auto done = [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_stream_written(ec); };
    if (chunked_) {
      net::async_write(stream_, http::make_chunk(net::buffer(in_write_)), std::move(done));
    } else {
      net::async_write(stream_, net::buffer(in_write_), std::move(done));
    }
    return;
  }
  if (end_requested_ && !last_chunk_sent_) {
    last_chunk_sent_ = true;
    if (!chunked_) return end_exchange(end_summary_);  // closes: that ends the body
    writing_ = true;
    stream_.expires_after(env_.write_timeout);
    net::async_write(stream_, http::make_chunk_last(),
                     [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_stream_written(ec); });
  }
}

void http_session::on_stream_written(beast::error_code ec) {
  writing_ = false;
  // A write that failed or timed out (a client that stopped reading): the client is gone.
  if (ec) return client_gone();
  if (last_chunk_sent_ && queued_.empty()) return end_exchange(end_summary_);
  pump();
}

// ---- closing --------------------------------------------------------------------------------------

void http_session::close() {
  if (closed_) return;
  closed_ = true;
  beast::error_code ignored;
  stream_.socket().shutdown(net::ip::tcp::socket::shutdown_both, ignored);
  stream_.close();
}

void http_session::linger_close() {
  // Closing with unread input makes the kernel send a reset, which can destroy the answer before
  // the client reads it (a 413 for a body it is still sending). Stop sending, read and drop what
  // comes for a moment, then close.
  beast::error_code ignored;
  stream_.socket().shutdown(net::ip::tcp::socket::shutdown_send, ignored);
  stream_.expires_after(std::chrono::seconds(2));
  drain_buffer_ = std::make_unique<std::array<char, 16384>>();
  drain();
}

void http_session::drain() {
  stream_.async_read_some(net::buffer(*drain_buffer_), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
    self->drained_ += n;
    if (ec || self->drained_ > (4u << 20)) return self->close();
    self->drain();
  });
}

void http_session::finish_active() {
  if (!exchange_active_) return;
  exchange_active_ = false;
  env_.active_exchanges.fetch_sub(1);
}

void http_session::log_exchange(const exchange_summary& s) {
  env_.svc.metrics().count_request(service::route_of(target_), s.status);
  if (!env_.log) return;
  std::string line = peer_ + " " + (method_.empty() ? "-" : method_.substr(0, 16)) + " " +
                     (target_.empty() ? "-" : target_.substr(0, 200)) + " " + std::to_string(s.status);
  if (s.prompt_tokens >= 0)
    line += " prompt_tokens=" + std::to_string(s.prompt_tokens) + " completion_tokens=" + std::to_string(s.completion_tokens);
  line += " " + format_ms(std::chrono::steady_clock::now() - started_) + " ms";
  env_.log(line);
}

}  // namespace mii::serve

// Shared by the serve suite: the demo model behind an in-process server on a free port, a chat
// template for it, and small HTTP clients (Beast, blocking, with timeouts) -- one that speaks
// HTTP properly and one that sends raw bytes, for malformed requests.
#pragma once
#include <array>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <mii/chat.hpp>
#include <mii/pipeline.hpp>

#include "fixtures.hpp"
#include "serve/server.hpp"
#include "test_files.hpp"

namespace mii::test {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

// Sizes the concurrency tests use: MII_SERVE_TEST_CLIENTS shrinks them under sanitizers
// (tools/ci-reliability.sh).
inline int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

inline model_config demo_config() {
  model_config c;
  c.backend = "host";
  c.host_threads = 1;  // the engine computes alone: the I/O threads stay responsive on 2 cores
  c.kv_block_size = 16;
  c.kv_cache_blocks = 512;
  c.show_progress = false;
  return c;
}

// A chat template for the demo model whose rendering of one user message is "<s>" + its content,
// so that a chat answer equals the completion of that content (mii-generate's prompt, BOS first).
inline constexpr const char* demo_chat_template =
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] + ' ' }}"
    "{% elif m['role'] == 'user' %}{{ m['content'] }}{% else %}{{ m['content'] + '</s>' }}{% endif %}{% endfor %}"
    "{% if messages[-1]['role'] == 'assistant' %}{{ raise_exception('the last message must not be the assistant\\'s') }}{% endif %}";

inline chat_template demo_template() {
  return chat_template::from_source(demo_chat_template, "demo chat template", R"({"bos_token": "<s>", "eos_token": "</s>"})");
}

// A pipeline over the demo model and a server over it, on a free port.
struct demo_server {
  explicit demo_server(serve::server_options opts = {}, bool with_chat = true)
      : pipe(mii::pipeline(fixture_dir("demo-llama"), demo_config())) {
    opts.port = 0;
    opts.http_threads = 2;
    if (opts.service.served_model_name.empty()) opts.service.served_model_name = "demo-llama";
    srv = std::make_unique<serve::server>(pipe, with_chat ? std::optional(demo_template()) : std::nullopt, opts);
  }
  std::uint16_t port() const { return srv->port(); }
  generation_pipeline pipe;
  std::unique_ptr<serve::server> srv;  // declared after pipe: goes first
};

struct http_result {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  bool keep_alive = false;
  std::string header(const std::string& lower_case_name) const {
    const auto it = headers.find(lower_case_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// One HTTP/1.1 connection to the test server (keep-alive across calls).
class http_client {
 public:
  explicit http_client(std::uint16_t port, std::chrono::seconds timeout = std::chrono::seconds(60))
      : timeout_(timeout), stream_(ioc_) {
    stream_.expires_after(timeout_);
    stream_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  }

  http_result call(http::verb verb, const std::string& target, const std::string& body = {},
                   const std::map<std::string, std::string>& headers = {}) {
    send(verb, target, body, headers);
    return receive();
  }
  http_result post(const std::string& target, const std::string& body, const std::map<std::string, std::string>& headers = {}) {
    return call(http::verb::post, target, body, headers);
  }
  http_result get(const std::string& target, const std::map<std::string, std::string>& headers = {}) {
    return call(http::verb::get, target, {}, headers);
  }

  void send(http::verb verb, const std::string& target, const std::string& body,
            const std::map<std::string, std::string>& headers = {}) {
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, "127.0.0.1");
    if (verb == http::verb::post) req.set(http::field::content_type, "application/json");
    for (const auto& [k, v] : headers) req.set(k, v);
    req.body() = body;
    req.prepare_payload();
    beast::error_code ec;
    run([&](auto&& done) { http::async_write(stream_, req, done); }, ec);
    if (ec) throw std::runtime_error("write failed: " + ec.message());
  }

  // The whole answer (a streamed one included).
  http_result receive() {
    http::response_parser<http::string_body> parser;
    parser.body_limit(std::uint64_t(1) << 30);
    beast::error_code ec;
    run([&](auto&& done) { http::async_read(stream_, buffer_, parser, done); }, ec);
    if (ec) throw std::runtime_error("read failed: " + ec.message());
    return result_of(parser.get());
  }

  // Reads the header of a streamed answer and then its body until `stop` returns true for the
  // text read so far (without finishing the answer).
  http_result receive_until(const std::function<bool(const std::string&)>& stop) {
    parser_.emplace();
    beast::error_code ec;
    run([&](auto&& done) { http::async_read_header(stream_, buffer_, *parser_, done); }, ec);
    if (ec) throw std::runtime_error("read failed: " + ec.message());
    std::string seen;
    while (!parser_->is_done() && !stop(seen)) {
      run([&](auto&& done) { http::async_read_some(stream_, buffer_, *parser_, done); }, ec);
      if (ec) throw std::runtime_error("read failed: " + ec.message());
      seen += parser_->get().body();
      parser_->get().body().clear();
    }
    http_result r = result_of(parser_->get());
    r.body = seen;
    return r;
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

  // True when the server closed the connection (EOF within `wait`).
  bool closed_by_server(std::chrono::milliseconds wait) {
    char byte;
    stream_.expires_after(wait);
    beast::error_code ec;
    run([&](auto&& done) { stream_.async_read_some(net::buffer(&byte, 1), done); }, ec);
    return ec == net::error::eof || ec == net::error::connection_reset;
  }

 private:
  template <class Start>
  void run(Start&& start, beast::error_code& ec) {
    stream_.expires_after(timeout_);
    bool finished = false;
    start([&](beast::error_code e, auto&&...) {
      ec = e;
      finished = true;
    });
    ioc_.restart();
    ioc_.run();
    if (!finished) ec = net::error::timed_out;
  }

  template <class Message>
  static http_result result_of(Message& m) {
    http_result r;
    r.status = int(m.result_int());
    for (const auto& f : m) {
      std::string name(f.name_string());
      for (auto& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
      r.headers[name] = std::string(f.value());
    }
    r.body = m.body();
    r.keep_alive = m.keep_alive();
    return r;
  }

  std::chrono::seconds timeout_;
  net::io_context ioc_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::response_parser<http::string_body>> parser_;
};

// Sends raw bytes, then reads until the server closes the connection or `wait` passes; what came back.
inline std::string raw_exchange(std::uint16_t port, const std::string& bytes,
                                std::chrono::milliseconds wait = std::chrono::milliseconds(5000)) {
  net::io_context ioc;
  beast::tcp_stream s(ioc);
  s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  std::string out;
  beast::error_code ec;
  s.expires_after(wait);
  net::async_write(s, net::buffer(bytes), [&](beast::error_code e, std::size_t) { ec = e; });
  ioc.run();
  ioc.restart();
  std::array<char, 4096> buf;
  std::function<void()> read_more = [&] {
    s.async_read_some(net::buffer(buf), [&](beast::error_code e, std::size_t n) {
      out.append(buf.data(), n);
      if (!e) read_more();
    });
  };
  s.expires_after(wait);
  read_more();
  ioc.run();
  return out;
}

// A JSON body, parsed (the document keeps the parser alive).
inline detail::json_document json_of(const std::string& text) { return detail::json_document::from_string(text, "answer"); }

// The data lines of a server-sent-events body, "[DONE]" included.
inline std::vector<std::string> sse_data(const std::string& body) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < body.size()) {
    const auto end = body.find("\n\n", pos);
    if (end == std::string::npos) break;
    const std::string event = body.substr(pos, end - pos);
    if (event.starts_with("data: ")) out.push_back(event.substr(6));
    pos = end + 2;
  }
  return out;
}

}  // namespace mii::test

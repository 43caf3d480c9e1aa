// mii::client (include/mii/client.hpp): Boost.Beast, one blocking call at a time per pooled
// connection. Each connection owns its io_context, so that a call runs its asynchronous
// operations -- which is what gives Beast's tcp_stream its timeouts -- on the calling thread.
#include <mii/client.hpp>

#include <mutex>
#include <optional>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "client/json_writer.hpp"
#include "io/json_reader.hpp"

namespace mii {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

struct endpoint_url {
  std::string host, port, prefix, text;
};

endpoint_url parse_url(std::string_view url) {
  endpoint_url u;
  u.text = std::string(url);
  constexpr std::string_view scheme = "http://";
  if (!url.starts_with(scheme)) {
    if (url.starts_with("https://"))
      fail("mii::client: '", url, "': https is not supported; put a TLS-terminating proxy in front or use http://");
    fail("mii::client: '", url, "' is not an http:// URL (expected http://host:port)");
  }
  std::string_view rest = url.substr(scheme.size());
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) u.prefix = std::string(rest.substr(slash));
  while (!u.prefix.empty() && u.prefix.back() == '/') u.prefix.pop_back();
  if (authority.empty()) fail("mii::client: '", url, "' has no host");
  if (authority.front() == '[') {  // [v6 address]:port
    const auto close = authority.find(']');
    if (close == std::string_view::npos) fail("mii::client: '", url, "': unclosed '[' in the host");
    u.host = std::string(authority.substr(1, close - 1));
    authority.remove_prefix(close + 1);
    if (!authority.empty() && authority.front() != ':') fail("mii::client: '", url, "': expected ':' after ']'");
    u.port = authority.empty() ? "80" : std::string(authority.substr(1));
  } else {
    const auto colon = authority.rfind(':');
    u.host = std::string(authority.substr(0, colon));
    u.port = colon == std::string_view::npos ? "80" : std::string(authority.substr(colon + 1));
  }
  if (u.host.empty() || u.port.empty() || u.port.find_first_not_of("0123456789") != std::string::npos)
    fail("mii::client: '", url, "': expected http://host:port");
  return u;
}

generation_finish_reason finish_reason_of(std::string_view s) {
  if (s == "stop") return generation_finish_reason::stop;
  if (s == "length") return generation_finish_reason::length;
  if (s == "error") return generation_finish_reason::error;
  if (s == "cancelled") return generation_finish_reason::cancelled;
  return generation_finish_reason::none;
}

response response_of(const detail::json_object& o) {
  response r;
  r.generated_text = o.require(o.get_string("generated_text"), "generated_text");
  r.prompt_length = o.get_int("prompt_length").value_or(0);
  r.generated_length = o.get_int("generated_length").value_or(0);
  r.finish_reason = finish_reason_of(o.get_string("finish_reason").value_or("none"));
  return r;
}

std::string request_body(const std::vector<std::string>& prompts, const generate_params& p) {
  detail::json_writer w;
  w.begin_object();
  w.key("prompts").begin_array();
  for (const auto& s : prompts) w.value(s);
  w.end_array();
  w.key("max_length").value(p.max_length);
  if (p.max_new_tokens) w.key("max_new_tokens").value(*p.max_new_tokens);
  w.key("min_new_tokens").value(p.min_new_tokens);
  w.key("ignore_eos").value(p.ignore_eos);
  w.key("return_full_text").value(p.return_full_text);
  w.key("do_sample").value(p.do_sample);
  w.key("top_p").value(p.top_p);
  if (p.top_k) w.key("top_k").value(*p.top_k);
  if (p.temperature) w.key("temperature").value(*p.temperature);
  if (!p.stop.empty()) {
    w.key("stop").begin_array();
    for (const auto& s : p.stop) w.value(s);
    w.end_array();
  }
  if (p.seed) w.key("seed").value(*p.seed);
  if (p.stream) w.key("stream").value(true);
  // mii's own parameters beyond MII's; sent only when set, so an older server is not asked for
  // what it does not know.
  if (p.min_p != 0.0) w.key("min_p").value(p.min_p);
  if (p.repetition_penalty != 1.0) w.key("repetition_penalty").value(p.repetition_penalty);
  if (p.presence_penalty != 0.0) w.key("presence_penalty").value(p.presence_penalty);
  if (p.frequency_penalty != 0.0) w.key("frequency_penalty").value(p.frequency_penalty);
  if (!p.logit_bias.empty()) {
    w.key("logit_bias").begin_object();
    for (const auto& [id, bias] : p.logit_bias) w.key(std::to_string(id)).value(bias);
    w.end_object();
  }
  // MII's Response has no place for log-probabilities: refused rather than silently dropped.
  if (p.logprobs) fail("mii::client: generate_params.logprobs is not carried by the /mii endpoint; use /v1/completions");
  w.end_object();
  return w.take();
}

// A failure before the server can have seen the request: worth one retry on a fresh connection
// when the pooled one was closed by the server while idle.
struct stale_connection {};

class connection {
 public:
  connection(const endpoint_url& u, std::chrono::milliseconds timeout) : url_(u), timeout_(timeout) {}

  bool reused = false;

  // Runs one asynchronous operation on this thread; its error.
  template <class Start>
  beast::error_code run(Start&& start) {
    beast::error_code result = net::error::would_block;
    start([&result](beast::error_code ec, auto&&...) { result = ec; });
    ioc_.restart();
    ioc_.run();
    return result;
  }

  void connect() {
    if (connected_) return;
    tcp::resolver resolver(ioc_);
    tcp::resolver::results_type endpoints;
    const auto ec_resolve = run([&](auto&& done) {
      resolver.async_resolve(url_.host, url_.port, [&endpoints, done](beast::error_code ec, tcp::resolver::results_type r) {
        endpoints = std::move(r);
        done(ec);
      });
    });
    if (ec_resolve) fail("mii::client: cannot resolve ", url_.host, ": ", ec_resolve.message());
    stream_.expires_after(timeout_);
    const auto ec = run([&](auto&& done) { stream_.async_connect(endpoints, [done](beast::error_code e, const tcp::endpoint&) { done(e); }); });
    if (ec) fail("mii::client: cannot connect to ", url_.text, ": ", ec.message());
    connected_ = true;
  }

  void write(http::request<http::string_body>& req) {
    stream_.expires_after(timeout_);
    const auto ec = run([&](auto&& done) { http::async_write(stream_, req, done); });
    if (ec) {
      if (reused) throw stale_connection{};
      fail("mii::client: sending the request to ", url_.text, " failed: ", ec.message());
    }
  }

  // Reads the answer: `on_header` gets the status, then `on_body` the body in pieces as they
  // arrive (a streamed answer piece by piece).
  template <class OnHeader, class OnBody>
  void read(OnHeader&& on_header, OnBody&& on_body) {
    http::response_parser<http::string_body> parser;
    parser.body_limit(std::uint64_t(1) << 32);
    stream_.expires_after(timeout_);
    auto ec = run([&](auto&& done) { http::async_read_header(stream_, buffer_, parser, done); });
    if (ec) {
      if (reused && (ec == http::error::end_of_stream || ec == net::error::connection_reset || ec == net::error::eof))
        throw stale_connection{};
      fail("mii::client: reading the answer from ", url_.text, " failed: ", ec.message());
    }
    on_header(int(parser.get().result_int()));
    while (!parser.is_done()) {
      stream_.expires_after(timeout_);
      ec = run([&](auto&& done) { http::async_read_some(stream_, buffer_, parser, done); });
      if (ec) fail("mii::client: reading the answer from ", url_.text, " failed: ", ec.message());
      std::string& body = parser.get().body();
      if (!body.empty()) {
        std::string piece;
        piece.swap(body);
        on_body(std::string_view(piece));
      }
    }
    keep_alive_ = parser.get().keep_alive();
  }

  bool reusable() const { return connected_ && keep_alive_; }

 private:
  const endpoint_url& url_;
  std::chrono::milliseconds timeout_;
  net::io_context ioc_;
  beast::tcp_stream stream_{ioc_};
  beast::flat_buffer buffer_;
  bool connected_ = false, keep_alive_ = false;
};

// "HTTP 400 from http://...: <message>": the server's error object, or its body when it is not one.
[[noreturn]] void throw_http_error(const endpoint_url& u, int status, const std::string& body) {
  std::string message = body.substr(0, 2000);
  try {
    const auto doc = detail::json_document::from_string(body, "answer");
    const auto root = detail::json_object::expect(doc.root(), doc.origin(), "");
    if (const auto err = root.get_object("error"))
      if (const auto m = err->get_string("message")) message = *m;
  } catch (const error&) {
  }
  throw http_error(status, "HTTP " + std::to_string(status) + " from " + u.text + ": " + message);
}

}  // namespace

struct client::impl {
  endpoint_url url;
  client_options options;
  mutable std::mutex m;
  std::vector<std::unique_ptr<connection>> idle;  // under m
  std::optional<std::string> deployment;          // under m

  std::unique_ptr<connection> take(bool fresh) {
    if (!fresh) {
      const std::lock_guard lock(m);
      if (!idle.empty()) {
        auto c = std::move(idle.back());
        idle.pop_back();
        c->reused = true;
        return c;
      }
    }
    return std::make_unique<connection>(url, options.timeout);
  }

  void give_back(std::unique_ptr<connection> c) {
    if (!c->reusable()) return;
    const std::lock_guard lock(m);
    if (idle.size() < 16) idle.push_back(std::move(c));
  }

  // One request; `on_body` receives a 2xx answer's body in pieces; an error status throws
  // http_error with the server's message.
  template <class OnBody>
  void call(http::verb verb, const std::string& target, const std::string& body, OnBody&& on_body) {
    for (int attempt = 0;; ++attempt) {
      auto c = take(attempt > 0);
      int status = 0;
      std::string error_body;
      try {
        c->connect();
        http::request<http::string_body> req{verb, url.prefix + target, 11};
        req.set(http::field::host, url.host + ":" + url.port);
        req.set(http::field::user_agent, "mii-client");
        if (!options.api_key.empty()) req.set(http::field::authorization, "Bearer " + options.api_key);
        if (verb == http::verb::post) req.set(http::field::content_type, "application/json");
        req.body() = body;
        req.prepare_payload();
        c->write(req);
        c->read([&](int s) { status = s; },
                [&](std::string_view piece) {
                  if (status < 300) {
                    on_body(piece);
                  } else if (error_body.size() < (1u << 20)) {
                    error_body += piece;
                  }
                });
      } catch (const stale_connection&) {
        if (attempt > 0) fail("mii::client: the connection to ", url.text, " closed before an answer");
        continue;
      }
      give_back(std::move(c));
      if (status >= 300) throw_http_error(url, status, error_body);
      return;
    }
  }

  std::string deployment_name() {
    {
      const std::lock_guard lock(m);
      if (deployment) return *deployment;
    }
    std::string body;
    call(http::verb::get, "/v1/models", "", [&](std::string_view piece) { body += piece; });
    const auto doc = detail::json_document::from_string(body, url.text + "/v1/models");
    const auto root = detail::json_object::expect(doc.root(), doc.origin(), "");
    simdjson::dom::array data;
    simdjson::dom::element first;
    if (root.object()["data"].get(data) || data.size() == 0 || data.at(0).get(first))
      fail("mii::client: ", doc.origin(), " lists no model; give client_options.deployment");
    const auto model = detail::json_object::expect(first, doc.origin(), "data[0]");
    const std::string name = model.require(model.get_string("id"), "id");
    const std::lock_guard lock(m);
    deployment = name;
    return name;
  }
};

client::client(std::string_view url, client_options options) : impl_(std::make_unique<impl>()) {
  impl_->url = parse_url(url);
  impl_->options = std::move(options);
  if (!impl_->options.deployment.empty()) impl_->deployment = impl_->options.deployment;
}

client::~client() = default;
client::client(client&&) noexcept = default;
client& client::operator=(client&&) noexcept = default;

std::string client::deployment() const { return impl_->deployment_name(); }

response client::generate(std::string_view prompt, const generate_params& p) const {
  auto out = generate(std::vector<std::string>{std::string(prompt)}, p);
  return std::move(out.at(0));
}

response client::generate_stream(std::string_view prompt, const generate_params& p, const stream_callback& on_event) const {
  generate_params q = p;
  q.stream = on_event;
  return generate(prompt, q);
}

std::vector<response> client::generate(const std::vector<std::string>& prompts, const generate_params& p) const {
  if (prompts.empty()) return {};
  validate(p);  // the same message a local pipeline gives, before any network traffic
  const std::string target = "/mii/" + impl_->deployment_name();
  const std::string body = request_body(prompts, p);
  std::vector<response> out(prompts.size());
  const auto index_of = [&](const detail::json_object& o) {
    const auto i = o.require(o.get_int("index"), "index");
    if (i < 0 || std::size_t(i) >= out.size()) fail("mii::client: the server answered for prompt ", i, " of ", out.size());
    return std::size_t(i);
  };
  if (!p.stream) {
    std::string text;
    impl_->call(http::verb::post, target, body, [&](std::string_view piece) { text += piece; });
    const auto doc = detail::json_document::from_string(text, impl_->url.text + target);
    simdjson::dom::array list;
    if (doc.root().get(list) || list.size() != out.size())
      fail("mii::client: ", doc.origin(), " did not answer with a list of ", out.size(), " responses");
    std::size_t i = 0;
    for (simdjson::dom::element e : list) out[i++] = response_of(detail::json_object::expect(e, doc.origin(), ""));
    return out;
  }
  // Server-sent events: {"index", "text", "token_ids"} deltas, {"index", "response"} at each
  // prompt's end, an {"error"} if generation failed midway, then [DONE].
  std::string pending;
  const auto on_event = [&](std::string_view data) {
    if (data == "[DONE]") return;
    const auto doc = detail::json_document::from_string(data, impl_->url.text + target + " (event)");
    const auto o = detail::json_object::expect(doc.root(), doc.origin(), "");
    if (const auto err = o.get_object("error"))
      throw http_error(500, "HTTP 500 from " + impl_->url.text + ": " + err->get_string("message").value_or("error"));
    const std::size_t i = index_of(o);
    if (const auto r = o.get_object("response")) {
      out[i] = response_of(*r);
      p.stream(stream_event{.prompt_index = i, .finished = true, .finish_reason = out[i].finish_reason});
      return;
    }
    const std::string text = o.get_string("text").value_or("");
    const auto ids = o.get_int_list("token_ids").value_or(std::vector<std::int64_t>{});
    p.stream(stream_event{.prompt_index = i, .text = text, .token = ids.empty() ? -1 : token_id(ids.back())});
  };
  impl_->call(http::verb::post, target, body, [&](std::string_view piece) {
    pending += piece;
    for (std::size_t end; (end = pending.find("\n\n")) != std::string::npos;) {
      const std::string event = pending.substr(0, end);
      pending.erase(0, end + 2);
      if (event.starts_with("data: ")) on_event(std::string_view(event).substr(6));
    }
  });
  return out;
}

}  // namespace mii

#include "serve/stream_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <mii/error.hpp>

#include "client/json_writer.hpp"
#include "io/json_reader.hpp"

namespace mii::serve {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

http_target parse_http_url(const std::string& url) {
  std::string_view rest = url;
  if (!rest.starts_with("http://")) fail("--url must be http://host:port, got '", url, "'");
  rest.remove_prefix(7);
  rest = rest.substr(0, rest.find('/'));
  const auto colon = rest.rfind(':');
  if (colon == std::string_view::npos) return {std::string(rest), "80"};
  return {std::string(rest.substr(0, colon)), std::string(rest.substr(colon + 1))};
}

struct http_connection::impl {
  explicit impl(const http_target& t) : target(t), stream(ioc) {
    tcp::resolver resolver(ioc);
    stream.connect(resolver.resolve(t.host, t.port));
    // Small requests and small SSE reads: no waiting on Nagle's algorithm in either direction.
    stream.socket().set_option(tcp::no_delay(true));
  }
  http_target target;
  net::io_context ioc;
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
};

http_connection::http_connection(const http_target& target) : impl_(std::make_unique<impl>(target)) {}
http_connection::~http_connection() = default;

int http_connection::call(std::string_view method, const std::string& path, const std::string& body, const std::string& api_key,
                          const std::function<void(std::string_view)>& on_piece) {
  const http::verb verb = http::string_to_verb(method);
  if (verb == http::verb::unknown) fail("http_connection: unknown method ", method);
  http::request<http::string_body> req{verb, path, 11};
  req.set(http::field::host, impl_->target.host);
  req.set(http::field::content_type, "application/json");
  if (!api_key.empty()) req.set(http::field::authorization, "Bearer " + api_key);
  req.body() = body;
  req.prepare_payload();
  http::write(impl_->stream, req);
  http::response_parser<http::string_body> parser;
  parser.body_limit(std::uint64_t(1) << 30);
  http::read_header(impl_->stream, impl_->buffer, parser);
  while (!parser.is_done()) {
    http::read_some(impl_->stream, impl_->buffer, parser);
    std::string piece;
    piece.swap(parser.get().body());
    if (!piece.empty()) on_piece(piece);
  }
  return int(parser.get().result_int());
}

std::string completion_body(const std::string& model, std::span<const token_id> prompt, std::int64_t max_tokens) {
  detail::json_writer w;
  w.begin_object().key("model").value(model).key("prompt").begin_array();
  for (const token_id t : prompt) w.value(std::int64_t(t));
  w.end_array();
  w.key("max_tokens").value(max_tokens).key("ignore_eos").value(true).key("temperature").value(0);
  w.key("stream").value(true).key("stream_options").begin_object().key("include_usage").value(true).end_object();
  w.end_object();
  return w.take();
}

stream_timing stream_completion(http_connection& c, const std::string& body, const std::string& api_key) {
  using clock = stream_timing::clock;
  stream_timing t;
  std::string text;          // the whole body, for the usage chunk and error messages
  text.reserve(1 << 16);
  std::size_t scanned = 0;   // events that end before this offset are classified
  std::size_t usage_at = std::string::npos, usage_len = 0, error_at = std::string::npos;
  t.sent = clock::now();
  t.status = c.call("POST", "/v1/completions", body, api_key, [&](std::string_view piece) {
    const auto now = clock::now();
    text += piece;
    // Only string comparisons here: each complete event ("data: ...\n\n") is sorted by its prefix.
    for (std::size_t end; (end = text.find("\n\n", scanned)) != std::string::npos; scanned = end + 2) {
      const std::string_view ev(text.data() + scanned, end - scanned);
      if (ev == "data: [DONE]") {
        if (!t.done) t.finished = now;
        t.done = true;
      } else if (ev.starts_with("data: {\"error\"")) {
        if (error_at == std::string::npos) error_at = scanned;
      } else if (ev.starts_with("data: {") && ev.find("\"choices\":[{") != std::string_view::npos) {
        if (!t.got_first_token) t.first_token = now;
        t.got_first_token = true;
      } else if (ev.starts_with("data: {") && ev.find("\"usage\":{") != std::string_view::npos) {
        usage_at = scanned + 6;
        usage_len = ev.size() - 6;
      }
    }
  });
  if (usage_at != std::string::npos) {
    const auto doc = detail::json_document::from_string(std::string_view(text).substr(usage_at, usage_len), "the usage chunk");
    std::int64_t n = 0;
    if (!doc.root()["usage"]["completion_tokens"].get(n)) t.completion_tokens = n;
  }
  if (t.status != 200) t.error = "status " + std::to_string(t.status) + ": " + text.substr(0, 300);
  else if (error_at != std::string::npos) t.error = "error event: " + text.substr(error_at, 300);
  else if (!t.done)
    t.error = "the stream ended without data: [DONE]: ..." + text.substr(text.size() - std::min<std::size_t>(text.size(), 200));
  return t;
}

std::string served_model_name(http_connection& c, const std::string& api_key, const std::string& url_for_errors) {
  std::string body;
  const int status = c.call("GET", "/v1/models", "", api_key, [&](std::string_view p) { body += p; });
  if (status != 200) fail("GET ", url_for_errors, "/v1/models answered ", status, ": ", body.substr(0, 300));
  const auto doc = detail::json_document::from_string(body, url_for_errors + "/v1/models");
  std::string_view id;
  if (doc.root()["data"].at(0)["id"].get(id)) fail(doc.origin(), " lists no model");
  return std::string(id);
}

}  // namespace mii::serve

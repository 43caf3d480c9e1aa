#include "serve/load_generator.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <random>
#include <thread>

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

namespace {

using clock_type = std::chrono::steady_clock;

struct target_url {
  std::string host, port;
};

target_url parse(const std::string& url) {
  std::string_view rest = url;
  if (!rest.starts_with("http://")) fail("--url must be http://host:port, got '", url, "'");
  rest.remove_prefix(7);
  rest = rest.substr(0, rest.find('/'));
  const auto colon = rest.rfind(':');
  if (colon == std::string_view::npos) return {std::string(rest), "80"};
  return {std::string(rest.substr(0, colon)), std::string(rest.substr(colon + 1))};
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, std::size_t(q * double(v.size() - 1) + 0.5))];
}

// One client's keep-alive connection, blocking calls.
class connection {
 public:
  explicit connection(const target_url& u) : u_(u), stream_(ioc_) {
    tcp::resolver resolver(ioc_);
    stream_.connect(resolver.resolve(u.host, u.port));
    stream_.socket().set_option(tcp::no_delay(true));
  }

  // Sends a request; `on_piece` gets the body as it arrives. Returns the status.
  template <class OnPiece>
  int call(http::verb verb, const std::string& path, const std::string& body, const std::string& api_key, OnPiece&& on_piece) {
    http::request<http::string_body> req{verb, path, 11};
    req.set(http::field::host, u_.host);
    req.set(http::field::content_type, "application/json");
    if (!api_key.empty()) req.set(http::field::authorization, "Bearer " + api_key);
    req.body() = body;
    req.prepare_payload();
    http::write(stream_, req);
    http::response_parser<http::string_body> parser;
    parser.body_limit(std::uint64_t(1) << 30);
    http::read_header(stream_, buffer_, parser);
    while (!parser.is_done()) {
      http::read_some(stream_, buffer_, parser);
      std::string piece;
      piece.swap(parser.get().body());
      if (!piece.empty()) on_piece(piece);
    }
    return int(parser.get().result_int());
  }

 private:
  target_url u_;
  net::io_context ioc_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
};

std::string served_model(const load_options& o, const target_url& u) {
  connection c(u);
  std::string body;
  const int status = c.call(http::verb::get, "/v1/models", "", o.api_key, [&](const std::string& p) { body += p; });
  if (status != 200) fail("GET ", o.url, "/v1/models answered ", status, ": ", body.substr(0, 300));
  const auto doc = detail::json_document::from_string(body, o.url + "/v1/models");
  std::string_view id;
  if (doc.root()["data"].at(0)["id"].get(id)) fail(doc.origin(), " lists no model");
  return std::string(id);
}

}  // namespace

load_result run_load(const load_options& o) {
  const target_url u = parse(o.url);
  const std::string model = o.model.empty() ? served_model(o, u) : o.model;
  // Every request is drawn up front, in order, from one seeded generator.
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<std::int64_t> plen(o.prompt_lo, o.prompt_hi), glen(o.gen_lo, o.gen_hi);
  std::uniform_int_distribution<std::int32_t> token(3, std::max<std::int32_t>(4, o.vocab - 1));
  std::vector<std::string> bodies(std::size_t(std::max<std::int64_t>(0, o.requests)));
  std::vector<std::int64_t> prefix(std::size_t(std::max<std::int64_t>(0, o.shared_prefix)));
  for (auto& t : prefix) t = token(rng);
  load_result r;
  r.samples.resize(bodies.size());
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    detail::json_writer w;
    w.begin_object().key("model").value(model).key("prompt").begin_array();
    for (const auto t : prefix) w.value(t);
    const auto n = std::int64_t(prefix.size()) + plen(rng);
    for (std::int64_t k = std::int64_t(prefix.size()); k < n; ++k) w.value(std::int64_t(token(rng)));
    w.end_array();
    const auto gen = glen(rng);
    w.key("max_tokens").value(gen).key("ignore_eos").value(true).key("temperature").value(0);
    w.key("stream").value(true).key("stream_options").begin_object().key("include_usage").value(true).end_object();
    w.end_object();
    bodies[i] = w.take();
    r.samples[i].prompt_tokens = n;
    r.samples[i].generated_tokens = gen;
  }

  std::atomic<std::size_t> next{0};
  std::mutex error_m;
  const auto t0 = clock_type::now();
  const auto since = [&] { return std::chrono::duration<double>(clock_type::now() - t0).count(); };
  std::vector<std::thread> threads;
  for (int c = 0; c < std::max(1, o.clients); ++c)
    threads.emplace_back([&] {
      std::unique_ptr<connection> conn;
      for (std::size_t i; (i = next.fetch_add(1)) < bodies.size();) {
        load_sample& s = r.samples[i];
        try {
          if (!conn) conn = std::make_unique<connection>(u);
          s.sent = since();
          std::string tail;
          const int status = conn->call(http::verb::post, "/v1/completions", bodies[i], o.api_key, [&](const std::string& piece) {
            if (s.first_token < 0 && piece.find("data: {") != std::string::npos) s.first_token = since();
            tail += piece;  // the end of the stream, which may arrive split
            if (tail.size() > 64) tail.erase(0, tail.size() - 64);
          });
          s.finished = since();
          s.ok = status == 200 && tail.find("[DONE]") != std::string::npos;
          if (!s.ok) throw std::runtime_error("status " + std::to_string(status) + ": " + tail.substr(0, 300));
        } catch (const std::exception& e) {
          conn.reset();
          const std::lock_guard lock(error_m);
          if (r.first_error.empty()) r.first_error = e.what();
        }
      }
    });
  for (auto& t : threads) t.join();
  r.wall_s = since();

  std::vector<double> latency, ttft, tpot;
  std::size_t within_sla = 0, done = 0;
  double out_tokens = 0;
  for (const auto& s : r.samples) {
    if (!s.ok) {
      ++r.failures;
      continue;
    }
    ++done;
    latency.push_back(s.finished - s.sent);
    ttft.push_back(s.first_token - s.sent);
    out_tokens += double(s.generated_tokens);
    const double per_token = (s.finished - s.first_token) / double(std::max<std::int64_t>(1, s.generated_tokens - 1));
    tpot.push_back(per_token);
    if (s.first_token - s.sent <= o.sla_ttft_s && 1.0 / std::max(1e-9, per_token) >= o.sla_tokens_per_s) ++within_sla;
  }
  r.requests_per_s = double(done) / r.wall_s;
  r.output_tokens_per_s = out_tokens / r.wall_s;
  r.effective_requests_per_s = double(within_sla) / r.wall_s;
  r.latency_p50 = percentile(latency, 0.5);
  r.latency_p90 = percentile(latency, 0.9);
  r.latency_p99 = percentile(latency, 0.99);
  r.ttft_p50 = percentile(ttft, 0.5);
  r.ttft_p99 = percentile(ttft, 0.99);
  r.tpot_p50 = percentile(tpot, 0.5);
  return r;
}

std::string to_json(const load_options& o, const load_result& r) {
  detail::json_writer w;
  w.begin_object();
  w.key("scenario").value("load_http").key("url").value(o.url).key("clients").value(o.clients);
  w.key("requests").value(o.requests).key("prompt").value(std::to_string(o.prompt_lo) + ":" + std::to_string(o.prompt_hi));
  w.key("shared_prefix").value(o.shared_prefix);
  w.key("gen").value(std::to_string(o.gen_lo) + ":" + std::to_string(o.gen_hi)).key("seed").value(o.seed);
  w.key("sla_ttft_s").value(o.sla_ttft_s).key("sla_tokens_per_s").value(o.sla_tokens_per_s);
  w.key("wall_s").value(r.wall_s).key("failures").value(r.failures);
  w.key("requests_per_s").value(r.requests_per_s).key("output_tokens_per_s").value(r.output_tokens_per_s);
  w.key("effective_requests_per_s").value(r.effective_requests_per_s);
  w.key("latency_p50").value(r.latency_p50).key("latency_p90").value(r.latency_p90).key("latency_p99").value(r.latency_p99);
  w.key("ttft_p50").value(r.ttft_p50).key("ttft_p99").value(r.ttft_p99).key("tpot_p50").value(r.tpot_p50);
  if (!r.first_error.empty()) w.key("first_error").value(r.first_error);
  w.end_object();
  return w.take();
}

}  // namespace mii::serve

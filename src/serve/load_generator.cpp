#include "serve/load_generator.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <random>
#include <thread>

#include <mii/error.hpp>

#include "client/json_writer.hpp"
#include "serve/stream_client.hpp"

namespace mii::serve {

namespace {

using clock_type = std::chrono::steady_clock;

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, std::size_t(q * double(v.size() - 1) + 0.5))];
}

}  // namespace

load_result run_load(const load_options& o) {
  const http_target u = parse_http_url(o.url);
  std::string model = o.model;
  if (model.empty()) {
    http_connection c(u);
    model = served_model_name(c, o.api_key, o.url);
  }
  // Every request is drawn up front, in order, from one seeded generator.
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<std::int64_t> plen(o.prompt_lo, o.prompt_hi), glen(o.gen_lo, o.gen_hi);
  std::uniform_int_distribution<std::int32_t> token(3, std::max<std::int32_t>(4, o.vocab - 1));
  std::vector<std::string> bodies(std::size_t(std::max<std::int64_t>(0, o.requests)));
  std::vector<token_id> prefix(std::size_t(std::max<std::int64_t>(0, o.shared_prefix)));
  for (auto& t : prefix) t = token(rng);
  load_result r;
  r.samples.resize(bodies.size());
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    std::vector<token_id> prompt = prefix;
    const auto n = std::int64_t(prefix.size()) + plen(rng);
    while (std::int64_t(prompt.size()) < n) prompt.push_back(token(rng));
    const auto gen = glen(rng);
    bodies[i] = completion_body(model, prompt, gen);
    r.samples[i].prompt_tokens = n;
    r.samples[i].generated_tokens = gen;
  }

  std::atomic<std::size_t> next{0};
  std::mutex error_m;
  const auto t0 = clock_type::now();
  const auto seconds = [&](clock_type::time_point t) { return std::chrono::duration<double>(t - t0).count(); };
  const auto since = [&] { return seconds(clock_type::now()); };
  std::vector<std::thread> threads;
  for (int c = 0; c < std::max(1, o.clients); ++c)
    threads.emplace_back([&] {
      std::unique_ptr<http_connection> conn;
      for (std::size_t i; (i = next.fetch_add(1)) < bodies.size();) {
        load_sample& s = r.samples[i];
        try {
          if (!conn) conn = std::make_unique<http_connection>(u);
          const stream_timing t = stream_completion(*conn, bodies[i], o.api_key);
          s.sent = seconds(t.sent);
          if (t.got_first_token) s.first_token = seconds(t.first_token);
          s.finished = t.done ? seconds(t.finished) : seconds(clock_type::now());
          s.ok = t.error.empty();
          if (!s.ok) throw std::runtime_error(t.error);
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

#include "serve/overhead_bench.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <limits>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include <mii/error.hpp>

#include "client/json_writer.hpp"
#include "serve/stream_client.hpp"

namespace mii::serve {

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_between(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// The in-process path, as a user of the library streams one request: submit_ids with the
// server's settings for such a request (greedy through temperature 0, ignore_eos, max_length
// the context), times taken in the stream callback on the engine thread.
timed_request run_in_process(generation_pipeline& pipe, std::vector<token_id> prompt, std::int64_t gen) {
  struct observed {
    std::mutex m;
    std::condition_variable cv;
    clock_type::time_point first, end;
    bool got_first = false, ended = false;
    std::int64_t streamed = 0;
  };
  auto seen = std::make_shared<observed>();
  generate_params p;
  p.temperature = 0;
  p.ignore_eos = true;
  p.max_new_tokens = gen;
  p.max_length = pipe.max_sequence_length();
  p.stream = [seen](const stream_event& ev) {
    const auto now = clock_type::now();
    {
      const std::lock_guard lock(seen->m);
      if (ev.token >= 0) {
        if (!seen->got_first) seen->first = now;
        seen->got_first = true;
        ++seen->streamed;
      }
      if (ev.finished) {
        seen->end = now;
        seen->ended = true;
      }
    }
    if (ev.finished) seen->cv.notify_all();
  };
  timed_request t;
  const auto sent = clock_type::now();
  try {
    const response r = pipe.submit_ids(std::move(prompt), p).get();
    std::unique_lock lock(seen->m);
    // The final event and the response come from the engine thread in either order.
    seen->cv.wait(lock, [&] { return seen->ended; });
    t.generated = r.generated_length;
    if (seen->got_first) t.ttft_s = seconds_between(sent, seen->first);
    t.latency_s = seconds_between(sent, seen->end);
    if (r.finish_reason != generation_finish_reason::length)
      t.error = "finished with " + std::string(to_string(r.finish_reason)) + (r.error.empty() ? "" : ": " + r.error);
    else if (seen->streamed != r.generated_length)
      t.error = "streamed " + std::to_string(seen->streamed) + " tokens of " + std::to_string(r.generated_length);
  } catch (const std::exception& e) {
    t.error = e.what();
  }
  return t;
}

timed_request run_http(std::unique_ptr<http_connection>& conn, const http_target& target, const std::string& body,
                       const std::string& api_key) {
  timed_request t;
  try {
    if (!conn) conn = std::make_unique<http_connection>(target);
    const stream_timing s = stream_completion(*conn, body, api_key);
    t.generated = s.completion_tokens;
    if (s.got_first_token) t.ttft_s = seconds_between(s.sent, s.first_token);
    if (s.done) t.latency_s = seconds_between(s.sent, s.finished);
    t.error = s.error;
    if (t.error.empty() && !s.got_first_token) t.error = "no chunk with a token came before data: [DONE]";
  } catch (const std::exception& e) {
    conn.reset();  // a fresh connection for the next request
    t.error = e.what();
  }
  return t;
}

// Between requests: until the engine and the server hold nothing, so that no request shares
// its steps with the end of the one before (the server may finish its bookkeeping after the
// client read data: [DONE]). Not timed.
void wait_idle(generation_pipeline& pipe, server& srv) {
  const auto deadline = clock_type::now() + std::chrono::seconds(30);
  for (;;) {
    const engine_stats s = pipe.stats();
    if (s.running == 0 && s.waiting == 0 && srv.svc().in_flight() == 0) return;
    if (clock_type::now() > deadline) fail("the engine did not go idle within 30 s after a request");
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

std::string ms(double s, int decimals = 2) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, s * 1e3);
  return buf;
}

std::string signed_ms(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%+.3f", s * 1e3);
  return buf;
}

void write_spread(detail::json_writer& w, const char* key, const spread& s) {
  w.key(key).begin_object();
  w.key("p50").value(s.p50 * 1e3).key("p90").value(s.p90 * 1e3).key("p99").value(s.p99 * 1e3).key("mean").value(s.mean * 1e3);
  w.end_object();
}

void write_difference(detail::json_writer& w, const char* key, const paired_difference& d) {
  w.key(key).begin_object();
  w.key("pairs").value(std::uint64_t(d.pairs));
  w.key("median").value(d.median * 1e3).key("p10").value(d.p10 * 1e3).key("p90").value(d.p90 * 1e3);
  w.key("mean").value(d.mean * 1e3);
  w.key("ci95_median").begin_array().value(d.ci95_lo * 1e3).value(d.ci95_hi * 1e3).end_array();
  w.end_object();
}

void write_path(detail::json_writer& w, const char* key, const overhead_result& r, const spread& latency, const spread& ttft,
                timed_request overhead_pair::*path, std::int64_t gen) {
  std::int64_t failures = 0, exact = 0;
  std::int64_t lo = std::numeric_limits<std::int64_t>::max(), hi = -1;  // -1: unknown (a failed request)
  for (const auto& p : r.pairs) {
    const timed_request& t = p.*path;
    if (!t.error.empty()) ++failures;
    if (t.generated == gen) ++exact;
    lo = std::min(lo, t.generated);
    hi = std::max(hi, t.generated);
  }
  if (r.pairs.empty()) lo = -1;
  w.key(key).begin_object();
  w.key("requests").value(std::int64_t(r.pairs.size())).key("failures").value(failures);
  w.key("generated_tokens_exact").value(exact);
  w.key("generated_tokens_min").value(lo).key("generated_tokens_max").value(hi);
  write_spread(w, "latency_ms", latency);
  write_spread(w, "ttft_ms", ttft);
  w.end_object();
}

void write_request(detail::json_writer& w, const char* key, const timed_request& t) {
  w.key(key).begin_object();
  w.key("ttft_ms").value(t.ttft_s * 1e3).key("latency_ms").value(t.latency_s * 1e3).key("generated").value(t.generated);
  if (!t.error.empty()) w.key("error").value(t.error);
  w.end_object();
}

}  // namespace

bool overhead_pair::ok(std::int64_t gen) const {
  return in_process.error.empty() && http.error.empty() && in_process.generated == gen && http.generated == gen;
}

overhead_result run_overhead(generation_pipeline& pipe, server& srv, const overhead_options& o) {
  if (o.requests < 1 || o.prompt < 1 || o.gen < 1 || o.warmup < 0)
    fail("mii-serve-overhead: requests, prompt and gen must be >= 1 and warmup >= 0");
  if (o.prompt + o.gen > pipe.max_sequence_length())
    fail("a prompt of ", o.prompt, " tokens and ", o.gen, " generated make ", o.prompt + o.gen,
         " tokens, more than this engine's context of ", pipe.max_sequence_length(), " (--max-model-len)");
  overhead_result r;
  r.url = srv.url();
  r.backend = std::string(pipe.backend_name());
  r.architecture = std::string(pipe.model_name());
  r.vocab = o.vocab > 0 ? o.vocab : std::int32_t(pipe.shape().vocab);
  if (r.vocab < 4) fail("the vocabulary has ", r.vocab, " tokens; prompt ids are drawn from [3, vocab): use --vocab");

  const http_target target = parse_http_url(r.url);
  const std::string& api_key = srv.svc().options().api_key;
  const std::string& model = srv.svc().options().served_model_name;
  std::unique_ptr<http_connection> conn;
  // One generator for the prompts and the order within each pair, drawn pair by pair.
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<token_id> token(3, r.vocab - 1);
  std::bernoulli_distribution coin(0.5);

  wait_idle(pipe, srv);
  const auto t0 = clock_type::now();
  for (std::int64_t i = 0; i < o.warmup + o.requests; ++i) {
    std::vector<token_id> prompt(std::size_t(o.prompt));
    for (auto& t : prompt) t = token(rng);
    overhead_pair pair;
    pair.http_first = coin(rng);
    // Everything a request needs is ready before its clock starts.
    const std::string body = completion_body(model, prompt, o.gen);
    for (int k = 0; k < 2; ++k) {
      if ((k == 0) == pair.http_first) pair.http = run_http(conn, target, body, api_key);
      else pair.in_process = run_in_process(pipe, prompt, o.gen);
      wait_idle(pipe, srv);
    }
    if (i < o.warmup) continue;
    if (!pair.ok(o.gen) && r.first_error.empty()) {
      const timed_request& bad = !pair.in_process.error.empty() || pair.in_process.generated != o.gen ? pair.in_process : pair.http;
      r.first_error = std::string(&bad == &pair.http ? "HTTP: " : "in-process: ") +
                      (bad.error.empty() ? "generated " + std::to_string(bad.generated) + " tokens, not " + std::to_string(o.gen)
                                         : bad.error);
    }
    r.pairs.push_back(std::move(pair));
    if (o.progress) o.progress(std::int64_t(r.pairs.size()));
  }
  r.wall_s = seconds_between(t0, clock_type::now());

  std::vector<double> in_lat, in_ttft, http_lat, http_ttft;
  for (const auto& p : r.pairs) {
    if (!p.ok(o.gen)) {
      ++r.failed_pairs;
      continue;
    }
    in_lat.push_back(p.in_process.latency_s);
    in_ttft.push_back(p.in_process.ttft_s);
    http_lat.push_back(p.http.latency_s);
    http_ttft.push_back(p.http.ttft_s);
  }
  r.in_process_latency = spread_of(in_lat);
  r.in_process_ttft = spread_of(in_ttft);
  r.http_latency = spread_of(http_lat);
  r.http_ttft = spread_of(http_ttft);
  r.latency_diff = compare_pairs(in_lat, http_lat, o.seed);
  r.ttft_diff = compare_pairs(in_ttft, http_ttft, o.seed + 1);
  return r;
}

std::string verdict(const paired_difference& d, double goal_ms) {
  // The bootstrap interval of a median means little over a handful of pairs (tests, smoke runs).
  if (d.pairs < 20) return "undecided";
  if (d.ci95_hi * 1e3 < goal_ms) return "met";
  if (d.ci95_lo * 1e3 >= goal_ms) return "not met";
  return "undecided";
}

std::string to_json(const std::string& model_dir, const overhead_options& o, const overhead_result& r) {
  detail::json_writer w;
  w.begin_object();
  w.key("scenario").value("serve_overhead");
  w.key("model").value(model_dir).key("architecture").value(r.architecture).key("backend").value(r.backend);
  w.key("server").value(r.url);
  w.key("requests_per_path").value(o.requests).key("warmup_per_path").value(o.warmup);
  w.key("prompt_tokens").value(o.prompt).key("gen_tokens").value(o.gen).key("vocab").value(std::int64_t(r.vocab));
  w.key("seed").value(o.seed);
  w.key("prefix_caching").value(false);
  w.key("method").value(
      "one request at a time, in pairs: each pair runs the same random token-id prompt on both paths, in a seeded "
      "random order, greedy, ignore_eos, exactly gen_tokens generated; prefix caching is off in the engine so that the "
      "second request of a pair computes its prompt in full like the first");
  w.key("in_process_path").value(
      "pipeline.submit_ids with a stream callback: ttft at the first token event, latency at the final event");
  w.key("http_path").value(
      "streamed POST /v1/completions (token-id prompt, include_usage) on one keep-alive connection to a mii-serve "
      "server over the same pipeline in this process: ttft at the first chunk with a choice, latency at data: [DONE]");
  w.key("units").value("ms");
  w.key("quantiles").value("linear interpolation between order statistics");
  std::int64_t http_first = 0;
  for (const auto& p : r.pairs) http_first += p.http_first ? 1 : 0;
  w.key("pairs_http_first").value(http_first).key("failed_pairs").value(r.failed_pairs);
  write_path(w, "in_process", r, r.in_process_latency, r.in_process_ttft, &overhead_pair::in_process, o.gen);
  write_path(w, "http", r, r.http_latency, r.http_ttft, &overhead_pair::http, o.gen);
  w.key("difference").begin_object();
  w.key("what").value("HTTP minus in-process within each pair, over the pairs where both succeeded");
  w.key("ci95_median").value("percentile bootstrap: the pairs resampled with replacement " +
                             std::to_string(r.latency_diff.resamples) +
                             " times (seeded), 2.5th and 97.5th percentiles of the resampled medians");
  write_difference(w, "latency_ms", r.latency_diff);
  write_difference(w, "ttft_ms", r.ttft_diff);
  w.end_object();
  w.key("goal").begin_object();
  w.key("median_latency_added_below_ms").value(1.0).key("verdict").value(verdict(r.latency_diff, 1.0));
  w.key("rule").value("met when the 95 % interval of the median latency difference lies below 1 ms, not met when it "
                      "lies at or above it, undecided when it straddles 1 ms or there are fewer than 20 pairs");
  w.end_object();
  w.key("wall_s").value(r.wall_s);
  if (!r.first_error.empty()) w.key("first_error").value(r.first_error);
  w.key("samples").begin_array();
  for (const auto& p : r.pairs) {
    w.begin_object().key("http_first").value(p.http_first);
    write_request(w, "in_process", p.in_process);
    write_request(w, "http", p.http);
    w.end_object();
  }
  w.end_array();
  w.end_object();
  return w.take();
}

std::string to_table(const overhead_options& o, const overhead_result& r) {
  const auto row = [](const char* name, const spread& lat, const spread& ttft) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "  %-12s %10s %10s %10s   %9s %9s %9s\n", name, ms(lat.p50).c_str(), ms(lat.p90).c_str(),
                  ms(lat.p99).c_str(), ms(ttft.p50).c_str(), ms(ttft.p90).c_str(), ms(ttft.p99).c_str());
    return std::string(buf);
  };
  const auto diff = [](const char* name, const paired_difference& d) {
    char buf[256];
    char ci[64];
    std::snprintf(ci, sizeof ci, "[%+.3f, %+.3f]", d.ci95_lo * 1e3, d.ci95_hi * 1e3);
    std::snprintf(buf, sizeof buf, "  %-12s %9s  %-20s   %9s %9s %9s\n", name, signed_ms(d.median).c_str(), ci,
                  signed_ms(d.p10).c_str(), signed_ms(d.p90).c_str(), signed_ms(d.mean).c_str());
    return std::string(buf);
  };
  std::string out = "mii-serve-overhead: " + r.architecture + " on " + r.backend + ", " +
                    std::to_string(r.pairs.size() - std::size_t(r.failed_pairs)) + " pairs (" +
                    std::to_string(r.failed_pairs) + " failed), " + std::to_string(o.prompt) + " prompt + " +
                    std::to_string(o.gen) + " generated tokens each, prefix caching off\n";
  char head[256];
  std::snprintf(head, sizeof head, "  %-12s %10s %10s %10s   %9s %9s %9s\n", "ms", "lat p50", "lat p90", "lat p99", "TTFT p50",
                "TTFT p90", "TTFT p99");
  out += head;
  out += row("in-process", r.in_process_latency, r.in_process_ttft);
  out += row("HTTP", r.http_latency, r.http_ttft);
  out += "  HTTP minus in-process, within each pair (ms):\n";
  std::snprintf(head, sizeof head, "  %-12s %9s  %-20s   %9s %9s %9s\n", "", "median", "[95% CI of median]", "p10", "p90", "mean");
  out += head;
  out += diff("latency", r.latency_diff);
  out += diff("TTFT", r.ttft_diff);
  out += "  goal: HTTP adds < 1 ms to the median request: " + verdict(r.latency_diff, 1.0) +
         (r.latency_diff.pairs < 20 ? " (fewer than 20 pairs)\n" : " (the 95 % interval is a percentile bootstrap over the pairs)\n");
  return out;
}

}  // namespace mii::serve

#include "serve/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>

namespace mii::serve {

namespace {

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void sample(std::string& out, std::string_view name, std::int64_t v) {
  out.append(name).append(" ").append(std::to_string(v)).append("\n");
}

double seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Bounds as vLLM's histograms use them: fine where interactive serving lives, coarse beyond.
std::vector<double> ttft_bounds() {
  return {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0};
}
std::vector<double> tpot_bounds() {
  return {0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5};
}
std::vector<double> duration_bounds() {
  return {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0};
}

}  // namespace

std::string escape_label_value(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

histogram::histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), buckets_(bounds_.size()) {}

void histogram::observe(double s) {
  if (!std::isfinite(s) || s < 0) s = 0;
  for (std::size_t i = 0; i < bounds_.size(); ++i)
    if (s <= bounds_[i]) {
      buckets_[i].fetch_add(1, std::memory_order_relaxed);
      break;
    }
  sum_micros_.fetch_add(std::uint64_t(std::llround(s * 1e6)), std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

void histogram::write(std::string& out, std::string_view name, std::string_view help) const {
  header(out, name, "histogram", help);
  // Read the count first: buckets observed after it may make a bucket exceed it by a few,
  // but cumulative counts stay monotonic because +Inf is written as the largest of the two.
  const std::uint64_t count = count_.load(std::memory_order_relaxed);
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    out.append(name).append("_bucket{le=\"").append(number(bounds_[i])).append("\"} ");
    out.append(std::to_string(cumulative)).append("\n");
  }
  out.append(name).append("_bucket{le=\"+Inf\"} ").append(std::to_string(std::max(count, cumulative))).append("\n");
  out.append(name).append("_sum ").append(number(double(sum_micros_.load(std::memory_order_relaxed)) * 1e-6)).append("\n");
  out.append(name).append("_count ").append(std::to_string(std::max(count, cumulative))).append("\n");
}

server_metrics::server_metrics()
    : ttft_(ttft_bounds()), tpot_(tpot_bounds()), e2e_(duration_bounds()) {}

void server_metrics::count_request(std::string_view endpoint, int status) {
  const std::lock_guard lock(m_);
  ++requests_[{std::string(endpoint), status}];
}

void server_metrics::observe_request(const request_timing& t, std::int64_t generated_tokens) {
  using clock = std::chrono::steady_clock;
  if (t.submitted == clock::time_point{} || t.finished == clock::time_point{}) return;
  e2e_.observe(seconds(t.finished - t.submitted));
  if (t.first_token == clock::time_point{}) return;
  ttft_.observe(seconds(t.first_token - t.submitted));
  // Per output token after the first: the decode rate a streaming client sees.
  if (generated_tokens > 1) tpot_.observe(seconds(t.finished - t.first_token) / double(generated_tokens - 1));
}

std::string server_metrics::prometheus_text(const engine_stats& e, std::int64_t in_flight) const {
  std::string out;
  header(out, "mii_http_requests_total", "counter", "HTTP requests answered, by endpoint and status code.");
  {
    const std::lock_guard lock(m_);
    for (const auto& [key, n] : requests_) {
      out.append("mii_http_requests_total{endpoint=\"").append(escape_label_value(key.first));
      out.append("\",status=\"").append(std::to_string(key.second)).append("\"} ");
      out.append(std::to_string(n)).append("\n");
    }
  }
  header(out, "mii_prompt_tokens_total", "counter", "Prompt tokens of the requests the engine admitted.");
  sample(out, "mii_prompt_tokens_total", e.prompt_tokens);
  header(out, "mii_generation_tokens_total", "counter", "Tokens generated.");
  sample(out, "mii_generation_tokens_total", e.generated_tokens);
  header(out, "mii_requests_finished_total", "counter", "Requests the engine finished, for any reason.");
  sample(out, "mii_requests_finished_total", e.requests_finished);
  header(out, "mii_requests_in_flight", "gauge", "Generation requests submitted by the server and not finished (bounded by --max-queue).");
  sample(out, "mii_requests_in_flight", in_flight);
  header(out, "mii_requests_waiting", "gauge", "Requests queued in the engine, not yet admitted (queue depth).");
  sample(out, "mii_requests_waiting", e.waiting);
  header(out, "mii_requests_running", "gauge", "Sequences admitted by the engine (prefilling or decoding).");
  sample(out, "mii_requests_running", e.running);
  header(out, "mii_kv_blocks_used", "gauge", "KV cache blocks in use.");
  sample(out, "mii_kv_blocks_used", e.kv_blocks_used);
  header(out, "mii_kv_blocks_total", "gauge", "KV cache blocks in the cache.");
  sample(out, "mii_kv_blocks_total", e.kv_blocks_total);
  header(out, "mii_preemptions_total", "counter", "Sequences evicted for KV blocks and recomputed later.");
  sample(out, "mii_preemptions_total", e.preemptions);
  header(out, "mii_kv_blocks_cached", "gauge", "KV cache blocks findable by their tokens (prefix caching).");
  sample(out, "mii_kv_blocks_cached", e.kv_blocks_cached);
  header(out, "mii_prefix_cache_queried_tokens_total", "counter", "Prompt tokens of admitted requests looked up in the prefix cache.");
  sample(out, "mii_prefix_cache_queried_tokens_total", e.prefix_cache_queried_tokens);
  header(out, "mii_prefix_cache_hit_tokens_total", "counter", "Prompt tokens found in the prefix cache (not computed again).");
  sample(out, "mii_prefix_cache_hit_tokens_total", e.prefix_cache_hit_tokens);
  header(out, "mii_engine_steps_total", "counter", "Forward passes the engine ran.");
  sample(out, "mii_engine_steps_total", e.steps);
  header(out, "mii_engine_host_gap_seconds_total", "counter",
         "Host time between consecutive steps with nothing queued on the device (on a GPU: its idle time between steps).");
  out.append("mii_engine_host_gap_seconds_total ").append(number(e.host_gap_seconds)).append("\n");
  header(out, "mii_engine_host_gaps_total", "counter", "Intervals mii_engine_host_gap_seconds_total sums.");
  sample(out, "mii_engine_host_gaps_total", e.host_gaps);
  ttft_.write(out, "mii_time_to_first_token_seconds", "Time from submission to the first generated token.");
  tpot_.write(out, "mii_time_per_output_token_seconds", "Time per generated token after the first.");
  e2e_.write(out, "mii_request_duration_seconds", "Time from submission to the last token (requests that finished normally).");
  return out;
}

}  // namespace mii::serve

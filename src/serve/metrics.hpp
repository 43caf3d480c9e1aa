// mii-serve's counters and latency histograms, and the Prometheus text exposition (format
// 0.0.4) of them with the engine's gauges. Safe to update from any thread.
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <mii/config.hpp>
#include <mii/runtime/request_channel.hpp>

namespace mii::serve {

// A cumulative histogram with fixed upper bounds (seconds); lock-free observe().
class histogram {
 public:
  explicit histogram(std::vector<double> bounds);
  void observe(double seconds);
  // "# HELP", "# TYPE" and the _bucket/_sum/_count samples.
  void write(std::string& out, std::string_view name, std::string_view help) const;
  std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::vector<std::atomic<std::uint64_t>> buckets_;  // per bound, not cumulative; +Inf is count_
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_micros_{0};
};

class server_metrics {
 public:
  server_metrics();

  // One HTTP exchange ended: `endpoint` is the route's name ("/v1/completions"; "other" for paths
  // that match none, so that scanners cannot grow the label set), `status` its status code.
  void count_request(std::string_view endpoint, int status);
  // A generation request that finished normally (stop or length), from its timing.
  void observe_request(const request_timing& t, std::int64_t generated_tokens);

  // The whole exposition: server counters, latency histograms, and the engine's state.
  std::string prometheus_text(const engine_stats& engine, std::int64_t requests_in_flight) const;

 private:
  mutable std::mutex m_;
  std::map<std::pair<std::string, int>, std::uint64_t> requests_;
  histogram ttft_, tpot_, e2e_;
};

// A Prometheus label value with \, " and newlines escaped.
std::string escape_label_value(std::string_view v);

}  // namespace mii::serve

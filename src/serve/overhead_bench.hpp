// What HTTP adds to one request (mii-serve-overhead; docs/serving.md): one pipeline, called two
// ways in one process -- in-process through pipeline::submit_ids with a stream callback, and
// through a mii-serve server started on that same pipeline, as a streamed /v1/completions on
// one keep-alive connection. Requests go one at a time in pairs: each pair runs the same random
// token-id prompt on both paths, in a seeded random order, so that neither path always goes
// first and whatever drifts over the run (clocks, heat, neighbours) falls on both alike. The
// paired difference (HTTP minus in-process) is what the run reports.
//
// Prefix caching must be off in the engine (model_config.prefix_caching = false): the second
// request of a pair would otherwise find the first one's prompt cached and skip its prefill.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <mii/pipeline.hpp>

#include "serve/paired_stats.hpp"
#include "serve/server.hpp"

namespace mii::serve {

struct overhead_options {
  std::int64_t requests = 200;  // measured requests per path (= pairs)
  std::int64_t warmup = 4;      // unmeasured requests per path first
  std::int64_t prompt = 512;    // prompt tokens, every request
  std::int64_t gen = 128;       // generated tokens, every request (ignore_eos)
  std::int32_t vocab = 0;       // prompt ids are drawn from [3, vocab); 0: the model's vocabulary
  std::uint64_t seed = 1;       // prompts, the order within pairs, the bootstrap
  std::function<void(std::int64_t)> progress;  // after each measured pair, with the count so far
};

// One request as its caller saw it.
struct timed_request {
  double ttft_s = -1;             // to the first generated token
  double latency_s = 0;           // to the end (the final stream event; data: [DONE])
  std::int64_t generated = -1;    // tokens generated
  std::string error;              // empty: it ran to the end
};

struct overhead_pair {
  bool http_first = false;
  timed_request in_process, http;
  bool ok(std::int64_t gen) const;  // both ran, each generated exactly `gen` tokens
};

struct overhead_result {
  std::string url, backend, architecture;
  std::int32_t vocab = 0;
  double wall_s = 0;
  std::vector<overhead_pair> pairs;  // the measured ones, in the order they ran
  // Over the pairs where both paths succeeded with exactly `gen` tokens.
  spread in_process_latency, in_process_ttft, http_latency, http_ttft;
  paired_difference latency_diff, ttft_diff;  // HTTP minus in-process, seconds
  std::int64_t failed_pairs = 0;
  std::string first_error;
};

// Runs the pairs against `pipe` and `srv` (a server over `pipe`; its prefix caching must be off).
// Throws mii::error when the options cannot run (a prompt and generation longer than the context).
overhead_result run_overhead(generation_pipeline& pipe, server& srv, const overhead_options& o);

// "met" when the 95 % interval of the median latency difference lies below `goal_ms`, "not met"
// when it lies at or above it, "undecided" when it straddles it or there are fewer than 20 pairs.
std::string verdict(const paired_difference& latency_diff, double goal_ms);

// One JSON object: the settings, both paths' quantiles, the paired differences (milliseconds)
// and every pair's times.
std::string to_json(const std::string& model_dir, const overhead_options& o, const overhead_result& r);
// A short table for people (stderr).
std::string to_table(const overhead_options& o, const overhead_result& r);

}  // namespace mii::serve

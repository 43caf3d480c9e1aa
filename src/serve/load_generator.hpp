// Closed-loop load through a running mii-serve, for the HTTP mode of mii-bench's load scenario:
// `clients` users, each sending its next request when its last one finished, over one
// keep-alive connection each. Requests are /v1/completions with random token-id prompts (no
// tokenizer needed on either side), ignore_eos so that every request generates exactly its
// length, greedy, streamed: the first chunk marks the first token (mii-serve sends a chunk for
// every step that produced tokens). Prompt and generation lengths are drawn as mii-bench draws
// them (uniform in [lo, hi], seeded), so the figures compare with the in-process run.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mii::serve {

struct load_options {
  std::string url = "http://127.0.0.1:8000";
  std::string api_key;
  std::string model;  // the served name; empty: asked from /v1/models
  int clients = 32;
  std::int64_t requests = 64;
  std::int64_t prompt_lo = 1200, prompt_hi = 2600;  // tokens
  std::int64_t gen_lo = 60, gen_hi = 128;
  std::int32_t vocab = 32000;  // prompt ids are drawn from [0, vocab)
  std::int64_t shared_prefix = 0;  // every prompt starts with the same this many tokens (a system prompt)
  std::uint64_t seed = 1;
  double sla_ttft_s = 2.0;         // a request meets the SLA with its first token within this...
  double sla_tokens_per_s = 4.0;   // ...and its later tokens at least this fast
};

struct load_sample {
  double sent = 0, first_token = -1, finished = 0;  // seconds since the start
  std::int64_t prompt_tokens = 0, generated_tokens = 0;
  bool ok = false;
};

struct load_result {
  double wall_s = 0;
  double requests_per_s = 0, output_tokens_per_s = 0, effective_requests_per_s = 0;
  double latency_p50 = 0, latency_p90 = 0, latency_p99 = 0;
  double ttft_p50 = 0, ttft_p99 = 0, tpot_p50 = 0;
  std::int64_t failures = 0;
  std::vector<load_sample> samples;
  std::string first_error;
};

// Runs the load; throws mii::error when the server cannot be reached at all.
load_result run_load(const load_options& o);
// One JSON object with the options and the figures (mii-bench's "load" metric names).
std::string to_json(const load_options& o, const load_result& r);

}  // namespace mii::serve

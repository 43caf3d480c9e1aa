#include <mii/config.hpp>

#include <cmath>
#include <cstdio>
#include <limits>
#include <ostream>
#include <sstream>

#include <mii/error.hpp>

namespace mii {

std::string_view to_string(generation_finish_reason r) {
  switch (r) {
    case generation_finish_reason::none: return "none";
    case generation_finish_reason::length: return "length";
    case generation_finish_reason::stop: return "stop";
    case generation_finish_reason::error: return "error";
    case generation_finish_reason::cancelled: return "cancelled";
  }
  return "none";
}

void validate(const generate_params& p) {
  if (p.max_length < 1) fail("generate_params.max_length must be >= 1, got ", p.max_length);
  if (p.max_new_tokens && *p.max_new_tokens < 1) fail("generate_params.max_new_tokens must be >= 1, got ", *p.max_new_tokens);
  if (p.min_new_tokens < 0) fail("generate_params.min_new_tokens must be >= 0, got ", p.min_new_tokens);
  if (p.max_new_tokens && p.min_new_tokens > *p.max_new_tokens)
    fail("generate_params.min_new_tokens (", p.min_new_tokens, ") must not exceed max_new_tokens (", *p.max_new_tokens, ")");
  if (!(p.top_p > 0.0 && p.top_p <= 1.0)) fail("generate_params.top_p must be in (0, 1], got ", p.top_p);
  if (p.top_k && *p.top_k < 0) fail("generate_params.top_k must be >= 0, got ", *p.top_k);
  if (p.temperature && !(*p.temperature >= 0.0 && std::isfinite(*p.temperature)))
    fail("generate_params.temperature must be a finite number >= 0, got ", *p.temperature);
  for (std::size_t i = 0; i < p.stop.size(); ++i)
    if (p.stop[i].empty()) fail("generate_params.stop[", i, "] is an empty string");
  if (!(p.min_p >= 0.0 && p.min_p <= 1.0)) fail("generate_params.min_p must be in [0, 1], got ", p.min_p);
  if (!(p.repetition_penalty > 0.0 && std::isfinite(p.repetition_penalty)))
    fail("generate_params.repetition_penalty must be a finite number > 0, got ", p.repetition_penalty);
  if (!(p.presence_penalty >= -2.0 && p.presence_penalty <= 2.0))
    fail("generate_params.presence_penalty must be in [-2, 2], got ", p.presence_penalty);
  if (!(p.frequency_penalty >= -2.0 && p.frequency_penalty <= 2.0))
    fail("generate_params.frequency_penalty must be in [-2, 2], got ", p.frequency_penalty);
  for (const auto& [id, bias] : p.logit_bias) {
    if (id < 0) fail("generate_params.logit_bias: token id ", id, " is negative");
    if (!(bias >= -100.0 && bias <= 100.0))
      fail("generate_params.logit_bias[", id, "] must be in [-100, 100], got ", bias);
  }
  for (std::size_t i = 0; i < p.logit_bias.size(); ++i)
    for (std::size_t k = 0; k < i; ++k)
      if (p.logit_bias[k].first == p.logit_bias[i].first)
        fail("generate_params.logit_bias names token ", p.logit_bias[i].first, " twice");
  if (p.logprobs && (*p.logprobs < 0 || *p.logprobs > 20))
    fail("generate_params.logprobs must be in [0, 20], got ", *p.logprobs);
  if (p.prompt_logprobs && (*p.prompt_logprobs < 0 || *p.prompt_logprobs > 20))
    fail("generate_params.prompt_logprobs must be in [0, 20], got ", *p.prompt_logprobs);
  if (p.n < 1 || p.n > max_samples_per_prompt)
    fail("generate_params.n must be in [1, ", max_samples_per_prompt, "], got ", p.n);
}

namespace {
void json_string(std::ostream& os, std::string_view s) {
  os << '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': os << "\\\""; break;
      case '\\': os << "\\\\"; break;
      case '\n': os << "\\n"; break;
      case '\r': os << "\\r"; break;
      case '\t': os << "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          os << buf;
        } else {
          os << char(c);
        }
    }
  }
  os << '"';
}
// JSON has no infinity: a token the model gives no probability at all has log-probability -inf,
// written as the most negative float so that the line stays valid JSON.
std::string json_number(float v) {
  if (std::isnan(v)) return "null";
  if (std::isinf(v)) v = v < 0 ? -std::numeric_limits<float>::max() : std::numeric_limits<float>::max();
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", double(v));
  return buf;
}

void json_token_logprobs(std::ostream& os, const token_logprobs& t) {
  os << "{\"token_id\":" << t.token << ",\"logprob\":" << json_number(t.logprob) << ",\"top_logprobs\":[";
  for (std::size_t k = 0; k < t.top.size(); ++k)
    os << (k ? "," : "") << "{\"token_id\":" << t.top[k].first << ",\"logprob\":" << json_number(t.top[k].second) << '}';
  os << "]}";
}

// ,"logprobs":[...] when there are any: one entry per generated token (mii-generate --logprobs N --json).
void json_logprobs(std::ostream& os, const std::vector<token_logprobs>& lps) {
  if (!lps.empty()) {
    os << ",\"logprobs\":[";
    for (std::size_t i = 0; i < lps.size(); ++i) {
      if (i) os << ',';
      json_token_logprobs(os, lps[i]);
    }
    os << ']';
  }
}

// One of several samples: its index, text, ids, length, finish reason and logprobs (when asked for).
void json_sample(std::ostream& os, const sample_output& s) {
  os << "{\"index\":" << s.index << ",\"generated_text\":";
  json_string(os, s.generated_text);
  os << ",\"token_ids\":[";
  for (std::size_t i = 0; i < s.token_ids.size(); ++i) os << (i ? "," : "") << s.token_ids[i];
  os << "],\"generated_length\":" << s.generated_length << ",\"finish_reason\":\"" << to_string(s.finish_reason) << '"';
  json_logprobs(os, s.logprobs);
  os << '}';
}
}  // namespace

std::string response::to_json() const {
  std::ostringstream os;
  os << "{\"generated_text\":";
  json_string(os, generated_text);
  os << ",\"token_ids\":[";
  for (std::size_t i = 0; i < token_ids.size(); ++i) os << (i ? "," : "") << token_ids[i];
  os << "],\"prompt_length\":" << prompt_length << ",\"generated_length\":" << generated_length
     << ",\"finish_reason\":\"" << to_string(finish_reason) << '"';
  json_logprobs(os, logprobs);
  if (!prompt_logprobs.empty()) {
    // vLLM's shape: one entry per prompt token, null for the first (nothing comes before it).
    os << ",\"prompt_logprobs\":[null";
    for (const token_logprobs& t : prompt_logprobs) {
      os << ',';
      json_token_logprobs(os, t);
    }
    os << ']';
  }
  if (!samples.empty()) {
    os << ",\"samples\":[";
    for (std::size_t i = 0; i < samples.size(); ++i) {
      if (i) os << ',';
      json_sample(os, samples[i]);
    }
    os << ']';
  }
  if (!error.empty()) {
    os << ",\"error\":";
    json_string(os, error);
  }
  os << '}';
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const response& r) { return os << r.generated_text; }

}  // namespace mii

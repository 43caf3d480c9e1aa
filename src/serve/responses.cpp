#include "serve/responses.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <span>

#include "client/json_writer.hpp"
#include "serve/request_error.hpp"

namespace mii::serve {

using detail::json_writer;

std::optional<std::string_view> openai_finish_reason(generation_finish_reason r) {
  switch (r) {
    case generation_finish_reason::stop: return "stop";
    case generation_finish_reason::length: return "length";
    default: return std::nullopt;
  }
}

namespace {

void finish_reason_field(json_writer& w, generation_finish_reason r) {
  w.key("finish_reason");
  if (const auto s = openai_finish_reason(r)) {
    w.value(*s);
  } else {
    w.null();
  }
}

void usage_fields(json_writer& w, const usage& u) {
  w.key("usage").begin_object();
  w.key("prompt_tokens").value(u.prompt_tokens);
  w.key("completion_tokens").value(u.completion_tokens);
  w.key("total_tokens").value(u.prompt_tokens + u.completion_tokens);
  w.end_object();
}

void head(json_writer& w, const openai_meta& m, std::string_view object) {
  w.begin_object();
  w.key("id").value(m.id);
  w.key("object").value(object);
  w.key("created").value(m.created);
  w.key("model").value(m.model);
}

void string_or_null(json_writer& w, std::string_view s) {
  if (s.empty()) {
    w.null();
  } else {
    w.value(s);
  }
}

}  // namespace

std::string error_json(int status, std::string_view message, std::string_view param, std::string_view code) {
  json_writer w;
  w.begin_object().key("error").begin_object();
  w.key("message").value(message);
  w.key("type").value(error_type(status));
  w.key("param");
  string_or_null(w, param);
  w.key("code");
  string_or_null(w, code);
  w.end_object().end_object();
  return w.take();
}

namespace {

void logprobs_field(json_writer& w, std::string_view logprobs) {
  w.key("logprobs");
  if (logprobs.empty()) {
    w.null();
  } else {
    w.raw(logprobs);
  }
}

// A log-probability as JSON: a token the model gives no probability has -inf, which JSON cannot
// spell; the most negative float stands for it (null would break clients that sum them).
double finite_logprob(float v) {
  return std::isinf(v) && v < 0 ? double(-std::numeric_limits<float>::max()) : double(v);
}

void token_bytes(json_writer& w, std::string_view s) {
  w.key("bytes").begin_array();
  for (unsigned char c : s) w.value(std::int64_t(c));
  w.end_array();
}

}  // namespace

std::string token_text(const tokenizer* tok, token_id id) {
  if (!tok) return "token_id:" + std::to_string(id);
  return tok->decode(std::span(&id, 1), /*skip_special_tokens=*/false);
}

std::string completion_logprobs_json(const tokenizer* tok, const std::vector<token_logprobs>& lps, std::int64_t text_offset,
                                     const prompt_logprob_list* prompt) {
  json_writer w;
  // Every token in order: the prompt's (with `prompt`), then the generated ones; the first
  // prompt token has no log-probability.
  struct entry {
    const token_logprobs* lp;  // null: the first prompt token
    std::size_t top;
  };
  std::vector<entry> all;
  std::vector<std::string> texts;
  if (prompt) {
    all.push_back({nullptr, 0});
    texts.push_back(token_text(tok, prompt->first));
    for (const auto& t : *prompt->rest) {
      all.push_back({&t, std::min(t.top.size(), std::size_t(std::max(prompt->top, 0)))});
      texts.push_back(token_text(tok, t.token));
    }
  }
  for (const auto& t : lps) {
    all.push_back({&t, t.top.size()});
    texts.push_back(token_text(tok, t.token));
  }
  w.begin_object();
  w.key("tokens").begin_array();
  for (const auto& t : texts) w.value(t);
  w.end_array();
  w.key("token_logprobs").begin_array();
  for (const auto& e : all) {
    if (e.lp) {
      w.value(finite_logprob(e.lp->logprob));
    } else {
      w.null();
    }
  }
  w.end_array();
  w.key("top_logprobs").begin_array();
  for (const auto& e : all) {
    if (!e.lp) {
      w.null();
      continue;
    }
    w.begin_object();
    for (std::size_t k = 0; k < e.top; ++k) w.key(token_text(tok, e.lp->top[k].first)).value(finite_logprob(e.lp->top[k].second));
    w.end_object();
  }
  w.end_array();
  w.key("text_offset").begin_array();
  for (const auto& t : texts) {
    w.value(text_offset);
    text_offset += std::int64_t(t.size());
  }
  w.end_array();
  w.end_object();
  return w.take();
}

std::string prompt_logprobs_json(const tokenizer* tok, const prompt_logprob_list& p) {
  json_writer w;
  w.begin_array().null();
  for (const auto& t : *p.rest) {
    const std::size_t top = std::min(t.top.size(), std::size_t(std::max(p.top, 0)));
    auto write = [&](token_id id, float lp, std::optional<std::size_t> rank) {
      w.key(std::to_string(id)).begin_object();
      w.key("logprob").value(finite_logprob(lp));
      w.key("rank");
      if (rank) {
        w.value(std::int64_t(*rank));
      } else {
        w.null();
      }
      w.key("decoded_token").value(token_text(tok, id));
      w.end_object();
    };
    w.begin_object();
    std::optional<std::size_t> own_rank;
    for (std::size_t k = 0; k < top; ++k)
      if (t.top[k].first == t.token) own_rank = k + 1;
    write(t.token, t.logprob, own_rank);
    for (std::size_t k = 0; k < top; ++k)
      if (t.top[k].first != t.token) write(t.top[k].first, t.top[k].second, k + 1);
    w.end_object();
  }
  w.end_array();
  return w.take();
}

std::string chat_logprobs_json(const tokenizer* tok, const std::vector<token_logprobs>& lps) {
  json_writer w;
  w.begin_object().key("content").begin_array();
  for (const auto& t : lps) {
    const std::string text = token_text(tok, t.token);
    w.begin_object().key("token").value(text).key("logprob").value(finite_logprob(t.logprob));
    token_bytes(w, text);
    w.key("top_logprobs").begin_array();
    for (const auto& [id, lp] : t.top) {
      const std::string alt = token_text(tok, id);
      w.begin_object().key("token").value(alt).key("logprob").value(finite_logprob(lp));
      token_bytes(w, alt);
      w.end_object();
    }
    w.end_array().end_object();
  }
  w.end_array().key("refusal").null().end_object();
  return w.take();
}

std::string completion_json(const openai_meta& m, const std::vector<choice_text>& choices, const usage& u) {
  json_writer w;
  head(w, m, "text_completion");
  w.key("choices").begin_array();
  for (const auto& c : choices) {
    w.begin_object();
    w.key("index").value(std::int64_t(c.index));
    w.key("text").value(c.text);
    logprobs_field(w, c.logprobs);
    finish_reason_field(w, c.finish_reason);
    if (!c.prompt_logprobs.empty()) w.key("prompt_logprobs").raw(c.prompt_logprobs);
    w.end_object();
  }
  w.end_array();
  usage_fields(w, u);
  w.end_object();
  return w.take();
}

std::string chat_completion_json(const openai_meta& m, const std::vector<choice_text>& choices, const usage& u,
                                 std::string_view prompt_logprobs) {
  json_writer w;
  head(w, m, "chat.completion");
  w.key("choices").begin_array();
  for (const auto& c : choices) {
    w.begin_object();
    w.key("index").value(std::int64_t(c.index));
    w.key("message").begin_object().key("role").value("assistant").key("content").value(c.text).end_object();
    logprobs_field(w, c.logprobs);
    finish_reason_field(w, c.finish_reason);
    w.end_object();
  }
  w.end_array();
  usage_fields(w, u);
  if (!prompt_logprobs.empty()) w.key("prompt_logprobs").raw(prompt_logprobs);
  w.end_object();
  return w.take();
}

std::string completion_chunk_json(const openai_meta& m, std::size_t index, std::string_view text,
                                  generation_finish_reason finish_reason, bool include_usage, std::string_view logprobs,
                                  std::string_view prompt_logprobs) {
  json_writer w;
  head(w, m, "text_completion");
  w.key("choices").begin_array().begin_object();
  w.key("index").value(std::int64_t(index));
  w.key("text").value(text);
  logprobs_field(w, logprobs);
  finish_reason_field(w, finish_reason);
  if (!prompt_logprobs.empty()) w.key("prompt_logprobs").raw(prompt_logprobs);
  w.end_object().end_array();
  if (include_usage) w.key("usage").null();
  w.end_object();
  return w.take();
}

std::string chat_chunk_json(const openai_meta& m, std::size_t index, std::optional<std::string_view> role,
                            std::optional<std::string_view> content, generation_finish_reason finish_reason,
                            bool include_usage, std::string_view logprobs) {
  json_writer w;
  head(w, m, "chat.completion.chunk");
  w.key("choices").begin_array().begin_object();
  w.key("index").value(std::int64_t(index));
  w.key("delta").begin_object();
  if (role) w.key("role").value(*role);
  if (content) w.key("content").value(*content);
  w.end_object();
  logprobs_field(w, logprobs);
  finish_reason_field(w, finish_reason);
  w.end_object().end_array();
  if (include_usage) w.key("usage").null();
  w.end_object();
  return w.take();
}

std::string usage_chunk_json(const openai_meta& m, std::string_view object, const usage& u) {
  json_writer w;
  head(w, m, object);
  w.key("choices").begin_array().end_array();
  usage_fields(w, u);
  w.end_object();
  return w.take();
}

std::string model_json(std::string_view name, std::int64_t created, std::int64_t max_model_len) {
  json_writer w;
  w.begin_object();
  w.key("id").value(name);
  w.key("object").value("model");
  w.key("created").value(created);
  w.key("owned_by").value("mii");
  w.key("max_model_len").value(max_model_len);
  w.end_object();
  return w.take();
}

std::string model_list_json(std::string_view name, std::int64_t created, std::int64_t max_model_len) {
  json_writer w;
  w.begin_object().key("object").value("list").key("data").begin_array();
  w.raw(model_json(name, created, max_model_len));
  w.end_array().end_object();
  return w.take();
}

namespace {
void mii_response_fields(json_writer& w, const response& r) {
  w.key("generated_text").value(r.generated_text);
  w.key("prompt_length").value(r.prompt_length);
  w.key("generated_length").value(r.generated_length);
  w.key("finish_reason").value(to_string(r.finish_reason));
}
}  // namespace

std::string mii_response_json(const response& r) {
  json_writer w;
  w.begin_object();
  mii_response_fields(w, r);
  w.end_object();
  return w.take();
}

std::string mii_response_list_json(const std::vector<response>& rs) {
  json_writer w;
  w.begin_array();
  for (const auto& r : rs) w.raw(mii_response_json(r));
  w.end_array();
  return w.take();
}

std::string mii_delta_json(std::size_t index, std::string_view text, const std::vector<token_id>& token_ids) {
  json_writer w;
  w.begin_object();
  w.key("index").value(std::int64_t(index));
  w.key("text").value(text);
  w.key("token_ids").begin_array();
  for (token_id t : token_ids) w.value(std::int64_t(t));
  w.end_array();
  w.end_object();
  return w.take();
}

std::string mii_final_json(std::size_t index, const response& r) {
  json_writer w;
  w.begin_object();
  w.key("index").value(std::int64_t(index));
  w.key("response").begin_object();
  mii_response_fields(w, r);
  w.end_object();
  w.end_object();
  return w.take();
}

}  // namespace mii::serve

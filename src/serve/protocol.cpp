#include "serve/protocol.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "client/json_writer.hpp"
#include "io/json_reader.hpp"
#include "serve/json_fields.hpp"
#include "serve/request_error.hpp"

namespace mii::serve {

namespace {

using simdjson::dom::element;

std::string quote_value(std::string_view s) {
  std::string out;
  detail::append_json_string(out, s.size() > 80 ? s.substr(0, 77) : s);
  if (s.size() > 80) out.insert(out.size() - 1, "...");
  return out;
}

simdjson::dom::element parse_body(std::string_view body, detail::json_document& doc) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos)
    throw request_error(400, "the request body is empty: send a JSON object (Content-Type: application/json)");
  try {
    doc = detail::json_document::from_string(body, "request body");
  } catch (const error& e) {
    throw request_error(400, e.what());  // "request body: malformed JSON: <simdjson's reason>"
  }
  return doc.root();
}

void check_model(field_reader& f, std::string_view served_name) {
  const auto model = f.take_string("model");
  if (model && *model != served_name)
    throw request_error(404, "the model " + quote_value(*model) + " does not exist: this server serves " + quote_value(served_name),
                        "model", "model_not_found");
}

// ---- sampling fields shared by both OpenAI endpoints -------------------------------------------

void take_temperature(field_reader& f, generate_params& p) {
  if (const auto t = f.take_number("temperature")) {
    if (!(std::isfinite(*t) && *t >= 0.0)) f.invalid("temperature", "must be a number >= 0 (0 is greedy), got " + std::to_string(*t));
    p.temperature = *t;
  }
}

void take_top_p(field_reader& f, generate_params& p, std::string_view key) {
  if (const auto v = f.take_number(key)) {
    if (!(*v > 0.0 && *v <= 1.0)) f.invalid(key, "must be in (0, 1], got " + std::to_string(*v));
    p.top_p = *v;
  }
}

// vLLM's top_k: -1 (and 0) keep every token.
void take_top_k(field_reader& f, generate_params& p, bool minus_one_is_off) {
  if (const auto k = f.take_int("top_k")) {
    if (*k == -1 && minus_one_is_off) return;
    if (*k < 0) f.invalid("top_k", minus_one_is_off ? "must be -1 or 0 (all tokens) or a count >= 1, got " + std::to_string(*k)
                                                    : "must be >= 0 (0: all tokens), got " + std::to_string(*k));
    if (*k > 0) p.top_k = *k;
  }
}

void take_stop(field_reader& f, generate_params& p) {
  auto stop = f.take_string_or_list("stop");
  if (!stop) return;
  if (stop->size() > max_stop_strings)
    f.invalid("stop", "has " + std::to_string(stop->size()) + " strings; at most " + std::to_string(max_stop_strings) +
                          " are accepted");
  for (std::size_t i = 0; i < stop->size(); ++i)
    if ((*stop)[i].empty()) {
      const std::string param = f.param("stop") + (stop->size() > 1 ? "[" + std::to_string(i) + "]" : "");
      throw request_error(400, "'" + param + "' is an empty string: a stop string must have at least one character", param);
    }
  p.stop = std::move(*stop);
}

std::optional<std::int64_t> take_count(field_reader& f, std::string_view key, std::int64_t min) {
  const auto v = f.take_int(key);
  if (v && *v < min) f.invalid(key, "must be an integer >= " + std::to_string(min) + ", got " + std::to_string(*v));
  return v;
}

// Parameters the engine has no implementation of yet: their default (what the official clients
// and common tools send) is accepted, anything else is refused naming the field -- never ignored.
template <class IsDefault>
void accept_default_only(field_reader& f, std::string_view key, IsDefault is_default, std::string_view default_text) {
  const auto e = f.take(key);
  if (!e || is_default(*e)) return;
  f.invalid(key, "is not supported by mii-serve yet (got " + preview(*e) + "); leave it out or send " +
                     std::string(default_text));
}

bool number_is(element e, double v) {
  double d;
  if (e.is_int64()) return double(std::int64_t(e)) == v;
  return !e.get_double().get(d) && d == v;
}
bool is_false(element e) { return e.is_bool() && !bool(e); }
bool is_empty_container(element e) {
  simdjson::dom::array a;
  simdjson::dom::object o;
  if (!e.get(a)) return a.size() == 0;
  if (!e.get(o)) return o.size() == 0;
  return false;
}
bool is_string(element e, std::initializer_list<std::string_view> values) {
  if (!e.is_string()) return false;
  for (auto v : values)
    if (std::string_view(e) == v) return true;
  return false;
}

// OpenAI's presence / frequency penalties and logit_bias, vLLM's repetition_penalty and min_p.
void take_penalties(field_reader& f, generate_params& p) {
  auto ranged = [&](std::string_view key, double lo, double hi, double& out) {
    if (const auto v = f.take_number(key)) {
      if (!(*v >= lo && *v <= hi))
        f.invalid(key, "must be in [" + std::to_string(int(lo)) + ", " + std::to_string(int(hi)) + "], got " + std::to_string(*v));
      out = *v;
    }
  };
  ranged("presence_penalty", -2, 2, p.presence_penalty);
  ranged("frequency_penalty", -2, 2, p.frequency_penalty);
  ranged("min_p", 0, 1, p.min_p);
  if (const auto v = f.take_number("repetition_penalty")) {
    if (!(std::isfinite(*v) && *v > 0)) f.invalid("repetition_penalty", "must be a number > 0 (1: off), got " + std::to_string(*v));
    p.repetition_penalty = *v;
  }
  if (const auto bias = f.take("logit_bias")) {
    simdjson::dom::object o;
    if (bias->get(o)) f.wrong_type("logit_bias", "an object of token id -> bias", *bias);
    field_reader b(*bias, f.param("logit_bias"));
    for (auto field : o) {
      const std::string key(field.key);
      const std::string param = f.param("logit_bias") + "." + key;
      std::size_t used = 0;
      long long id = -1;
      try {
        id = std::stoll(key, &used);
      } catch (const std::exception&) {
      }
      if (used != key.size() || id < 0 || id > std::numeric_limits<token_id>::max())
        throw request_error(400, "'" + param + "': the keys of logit_bias are token ids, got " + quote_value(key), param);
      const auto v = b.take_number(key);
      if (!v || !(*v >= -100.0 && *v <= 100.0))
        throw request_error(400, "'" + param + "' must be a number in [-100, 100]", param);
      p.logit_bias.emplace_back(token_id(id), *v);
    }
    b.finish();
  }
}

// OpenAI's n: choices per prompt, each a sample of the engine's request (generate_params.n).
void take_n(field_reader& f, generate_params& p) {
  if (const auto n = f.take_int("n")) {
    if (*n < 1 || *n > max_choices_per_prompt)
      f.invalid("n", "must be an integer in [1, " + std::to_string(max_choices_per_prompt) + "], got " + std::to_string(*n));
    p.n = std::int32_t(*n);
  }
}

// vLLM's prompt_logprobs: alternatives per prompt token (0-20).
std::optional<std::int32_t> take_prompt_logprobs(field_reader& f) {
  const auto n = f.take_int("prompt_logprobs");
  if (n && (*n < 0 || *n > 20)) f.invalid("prompt_logprobs", "must be an integer in [0, 20], got " + std::to_string(*n));
  if (!n) return std::nullopt;
  return std::int32_t(*n);
}

// `user` and `metadata` describe the caller for the provider's records; a server that keeps no
// records has nothing to do with them, so they are accepted (type-checked) and not used.
void take_caller_metadata(field_reader& f, bool metadata_allowed) {
  f.take_string("user");
  if (metadata_allowed)
    if (const auto m = f.take("metadata")) field_reader(*m, f.param("metadata"));  // must be an object
}

// stream, stream_options.include_usage. OpenAI refuses stream_options without stream.
void take_stream(field_reader& f, bool& stream, bool& include_usage) {
  stream = f.take_bool("stream").value_or(false);
  const auto opts = f.take("stream_options");
  if (!opts) return;
  if (!stream) f.invalid("stream_options", "is only allowed with \"stream\": true");
  field_reader o(*opts, f.param("stream_options"));
  include_usage = o.take_bool("include_usage").value_or(false);
  accept_default_only(o, "continuous_usage_stats", is_false, "false");
  o.finish();
}

// An integer that is a token id (the vocabulary check is the engine's).
token_id token_of(element x, const std::string& param) {
  const auto v = as_int(x);
  if (!v) throw request_error(400, "'" + param + "' must be a token id (an integer), got " + std::string(type_name(x)) + " " + preview(x), param);
  if (*v < 0 || *v > std::numeric_limits<token_id>::max())
    throw request_error(400, "'" + param + "' is " + std::to_string(*v) + ", which is not a token id", param);
  return token_id(*v);
}

std::vector<token_id> token_list(simdjson::dom::array arr, const std::string& param) {
  std::vector<token_id> ids;
  std::size_t i = 0;
  for (element x : arr) ids.push_back(token_of(x, param + "[" + std::to_string(i++) + "]"));
  if (ids.empty()) throw request_error(400, "'" + param + "' is an empty list of token ids", param);
  return ids;
}

// OpenAI's prompt: "text", ["text", ...], [id, ...] or [[id, ...], ...].
std::vector<prompt_input> take_prompts(field_reader& f) {
  const auto e = f.take("prompt");
  if (!e) throw request_error(400, "'prompt' is required: a string, a list of strings, or token ids", "prompt");
  std::vector<prompt_input> out;
  if (e->is_string()) {
    out.push_back({.text = std::string(std::string_view(*e))});
    return out;
  }
  simdjson::dom::array arr;
  if (e->get(arr)) f.wrong_type("prompt", "a string, a list of strings, a list of token ids or a list of such lists", *e);
  if (arr.size() == 0) f.invalid("prompt", "is an empty list: give at least one prompt");
  element first = *arr.begin();
  if (first.is_number()) {  // one prompt as token ids
    out.push_back({.ids = token_list(arr, "prompt"), .is_ids = true});
    return out;
  }
  if (arr.size() > max_prompts_per_request)
    f.invalid("prompt", "has " + std::to_string(arr.size()) + " prompts; at most " + std::to_string(max_prompts_per_request) +
                            " are accepted per request");
  std::size_t i = 0;
  for (element x : arr) {
    const std::string param = "prompt[" + std::to_string(i++) + "]";
    simdjson::dom::array ids;
    if (x.is_string()) {
      out.push_back({.text = std::string(std::string_view(x))});
    } else if (!x.get(ids)) {
      out.push_back({.ids = token_list(ids, param), .is_ids = true});
    } else {
      throw request_error(400, "'" + param + "' must be a string or a list of token ids, got " + std::string(type_name(x)) +
                                   " " + preview(x),
                          param);
    }
  }
  return out;
}

// Max tokens: max_completion_tokens (chat's current name) or max_tokens, not both.
std::optional<std::int64_t> take_max_tokens(field_reader& f, bool chat) {
  const auto max_tokens = take_count(f, "max_tokens", 1);
  if (!chat) return max_tokens;
  const auto max_completion = take_count(f, "max_completion_tokens", 1);
  if (max_tokens && max_completion && *max_tokens != *max_completion)
    f.invalid("max_completion_tokens", "is " + std::to_string(*max_completion) + " but 'max_tokens' is " +
                                           std::to_string(*max_tokens) + ": give one of them");
  return max_completion ? max_completion : max_tokens;
}

void take_min_tokens(field_reader& f, generate_params& p, std::optional<std::int64_t> max_tokens, std::string_view max_key) {
  const auto min = take_count(f, "min_tokens", 0);
  if (!min) return;
  if (max_tokens && *min > *max_tokens)
    f.invalid("min_tokens", "(" + std::to_string(*min) + ") must not exceed '" + std::string(max_key) + "' (" +
                                std::to_string(*max_tokens) + ")");
  p.min_new_tokens = *min;
}

// ---- chat messages ----------------------------------------------------------------------------

// A message's content as the template sees it: a string. Text parts are joined with "\n".
std::string message_content(element content, const std::string& param) {
  if (content.is_string()) return std::string(std::string_view(content));
  simdjson::dom::array parts;
  if (content.get(parts))
    throw request_error(400, "'" + param + "' must be a string or a list of content parts, got " +
                                 std::string(type_name(content)) + " " + preview(content),
                        param);
  std::string text;
  std::size_t i = 0;
  for (element part : parts) {
    const std::string part_param = param + "[" + std::to_string(i) + "]";
    field_reader pf(part, part_param);
    const auto type = pf.take_string("type");
    if (!type) throw request_error(400, "'" + part_param + ".type' is required (\"text\")", part_param + ".type");
    if (*type != "text")
      throw request_error(400, "'" + part_param + ".type' is " + quote_value(*type) +
                                   ": only \"text\" content parts are supported (this server runs a text-only model)",
                          part_param + ".type");
    const auto t = pf.take_string("text");
    if (!t) throw request_error(400, "'" + part_param + ".text' is required for a text part", part_param + ".text");
    pf.finish();
    if (i++ > 0) text += '\n';
    text += *t;
  }
  return text;
}

void write_message(detail::json_writer& w, element m, const std::string& param) {
  field_reader f(m, param);
  const auto role = f.take_string("role");
  if (!role) throw request_error(400, "'" + param + ".role' is required", param + ".role");
  static constexpr std::string_view roles[] = {"system", "developer", "user", "assistant", "tool"};
  if (std::find(std::begin(roles), std::end(roles), *role) == std::end(roles))
    f.invalid("role", "is " + quote_value(*role) + "; expected one of system, developer, user, assistant, tool");
  w.begin_object().key("role").value(*role);
  const auto content = f.take("content");
  const auto tool_calls = f.take("tool_calls");
  if (content) {
    w.key("content").value(message_content(*content, f.param("content")));
  } else if (*role == "assistant" && tool_calls) {
    w.key("content").null();
  } else {
    throw request_error(400, "'" + f.param("content") + "' is required", f.param("content"));
  }
  if (const auto name = f.take_string("name")) w.key("name").value(*name);
  // Earlier tool calls and their results are history the template renders; their shapes are the
  // template's business, so they pass through as given.
  if (tool_calls) {
    if (*role != "assistant") f.invalid("tool_calls", "is only allowed in assistant messages");
    simdjson::dom::array a;
    if (tool_calls->get(a)) f.wrong_type("tool_calls", "a list", *tool_calls);
    w.key("tool_calls").raw(simdjson::minify(*tool_calls));
  }
  if (const auto id = f.take_string("tool_call_id")) {
    if (*role != "tool") f.invalid("tool_call_id", "is only allowed in tool messages");
    w.key("tool_call_id").value(*id);
  }
  accept_default_only(f, "refusal", [](element) { return false; }, "null");
  f.finish();
  w.end_object();
}

}  // namespace

// ---- /v1/completions -----------------------------------------------------------------------------

completion_request decode_completion_request(std::string_view body, std::string_view served_name) {
  detail::json_document doc;
  field_reader f(parse_body(body, doc), "");
  completion_request r;
  check_model(f, served_name);
  r.prompts = take_prompts(f);
  r.max_tokens = take_max_tokens(f, false);
  r.params.top_p = 1.0;  // OpenAI's default; the engine's (MII's) is 0.9
  take_temperature(f, r.params);
  take_top_p(f, r.params, "top_p");
  take_top_k(f, r.params, true);
  take_min_tokens(f, r.params, r.max_tokens, "max_tokens");
  r.params.ignore_eos = f.take_bool("ignore_eos").value_or(false);
  take_stop(f, r.params);
  r.seed = f.take_int("seed");
  r.echo = f.take_bool("echo").value_or(false);
  take_stream(f, r.stream, r.include_usage);
  take_caller_metadata(f, false);
  take_penalties(f, r.params);
  take_n(f, r.params);
  r.prompt_logprobs = take_prompt_logprobs(f);
  // best_of (draw more samples, return the n most likely) needs a ranking by cumulative
  // log-probability that the engine does not make.
  accept_default_only(f, "best_of", [](element e) { return number_is(e, 1); }, "1 (or leave it out; use n for several choices)");
  // Completions' logprobs: how many alternatives besides the chosen token (OpenAI allows 5, vLLM 20).
  if (const auto n = f.take_int("logprobs")) {
    if (*n < 0 || *n > 20) f.invalid("logprobs", "must be an integer in [0, 20], got " + std::to_string(*n));
    r.params.logprobs = std::int32_t(*n);
  }
  accept_default_only(f, "suffix", [](element e) { return is_string(e, {""}); }, "null");
  f.finish();
  return r;
}

// ---- /v1/chat/completions ----------------------------------------------------------------------

chat_request decode_chat_request(std::string_view body, std::string_view served_name) {
  detail::json_document doc;
  field_reader f(parse_body(body, doc), "");
  chat_request r;
  check_model(f, served_name);

  detail::json_writer vars;
  vars.begin_object().key("messages").begin_array();
  const auto messages = f.take("messages");
  if (!messages) throw request_error(400, "'messages' is required: a list of {\"role\", \"content\"} objects", "messages");
  simdjson::dom::array list;
  if (messages->get(list)) f.wrong_type("messages", "a list of messages", *messages);
  if (list.size() == 0) f.invalid("messages", "is an empty list: give at least one message");
  std::size_t i = 0;
  for (element m : list) write_message(vars, m, "messages[" + std::to_string(i++) + "]");
  vars.end_array();
  vars.key("add_generation_prompt").value(f.take_bool("add_generation_prompt").value_or(true));
  if (const auto kwargs = f.take("chat_template_kwargs")) {
    field_reader k(*kwargs, "chat_template_kwargs");  // an object, each key once
    simdjson::dom::object entries;
    if (kwargs->get(entries)) k.wrong_type("chat_template_kwargs", "an object", *kwargs);
    for (auto field : entries) {
      if (field.key == "messages" || field.key == "add_generation_prompt")
        k.invalid(field.key, "is set by the request itself, not through chat_template_kwargs");
      vars.key(field.key).raw(simdjson::minify(field.value));
    }
  }
  vars.end_object();
  r.template_variables = vars.take();

  r.max_tokens = take_max_tokens(f, true);
  if (f.take("max_completion_tokens")) r.max_tokens_param = "max_completion_tokens";
  r.params.top_p = 1.0;
  take_temperature(f, r.params);
  take_top_p(f, r.params, "top_p");
  take_top_k(f, r.params, true);
  take_min_tokens(f, r.params, r.max_tokens, r.max_tokens_param);
  r.params.ignore_eos = f.take_bool("ignore_eos").value_or(false);
  take_stop(f, r.params);
  r.seed = f.take_int("seed");
  take_stream(f, r.stream, r.include_usage);
  take_caller_metadata(f, true);
  take_penalties(f, r.params);
  take_n(f, r.params);
  r.params.prompt_logprobs = take_prompt_logprobs(f);
  if (r.params.prompt_logprobs && r.stream)
    f.invalid("prompt_logprobs", "is returned in the whole response only: leave it out with \"stream\": true");
  // Chat's logprobs: true/false, and top_logprobs alternatives (0-20), which need logprobs.
  const bool logprobs = f.take_bool("logprobs").value_or(false);
  const auto top = f.take_int("top_logprobs");
  if (top && (*top < 0 || *top > 20)) f.invalid("top_logprobs", "must be an integer in [0, 20], got " + std::to_string(*top));
  if (top && *top > 0 && !logprobs) f.invalid("top_logprobs", "needs \"logprobs\": true");
  if (logprobs) r.params.logprobs = std::int32_t(top.value_or(0));
  accept_default_only(f, "response_format", [](element e) {
    simdjson::dom::object o;
    std::string_view type;
    return !e.get(o) && o.size() == 1 && !o["type"].get(type) && type == "text";
  }, "{\"type\": \"text\"}");
  // Tools: the template could render them, but nothing here turns the model's answer back into
  // tool_calls, so a client would get the call as plain text and never know; refused until then.
  accept_default_only(f, "tools", is_empty_container, "[] (tool calling is not supported yet)");
  accept_default_only(f, "tool_choice", [](element e) { return is_string(e, {"none", "auto"}); }, "\"none\"");
  accept_default_only(f, "functions", is_empty_container, "[]");
  accept_default_only(f, "function_call", [](element e) { return is_string(e, {"none", "auto"}); }, "\"none\"");
  if (const auto ptc = f.take("parallel_tool_calls"); ptc && !ptc->is_bool())
    f.wrong_type("parallel_tool_calls", "true or false", *ptc);
  accept_default_only(f, "store", is_false, "false (this server stores nothing)");
  f.finish();
  return r;
}

// ---- /mii/{deployment} ---------------------------------------------------------------------------

mii_request decode_mii_request(std::string_view body) {
  detail::json_document doc;
  field_reader f(parse_body(body, doc), "");
  mii_request r;
  auto prompts = f.take_string_or_list("prompts");
  auto prompt = f.take_string_or_list("prompt");
  if (prompts && prompt) f.invalid("prompt", "and 'prompts' are both given: give one of them");
  if (!prompts) prompts = std::move(prompt);
  if (!prompts) throw request_error(400, "'prompts' is required: a string or a list of strings", "prompts");
  if (prompts->empty()) f.invalid("prompts", "is an empty list: give at least one prompt");
  if (prompts->size() > max_prompts_per_request)
    f.invalid("prompts", "has " + std::to_string(prompts->size()) + " prompts; at most " +
                             std::to_string(max_prompts_per_request) + " are accepted per request");
  r.prompts = std::move(*prompts);

  generate_params& p = r.params;
  if (const auto v = take_count(f, "max_length", 1)) p.max_length = *v;
  p.max_new_tokens = take_count(f, "max_new_tokens", 1);
  if (const auto v = take_count(f, "min_new_tokens", 0)) p.min_new_tokens = *v;
  if (p.max_new_tokens && p.min_new_tokens > *p.max_new_tokens)
    f.invalid("min_new_tokens", "(" + std::to_string(p.min_new_tokens) + ") must not exceed 'max_new_tokens' (" +
                                    std::to_string(*p.max_new_tokens) + ")");
  p.ignore_eos = f.take_bool("ignore_eos").value_or(p.ignore_eos);
  p.return_full_text = f.take_bool("return_full_text").value_or(p.return_full_text);
  p.do_sample = f.take_bool("do_sample").value_or(p.do_sample);
  take_top_p(f, p, "top_p");
  take_top_k(f, p, false);
  take_temperature(f, p);
  take_stop(f, p);
  if (const auto seed = f.take_int("seed")) p.seed = std::uint64_t(*seed);
  take_penalties(f, p);  // mii's extension of MII's kwargs
  // MII's Response holds one text per prompt.
  accept_default_only(f, "n", [](element e) { return number_is(e, 1); }, "1 (one response per prompt; /v1/completions has n)");
  r.stream = f.take_bool("stream").value_or(false);
  f.finish();
  return r;
}

// ---- lengths ------------------------------------------------------------------------------------

void fit_to_context(generate_params& p, std::optional<std::int64_t> max_tokens, std::optional<std::int64_t> default_max_tokens,
                    std::int64_t prompt_tokens, std::int64_t context, std::string_view prompt_param,
                    std::string_view max_tokens_param) {
  if (prompt_tokens >= context)
    throw request_error(400,
                        "the prompt is " + std::to_string(prompt_tokens) + " tokens, but this model's context is " +
                            std::to_string(context) + " tokens (prompt + completion): shorten '" +
                            std::string(prompt_param) + "' to at most " + std::to_string(context - 1) + " tokens",
                        std::string(prompt_param));
  const std::int64_t room = context - prompt_tokens;
  if (max_tokens && *max_tokens > room)
    throw request_error(400,
                        "'" + std::string(max_tokens_param) + "' is " + std::to_string(*max_tokens) + ", but the prompt is " +
                            std::to_string(prompt_tokens) + " tokens and this model's context is " + std::to_string(context) +
                            " tokens: at most " + std::to_string(room) + " can be generated",
                        std::string(max_tokens_param));
  p.max_length = context;
  p.max_new_tokens = max_tokens ? *max_tokens : std::min(default_max_tokens.value_or(room), room);
  if (p.min_new_tokens > *p.max_new_tokens)
    throw request_error(400,
                        "'min_tokens' (" + std::to_string(p.min_new_tokens) + ") is more than the " +
                            std::to_string(*p.max_new_tokens) + " tokens that fit beside the prompt",
                        "min_tokens");
}

}  // namespace mii::serve

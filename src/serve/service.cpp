#include "serve/service.hpp"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <random>

#include <mii/runtime/engine.hpp>

#include "serve/protocol.hpp"
#include "serve/request_error.hpp"
#include "serve/responses.hpp"

namespace mii::serve {

namespace {

std::string_view path_of(std::string_view target) { return target.substr(0, target.find('?')); }

http_reply json_reply(int status, std::string body) { return {.status = status, .body = std::move(body)}; }

http_reply error_reply(const request_error& e) {
  http_reply r = json_reply(e.status, error_json(e.status, e.what(), e.param, e.code));
  if (e.status == 503) r.headers.emplace_back("Retry-After", "1");
  if (e.status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer");
  return r;
}

// Compares without an early exit, so that the time taken says nothing about the key.
bool same_secret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

std::string indexed(std::string_view name, std::size_t i, std::size_t n) {
  return n == 1 ? std::string(name) : std::string(name) + "[" + std::to_string(i) + "]";
}

}  // namespace

service::service(generation_pipeline& pipe, std::optional<chat_template> chat, service_options opts)
    : pipe_(pipe),
      chat_(std::move(chat)),
      opts_(std::move(opts)),
      context_(pipe.max_sequence_length()),
      max_prompt_bytes_(pipe.has_tokenizer() ? runtime::max_prompt_bytes(pipe.tok(), context_) : 0),
      started_(std::int64_t(std::time(nullptr))),
      id_salt_((std::uint64_t(std::random_device{}()) << 32) ^ std::random_device{}()) {
  ctx_->metrics = &metrics_;
}

service::~service() { cancel_all(); }

std::string_view service::route_of(std::string_view target) {
  const std::string_view path = path_of(target);
  for (std::string_view exact : {"/health", "/metrics", "/v1/models", "/v1/completions", "/v1/chat/completions"})
    if (path == exact) return exact;
  if (path.starts_with("/v1/models/")) return "/v1/models";
  if (path.starts_with("/mii/")) return "/mii";
  return "other";
}

bool service::authorized(std::string_view authorization) const {
  if (opts_.api_key.empty()) return true;
  // "Bearer <key>"; the scheme is case-insensitive (RFC 9110).
  constexpr std::string_view scheme = "bearer ";
  if (authorization.size() < scheme.size()) return false;
  for (std::size_t i = 0; i < scheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != scheme[i]) return false;
  std::string_view key = authorization.substr(scheme.size());
  while (!key.empty() && key.front() == ' ') key.remove_prefix(1);
  while (!key.empty() && key.back() == ' ') key.remove_suffix(1);
  return same_secret(key, opts_.api_key);
}

service::outcome service::handle(const incoming_request& req, const std::shared_ptr<response_sink>& sink) {
  const std::string_view path = path_of(req.target);
  try {
    if ((path.starts_with("/v1/") || path.starts_with("/mii/")) && !authorized(req.authorization))
      throw request_error(401,
                          req.authorization.empty() ? "this server needs an API key: send \"Authorization: Bearer <key>\""
                                                    : "the API key in the Authorization header is not valid",
                          {}, "invalid_api_key");
    // A known path with another method: 405 naming the one it takes.
    const auto method_is = [&](std::string_view method) {
      if (req.method == method) return true;
      http_reply r = json_reply(405, error_json(405, req.method.substr(0, 20) + " is not allowed on " +
                                                         std::string(path) + ": use " + std::string(method)));
      r.headers.emplace_back("Allow", std::string(method));
      throw r;
    };
    if (path == "/health" && method_is("GET")) return {.reply = health()};
    if (path == "/metrics" && method_is("GET")) return {.reply = metrics_text()};
    if (path == "/v1/models" && method_is("GET")) return {.reply = models(std::nullopt)};
    if (path.starts_with("/v1/models/") && method_is("GET")) return {.reply = models(path.substr(11))};
    if (path == "/v1/completions" && method_is("POST")) return completions(req, sink);
    if (path == "/v1/chat/completions" && method_is("POST")) return chat_completions(req, sink);
    if (path.starts_with("/mii/") && method_is("POST")) return mii_generate(req, path.substr(5), sink);
    throw request_error(404, "no such endpoint: " + req.method + " " + std::string(path.substr(0, 200)) +
                                 " (endpoints: /v1/completions, /v1/chat/completions, /v1/models, /mii/" +
                                 opts_.served_model_name + ", /health, /metrics)");
  } catch (const request_error& e) {
    return {.reply = error_reply(e)};
  } catch (http_reply& r) {
    return {.reply = std::move(r)};
  }
}

http_reply service::health() const {
  if (draining()) return json_reply(503, R"({"status":"shutting down"})");
  return json_reply(200, R"({"status":"ok"})");
}

http_reply service::metrics_text() const {
  return {.status = 200,
          .content_type = "text/plain; version=0.0.4; charset=utf-8",
          .body = metrics_.prometheus_text(pipe_.stats(), in_flight())};
}

http_reply service::models(std::optional<std::string_view> one) const {
  if (!one) return json_reply(200, model_list_json(opts_.served_model_name, started_, context_));
  if (*one != opts_.served_model_name)
    throw request_error(404, "the model '" + std::string(one->substr(0, 200)) + "' does not exist: this server serves '" +
                                 opts_.served_model_name + "'",
                        "model", "model_not_found");
  return json_reply(200, model_json(opts_.served_model_name, started_, context_));
}

void service::reserve(std::size_t n) {
  if (draining()) throw request_error(503, "the server is shutting down");
  const auto before = ctx_->in_flight.fetch_add(std::int64_t(n), std::memory_order_acq_rel);
  if (std::size_t(before) + n > opts_.max_queue) {
    ctx_->in_flight.fetch_sub(std::int64_t(n), std::memory_order_acq_rel);
    throw request_error(503, "the server is busy: " + std::to_string(before) + " requests are in flight and the queue holds " +
                                 std::to_string(opts_.max_queue) + " (--max-queue); retry later");
  }
}

std::vector<token_id> service::encode(std::string_view text, bool add_special_tokens, const std::string& param) const {
  if (!pipe_.has_tokenizer())
    throw request_error(400, "this model has no tokenizer.json: send the prompt as token ids", param);
  // A cheap bound first: a text this long cannot fit the context, whatever it encodes to.
  if (text.size() > max_prompt_bytes_)
    throw request_error(400, "'" + param + "' is " + std::to_string(text.size()) + " bytes, more than this model's context of " +
                                 std::to_string(context_) + " tokens can hold",
                        param);
  try {
    return pipe_.tok().encode(text, add_special_tokens);
  } catch (const error& e) {
    throw request_error(400, "'" + param + "': " + e.what(), param);
  }
}

void service::submit_all(const std::shared_ptr<generation_job>& job,
                         const std::function<request_handle(std::size_t, generate_params)>& submit,
                         std::vector<generate_params> params, const std::vector<std::string>& names) {
  const std::size_t n = params.size();
  reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    params[i].stream = job->callback(i);
    try {
      job->attach(i, submit(i, std::move(params[i])));
    } catch (const error& e) {
      // The ones submitted end (cancelled) and give their places back themselves.
      job->cancel();
      ctx_->in_flight.fetch_sub(std::int64_t(n - i), std::memory_order_acq_rel);
      throw request_error(400, "'" + names[i] + "': " + e.what(), names[i]);
    }
  }
  track(job);
  job->start();
}

void service::track(const std::shared_ptr<generation_job>& job) {
  const std::lock_guard lock(jobs_m_);
  std::erase_if(jobs_, [](const std::weak_ptr<generation_job>& w) { return w.expired(); });
  jobs_.push_back(job);
}

void service::cancel_all() {
  std::vector<std::shared_ptr<generation_job>> live;
  {
    const std::lock_guard lock(jobs_m_);
    for (auto& w : jobs_)
      if (auto j = w.lock()) live.push_back(std::move(j));
  }
  for (auto& j : live) j->cancel();
}

std::string service::next_id(std::string_view prefix) {
  static constexpr char hex[] = "0123456789abcdef";
  std::uint64_t x = splitmix64(id_salt_ + ids_.fetch_add(1, std::memory_order_relaxed));
  std::string id(prefix);
  for (int i = 0; i < 16; ++i, x >>= 4) id += hex[x & 15];
  return id;
}

// ---- /v1/completions -----------------------------------------------------------------------------

service::outcome service::completions(const incoming_request& req, const std::shared_ptr<response_sink>& sink) {
  completion_request r = decode_completion_request(req.body, opts_.served_model_name);
  const std::size_t n = r.prompts.size();
  job_setup setup{.kind = api_kind::completion, .stream = r.stream, .include_usage = r.include_usage};
  setup.n = std::size_t(r.params.n);
  setup.logprobs = r.params.logprobs.has_value();
  setup.tok = pipe_.has_tokenizer() ? &pipe_.tok() : nullptr;
  // Echo with logprobs puts the prompt's tokens first in each choice's logprobs (OpenAI's legacy
  // API, vLLM); prompt_logprobs is vLLM's own field. The engine computes the larger of the two.
  if (r.echo && r.params.logprobs) setup.echo_logprobs = r.params.logprobs;
  setup.prompt_logprobs = r.prompt_logprobs;
  if (setup.echo_logprobs || setup.prompt_logprobs)
    r.params.prompt_logprobs = std::max(setup.echo_logprobs.value_or(0), setup.prompt_logprobs.value_or(0));
  std::vector<std::vector<token_id>> ids(n);
  std::vector<generate_params> params(n, r.params);
  std::vector<std::string> names(n);
  for (std::size_t i = 0; i < n; ++i) {
    names[i] = indexed("prompt", i, n);
    prompt_input& in = r.prompts[i];
    ids[i] = in.is_ids ? std::move(in.ids) : encode(in.text, true, names[i]);
    fit_to_context(params[i], r.max_tokens, default_completion_max_tokens, std::int64_t(ids[i].size()), context_, names[i],
                   "max_tokens");
    // Each prompt is a request of its own: the same seed samples the same tokens as it would alone.
    if (r.seed) params[i].seed = std::uint64_t(*r.seed);
    setup.prompt_tokens.push_back(std::int64_t(ids[i].size()));
    setup.first_tokens.push_back(ids[i].empty() ? -1 : ids[i].front());
    std::string echo;
    if (r.echo) {
      if (!in.is_ids) {
        echo = std::move(in.text);
      } else if (pipe_.has_tokenizer()) {
        echo = pipe_.tok().decode(ids[i]);
      }
    }
    setup.echo.push_back(std::move(echo));
  }
  setup.meta = {.id = next_id("cmpl-"), .created = std::int64_t(std::time(nullptr)), .model = opts_.served_model_name};
  auto job = std::make_shared<generation_job>(std::move(setup), sink, ctx_);
  submit_all(
      job, [&](std::size_t i, generate_params p) { return pipe_.submit_ids(std::move(ids[i]), p); }, std::move(params), names);
  return {.job = job};
}

// ---- /v1/chat/completions --------------------------------------------------------------------------

service::outcome service::chat_completions(const incoming_request& req, const std::shared_ptr<response_sink>& sink) {
  chat_request r = decode_chat_request(req.body, opts_.served_model_name);
  if (!chat_)
    throw request_error(400,
                        "this model has no chat template (neither tokenizer_config.json's chat_template nor "
                        "chat_template.jinja): use /v1/completions, or start mii-serve with --chat-template FILE",
                        "messages");
  std::string text;
  try {
    text = chat_->render(r.template_variables);
  } catch (const chat_template_refused& e) {
    throw request_error(400, std::string("the model's chat template refused these messages: ") + e.what(), "messages");
  } catch (const error& e) {
    throw request_error(400, std::string("the model's chat template could not render these messages: ") + e.what(),
                        "messages");
  }
  // The template wrote the special tokens it wants (BOS included), as transformers and vLLM treat
  // a rendered chat.
  std::vector<token_id> ids = encode(text, false, "messages");
  generate_params params = r.params;
  fit_to_context(params, r.max_tokens, std::nullopt, std::int64_t(ids.size()), context_, "messages", r.max_tokens_param);
  if (r.seed) params.seed = std::uint64_t(*r.seed);
  job_setup setup{.kind = api_kind::chat, .stream = r.stream, .include_usage = r.include_usage};
  setup.n = std::size_t(params.n);
  setup.logprobs = params.logprobs.has_value();
  setup.prompt_logprobs = params.prompt_logprobs;
  setup.first_tokens.push_back(ids.empty() ? -1 : ids.front());
  setup.tok = pipe_.has_tokenizer() ? &pipe_.tok() : nullptr;
  setup.prompt_tokens.push_back(std::int64_t(ids.size()));
  setup.meta = {.id = next_id("chatcmpl-"), .created = std::int64_t(std::time(nullptr)), .model = opts_.served_model_name};
  auto job = std::make_shared<generation_job>(std::move(setup), sink, ctx_);
  std::vector<generate_params> one{std::move(params)};
  submit_all(
      job, [&](std::size_t, generate_params p) { return pipe_.submit_ids(std::move(ids), p); }, std::move(one),
      {"messages"});
  return {.job = job};
}

// ---- /mii/{deployment} ------------------------------------------------------------------------------

service::outcome service::mii_generate(const incoming_request& req, std::string_view deployment,
                                       const std::shared_ptr<response_sink>& sink) {
  if (deployment != opts_.served_model_name)
    throw request_error(404, "the deployment '" + std::string(deployment.substr(0, 200)) +
                                 "' does not exist: this server serves '" + opts_.served_model_name + "' (POST /mii/" +
                                 opts_.served_model_name + ")",
                        {}, "model_not_found");
  mii_request r = decode_mii_request(req.body);
  const std::size_t n = r.prompts.size();
  std::vector<generate_params> params(n, r.params);
  std::vector<std::string> names(n);
  // As mii::pipeline's list call does, every prompt samples with the request's seed.
  for (std::size_t i = 0; i < n; ++i) names[i] = indexed("prompts", i, n);
  job_setup setup{.kind = api_kind::mii, .stream = r.stream};
  setup.prompt_tokens.assign(n, 0);  // the engine tokenizes; each response says how long
  auto job = std::make_shared<generation_job>(std::move(setup), sink, ctx_);
  submit_all(
      job, [&](std::size_t i, generate_params p) { return pipe_.submit(r.prompts[i], p); }, std::move(params), names);
  return {.job = job};
}

}  // namespace mii::serve

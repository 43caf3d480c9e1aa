// The endpoints of mii-serve over one pipeline: routing, authentication, the bounded queue, and
// the handlers that turn a decoded request into engine submissions (a generation_job). No
// sockets here: http_session feeds it incoming_requests and a response_sink.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <mii/chat.hpp>
#include <mii/pipeline.hpp>

#include "serve/exchange.hpp"
#include "serve/generation_job.hpp"
#include "serve/metrics.hpp"

namespace mii::serve {

struct service_options {
  std::string served_model_name;  // required: the `model` clients name
  std::string api_key;            // empty: no authentication
  std::size_t max_queue = 1024;   // engine requests in flight; beyond: 503 + Retry-After
};

class service {
 public:
  // `pipe` must outlive the service; `chat` is the model's chat template, if any.
  service(generation_pipeline& pipe, std::optional<chat_template> chat, service_options opts);
  ~service();

  // An answer now (`reply`), or a job that answers through the sink later.
  struct outcome {
    std::optional<http_reply> reply;
    std::shared_ptr<generation_job> job;
    std::int64_t prompt_tokens = -1;  // for the log line of an immediate reply
  };
  outcome handle(const incoming_request& req, const std::shared_ptr<response_sink>& sink);

  // The metrics label of a request target: the route it matched, "other" otherwise.
  static std::string_view route_of(std::string_view target);

  // Shutdown: /health answers 503 and new generation requests are refused (503).
  void begin_draining() { draining_.store(true); }
  bool draining() const { return draining_.load(); }
  // Engine requests submitted and not yet ended.
  std::int64_t in_flight() const { return ctx_->in_flight.load(); }
  // Cancels every running job's engine requests (the shutdown deadline passed).
  void cancel_all();
  server_metrics& metrics() { return metrics_; }
  const service_options& options() const { return opts_; }
  generation_pipeline& pipeline() { return pipe_; }

 private:
  outcome completions(const incoming_request& req, const std::shared_ptr<response_sink>& sink);
  outcome chat_completions(const incoming_request& req, const std::shared_ptr<response_sink>& sink);
  outcome mii_generate(const incoming_request& req, std::string_view deployment, const std::shared_ptr<response_sink>& sink);
  http_reply models(std::optional<std::string_view> one) const;
  http_reply health() const;
  http_reply metrics_text() const;
  bool authorized(std::string_view authorization) const;
  // Holds `n` places in the queue (503 when it is full); submit_all gives back what it does not use.
  void reserve(std::size_t n);
  std::vector<token_id> encode(std::string_view text, bool add_special_tokens, const std::string& param) const;
  // Holds the queue places, submits every choice of `job` (choice i with params[i] through
  // `submit`) and starts it; on a refusal, cancels those already submitted and throws a 400
  // naming names[i].
  void submit_all(const std::shared_ptr<generation_job>& job,
                  const std::function<request_handle(std::size_t, generate_params)>& submit,
                  std::vector<generate_params> params, const std::vector<std::string>& names);
  void track(const std::shared_ptr<generation_job>& job);
  std::string next_id(std::string_view prefix);

  generation_pipeline& pipe_;
  std::optional<chat_template> chat_;
  service_options opts_;
  std::int64_t context_;
  std::size_t max_prompt_bytes_;
  std::int64_t started_;  // Unix seconds, the models' `created`
  server_metrics metrics_;
  std::shared_ptr<job_context> ctx_ = std::make_shared<job_context>();
  std::atomic<bool> draining_{false};
  std::atomic<std::uint64_t> ids_{0};
  std::uint64_t id_salt_;
  std::mutex jobs_m_;
  std::vector<std::weak_ptr<generation_job>> jobs_;
};

}  // namespace mii::serve

#include "serve/generation_job.hpp"

#include "serve/sse.hpp"

namespace mii::serve {

namespace {

bool normal_end(generation_finish_reason r) {
  return r == generation_finish_reason::stop || r == generation_finish_reason::length;
}

// Why a request that did not end normally ended, for the client.
std::string failure_message(const response& r) {
  if (r.finish_reason == generation_finish_reason::cancelled)
    return "the request was cancelled: the server is shutting down";
  if (!r.error.empty()) return "generation failed: " + r.error;
  return "generation ended without a result (finish_reason " + std::string(to_string(r.finish_reason)) + ")";
}

int failure_status(const response& r) { return r.finish_reason == generation_finish_reason::cancelled ? 503 : 500; }

}  // namespace

generation_job::generation_job(job_setup setup, std::weak_ptr<response_sink> sink, std::shared_ptr<job_context> ctx)
    : setup_(std::move(setup)), sink_(std::move(sink)), ctx_(std::move(ctx)), choices_(setup_.prompt_tokens.size()) {
  setup_.echo.resize(choices_.size());
}

generation_job::~generation_job() { cancel(); }

stream_callback generation_job::callback(std::size_t i) {
  // The job may be gone when the engine calls (its client left): then only the count remains
  // to settle.
  return [weak = weak_from_this(), i, ctx = ctx_](const stream_event& ev) {
    if (auto job = weak.lock()) job->on_event(i, ev);
    if (ev.finished) ctx->in_flight.fetch_sub(1, std::memory_order_acq_rel);
  };
}

void generation_job::attach(std::size_t i, request_handle h) {
  const std::lock_guard lock(m_);
  choices_[i].handle = std::move(h);
}

void generation_job::cancel() {
  std::vector<request_handle> handles;
  {
    const std::lock_guard lock(m_);
    for (auto& c : choices_)
      if (c.handle.valid()) handles.push_back(c.handle);
  }
  for (auto& h : handles) h.cancel();  // idempotent; a finished request keeps its response
}

void generation_job::on_event(std::size_t i, const stream_event& ev) {
  std::shared_ptr<response_sink> sink;
  {
    const std::lock_guard lock(m_);
    choice& c = choices_[i];
    if (setup_.stream) {
      c.pending_text += ev.text;
      if (ev.token >= 0) c.pending_tokens.push_back(ev.token);
      if (setup_.logprobs && ev.logprobs) c.pending_logprobs.push_back(*ev.logprobs);
    }
    if (ev.finished) c.finished = true;
    // A non-streamed answer has nothing to do until a choice ends.
    if (!setup_.stream && !ev.finished) return;
    if (flush_posted_) return;
    sink = sink_.lock();
    if (!sink) return;
    flush_posted_ = true;
  }
  sink->post([self = shared_from_this()] { self->flush(); });
}

void generation_job::start() {
  auto sink = sink_.lock();
  if (!sink || !setup_.stream) return;
  sink->stream_begin();
  std::string out;
  for (std::size_t i = 0; i < choices_.size(); ++i) {
    if (setup_.kind == api_kind::chat) {
      out += sse_event(chat_chunk_json(setup_.meta, i, "assistant", "", generation_finish_reason::none, setup_.include_usage));
    } else if (setup_.kind == api_kind::completion && !setup_.echo[i].empty()) {
      choices_[i].text_offset = std::int64_t(setup_.echo[i].size());
      out += sse_event(completion_chunk_json(setup_.meta, i, setup_.echo[i], generation_finish_reason::none,
                                             setup_.include_usage));
    }
  }
  if (!out.empty()) sink->stream_write(std::move(out));
}

exchange_summary generation_job::summary(int status) const {
  exchange_summary s{.status = status, .prompt_tokens = 0, .completion_tokens = 0};
  for (std::size_t i = 0; i < choices_.size(); ++i) {
    // The engine's count once known (it tokenized /mii prompts itself), the handler's before.
    s.prompt_tokens += choices_[i].reported ? choices_[i].result.prompt_length : setup_.prompt_tokens[i];
    if (choices_[i].reported) s.completion_tokens += choices_[i].result.generated_length;
  }
  return s;
}

void generation_job::stream_error(std::string& out, const std::string& message) {
  if (failed_) return;
  failed_ = true;
  out += sse_event(error_json(500, message));
}

void generation_job::finish_choice(std::size_t i, std::string& out) {
  choice& c = choices_[i];
  // The final event ran (it posted this flush); get() returns once the channel has published
  // it, which is at most the rest of that callback away.
  c.result = c.handle.get();
  c.reported = true;
  if (normal_end(c.result.finish_reason) && ctx_->metrics)
    ctx_->metrics->observe_request(c.handle.timing(), c.result.generated_length);
  if (!setup_.stream) return;
  if (!normal_end(c.result.finish_reason)) {
    stream_error(out, failure_message(c.result));
    return;
  }
  switch (setup_.kind) {
    case api_kind::completion:
      out += sse_event(completion_chunk_json(setup_.meta, i, "", c.result.finish_reason, setup_.include_usage));
      break;
    case api_kind::chat:
      out += sse_event(chat_chunk_json(setup_.meta, i, std::nullopt, std::nullopt, c.result.finish_reason,
                                       setup_.include_usage));
      break;
    case api_kind::mii:
      out += sse_event(mii_final_json(i, c.result));
      break;
  }
}

void generation_job::flush() {
  struct delta {
    std::string text;
    std::vector<token_id> tokens;
    std::vector<token_logprobs> logprobs;
    bool finished = false;
  };
  std::vector<delta> deltas(choices_.size());
  {
    const std::lock_guard lock(m_);
    flush_posted_ = false;
    for (std::size_t i = 0; i < choices_.size(); ++i) {
      deltas[i].text.swap(choices_[i].pending_text);
      deltas[i].tokens.swap(choices_[i].pending_tokens);
      deltas[i].logprobs.swap(choices_[i].pending_logprobs);
      deltas[i].finished = choices_[i].finished;
    }
  }
  if (ended_) return;
  auto sink = sink_.lock();
  const bool writable = sink && !sink->gone();
  if (!setup_.stream) {
    for (std::size_t i = 0; i < choices_.size(); ++i)
      if (deltas[i].finished && !choices_[i].reported) {
        std::string unused;
        finish_choice(i, unused);
      }
    for (const auto& c : choices_)
      if (!c.reported) return;
    ended_ = true;
    if (writable) reply_whole(*sink);
    return;
  }
  std::string out;
  for (std::size_t i = 0; i < choices_.size(); ++i) {
    const delta& d = deltas[i];
    // A chunk for every flush that brought tokens, even when they complete no character yet
    // (empty text): a client sees each step's progress, and time-to-first-token is measurable
    // over HTTP even for a checkpoint without a tokenizer.
    if (!d.text.empty() || !d.tokens.empty()) {
      std::string lp;
      if (setup_.logprobs && !d.logprobs.empty()) {
        if (setup_.kind == api_kind::completion) {
          lp = completion_logprobs_json(setup_.tok, d.logprobs, choices_[i].text_offset);
          for (const auto& t : d.logprobs) choices_[i].text_offset += std::int64_t(token_text(setup_.tok, t.token).size());
        } else {
          lp = chat_logprobs_json(setup_.tok, d.logprobs);
        }
      }
      switch (setup_.kind) {
        case api_kind::completion:
          out += sse_event(
              completion_chunk_json(setup_.meta, i, d.text, generation_finish_reason::none, setup_.include_usage, lp));
          break;
        case api_kind::chat:
          out += sse_event(chat_chunk_json(setup_.meta, i, std::nullopt, d.text, generation_finish_reason::none,
                                           setup_.include_usage, lp));
          break;
        case api_kind::mii:
          out += sse_event(mii_delta_json(i, d.text, d.tokens));
          break;
      }
    }
    if (d.finished && !choices_[i].reported) finish_choice(i, out);
  }
  bool all_done = true;
  for (const auto& c : choices_) all_done = all_done && c.reported;
  if (all_done) {
    ended_ = true;
    if (setup_.include_usage && !failed_) {
      const auto s = summary(200);
      out += sse_event(usage_chunk_json(setup_.meta, setup_.kind == api_kind::chat ? "chat.completion.chunk" : "text_completion",
                                        {.prompt_tokens = s.prompt_tokens, .completion_tokens = s.completion_tokens}));
    }
    out += sse_done;
  }
  if (!writable) return;
  if (!out.empty()) sink->stream_write(std::move(out));
  if (all_done) sink->stream_end(summary(200));
}

void generation_job::reply_whole(response_sink& sink) {
  for (const auto& c : choices_)
    if (!normal_end(c.result.finish_reason)) {
      const int status = failure_status(c.result);
      http_reply r{.status = status, .body = error_json(status, failure_message(c.result))};
      if (status == 503) r.headers.emplace_back("Retry-After", "1");
      sink.reply(std::move(r), summary(status));
      return;
    }
  http_reply r;
  if (setup_.kind == api_kind::mii) {
    std::vector<response> rs;
    for (const auto& c : choices_) rs.push_back(c.result);
    r.body = mii_response_list_json(rs);
  } else {
    std::vector<choice_text> texts;
    const auto s = summary(200);
    for (std::size_t i = 0; i < choices_.size(); ++i) {
      const response& res = choices_[i].result;
      std::string lp;
      if (setup_.logprobs)
        lp = setup_.kind == api_kind::chat
                 ? chat_logprobs_json(setup_.tok, res.logprobs)
                 : completion_logprobs_json(setup_.tok, res.logprobs, std::int64_t(setup_.echo[i].size()));
      texts.push_back({.index = i, .text = setup_.echo[i] + res.generated_text, .finish_reason = res.finish_reason,
                       .logprobs = std::move(lp)});
    }
    const usage u{.prompt_tokens = s.prompt_tokens, .completion_tokens = s.completion_tokens};
    r.body = setup_.kind == api_kind::chat ? chat_completion_json(setup_.meta, texts, u) : completion_json(setup_.meta, texts, u);
  }
  sink.reply(std::move(r), summary(200));
}

}  // namespace mii::serve

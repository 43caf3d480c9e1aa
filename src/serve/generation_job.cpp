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

// Sample k of a response: its text, reason, log-probabilities (n == 1: the response itself).
struct sample_view {
  const std::string& text;
  generation_finish_reason finish_reason;
  std::int64_t generated_length;
  const std::vector<token_logprobs>& logprobs;
};
sample_view sample_of(const response& r, std::size_t k) {
  if (k >= r.samples.size()) return {r.generated_text, r.finish_reason, r.generated_length, r.logprobs};
  const sample_output& s = r.samples[k];
  return {s.generated_text, s.finish_reason, s.generated_length, s.logprobs};
}

std::int64_t generated_tokens(const response& r) {
  if (r.samples.empty()) return r.generated_length;
  std::int64_t n = 0;
  for (const auto& s : r.samples) n += s.generated_length;
  return n;
}

}  // namespace

generation_job::generation_job(job_setup setup, std::weak_ptr<response_sink> sink, std::shared_ptr<job_context> ctx)
    : setup_(std::move(setup)),
      sink_(std::move(sink)),
      ctx_(std::move(ctx)),
      prompts_(setup_.prompt_tokens.size()),
      choices_(setup_.prompt_tokens.size() * std::max<std::size_t>(setup_.n, 1)) {
  setup_.n = std::max<std::size_t>(setup_.n, 1);
  setup_.echo.resize(prompts_.size());
  setup_.first_tokens.resize(prompts_.size(), -1);
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
  prompts_[i].handle = std::move(h);
}

void generation_job::cancel() {
  std::vector<request_handle> handles;
  {
    const std::lock_guard lock(m_);
    for (auto& p : prompts_)
      if (p.handle.valid()) handles.push_back(p.handle);
  }
  for (auto& h : handles) h.cancel();  // idempotent; a finished request keeps its response
}

void generation_job::on_event(std::size_t i, const stream_event& ev) {
  std::shared_ptr<response_sink> sink;
  {
    const std::lock_guard lock(m_);
    if (ev.prompt_logprobs) prompts_[i].prompt_logprobs = *ev.prompt_logprobs;
    if (ev.sample < setup_.n) {
      choice& c = choices_[i * setup_.n + ev.sample];
      if (setup_.stream) {
        c.pending_text += ev.text;
        if (ev.token >= 0) c.pending_tokens.push_back(ev.token);
        if (setup_.logprobs && ev.logprobs) c.pending_logprobs.push_back(*ev.logprobs);
      }
      if (ev.sample_finished) c.ended = ev.finish_reason;
    }
    if (ev.finished) prompts_[i].finished = true;
    // A non-streamed answer has nothing to do until a prompt ends.
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
  const bool waits_for_prompt = setup_.echo_logprobs || setup_.prompt_logprobs;
  for (std::size_t c = 0; c < choices_.size(); ++c) {
    if (setup_.kind == api_kind::chat) {
      out += sse_event(chat_chunk_json(setup_.meta, c, "assistant", "", generation_finish_reason::none, setup_.include_usage));
      choices_[c].opened = true;
    } else if (setup_.kind == api_kind::mii) {
      choices_[c].opened = true;
    } else if (!waits_for_prompt) {
      open_choice(c, nullptr, out);
    }
  }
  if (!out.empty()) sink->stream_write(std::move(out));
}

std::string generation_job::prompt_logprobs_for(std::size_t prompt, const std::vector<token_logprobs>& lps) const {
  const prompt_logprob_list list{setup_.first_tokens[prompt], &lps, setup_.prompt_logprobs.value_or(0)};
  return prompt_logprobs_json(setup_.tok, list);
}

std::string generation_job::logprobs_for(std::size_t prompt, const std::vector<token_logprobs>& lps,
                                         const std::vector<token_logprobs>* prompt_lps, std::int64_t text_offset) const {
  if (setup_.kind == api_kind::chat) return chat_logprobs_json(setup_.tok, lps);
  if (!prompt_lps) return completion_logprobs_json(setup_.tok, lps, text_offset);
  const prompt_logprob_list list{setup_.first_tokens[prompt], prompt_lps, setup_.echo_logprobs.value_or(0)};
  return completion_logprobs_json(setup_.tok, lps, 0, &list);
}

// A completion choice's first chunk: the echoed prompt (with its log-probabilities under echo +
// logprobs) and vLLM's prompt_logprobs; nothing when there is neither.
void generation_job::open_choice(std::size_t c, const std::vector<token_logprobs>* prompt_lps, std::string& out) {
  choice& ch = choices_[c];
  ch.opened = true;
  const std::size_t p = c / setup_.n;
  const std::vector<token_logprobs> none;
  if (!prompt_lps) prompt_lps = &none;  // a one-token prompt, or a request that ended before its prompt was read
  std::string lp, plp;
  if (setup_.echo_logprobs) lp = logprobs_for(p, {}, prompt_lps, 0);
  if (setup_.prompt_logprobs) plp = prompt_logprobs_for(p, *prompt_lps);
  ch.text_offset = std::int64_t(setup_.echo[p].size());
  if (setup_.echo_logprobs) {  // the generated tokens' offsets continue the prompt tokens'
    ch.text_offset = std::int64_t(token_text(setup_.tok, setup_.first_tokens[p]).size());
    for (const auto& t : *prompt_lps) ch.text_offset += std::int64_t(token_text(setup_.tok, t.token).size());
  }
  if (setup_.echo[p].empty() && lp.empty() && plp.empty()) return;
  out += sse_event(completion_chunk_json(setup_.meta, c, setup_.echo[p], generation_finish_reason::none,
                                         setup_.include_usage, lp, plp));
}

void generation_job::end_choice(std::size_t c, generation_finish_reason why, std::string& out) {
  choices_[c].reported = true;
  switch (setup_.kind) {
    case api_kind::completion:
      out += sse_event(completion_chunk_json(setup_.meta, c, "", why, setup_.include_usage));
      break;
    case api_kind::chat:
      out += sse_event(chat_chunk_json(setup_.meta, c, std::nullopt, std::nullopt, why, setup_.include_usage));
      break;
    case api_kind::mii:
      out += sse_event(mii_final_json(c, prompts_[c / setup_.n].result));
      break;
  }
}

void generation_job::read_result(std::size_t i) {
  prompt_state& p = prompts_[i];
  // The final event ran (it posted this flush); get() returns once the channel has published
  // it, which is at most the rest of that callback away.
  p.result = p.handle.get();
  p.reported = true;
  if (normal_end(p.result.finish_reason) && ctx_->metrics)
    ctx_->metrics->observe_request(p.handle.timing(), generated_tokens(p.result));
}

exchange_summary generation_job::summary(int status) const {
  exchange_summary s{.status = status, .prompt_tokens = 0, .completion_tokens = 0};
  for (std::size_t i = 0; i < prompts_.size(); ++i) {
    // The engine's count once known (it tokenized /mii prompts itself), the handler's before.
    s.prompt_tokens += prompts_[i].reported ? prompts_[i].result.prompt_length : setup_.prompt_tokens[i];
    if (prompts_[i].reported) s.completion_tokens += generated_tokens(prompts_[i].result);
  }
  return s;
}

void generation_job::stream_error(std::string& out, const std::string& message) {
  if (failed_) return;
  failed_ = true;
  out += sse_event(error_json(500, message));
}

void generation_job::flush() {
  struct delta {
    std::string text;
    std::vector<token_id> tokens;
    std::vector<token_logprobs> logprobs;
    std::optional<generation_finish_reason> ended;
  };
  const std::size_t n = setup_.n;
  std::vector<delta> deltas(choices_.size());
  std::vector<char> finished(prompts_.size());
  std::vector<std::optional<std::vector<token_logprobs>>> prompt_lps(prompts_.size());
  {
    const std::lock_guard lock(m_);
    flush_posted_ = false;
    for (std::size_t c = 0; c < choices_.size(); ++c) {
      deltas[c].text.swap(choices_[c].pending_text);
      deltas[c].tokens.swap(choices_[c].pending_tokens);
      deltas[c].logprobs.swap(choices_[c].pending_logprobs);
      deltas[c].ended = choices_[c].ended;
    }
    for (std::size_t i = 0; i < prompts_.size(); ++i) {
      finished[i] = prompts_[i].finished;
      if (!choices_[i * n].opened) prompt_lps[i] = prompts_[i].prompt_logprobs;
    }
  }
  if (ended_) return;
  auto sink = sink_.lock();
  const bool writable = sink && !sink->gone();
  if (!setup_.stream) {
    for (std::size_t i = 0; i < prompts_.size(); ++i)
      if (finished[i] && !prompts_[i].reported) read_result(i);
    for (const auto& p : prompts_)
      if (!p.reported) return;
    ended_ = true;
    if (writable) reply_whole(*sink);
    return;
  }
  std::string out;
  for (std::size_t i = 0; i < prompts_.size(); ++i) {
    if (finished[i] && !prompts_[i].reported) read_result(i);
    const response& result = prompts_[i].result;
    if (prompts_[i].reported && !normal_end(result.finish_reason)) {
      stream_error(out, failure_message(result));
      for (std::size_t k = 0; k < n; ++k) choices_[i * n + k].reported = true;
      continue;
    }
    for (std::size_t k = 0; k < n; ++k) {
      const std::size_t c = i * n + k;
      choice& ch = choices_[c];
      const delta& d = deltas[c];
      if (ch.reported) continue;
      const bool has_output = !d.text.empty() || !d.tokens.empty();
      if (!ch.opened) {
        // The prompt's log-probabilities come before its first token; a prompt that ended
        // without them (one token, or no token at all) has none.
        const std::vector<token_logprobs>* lps = prompt_lps[i] ? &*prompt_lps[i] : nullptr;
        if (prompts_[i].reported && !lps) lps = &result.prompt_logprobs;
        if (!lps && !has_output && !d.ended && !prompts_[i].reported) continue;
        open_choice(c, lps, out);
      }
      // A chunk for every flush that brought tokens, even when they complete no character yet
      // (empty text): a client sees each step's progress, and time-to-first-token is measurable
      // over HTTP even for a checkpoint without a tokenizer.
      if (has_output) {
        std::string lp;
        if (setup_.logprobs && !d.logprobs.empty() && setup_.kind != api_kind::mii) {
          lp = logprobs_for(i, d.logprobs, nullptr, ch.text_offset);
          if (setup_.kind == api_kind::completion)
            for (const auto& t : d.logprobs) ch.text_offset += std::int64_t(token_text(setup_.tok, t.token).size());
        }
        switch (setup_.kind) {
          case api_kind::completion:
            out += sse_event(completion_chunk_json(setup_.meta, c, d.text, generation_finish_reason::none, setup_.include_usage, lp));
            break;
          case api_kind::chat:
            out += sse_event(chat_chunk_json(setup_.meta, c, std::nullopt, d.text, generation_finish_reason::none,
                                             setup_.include_usage, lp));
            break;
          case api_kind::mii:
            out += sse_event(mii_delta_json(c, d.text, d.tokens));
            break;
        }
      }
      if (d.ended && setup_.kind != api_kind::mii) {
        end_choice(c, *d.ended, out);  // this sample ended; the others go on
      } else if (prompts_[i].reported) {
        end_choice(c, sample_of(result, k).finish_reason, out);
      }
    }
  }
  bool all_done = true;
  for (const auto& p : prompts_) all_done = all_done && p.reported;
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
  for (const auto& p : prompts_)
    if (!normal_end(p.result.finish_reason)) {
      const int status = failure_status(p.result);
      http_reply r{.status = status, .body = error_json(status, failure_message(p.result))};
      if (status == 503) r.headers.emplace_back("Retry-After", "1");
      sink.reply(std::move(r), summary(status));
      return;
    }
  http_reply r;
  if (setup_.kind == api_kind::mii) {
    std::vector<response> rs;
    for (const auto& p : prompts_) rs.push_back(p.result);
    r.body = mii_response_list_json(rs);
  } else {
    std::vector<choice_text> texts;
    const auto s = summary(200);
    for (std::size_t i = 0; i < prompts_.size(); ++i) {
      const response& res = prompts_[i].result;
      for (std::size_t k = 0; k < setup_.n; ++k) {
        const sample_view v = sample_of(res, k);
        choice_text t{.index = i * setup_.n + k, .text = setup_.echo[i] + v.text, .finish_reason = v.finish_reason};
        if (setup_.logprobs)
          t.logprobs = logprobs_for(i, v.logprobs, setup_.echo_logprobs ? &res.prompt_logprobs : nullptr,
                                    std::int64_t(setup_.echo[i].size()));
        if (setup_.prompt_logprobs && setup_.kind == api_kind::completion) t.prompt_logprobs = prompt_logprobs_for(i, res.prompt_logprobs);
        texts.push_back(std::move(t));
      }
    }
    const usage u{.prompt_tokens = s.prompt_tokens, .completion_tokens = s.completion_tokens};
    if (setup_.kind == api_kind::chat) {
      const std::string plp =
          setup_.prompt_logprobs && !prompts_.empty() ? prompt_logprobs_for(0, prompts_[0].result.prompt_logprobs) : "";
      r.body = chat_completion_json(setup_.meta, texts, u, plp);
    } else {
      r.body = completion_json(setup_.meta, texts, u);
    }
  }
  sink.reply(std::move(r), summary(200));
}

}  // namespace mii::serve

#include <mii/runtime/request_channel.hpp>

#include <thread>
#include <utility>

namespace mii::runtime {

request_channel::request_channel(std::uint64_t id, std::size_t prompt_index, stream_callback stream, cancel_fn on_cancel)
    : id_(id), prompt_index_(prompt_index), stream_(std::move(stream)), on_cancel_(std::move(on_cancel)) {
  timing_.submitted = std::chrono::steady_clock::now();
}

request_channel::pending_output& request_channel::pending_for(std::size_t sample) {
  if (sample >= pending_.size()) pending_.resize(sample + 1);
  return pending_[sample];
}

bool request_channel::nothing_pending() const {
  if (!pending_prompt_logprobs_.empty()) return false;
  for (const auto& p : pending_)
    if (!p.empty()) return false;
  return true;
}

void request_channel::push(std::string_view text, token_id token, const token_logprobs* logprobs, std::size_t sample) {
  if (stream_ && (token >= 0 || !text.empty())) {
    stream_event ev{prompt_index_, text, token, false, generation_finish_reason::none, logprobs};
    ev.sample = sample;
    stream_(ev);
  }
  {
    const std::lock_guard lock(m_);
    pending_output& p = pending_for(sample);
    p.text.append(text);
    if (token >= 0) {
      p.tokens.push_back(token);
      if (logprobs) p.logprobs.push_back(*logprobs);
      if (timing_.first_token == request_timing::time_point{}) timing_.first_token = std::chrono::steady_clock::now();
    }
  }
  cv_.notify_all();
}

void request_channel::end_sample(std::size_t sample, generation_finish_reason why) {
  if (stream_) {
    stream_event ev{prompt_index_, {}, -1, false, why};
    ev.sample = sample;
    ev.sample_finished = true;
    stream_(ev);
  }
  {
    const std::lock_guard lock(m_);
    pending_output& p = pending_for(sample);
    p.ended = true;
    p.why = why;
  }
  cv_.notify_all();
}

void request_channel::push_prompt_logprobs(const std::vector<token_logprobs>& lps) {
  if (stream_) {
    stream_event ev{prompt_index_, {}, -1, false, generation_finish_reason::none};
    ev.prompt_logprobs = &lps;
    stream_(ev);
  }
  {
    const std::lock_guard lock(m_);
    pending_prompt_logprobs_ = lps;
  }
  cv_.notify_all();
}

void request_channel::complete(response r) {
  const generation_finish_reason why = r.finish_reason;
  {
    const std::lock_guard lock(m_);
    if (done_) return;
    response_ = std::move(r);
    done_ = true;
    completing_thread_ = std::this_thread::get_id();
    timing_.finished = std::chrono::steady_clock::now();
    // The request is over: nothing can cancel it any more, and the engine may be gone soon.
    on_cancel_ = nullptr;
  }
  // The final event runs before waiters see the response: a caller that returns from get() has
  // had every event of its request (and may destroy what the callback uses).
  if (stream_) {
    try {
      stream_(stream_event{prompt_index_, {}, -1, true, why});
    } catch (...) {
      // The request is over; there is nothing left for a failing callback to stop.
    }
  }
  {
    const std::lock_guard lock(m_);
    published_ = true;
  }
  cv_.notify_all();
}

// Waiters see the response once the final event has run; the callback itself (on the completing
// thread) sees it at once, so it may call get() on its own handle.
bool request_channel::visible() const {
  return published_ || (done_ && completing_thread_ == std::this_thread::get_id());
}

bool request_channel::done() const {
  const std::lock_guard lock(m_);
  return visible();
}

response request_channel::wait() const {
  std::unique_lock lock(m_);
  cv_.wait(lock, [&] { return visible(); });
  return response_;
}

bool request_channel::wait_for(std::chrono::steady_clock::duration d) const {
  std::unique_lock lock(m_);
  return cv_.wait_for(lock, d, [&] { return visible(); });
}

std::optional<output_delta> request_channel::next(std::optional<std::chrono::steady_clock::duration> timeout) {
  std::unique_lock lock(m_);
  auto ready = [&] { return visible() || !nothing_pending(); };
  if (timeout) {
    if (!cv_.wait_for(lock, *timeout, ready)) return output_delta{};
  } else {
    cv_.wait(lock, ready);
  }
  if (end_pulled_) return std::nullopt;
  output_delta d;
  d.prompt_logprobs = std::exchange(pending_prompt_logprobs_, {});
  // The lowest sample with something new (sample 0 when nothing is pending).
  std::size_t k = 0;
  while (k + 1 < pending_.size() && pending_[k].empty()) ++k;
  if (pending_[k].empty()) k = 0;
  pending_output& p = pending_[k];
  d.sample = k;
  d.text = std::exchange(p.text, {});
  d.token_ids = std::exchange(p.tokens, {});
  d.logprobs = std::exchange(p.logprobs, {});
  if (p.ended) {
    d.sample_finished = true;
    d.finish_reason = p.why;
    p.ended = false;
  }
  if (visible() && nothing_pending() && !d.sample_finished) {  // the request's end: a delta of its own
    d.finished = true;
    d.finish_reason = response_.finish_reason;
    end_pulled_ = true;
  }
  return d;
}

void request_channel::cancel() {
  if (cancel_.exchange(true)) return;
  cancel_fn f;
  {
    const std::lock_guard lock(m_);
    if (done_) return;
    f = on_cancel_;
  }
  if (f) f(id_);
}

request_timing request_channel::timing() const {
  const std::lock_guard lock(m_);
  return timing_;
}

}  // namespace mii::runtime

#include <mii/runtime/request_channel.hpp>

#include <thread>
#include <utility>

namespace mii::runtime {

request_channel::request_channel(std::uint64_t id, std::size_t prompt_index, stream_callback stream, cancel_fn on_cancel)
    : id_(id), prompt_index_(prompt_index), stream_(std::move(stream)), on_cancel_(std::move(on_cancel)) {
  timing_.submitted = std::chrono::steady_clock::now();
}

void request_channel::push(std::string_view text, token_id token, const token_logprobs* logprobs) {
  if (stream_ && (token >= 0 || !text.empty()))
    stream_(stream_event{prompt_index_, text, token, false, generation_finish_reason::none, logprobs});
  {
    const std::lock_guard lock(m_);
    pending_text_.append(text);
    if (token >= 0) {
      pending_tokens_.push_back(token);
      if (logprobs) pending_logprobs_.push_back(*logprobs);
      if (timing_.first_token == request_timing::time_point{}) timing_.first_token = std::chrono::steady_clock::now();
    }
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
  auto ready = [&] { return visible() || !pending_text_.empty() || !pending_tokens_.empty(); };
  if (timeout) {
    if (!cv_.wait_for(lock, *timeout, ready)) return output_delta{};
  } else {
    cv_.wait(lock, ready);
  }
  if (end_pulled_) return std::nullopt;
  output_delta d;
  d.text = std::move(pending_text_);
  d.token_ids = std::move(pending_tokens_);
  d.logprobs = std::move(pending_logprobs_);
  pending_text_.clear();
  pending_tokens_.clear();
  pending_logprobs_.clear();
  if (visible()) {
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

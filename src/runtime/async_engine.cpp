#include <mii/runtime/async_engine.hpp>

#include <exception>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <mii/error.hpp>

namespace mii::runtime {

// State the caller threads and the engine thread share, behind one mutex. Channels hold a weak
// pointer to it for cancel(), so a handle may outlive the engine.
struct async_engine::shared {
  std::mutex m;
  std::condition_variable wake;  // the engine thread waits here when it has nothing to do
  std::vector<std::unique_ptr<request>> incoming;
  std::vector<cancel_order> cancels;
  bool stopping = false, stopped = false;
  bool keep_unclaimed = true;  // ranks > 0: keep responses of rank 0's requests until submitted here
  std::uint64_t next_id = 1;
  // Ranks > 0 only: channels submitted here and not yet sent by rank 0, and channels of rank 0's
  // requests not yet submitted here.
  std::unordered_map<std::uint64_t, std::shared_ptr<request_channel>> claimed, unclaimed;
};

async_engine::async_engine(engine_core& core) : core_(core), s_(std::make_shared<shared>()) {
  thread_ = std::thread([this] { loop(); });
}

async_engine::~async_engine() {
  stop();
  if (thread_.joinable()) thread_.join();
}

request_handle async_engine::submit(std::unique_ptr<request> r, stream_callback stream) {
  std::weak_ptr<shared> weak = s_;
  auto on_cancel = [weak](std::uint64_t id) {
    if (auto s = weak.lock()) {
      {
        const std::lock_guard lock(s->m);
        s->cancels.push_back({id, generation_finish_reason::cancelled, {}});
      }
      s->wake.notify_one();
    }
  };
  // Only the output ranks run callbacks; a rank > 0's cancel has no say (rank 0 decides).
  if (!core_.output_rank()) stream = nullptr;
  const bool leader = core_.rank() == 0;
  std::shared_ptr<request_channel> ch;
  bool too_late = false;
  {
    const std::lock_guard lock(s_->m);
    const std::uint64_t id = s_->next_id++;
    if (!leader) {
      if (auto it = s_->unclaimed.find(id); it != s_->unclaimed.end()) {
        ch = std::move(it->second);  // rank 0's request ran ahead of this rank's caller
        s_->unclaimed.erase(it);
        return request_handle(ch);
      }
    }
    ch = std::make_shared<request_channel>(id, r->index, std::move(stream),
                                           leader ? request_channel::cancel_fn(on_cancel) : request_channel::cancel_fn{});
    too_late = s_->stopped;
    if (!leader && !too_late) {
      s_->claimed.emplace(id, ch);
      return request_handle(ch);
    }
    if (!too_late && leader) {
      if (s_->stopping) r->fail_with("the pipeline is shutting down");
      r->id = id;
      r->channel = ch;
      s_->incoming.push_back(std::move(r));
    }
  }
  // Answered outside the lock: the channel runs the caller's callback.
  if (too_late) {
    ch->complete(response{.finish_reason = generation_finish_reason::error, .error = "the pipeline was shut down"});
  } else {
    s_->wake.notify_one();
  }
  return request_handle(ch);
}

engine_stats async_engine::stats() const {
  engine_stats st = core_.stats();
  const std::lock_guard lock(s_->m);
  st.waiting += std::int64_t(s_->incoming.size());
  return st;
}

void async_engine::stop() {
  {
    const std::lock_guard lock(s_->m);
    if (core_.rank() == 0) s_->stopping = true;
  }
  s_->wake.notify_one();
  if (thread_.joinable() && std::this_thread::get_id() != thread_.get_id()) thread_.join();
}

void async_engine::follow() {
  {
    const std::lock_guard lock(s_->m);
    s_->keep_unclaimed = false;
    s_->unclaimed.clear();
  }
  if (thread_.joinable()) thread_.join();
}

void async_engine::take_packet(control_packet& p, bool wait_for_work) {
  std::unique_lock lock(s_->m);
  if (wait_for_work)
    s_->wake.wait(lock, [&] { return !s_->incoming.empty() || !s_->cancels.empty() || s_->stopping; });
  p.requests = std::exchange(s_->incoming, {});
  p.cancels = std::exchange(s_->cancels, {});
  p.stop = s_->stopping;
}

// A rank > 0 received rank 0's requests: give each the channel its own caller holds (or one the
// caller will pick up), and what the packet does not carry.
void async_engine::bind_remote(control_packet& p) {
  const std::lock_guard lock(s_->m);
  for (auto& r : p.requests) {
    core_.adopt(*r);
    if (auto it = s_->claimed.find(r->id); it != s_->claimed.end()) {
      r->channel = std::move(it->second);
      s_->claimed.erase(it);
    } else {
      r->channel = std::make_shared<request_channel>(r->id, r->index, stream_callback{}, request_channel::cancel_fn{});
      if (s_->keep_unclaimed) s_->unclaimed.emplace(r->id, r->channel);
    }
  }
}

void async_engine::loop() {
  const bool leader = core_.rank() == 0, distributed = core_.world_size() > 1;
  try {
    core_.bind_thread();
  } catch (const std::exception& e) {
    // Nothing can run: answer whatever comes with the reason, until stopped.
    const std::string why = std::string("the engine thread could not start: ") + e.what();
    for (;;) {
      control_packet p;
      take_packet(p, true);
      for (auto& r : p.requests) r->channel->complete(response{.finish_reason = generation_finish_reason::error, .error = why});
      if (p.stop) break;
    }
    return;
  }
  for (;;) {
    control_packet p;
    if (leader) {
      take_packet(p, !core_.has_work());
      for (auto& c : core_.take_callback_failures()) p.cancels.push_back(std::move(c));
    }
    try {
      if (distributed) {
        std::vector<std::int32_t> words = leader ? encode(p) : std::vector<std::int32_t>{};
        words = core_.broadcast(std::move(words));
        if (!leader) {
          p = decode(words);
          bind_remote(p);
        }
      }
      for (auto& r : p.requests) core_.add(std::move(r));
      for (const auto& c : p.cancels) core_.cancel(c);
      if (p.stop) {
        core_.cancel_all(generation_finish_reason::cancelled, "the pipeline was shut down");
        break;
      }
      if (core_.has_work()) core_.step();
    } catch (const std::exception& e) {
      // A failed step (a backend error) leaves the batch unusable: its requests end with the
      // reason. One rank goes on with whatever comes next; ranks of a tensor-parallel job
      // cannot (a rank that failed a collective has left the lockstep), so they stop.
      const std::string why = std::string("the engine failed: ") + e.what();
      for (auto& r : p.requests)  // taken from the queue but never added
        if (r && r->channel) r->channel->complete(response{.finish_reason = generation_finish_reason::error, .error = why});
      try {
        core_.cancel_all(generation_finish_reason::error, why);
      } catch (...) {
      }
      if (distributed) break;
    }
  }
  // Submissions that raced with the stop, and channels never matched on ranks > 0, are answered
  // (outside the lock: channels run callers' callbacks).
  std::vector<std::shared_ptr<request_channel>> left;
  {
    const std::lock_guard lock(s_->m);
    s_->stopped = true;
    for (auto& r : s_->incoming) left.push_back(r->channel);
    s_->incoming.clear();
    for (auto& [id, ch] : s_->claimed) left.push_back(ch);
    s_->claimed.clear();
  }
  for (auto& ch : left) ch->complete(response{.finish_reason = generation_finish_reason::cancelled});
}

}  // namespace mii::runtime

// step_gap_clock: how long the device sat idle between steps because the host was busy (issue
// 19's "GPU idle time between steps", the time asynchronous scheduling would hide).
//
// A step ends on the host when its results arrive (the runner synchronized to read sampled ids,
// logits or log-probabilities); the device then has nothing queued until the host has taken
// those results in, scheduled, built and uploaded the next step. That interval is a gap. Steps
// whose results nobody waited for (a prefill chunk that samples nothing) leave work queued, so
// the next step follows without a gap; an engine that waits for requests is not the engine's cost
// either (idle() drops the pending interval). On the host backend the same interval is the
// engine's own bookkeeping per step. Not thread-safe: the runner's thread owns it.
#pragma once
#include <chrono>
#include <cstdint>

namespace mii::runtime {

class step_gap_clock {
 public:
  using clock = std::chrono::steady_clock;

  // The host has the step's results: the device's queue is empty from here.
  void synchronized() {
    synced_at_ = clock::now();
    pending_ = true;
  }
  // The next step's first device work is being queued: the gap, if one is pending, ends.
  void work_queued() {
    if (!pending_) return;
    seconds_ += std::chrono::duration<double>(clock::now() - synced_at_).count();
    ++gaps_;
    pending_ = false;
  }
  // The engine ran out of work and will wait for requests: that wait is not a gap.
  void idle() { pending_ = false; }

  double seconds() const { return seconds_; }  // summed over every gap so far
  std::int64_t gaps() const { return gaps_; }

 private:
  clock::time_point synced_at_{};
  bool pending_ = false;
  double seconds_ = 0;
  std::int64_t gaps_ = 0;
};

}  // namespace mii::runtime

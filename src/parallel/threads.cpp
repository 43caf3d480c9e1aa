#include <mii/parallel/threads.hpp>

#include <string_view>

namespace mii::parallel {

thread_group::thread_group(int size) : slots(static_cast<std::size_t>(size > 0 ? size : 0)), size_(size) {
  if (size < 1) fail("thread_group: size must be >= 1, got ", size);
}

void thread_group::arrive_and_wait() {
  std::unique_lock lk(mu_);
  if (aborted_) fail("tensor-parallel group aborted: ", why_);
  const std::uint64_t gen = generation_;
  if (++arrived_ == size_) {
    arrived_ = 0;
    ++generation_;
    cv_.notify_all();
    return;
  }
  cv_.wait(lk, [&] { return generation_ != gen || aborted_; });
  if (generation_ == gen) fail("tensor-parallel group aborted: ", why_);
}

void thread_group::abort(const std::string& why) noexcept {
  {
    std::lock_guard lk(mu_);
    if (aborted_) return;
    aborted_ = true;
    why_ = why;
  }
  cv_.notify_all();
}

bool thread_group::aborted() const {
  std::lock_guard lk(mu_);
  return aborted_;
}

threads::threads(thread_group& group, int rank) : group_(&group), rank_(rank) {
  if (rank < 0 || rank >= group.size()) fail("threads communicator: rank ", rank, " of ", group.size(), " is not a valid rank");
}

void threads::publish(const char* op, const void* data, std::int64_t n, std::size_t element_size) {
  group_->slots[std::size_t(rank_)] = {data, n, element_size, op};
}

void threads::check_matching() const {
  const auto& first = group_->slots.front();
  for (int r = 1; r < size(); ++r) {
    const auto& s = group_->slots[std::size_t(r)];
    if (s.count != first.count || s.element_size != first.element_size || std::string_view(s.op) != first.op)
      fail("threads communicator: rank ", r, " called ", s.op, " with ", s.count, " elements of ", s.element_size,
           " bytes but rank 0 called ", first.op, " with ", first.count, " of ", first.element_size,
           " bytes (the ranks are out of step)");
  }
}

}  // namespace mii::parallel

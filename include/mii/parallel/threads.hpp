// The `threads` communicator: tensor-parallel ranks as threads of one process, exchanging host
// pointers through a shared thread_group. It exists to test the sharding math on the host
// backend (every rank's buffers are host memory), with no GPU and no second process.
//
// Collectives are deterministic: each element of an all-reduce is summed in rank order
// 0, 1, ..., size-1, once, and every rank copies that one result, so all ranks see bit-identical
// values (as they must: each runs the same scheduler and sampler on them).
//
//   mii::parallel::run_ranks(4, [&](mii::parallel::threads& comm) {
//     mii::runtime::engine<Model, mii::backend::host, mii::parallel::threads> e(dir, cfg, comm);
//     ...
//   });
#pragma once
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <mii/dtype.hpp>
#include <mii/error.hpp>

namespace mii::parallel {

// What the ranks of one threads job share: a barrier that a failing rank can break (the others
// then throw instead of waiting forever), and the slots collectives publish their buffers in.
class thread_group {
 public:
  explicit thread_group(int size);
  thread_group(const thread_group&) = delete;
  thread_group& operator=(const thread_group&) = delete;

  int size() const { return size_; }

  // Returns once all ranks have arrived; throws mii::error if the group is (or gets) aborted.
  void arrive_and_wait();
  // Breaks the barrier for good: every rank waiting now or later throws. The first reason wins.
  void abort(const std::string& why) noexcept;
  bool aborted() const;

  // One collective's arguments, as published by each rank before the first barrier.
  struct slot {
    const void* data = nullptr;
    std::int64_t count = 0;
    std::size_t element_size = 0;
    const char* op = nullptr;  // which collective (ranks out of step show up here)
  };
  std::vector<slot> slots;
  std::vector<std::byte> scratch;  // the all-reduce's result, written in slices by every rank

 private:
  const int size_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
  std::uint64_t generation_ = 0;
  bool aborted_ = false;
  std::string why_;
};

class threads {
 public:
  static constexpr const char* name = "threads";

  threads(thread_group& group, int rank);
  int rank() const { return rank_; }
  int size() const { return group_->size(); }
  thread_group& group() { return *group_; }

  // data[i] = sum over ranks r = 0..size-1 (in that order) of rank r's data[i].
  template <class Context, class T>
  void all_reduce_sum(Context&, T* data, std::int64_t n) {
    publish("all_reduce_sum", data, n, sizeof(T));
    if (rank_ == 0) group_->scratch.resize(std::size_t(n) * sizeof(T));  // nobody reads it before the barrier
    group_->arrive_and_wait();
    check_matching();
    // Each rank reduces its share of the elements into the scratch, then all copy it back.
    T* sum = reinterpret_cast<T*>(group_->scratch.data());
    const std::int64_t begin = n * rank_ / size(), end = n * (rank_ + 1) / size();
    for (std::int64_t i = begin; i < end; ++i) {
      float_or_t<T> acc = as_acc(static_cast<const T*>(group_->slots[0].data)[i]);
      for (int r = 1; r < size(); ++r) acc += as_acc(static_cast<const T*>(group_->slots[std::size_t(r)].data)[i]);
      sum[i] = from_acc<T>(acc);
    }
    group_->arrive_and_wait();
    if (n > 0) std::memcpy(static_cast<void*>(data), sum, std::size_t(n) * sizeof(T));  // data may be null when n == 0
    group_->arrive_and_wait();  // the scratch stays untouched until everyone has copied it
  }

  // recv[r * n + i] = rank r's send[i].
  template <class Context, class T>
  void all_gather(Context&, const T* send, std::int64_t n, T* recv) {
    publish("all_gather", send, n, sizeof(T));
    group_->arrive_and_wait();
    check_matching();
    for (int r = 0; r < size(); ++r)
      std::memcpy(static_cast<void*>(recv + std::int64_t(r) * n), group_->slots[std::size_t(r)].data,
                  std::size_t(n) * sizeof(T));
    group_->arrive_and_wait();  // senders keep their buffers until everyone has read them
  }

 private:
  // 16-bit floats are summed in fp32 and rounded once; everything else in its own type.
  template <class T>
  using float_or_t = std::conditional_t<std::is_same_v<T, bf16_t> || std::is_same_v<T, fp16_t>, float, T>;
  template <class T>
  static float_or_t<T> as_acc(T v) {
    if constexpr (std::is_same_v<T, bf16_t> || std::is_same_v<T, fp16_t>) return to_float(v);
    else return v;
  }
  template <class T>
  static T from_acc(float_or_t<T> v) {
    if constexpr (std::is_same_v<T, bf16_t>) return to_bf16(v);
    else if constexpr (std::is_same_v<T, fp16_t>) return to_fp16(v);
    else return v;
  }

  void publish(const char* op, const void* data, std::int64_t n, std::size_t element_size);
  // Every rank must be in the same collective with the same count: if not, every rank throws
  // (each sees the same slots), so none is left waiting.
  void check_matching() const;

  thread_group* group_;
  int rank_;
};

// Runs fn(comm) for ranks 0..size-1, each on its own thread, and waits for all of them. A rank
// that throws aborts the group so that the others stop at their next collective; the first
// failure is then rethrown here.
template <class Fn>
void run_ranks(int size, Fn&& fn) {
  thread_group group(size);
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(size));
  std::mutex first_mu;
  int first_failure = -1;
  std::vector<std::thread> ranks;
  for (int r = 0; r < size; ++r)
    ranks.emplace_back([&, r] {
      try {
        threads comm(group, r);
        fn(comm);
      } catch (...) {
        errors[std::size_t(r)] = std::current_exception();
        {
          std::lock_guard lk(first_mu);
          if (first_failure < 0) first_failure = r;
        }
        group.abort("rank " + std::to_string(r) + " failed");
      }
    });
  for (auto& t : ranks) t.join();
  if (first_failure >= 0) std::rethrow_exception(errors[std::size_t(first_failure)]);
}

}  // namespace mii::parallel

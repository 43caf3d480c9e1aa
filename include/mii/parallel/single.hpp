// The one-rank communicator: every collective is the identity. The transformer skips the calls
// entirely when size() == 1; these definitions keep the interface complete.
#pragma once
#include <algorithm>
#include <cstdint>

namespace mii::parallel {

struct single {
  static constexpr const char* name = "single";
  int rank() const { return 0; }
  int size() const { return 1; }
  template <class Context, class T>
  void all_reduce_sum(Context&, T*, std::int64_t) {}
  template <class Context, class T>
  void all_gather(Context&, const T* send, std::int64_t n, T* recv) {
    std::copy(send, send + n, recv);
  }
};

}  // namespace mii::parallel

// KV-cache blocks: a fixed pool of block ids handed out and returned in O(1) (a free stack).
#pragma once
#include <cstdint>
#include <vector>

#include <mii/error.hpp>

namespace mii::runtime {

class block_allocator {
 public:
  explicit block_allocator(std::int32_t blocks) : total_(blocks) {
    free_.reserve(std::size_t(blocks));
    for (std::int32_t b = blocks - 1; b >= 0; --b) free_.push_back(b);  // hand out 0, 1, 2, ... first
  }
  std::int32_t total() const { return total_; }
  std::int32_t free_count() const { return std::int32_t(free_.size()); }
  std::int32_t used_count() const { return total_ - free_count(); }

  // Appends n blocks to `out` and returns true, or changes nothing and returns false.
  bool allocate(std::int32_t n, std::vector<std::int32_t>& out) {
    if (n > free_count()) return false;
    for (std::int32_t i = 0; i < n; ++i) {
      out.push_back(free_.back());
      free_.pop_back();
    }
    return true;
  }
  void release(std::vector<std::int32_t>& blocks) {
    for (auto b : blocks) {
      if (b < 0 || b >= total_ || std::int32_t(free_.size()) >= total_) fail("internal: releasing KV block ", b, " twice or out of range");
      free_.push_back(b);
    }
    blocks.clear();
  }

 private:
  std::int32_t total_;
  std::vector<std::int32_t> free_;
};

}  // namespace mii::runtime

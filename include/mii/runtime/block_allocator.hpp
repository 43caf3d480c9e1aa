// KV-cache blocks: a fixed pool of block ids handed out and returned in O(1) (a free stack).
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include <mii/error.hpp>

namespace mii::runtime {

class block_allocator {
 public:
  explicit block_allocator(std::int32_t blocks) : total_(blocks), in_use_(std::size_t(std::max(blocks, 0)), false) {
    free_.reserve(std::size_t(std::max(blocks, 0)));
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
      in_use_[std::size_t(free_.back())] = true;
      free_.pop_back();
    }
    return true;
  }
  void release(std::vector<std::int32_t>& blocks) {
    for (auto b : blocks) {
      // A block freed twice would be handed to two sequences, which would overwrite each other's
      // keys and values; catch it here, where it happens.
      if (b < 0 || b >= total_) fail("internal: releasing KV block ", b, ", outside the pool of ", total_);
      if (!in_use_[std::size_t(b)]) fail("internal: releasing KV block ", b, ", which is not in use (freed twice?)");
      in_use_[std::size_t(b)] = false;
      free_.push_back(b);
    }
    blocks.clear();
  }

 private:
  std::int32_t total_;
  std::vector<bool> in_use_;
  std::vector<std::int32_t> free_;
};

}  // namespace mii::runtime

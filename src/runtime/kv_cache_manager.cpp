#include <mii/runtime/kv_cache_manager.hpp>

#include <algorithm>

#include <mii/error.hpp>

namespace mii::runtime {

namespace {
// splitmix64's finalizer: a bijective mix with full avalanche.
std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
}  // namespace

block_key chain_key(const block_key& parent, std::span<const std::int32_t> tokens) {
  // Two 64-bit lanes with different seeds and chaining; deterministic across runs and ranks.
  std::uint64_t a = mix(parent.lo ^ 0x6d69692d6b657931ull), b = mix(parent.hi + 0x243f6a8885a308d3ull);
  for (const std::int32_t t : tokens) {
    const auto v = std::uint64_t(std::uint32_t(t));
    a = mix(a ^ v);
    b = mix(b + (v << 1 | 1));
  }
  return {mix(a ^ tokens.size()), mix(b ^ (a << 7))};
}

kv_cache_manager::kv_cache_manager(std::int32_t blocks, std::int32_t block_size, bool prefix_caching)
    : total_(std::max(blocks, 0)), block_size_(block_size), prefix_caching_(prefix_caching), state_(std::size_t(total_)) {
  free_.reserve(std::size_t(total_));
  for (std::int32_t b = total_ - 1; b >= 0; --b) free_.push_back(b);  // hand out 0, 1, 2, ... first
}

bool kv_cache_manager::allocate(std::int32_t n, std::vector<std::int32_t>& out) {
  if (n > free_count()) return false;
  for (std::int32_t i = 0; i < n; ++i) {
    std::int32_t b;
    if (!free_.empty()) {
      b = free_.back();
      free_.pop_back();
    } else {
      b = lru_.front();  // the registered block released longest ago
      evict(b);
    }
    state_[std::size_t(b)].refs = 1;
    out.push_back(b);
  }
  return true;
}

void kv_cache_manager::evict(std::int32_t b) {
  block_state& s = state_[std::size_t(b)];
  lru_.erase(s.lru);
  cached_.erase(s.key);
  s.registered = false;
  s.tokens.clear();
}

void kv_cache_manager::release(std::vector<std::int32_t>& blocks) {
  // Released in reverse: a sequence's last blocks (the longest prefixes, the least likely to be
  // shared) are evicted before its first ones.
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) {
    const std::int32_t b = *it;
    // A block freed twice would be handed to two sequences, which would overwrite each other's
    // keys and values; catch it here, where it happens.
    if (b < 0 || b >= total_) fail("internal: releasing KV block ", b, ", outside the pool of ", total_);
    block_state& s = state_[std::size_t(b)];
    if (s.refs <= 0) fail("internal: releasing KV block ", b, ", which is not in use (freed twice?)");
    if (--s.refs > 0) continue;
    if (s.registered) {
      s.lru = lru_.insert(lru_.end(), b);
    } else {
      free_.push_back(b);
    }
  }
  blocks.clear();
}

void kv_cache_manager::share(std::span<const std::int32_t> blocks) {
  for (const std::int32_t b : blocks) {
    if (b < 0 || b >= total_) fail("internal: sharing KV block ", b, ", outside the pool of ", total_);
    if (state_[std::size_t(b)].refs <= 0) fail("internal: sharing KV block ", b, ", which is not in use");
  }
  for (const std::int32_t b : blocks) ++state_[std::size_t(b)].refs;
}

std::int32_t kv_cache_manager::refs(std::int32_t b) const {
  if (b < 0 || b >= total_) fail("internal: KV block ", b, " is outside the pool of ", total_);
  return state_[std::size_t(b)].refs;
}

std::optional<backend::block_copy> kv_cache_manager::copy_on_write(std::vector<std::int32_t>& blocks, std::size_t i) {
  if (i >= blocks.size()) fail("internal: copy on write of block ", i, " of a sequence holding ", blocks.size());
  const std::int32_t old = blocks[i];
  if (refs(old) <= 1) return std::nullopt;
  std::vector<std::int32_t> fresh;
  if (!allocate(1, fresh)) return std::nullopt;
  --state_[std::size_t(old)].refs;  // still held by the others: it stays where it is
  blocks[i] = fresh[0];
  ++copies_;
  return backend::block_copy{old, fresh[0]};
}

void kv_cache_manager::take(std::int32_t b) {
  block_state& s = state_[std::size_t(b)];
  if (s.refs++ == 0) lru_.erase(s.lru);
}

std::int64_t kv_cache_manager::match_prefix(std::span<const std::int32_t> tokens, std::int64_t max_tokens,
                                            std::vector<std::int32_t>& blocks, std::vector<block_key>& keys,
                                            std::uint64_t variant) {
  if (!prefix_caching_ || !blocks.empty() || !keys.empty()) return 0;
  const std::int64_t limit = std::min<std::int64_t>(max_tokens, std::int64_t(tokens.size()));
  block_key parent{variant, 0};
  std::int64_t covered = 0;
  while (covered + block_size_ <= limit) {
    const auto piece = tokens.subspan(std::size_t(covered), std::size_t(block_size_));
    const block_key key = chain_key(parent, piece);
    const auto it = cached_.find(key);
    if (it == cached_.end()) break;
    const block_state& s = state_[std::size_t(it->second)];
    if (!std::equal(piece.begin(), piece.end(), s.tokens.begin(), s.tokens.end())) break;  // a collision
    take(it->second);
    blocks.push_back(it->second);
    keys.push_back(key);
    parent = key;
    covered += block_size_;
  }
  return covered;
}

void kv_cache_manager::register_full_blocks(std::span<const std::int32_t> tokens, std::int64_t computed,
                                            const std::vector<std::int32_t>& blocks, std::vector<block_key>& keys,
                                            std::uint64_t variant) {
  if (!prefix_caching_) return;
  const std::size_t full = std::size_t(std::min<std::int64_t>(computed, std::int64_t(tokens.size())) / block_size_);
  while (keys.size() < full && keys.size() < blocks.size()) {
    const std::size_t i = keys.size();
    const auto piece = tokens.subspan(i * std::size_t(block_size_), std::size_t(block_size_));
    const block_key key = chain_key(i ? keys.back() : block_key{variant, 0}, piece);
    keys.push_back(key);
    const std::int32_t b = blocks[i];
    block_state& s = state_[std::size_t(b)];
    if (s.registered || cached_.contains(key)) continue;
    s.registered = true;
    s.key = key;
    s.tokens.assign(piece.begin(), piece.end());
    cached_.emplace(key, b);
  }
}

}  // namespace mii::runtime

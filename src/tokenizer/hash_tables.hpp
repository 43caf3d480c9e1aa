// Open-addressing hash tables for the tokenizer's hot paths. std::unordered_map allocates a node
// per entry and chases pointers; with 128k-280k entries that costs both load time (the issue's
// budget is 150 ms for Llama-3) and encode time. These tables are flat arrays with linear
// probing, built once and then read-only (so safe to share between threads).
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace mii::detail::tok {

// A fast 64-bit hash for short byte strings (tokens are a few bytes long).
inline std::uint64_t hash_bytes(const char* p, std::size_t n) {
  constexpr std::uint64_t k0 = 0x9E3779B97F4A7C15ull, k1 = 0xC2B2AE3D27D4EB4Full;
  std::uint64_t h = k0 ^ (n * k1);
  while (n >= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * k1;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    std::uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w ^ (std::uint64_t{n} << 59)) * k0;
    h ^= h >> 32;
  }
  h *= k1;
  h ^= h >> 31;
  return h;
}

inline std::uint64_t mix64(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xFF51AFD7ED558CCDull;
  x ^= x >> 33;
  x *= 0xC4CEB9FE1A85EC53ull;
  x ^= x >> 33;
  return x;
}

inline std::size_t table_capacity_for(std::size_t n) {
  std::size_t cap = 16;
  while (cap < n + n / 2) cap <<= 1;  // load factor <= 2/3 keeps probe sequences short
  return cap;
}

// Maps byte strings (kept in a caller-owned arena) to int32 values.
class string_table {
 public:
  void reserve(std::size_t n) {
    slots_.assign(table_capacity_for(n), slot{});
    mask_ = slots_.size() - 1;
  }
  // `arena` must outlive the table and not move; keys are views into it. Returns false (and
  // keeps the old value) if the key is present already, unless `overwrite`.
  bool insert(const std::string& arena, std::uint32_t offset, std::uint32_t length, std::int32_t value,
              bool overwrite = false) {
    return insert_hashed(arena, offset, length, hash_bytes(arena.data() + offset, length), value, overwrite);
  }
  bool insert_hashed(const std::string& arena, std::uint32_t offset, std::uint32_t length, std::uint64_t h,
                     std::int32_t value, bool overwrite = false) {
    if ((count_ + 1) * 3 > slots_.size() * 2) {
      grow(arena);
      return insert(arena, offset, length, value, overwrite);
    }
    const auto tag = static_cast<std::uint32_t>(h >> 32) | 1u;
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      slot& s = slots_[i];
      if (s.tag == 0) {
        s = slot{tag, offset, length, value};
        ++count_;
        return true;
      }
      if (s.tag == tag && s.length == length &&
          std::memcmp(arena.data() + s.offset, arena.data() + offset, length) == 0) {
        if (overwrite) s.value = value;
        return false;
      }
    }
  }
  const std::int32_t* find(const std::string& arena, std::string_view key) const {
    return find_hashed(arena, key, hash_bytes(key.data(), key.size()));
  }
  // Loading looks up hundreds of thousands of keys at random: hashing a batch first and
  // prefetching their slots hides most of the memory latency.
  void prefetch(std::uint64_t h) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[h & mask_]);
  }
  const std::int32_t* find_hashed(const std::string& arena, std::string_view key, std::uint64_t h) const {
    if (slots_.empty()) return nullptr;
    const auto tag = static_cast<std::uint32_t>(h >> 32) | 1u;
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      const slot& s = slots_[i];
      if (s.tag == 0) return nullptr;
      if (s.tag == tag && s.length == key.size() &&
          std::memcmp(arena.data() + s.offset, key.data(), key.size()) == 0)
        return &s.value;
    }
  }
  std::size_t size() const { return count_; }

 private:
  struct slot {
    std::uint32_t tag = 0;  // 0 = empty; otherwise the high hash bits with the low bit set
    std::uint32_t offset = 0;
    std::uint32_t length = 0;
    std::int32_t value = 0;
  };
  void grow(const std::string& arena) {
    std::vector<slot> old;
    old.swap(slots_);
    slots_.assign(old.empty() ? 16 : old.size() * 2, slot{});
    mask_ = slots_.size() - 1;
    count_ = 0;
    for (const slot& s : old)
      if (s.tag != 0) insert(arena, s.offset, s.length, s.value);
  }
  std::vector<slot> slots_;
  std::size_t mask_ = 0;
  std::size_t count_ = 0;
};

// Maps a pair of token ids to a (rank, merged id) pair: the BPE merge table. Key and value sit
// in one 16-byte slot so that a lookup touches one cache line.
class pair_table {
 public:
  struct value {
    std::uint32_t rank;
    std::int32_t id;
  };
  void reserve(std::size_t n) {
    slots_.assign(table_capacity_for(n), slot{});
    mask_ = slots_.size() - 1;
    count_ = 0;
  }
  static std::uint64_t key(std::int32_t a, std::int32_t b) {
    return (std::uint64_t{static_cast<std::uint32_t>(a)} << 32) | static_cast<std::uint32_t>(b);
  }
  // Later insertions of the same pair replace earlier ones (as a Rust HashMap built from the
  // merges list does).
  void insert(std::int32_t a, std::int32_t b, value v) {
    if ((count_ + 1) * 3 > slots_.size() * 2) grow();
    const std::uint64_t k = key(a, b);
    for (std::size_t i = mix64(k) & mask_;; i = (i + 1) & mask_) {
      slot& s = slots_[i];
      if (s.key == empty_key) {
        s.key = k;
        s.v = v;
        ++count_;
        return;
      }
      if (s.key == k) {
        s.v = v;
        return;
      }
    }
  }
  void prefetch(std::int32_t a, std::int32_t b) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[mix64(key(a, b)) & mask_]);
  }
  const value* find(std::int32_t a, std::int32_t b) const {
    if (slots_.empty()) return nullptr;
    const std::uint64_t k = key(a, b);
    for (std::size_t i = mix64(k) & mask_;; i = (i + 1) & mask_) {
      const slot& s = slots_[i];
      if (s.key == k) return &s.v;
      if (s.key == empty_key) return nullptr;
    }
  }
  std::size_t size() const { return count_; }

 private:
  static constexpr std::uint64_t empty_key = ~std::uint64_t{0};
  struct slot {
    std::uint64_t key = empty_key;
    value v{0, 0};
  };
  void grow() {
    std::vector<slot> old;
    old.swap(slots_);
    reserve(old.empty() ? 8 : old.size());
    for (const slot& s : old)
      if (s.key != empty_key)
        insert(static_cast<std::int32_t>(s.key >> 32), static_cast<std::int32_t>(s.key & 0xFFFFFFFFu), s.v);
  }
  std::vector<slot> slots_;
  std::size_t mask_ = 0;
  std::size_t count_ = 0;
};

}  // namespace mii::detail::tok

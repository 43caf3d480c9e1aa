// kv_cache_manager: distinct blocks, all-or-nothing allocation, double-free detection, a cost per
// operation that does not grow with the pool; and prefix caching: blocks found again by their
// tokens, shared with reference counts, evicted least recently used, never handed out while held;
// and the blocks samples of one prompt share: counted per holder, copied on write.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <map>
#include <span>
#include <random>
#include <set>
#include <vector>

#include <mii/runtime/kv_cache_manager.hpp>

#include "expect_error.hpp"
#include "test_files.hpp"

using Catch::Matchers::Contains;
using mii::runtime::block_key;
using mii::runtime::kv_cache_manager;

TEST_CASE("kv_cache_manager hands out distinct blocks, lowest first", "[runtime][blocks]") {
  kv_cache_manager a(8, 4, false);
  CHECK(a.total() == 8);
  CHECK(a.free_count() == 8);
  std::vector<std::int32_t> got;
  REQUIRE(a.allocate(3, got));
  CHECK(got == std::vector<std::int32_t>{0, 1, 2});
  CHECK(a.used_count() == 3);
  REQUIRE(a.allocate(0, got));
  CHECK(got.size() == 3);
  std::vector<std::int32_t> more = {99};  // allocate appends
  REQUIRE(a.allocate(5, more));
  CHECK(more == std::vector<std::int32_t>{99, 3, 4, 5, 6, 7});
  CHECK(a.free_count() == 0);
}

TEST_CASE("kv_cache_manager allocation is all or nothing", "[runtime][blocks]") {
  kv_cache_manager a(5, 4, false);
  std::vector<std::int32_t> x, y;
  REQUIRE(a.allocate(3, x));
  y = {42};
  CHECK_FALSE(a.allocate(3, y));
  CHECK(y == std::vector<std::int32_t>{42});  // untouched
  CHECK(a.free_count() == 2);
  CHECK(a.allocate(2, y));
  CHECK_FALSE(a.allocate(1, y));
  a.release(x);
  CHECK(x.empty());
  CHECK(a.free_count() == 3);
}

TEST_CASE("kv_cache_manager detects double and out-of-range frees", "[runtime][blocks]") {
  kv_cache_manager a(6, 4, false);
  std::vector<std::int32_t> x, y;
  REQUIRE(a.allocate(2, x));
  REQUIRE(a.allocate(2, y));
  std::vector<std::int32_t> first = {x[0]};
  a.release(first);
  SECTION("the same block twice while other blocks are in use") {
    std::vector<std::int32_t> again = {x[0]};
    CHECK_THAT(MII_ERROR_MESSAGE(a.release(again)), Contains("block " + std::to_string(x[0])));
    // The pool still hands out each block once.
    std::vector<std::int32_t> all;
    REQUIRE(a.allocate(a.free_count(), all));
    std::set<std::int32_t> distinct(all.begin(), all.end());
    CHECK(distinct.size() == all.size());
  }
  SECTION("a block never handed out") {
    std::vector<std::int32_t> never = {5};
    CHECK_THAT(MII_ERROR_MESSAGE(a.release(never)), Contains("block 5"));
  }
  SECTION("out of range") {
    std::vector<std::int32_t> bad = {6};
    CHECK_THAT(MII_ERROR_MESSAGE(a.release(bad)), Contains("block 6"));
    std::vector<std::int32_t> neg = {-1};
    CHECK_THAT(MII_ERROR_MESSAGE(a.release(neg)), Contains("block -1"));
  }
}

TEST_CASE("kv_cache_manager agrees with a model under random use", "[runtime][blocks]") {
  const std::uint64_t seed = mii::test::test_seed("kv_cache_manager random use");
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  const std::int32_t total = 64;
  kv_cache_manager a(total, 4, false);
  std::vector<std::vector<std::int32_t>> owners(10);
  for (int op = 0; op < 20000; ++op) {
    auto& o = owners[rng() % owners.size()];
    if (rng() % 3 == 0) {
      a.release(o);
    } else {
      const auto n = std::int32_t(rng() % 9);
      const auto before = o.size();
      const bool ok = a.allocate(n, o);
      const std::int32_t held = [&] {
        std::int32_t s = 0;
        for (const auto& x : owners) s += std::int32_t(x.size());
        return s;
      }();
      REQUIRE(ok == (o.size() == before + std::size_t(n)));
      REQUIRE(a.used_count() == held);
      if (!ok) REQUIRE(a.free_count() < n);
    }
    std::vector<bool> seen(total);
    bool distinct = true;
    for (const auto& x : owners)
      for (auto b : x) {
        if (b < 0 || b >= total || seen[std::size_t(b)]) distinct = false;
        else seen[std::size_t(b)] = true;
      }
    INFO("after operation " << op);
    REQUIRE(distinct);
  }
}

TEST_CASE("kv_cache_manager operations cost the same in a small and a large pool", "[runtime][blocks]") {
  // A free list is O(1) per block; a scan over the pool would make the large pool ~1000x slower.
  auto time_ops = [](std::int32_t pool) {
    kv_cache_manager a(pool, 4, false);
    std::vector<std::int32_t> hold;
    REQUIRE(a.allocate(pool / 2, hold));  // half the pool in use, as in a busy server
    double best = 1e9;
    for (int rep = 0; rep < 3; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<std::int32_t> b;
      bool ok = true;
      for (int i = 0; i < 100000; ++i) {
        ok = a.allocate(2, b) && ok;
        a.release(b);
      }
      REQUIRE(ok);
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return best;
  };
  const double small = time_ops(1024), large = time_ops(1 << 20);
  INFO("small pool " << small << " s, large pool " << large << " s");
  CHECK(large < 20 * small + 0.01);
}

namespace {

std::vector<std::int32_t> iota_tokens(std::int32_t n, std::int32_t from = 100) {
  std::vector<std::int32_t> t(static_cast<std::size_t>(n));
  for (std::int32_t i = 0; i < n; ++i) t[std::size_t(i)] = from + i;
  return t;
}

// A sequence that computed `tokens` into fresh blocks and registered them.
struct computed_sequence {
  std::vector<std::int32_t> blocks;
  std::vector<block_key> keys;
  computed_sequence(kv_cache_manager& a, const std::vector<std::int32_t>& tokens, std::int32_t block_size) {
    REQUIRE(a.allocate(std::int32_t((tokens.size() + std::size_t(block_size) - 1) / std::size_t(block_size)), blocks));
    a.register_full_blocks(tokens, std::int64_t(tokens.size()), blocks, keys);
  }
};

}  // namespace

TEST_CASE("prefix caching: full blocks are found again by their tokens, and only those", "[runtime][blocks][prefix]") {
  kv_cache_manager a(16, 4, true);
  const auto tokens = iota_tokens(14);  // 3 full blocks and 2 tokens
  computed_sequence first(a, tokens, 4);
  CHECK(first.keys.size() == 3);
  CHECK(a.cached_count() == 3);
  const auto held = first.blocks;

  std::vector<std::int32_t> blocks;
  std::vector<block_key> keys;
  // While the first sequence holds them: shared.
  CHECK(a.match_prefix(tokens, 13, blocks, keys) == 12);
  CHECK(blocks == std::vector<std::int32_t>(held.begin(), held.begin() + 3));
  CHECK(keys == first.keys);
  CHECK(a.used_count() == 4);  // shared blocks count once
  a.release(first.blocks);
  CHECK(a.used_count() == 3);  // the second sequence still holds the three full ones
  a.release(blocks);
  CHECK(a.used_count() == 0);
  CHECK(a.free_count() == 16);  // registered blocks nobody holds are free for allocation

  // After release: still found; the limit counts tokens and leaves partial blocks out.
  keys.clear();
  CHECK(a.match_prefix(tokens, 11, blocks, keys) == 8);
  a.release(blocks);
  keys.clear();
  // A different token in the second block: only the first block matches; a different first
  // token: nothing (a block's key covers every token before it).
  auto changed = tokens;
  changed[5] = 7;
  CHECK(a.match_prefix(changed, 13, blocks, keys) == 4);
  a.release(blocks);
  keys.clear();
  changed = tokens;
  changed[0] = 7;
  CHECK(a.match_prefix(changed, 13, blocks, keys) == 0);
  CHECK(blocks.empty());
  // The same tokens at other positions are other blocks.
  const std::vector<std::int32_t> shifted(tokens.begin() + 4, tokens.end());
  CHECK(a.match_prefix(shifted, 9, blocks, keys) == 0);
}

TEST_CASE("prefix caching: the pool evicts the blocks released longest ago", "[runtime][blocks][prefix]") {
  kv_cache_manager a(6, 2, true);
  const auto x = iota_tokens(4, 10), y = iota_tokens(4, 20), z = iota_tokens(4, 30);
  {
    computed_sequence sx(a, x, 2);
    a.release(sx.blocks);
  }
  {
    computed_sequence sy(a, y, 2);
    a.release(sy.blocks);
  }
  {
    computed_sequence sz(a, z, 2);
    a.release(sz.blocks);
  }
  CHECK(a.cached_count() == 6);
  CHECK(a.free_count() == 6);
  // Touch x: it becomes the most recently released.
  std::vector<std::int32_t> b;
  std::vector<block_key> k;
  CHECK(a.match_prefix(x, 4, b, k) == 4);
  a.release(b);
  // Two fresh blocks evict y's (released longest ago), not x's or z's.
  std::vector<std::int32_t> fresh;
  REQUIRE(a.allocate(2, fresh));
  CHECK(a.cached_count() == 4);
  auto found = [&](const std::vector<std::int32_t>& t) {
    std::vector<std::int32_t> bb;
    std::vector<block_key> kk;
    const auto n = a.match_prefix(t, 4, bb, kk);
    a.release(bb);
    return n;
  };
  CHECK(found(y) == 0);
  CHECK(found(x) == 4);
  CHECK(found(z) == 4);
  // A held block is never evicted: hold x, take everything else.
  k.clear();
  CHECK(a.match_prefix(x, 4, b, k) == 4);
  std::vector<std::int32_t> rest;
  REQUIRE(a.allocate(a.free_count(), rest));
  CHECK_FALSE(a.allocate(1, rest));
  for (auto blk : b) CHECK(std::find(rest.begin(), rest.end(), blk) == rest.end());
  CHECK(found(z) == 0);
}

TEST_CASE("prefix caching: random use keeps every held block distinct and every count right", "[runtime][blocks][prefix]") {
  const std::uint64_t seed = mii::test::test_seed("kv_cache_manager prefix random use");
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  constexpr std::int32_t total = 48, bs = 4;
  kv_cache_manager a(total, bs, true);
  // Sequences draw their tokens from a few shared prefixes, so matches are frequent.
  std::vector<std::vector<std::int32_t>> prefixes;
  for (int p = 0; p < 4; ++p) prefixes.push_back(iota_tokens(24, 1000 * (p + 1)));
  struct seq {
    std::vector<std::int32_t> tokens, blocks;
    std::vector<block_key> keys;
    std::int64_t computed = 0;
    bool admitted = false;
  };
  std::vector<seq> seqs(8);
  std::int64_t hits = 0;
  for (int op = 0; op < 20000; ++op) {
    seq& s = seqs[rng() % seqs.size()];
    const auto what = rng() % 4;
    if (what == 0) {  // finish: release
      a.release(s.blocks);
      s = seq{};
    } else if (!s.admitted) {  // admit: a shared prefix and a private tail
      s.admitted = true;
      s.tokens = prefixes[rng() % prefixes.size()];
      s.tokens.resize(4 + rng() % 20);
      for (int i = 0; i < int(rng() % 9); ++i) s.tokens.push_back(std::int32_t(rng() % 50));
      s.computed = a.match_prefix(s.tokens, std::int64_t(s.tokens.size()) - 1, s.blocks, s.keys);
      hits += s.computed;
      // The matched blocks hold exactly these tokens' keys.
      for (std::size_t i = 0; i < s.keys.size(); ++i)
        REQUIRE(s.keys[i] == mii::runtime::chain_key(i ? s.keys[i - 1] : block_key{},
                                                     std::span(s.tokens).subspan(i * bs, bs)));
    } else {  // compute the rest (or one more token) if blocks are available
      const std::int64_t target = std::min<std::int64_t>(std::int64_t(s.tokens.size()), s.computed + 1 + std::int64_t(rng() % 8));
      const auto need = std::int32_t((target + bs - 1) / bs) - std::int32_t(s.blocks.size());
      if (need <= 0 || a.allocate(need, s.blocks)) {
        s.computed = std::max(s.computed, target);
        a.register_full_blocks(s.tokens, s.computed, s.blocks, s.keys);
      }
    }
    // Invariants: held blocks are distinct unless shared through a match, and shared blocks
    // are registered; the pool's count of held blocks agrees.
    std::map<std::int32_t, int> holders;
    for (const auto& x : seqs)
      for (auto b : x.blocks) ++holders[b];
    INFO("after operation " << op);
    REQUIRE(a.used_count() == std::int32_t(holders.size()));
    REQUIRE(a.free_count() + a.used_count() == total);
  }
  CHECK(hits > 0);
  for (auto& s : seqs) a.release(s.blocks);
  CHECK(a.used_count() == 0);
}

// ---- samples of one prompt (generate_params.n): shared blocks, copy on write ----------------------

TEST_CASE("shared blocks: counted once, freed with their last holder, copied on write", "[runtime][blocks][samples]") {
  kv_cache_manager a(8, 4, false);
  std::vector<std::int32_t> parent, child;
  REQUIRE(a.allocate(3, parent));  // two full blocks and a partial one
  child = parent;
  a.share(child);
  CHECK(a.used_count() == 3);
  CHECK(a.refs(parent[2]) == 2);
  CHECK(a.shared(parent[2]));
  // The child writes into the partial block: it gets a copy, the parent keeps the original.
  const auto copy = a.copy_on_write(child, 2);
  REQUIRE(copy);
  CHECK(copy->src == parent[2]);
  CHECK(copy->dst == child[2]);
  CHECK(child[2] != parent[2]);
  CHECK(a.refs(parent[2]) == 1);
  CHECK(a.refs(child[2]) == 1);
  CHECK(a.used_count() == 4);
  CHECK(a.copies() == 1);
  // A block held once is written in place.
  CHECK_FALSE(a.copy_on_write(parent, 2));
  CHECK(a.copies() == 1);
  // The full blocks stay shared until both let go.
  a.release(parent);
  CHECK(a.used_count() == 3);
  CHECK(a.refs(child[0]) == 1);
  a.release(child);
  CHECK(a.used_count() == 0);
  // Sharing a block nobody holds is an internal error, not a silent count.
  std::vector<std::int32_t> stale = {0};
  CHECK_THAT(MII_ERROR_MESSAGE(a.share(stale)), Contains("block 0"));
}

TEST_CASE("copy on write needs a free block and changes nothing without one", "[runtime][blocks][samples]") {
  kv_cache_manager a(2, 4, false);
  std::vector<std::int32_t> x, y;
  REQUIRE(a.allocate(1, x));
  y = x;
  a.share(y);
  REQUIRE(a.allocate(1, x));  // the pool is now empty
  const std::vector<std::int32_t> before = y;
  CHECK_FALSE(a.copy_on_write(y, 0));
  CHECK(y == before);
  CHECK(a.refs(y[0]) == 2);
}

TEST_CASE("shared blocks: random forks, copies and releases keep every count right", "[runtime][blocks][samples]") {
  const std::uint64_t seed = mii::test::test_seed("kv_cache_manager shared random use");
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  constexpr std::int32_t total = 40;
  kv_cache_manager a(total, 4, true);
  std::vector<std::vector<std::int32_t>> holders(12);
  for (int op = 0; op < 20000; ++op) {
    auto& h = holders[rng() % holders.size()];
    const auto what = rng() % 5;
    if (what == 0) {
      a.release(h);
    } else if (what == 1 && h.empty()) {  // fork another holder's blocks
      const auto& from = holders[rng() % holders.size()];
      if (&from != &h && !from.empty()) {
        h = from;
        a.share(h);
      }
    } else if (what == 2 && !h.empty()) {  // write into one of its blocks
      const std::size_t i = rng() % h.size();
      const bool was_shared = a.shared(h[i]);
      const std::int32_t old = h[i];
      const auto c = a.copy_on_write(h, i);
      if (c) {
        REQUIRE(was_shared);
        REQUIRE(c->src == old);
        REQUIRE(c->dst == h[i]);
      } else {
        REQUIRE((!was_shared || a.free_count() == 0));
      }
    } else {
      a.allocate(std::int32_t(rng() % 3), h);
    }
    // Every block's count is its number of holders; used blocks are the distinct held ones.
    std::map<std::int32_t, int> count;
    for (const auto& x : holders)
      for (auto b : x) ++count[b];
    INFO("after operation " << op);
    for (const auto& [b, n] : count) REQUIRE(a.refs(b) == n);
    REQUIRE(a.used_count() == std::int32_t(count.size()));
  }
  for (auto& h : holders) a.release(h);
  CHECK(a.used_count() == 0);
}

// block_allocator: distinct blocks, all-or-nothing allocation, double-free detection, and a cost
// per operation that does not grow with the pool.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <random>
#include <set>
#include <vector>

#include <mii/runtime/block_allocator.hpp>

#include "expect_error.hpp"
#include "test_files.hpp"

using Catch::Matchers::Contains;
using mii::runtime::block_allocator;

TEST_CASE("block_allocator hands out distinct blocks, lowest first", "[runtime][blocks]") {
  block_allocator a(8);
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

TEST_CASE("block_allocator allocation is all or nothing", "[runtime][blocks]") {
  block_allocator a(5);
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

TEST_CASE("block_allocator detects double and out-of-range frees", "[runtime][blocks]") {
  block_allocator a(6);
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

TEST_CASE("block_allocator agrees with a model under random use", "[runtime][blocks]") {
  const std::uint64_t seed = mii::test::test_seed("block_allocator random use");
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  const std::int32_t total = 64;
  block_allocator a(total);
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

TEST_CASE("block_allocator operations cost the same in a small and a large pool", "[runtime][blocks]") {
  // A free list is O(1) per block; a scan over the pool would make the large pool ~1000x slower.
  auto time_ops = [](std::int32_t pool) {
    block_allocator a(pool);
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

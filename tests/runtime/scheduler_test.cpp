// The Dynamic SplitFuse scheduler, driven the way the engine drives it but without a model: after
// schedule(), commit the plan, then give every sampled chunk's sequence one new token and finish
// the sequences that reach max_total. Directed cases pin the policy (decodes first, splitting,
// packing, budgets); thousands of random request mixes check its invariants at every step.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <vector>

#include <mii/runtime/scheduler.hpp>

#include "expect_error.hpp"
#include "test_files.hpp"

using Catch::Matchers::Contains;
using namespace mii::runtime;

namespace {

struct sim_request : sequence_state {
  int id = 0;
  std::int64_t prompt = 0;
  std::int64_t arrival = 0;  // step at which it is added
  bool finished = false;
};

std::unique_ptr<sim_request> make_request(int id, std::int64_t prompt, std::int64_t max_new, std::int64_t arrival = 0) {
  auto r = std::make_unique<sim_request>();
  r->id = id;
  r->prompt = prompt;
  r->total_tokens = prompt;
  r->max_total = prompt + max_new;
  r->arrival = arrival;
  return r;
}

// The engine's step after the forward pass.
void run_step(scheduler& s, const std::vector<scheduled_chunk>& plan) {
  s.commit(plan);
  for (const auto& c : plan) {
    if (!c.sample) continue;
    auto* r = static_cast<sim_request*>(c.seq);
    r->total_tokens += 1;
    if (r->total_tokens >= r->max_total) {
      s.finish(r);
      r->finished = true;
    }
  }
}

std::string describe(const std::vector<scheduled_chunk>& plan) {
  std::ostringstream os;
  for (const auto& c : plan)
    os << "[req " << static_cast<sim_request*>(c.seq)->id << ": " << c.tokens << " tokens from " << c.seq->kv_len
       << (c.sample ? ", sample" : "") << "] ";
  return os.str();
}

struct mix {
  scheduler_limits limits;
  std::int32_t kv_blocks = 0;
  std::vector<std::unique_ptr<sim_request>> requests;
  std::string what() const {
    std::ostringstream os;
    os << "max_tokens " << limits.max_tokens << ", max_seqs " << limits.max_seqs << ", block_size " << limits.block_size
       << ", kv_blocks " << kv_blocks << ", requests (prompt/max_new/arrival):";
    for (const auto& r : requests) os << ' ' << r->prompt << '/' << r->max_total - r->prompt << '/' << r->arrival;
    return os.str();
  }
};

struct run_result {
  std::int64_t steps = 0, preemptions = 0;
  std::string failure;  // empty when every check held
};

// Runs a mix to completion, checking every invariant at every step. Returns the first violation
// (as text, so that thousands of mixes cost no assertion overhead) or an empty string.
run_result simulate(mix& m, std::int64_t max_steps = 1000000) {
  run_result out;
  scheduler s(m.limits, m.kv_blocks);
  std::vector<sim_request*> order;
  for (auto& r : m.requests) order.push_back(r.get());
  std::stable_sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->arrival < b->arrival; });
  std::size_t next_arrival = 0;
  std::vector<sim_request*> tracked;
  std::vector<int> owner(std::size_t(m.kv_blocks), -1);
  auto fail = [&](const std::string& why, const std::vector<scheduled_chunk>& plan) {
    std::ostringstream os;
    os << "step " << out.steps << ": " << why << "\n  plan: " << describe(plan) << "\n  mix: " << m.what();
    out.failure = os.str();
    return out;
  };

  for (std::int64_t step = 0;; ++step) {
    while (next_arrival < order.size() && order[next_arrival]->arrival <= step) {
      s.add(order[next_arrival]);
      tracked.push_back(order[next_arrival++]);
    }
    std::erase_if(tracked, [](auto* r) { return r->finished; });
    if (tracked.empty() && next_arrival == order.size()) break;
    if (s.idle()) {
      if (!tracked.empty()) return fail("idle although requests are unfinished", {});
      continue;  // waiting for the next arrival
    }
    if (++out.steps > max_steps) return fail("no end in sight", {});

    struct before_t {
      std::int64_t kv, pending;
      bool running;
    };
    std::map<sequence_state*, before_t> before;
    for (auto* r : tracked) before[r] = {r->kv_len, r->pending(), r->admitted != 0};
    const std::int64_t preemptions_before = s.preemptions();

    const auto plan = s.schedule();
    if (plan.empty()) return fail("empty plan while requests wait", plan);

    // Budgets.
    std::int64_t tokens = 0;
    for (const auto& c : plan) tokens += c.tokens;
    if (tokens > m.limits.max_tokens) return fail("token budget exceeded", plan);
    if (std::int64_t(plan.size()) > m.limits.max_seqs) return fail("sequence budget exceeded", plan);

    // Each chunk.
    std::set<sequence_state*> in_plan;
    bool seen_prefill = false;
    for (const auto& c : plan) {
      auto* r = static_cast<sim_request*>(c.seq);
      if (!before.count(r)) return fail("a chunk for a request that is not tracked", plan);
      if (!in_plan.insert(r).second) return fail("a request scheduled twice in one step", plan);
      if (c.tokens < 1) return fail("an empty chunk", plan);
      if (r->kv_len + c.tokens > r->total_tokens) return fail("a chunk past the request's known tokens", plan);
      if (std::int64_t(r->blocks.size()) * m.limits.block_size < r->kv_len + c.tokens)
        return fail("a chunk's blocks do not cover kv_len + tokens", plan);
      if (c.sample != (r->kv_len + c.tokens == r->total_tokens))
        return fail("sampled without reaching the last token, or reached it without sampling", plan);
      if (r->admitted == 0) return fail("a scheduled request is not running", plan);
      const auto& b = before[r];
      const bool decode = b.running && b.kv > 0 && b.pending == 1 && r->kv_len == b.kv;
      if (decode && seen_prefill) return fail("a decode after a prefill chunk", plan);
      if (!decode) seen_prefill = true;
      if (!decode && r->kv_len != (b.running ? b.kv : 0) && r->kv_len != 0)
        return fail("a prefill chunk that does not continue from the cache", plan);
    }
    // When prompt chunks got budget, no running decode was left out.
    if (seen_prefill)
      for (auto* r : tracked)
        if (r->admitted != 0 && r->kv_len > 0 && r->pending() == 1 && !in_plan.count(r))
          return fail("request " + std::to_string(r->id) + " ready to decode was left out while a prefill ran", plan);

    // Preemption bookkeeping: preempted requests lost their cache and blocks.
    std::int64_t preempted = 0;
    for (auto* r : tracked) {
      const auto& b = before[r];
      if (b.running && (r->admitted == 0 || (in_plan.count(r) && r->kv_len == 0 && b.kv > 0))) {
        ++preempted;
        if (r->kv_len != 0) return fail("a preempted request kept its cache", plan);
      }
      if (r->admitted == 0 && !r->blocks.empty()) return fail("a waiting request holds blocks", plan);
    }
    if (s.preemptions() - preemptions_before != preempted) return fail("preemption count disagrees", plan);

    // No block owned twice; the allocator's count matches the owners.
    std::int64_t owned = 0;
    bool clash = false;
    for (auto* r : tracked) {
      for (auto b : r->blocks) {
        if (b < 0 || b >= m.kv_blocks || owner[std::size_t(b)] == out.steps) clash = true;
        else owner[std::size_t(b)] = int(out.steps);
      }
      owned += std::int64_t(r->blocks.size());
    }
    if (clash) return fail("a block owned by two requests (or out of range)", plan);
    if (owned != s.blocks().used_count()) return fail("blocks in use disagree with the owners", plan);

    run_step(s, plan);
  }
  if (s.blocks().used_count() != 0) return fail("blocks still in use at the end", {});
  if (!s.idle()) return fail("scheduler not idle at the end", {});
  for (auto& r : m.requests)
    if (!r->finished || r->total_tokens != r->max_total) return fail("request " + std::to_string(r->id) + " did not finish", {});
  out.preemptions = s.preemptions();
  return out;
}

}  // namespace

TEST_CASE("scheduler: a long prompt is split by the token budget and sampled once", "[runtime][scheduler]") {
  scheduler s({768, 512, 64}, 64);
  auto r = make_request(0, 2000, 3);
  s.add(r.get());
  std::vector<std::int32_t> chunks;
  std::vector<bool> samples;
  while (!r->finished) {
    const auto plan = s.schedule();
    REQUIRE(plan.size() == 1);
    chunks.push_back(plan[0].tokens);
    samples.push_back(plan[0].sample);
    run_step(s, plan);
  }
  CHECK(chunks == std::vector<std::int32_t>{768, 768, 464, 1, 1});
  CHECK(samples == std::vector<bool>{false, false, true, true, true});
  CHECK(s.blocks().used_count() == 0);
}

TEST_CASE("scheduler: short prompts pack into one step; decodes come first", "[runtime][scheduler]") {
  scheduler s({768, 512, 16}, 1000);
  std::vector<std::unique_ptr<sim_request>> rs;
  for (int i = 0; i < 5; ++i) rs.push_back(make_request(i, 100 + i, 10));
  for (auto& r : rs) s.add(r.get());
  auto plan = s.schedule();
  REQUIRE(plan.size() == 5);
  for (int i = 0; i < 5; ++i) {
    CHECK(plan[std::size_t(i)].seq == rs[std::size_t(i)].get());  // arrival order
    CHECK(plan[std::size_t(i)].tokens == 100 + i);
    CHECK(plan[std::size_t(i)].sample);
  }
  run_step(s, plan);
  auto late = make_request(5, 1000, 2);
  s.add(late.get());
  plan = s.schedule();
  REQUIRE(plan.size() == 6);
  for (int i = 0; i < 5; ++i) CHECK(plan[std::size_t(i)].tokens == 1);
  CHECK(plan[5].seq == late.get());
  CHECK(plan[5].tokens == 768 - 5);  // the prompt chunk takes what the decodes left
  CHECK_FALSE(plan[5].sample);
}

TEST_CASE("scheduler: the sequence budget caps a step", "[runtime][scheduler]") {
  scheduler s({768, 2, 16}, 1000);
  std::vector<std::unique_ptr<sim_request>> rs;
  for (int i = 0; i < 5; ++i) rs.push_back(make_request(i, 3, 1));
  for (auto& r : rs) s.add(r.get());
  std::vector<std::size_t> sizes;
  while (!s.idle()) {
    const auto plan = s.schedule();
    sizes.push_back(plan.size());
    run_step(s, plan);
  }
  CHECK(sizes == std::vector<std::size_t>{2, 2, 1});
}

TEST_CASE("scheduler: a cache too small for two sequences preempts and recomputes", "[runtime][scheduler]") {
  // 4 blocks of 4 tokens; each request grows to 16 tokens, so they cannot both be cached.
  mix m;
  m.limits = {64, 8, 4};
  m.kv_blocks = 4;
  m.requests.push_back(make_request(0, 6, 10));
  m.requests.push_back(make_request(1, 6, 10));
  const auto r = simulate(m);
  INFO(r.failure);
  CHECK(r.failure.empty());
  CHECK(r.preemptions > 0);
}

TEST_CASE("scheduler: limits and requests that cannot fit are refused", "[runtime][scheduler]") {
  CHECK_THAT(MII_ERROR_MESSAGE(scheduler({0, 1, 16}, 8)), Contains("max_ragged_batch_size") && Contains("got 0"));
  CHECK_THAT(MII_ERROR_MESSAGE(scheduler({8, 0, 16}, 8)), Contains("max_ragged_sequence_count") && Contains("got 0"));
  CHECK_THAT(MII_ERROR_MESSAGE(scheduler({8, 1, 0}, 8)), Contains("kv_block_size") && Contains("got 0"));
  scheduler s({8, 1, 16}, 4);
  CHECK(s.fits(64));
  CHECK_FALSE(s.fits(65));
  auto r = make_request(0, 60, 5);
  CHECK_THAT(MII_ERROR_MESSAGE(s.add(r.get())), Contains("65 tokens") && Contains("4 blocks of 16"));
}

TEST_CASE("scheduler: invariants hold over thousands of random request mixes", "[runtime][scheduler]") {
  const std::uint64_t seed = mii::test::test_seed("scheduler random mixes");
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  auto pick = [&](std::initializer_list<std::int64_t> xs) { return *(xs.begin() + std::ptrdiff_t(rng() % xs.size())); };
  auto uniform = [&](std::int64_t lo, std::int64_t hi) { return lo + std::int64_t(rng() % std::uint64_t(hi - lo + 1)); };

  int mixes = 0, tiny_caches = 0, tiny_with_preemption = 0, with_preemption = 0;
  std::int64_t steps = 0;
  for (; mixes < 5000; ++mixes) {
    mix m;
    m.limits.block_size = std::int32_t(pick({1, 2, 3, 4, 8, 16, 64}));
    m.limits.max_tokens = pick({1, 2, 3, 5, 8, 16, 64, 256, 768});
    m.limits.max_seqs = pick({1, 2, 3, 4, 8, 64, 512});
    const int n = int(uniform(1, 24));
    const std::int64_t max_prompt = pick({4, 16, 64, 300});
    const std::int64_t max_new = pick({1, 4, 40});
    const bool staggered = rng() % 2;
    std::int64_t longest = 0, total = 0;
    for (int i = 0; i < n; ++i) {
      m.requests.push_back(make_request(i, uniform(1, max_prompt), uniform(1, max_new), staggered ? uniform(0, 50) : 0));
      const std::int64_t blocks = (m.requests.back()->max_total + m.limits.block_size - 1) / m.limits.block_size;
      longest = std::max(longest, blocks);
      total += blocks;
    }
    // A third of the caches hold just the longest request, a third a little more, a third all.
    const int kind = int(rng() % 3);
    m.kv_blocks = std::int32_t(kind == 0 ? longest : kind == 1 ? uniform(longest, 2 * longest) : total);
    const auto r = simulate(m);
    if (!r.failure.empty()) {
      FAIL("mix " << mixes << ": " << r.failure);
    }
    steps += r.steps;
    if (r.preemptions > 0) ++with_preemption;
    if (kind == 0 && n > 1) {
      ++tiny_caches;
      if (r.preemptions > 0) ++tiny_with_preemption;
    }
  }
  std::printf("scheduler: %d mixes, %lld steps, %d with preemption, %d of %d tiny-cache mixes preempted\n", mixes,
              static_cast<long long>(steps), with_preemption, tiny_with_preemption, tiny_caches);
  INFO(mixes << " mixes, " << steps << " steps; " << with_preemption << " with preemption; " << tiny_with_preemption << " of "
             << tiny_caches << " tiny-cache mixes preempted");
  CHECK(tiny_with_preemption > tiny_caches / 10);
  CHECK(steps > 0);
}

// The scheduler with samples of one prompt (generate_params.n) and logits-row budgets, driven as
// the engine drives it but without a model: a simulated KV cache holds, for every block slot, the
// token written there. Each step applies the scheduler's block copies, writes the planned tokens
// into their blocks, commits, and forks a request's further samples at its first sample. Checked
// at every step of thousands of random mixes with tiny caches (preemptions, recomputes, prefix
// caching): no token is written into a block another sequence holds; every running sequence
// reads back exactly its own tokens (so sharing and copy-on-write never mix samples up); every
// block's reference count is its number of holders; budgets hold; nothing leaks at the end.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <vector>

#include <mii/runtime/scheduler.hpp>

#include "test_files.hpp"

using namespace mii::runtime;

namespace {

struct sim_seq : sequence_state {
  int id = 0, sample = 0, n = 1;
  std::vector<std::int32_t> tokens;
  std::int64_t prompt = 0;
  bool finished = false;
  std::vector<std::unique_ptr<sim_seq>> siblings;
};

struct sim {
  scheduler_limits limits;
  std::int32_t kv_blocks = 0;
  bool caching = false;
  std::string failure;
  std::int64_t steps = 0, forks = 0, copies = 0, prompt_rows = 0;

  bool check(bool ok, const std::string& what) {
    if (!ok && failure.empty()) failure = "step " + std::to_string(steps) + ": " + what;
    return ok;
  }
};

// One request: a prompt from a few shared prefixes (prefix caching finds them), n samples, and
// some that want a logits row per prompt position (prompt log-probabilities).
std::unique_ptr<sim_seq> make_seq(std::mt19937_64& rng, int id, bool caching, std::int64_t max_len) {
  auto r = std::make_unique<sim_seq>();
  r->id = id;
  const std::int64_t prompt = 1 + std::int64_t(rng() % std::uint64_t(max_len / 2));
  for (std::int64_t i = 0; i < prompt; ++i) r->tokens.push_back(i < 6 ? std::int32_t(rng() % 2) : std::int32_t(rng() % 1000));
  r->prompt = prompt;
  r->n = rng() % 3 == 0 ? 2 + int(rng() % 4) : 1;
  r->total_tokens = prompt;
  r->max_total = prompt + 1 + std::int64_t(rng() % std::uint64_t(max_len - prompt));
  r->fanout = r->n;
  if (rng() % 4 == 0) r->rows_end = prompt - 1;
  r->token_ids = caching ? &r->tokens : nullptr;
  return r;
}

std::string run_mix(std::uint64_t seed, sim& m) {
  std::mt19937_64 rng(seed);
  scheduler s(m.limits, m.kv_blocks);
  const std::int32_t bs = m.limits.block_size;
  std::vector<std::vector<std::int32_t>> cache(std::size_t(m.kv_blocks), std::vector<std::int32_t>(std::size_t(bs), -1));
  const std::int64_t max_len = std::int64_t(m.kv_blocks) * bs / 2;
  std::vector<std::unique_ptr<sim_seq>> requests;
  for (int i = 0; i < 6 + int(rng() % 10); ++i) requests.push_back(make_seq(rng, i, m.caching, std::max<std::int64_t>(max_len, 4)));
  std::vector<sim_seq*> live;  // every sequence not finished (samples included)
  std::size_t next = 0;
  for (;; ++m.steps) {
    if (next < requests.size() && (live.empty() || rng() % 3 == 0)) {
      s.add(requests[next].get());
      live.push_back(requests[next++].get());
    }
    std::erase_if(live, [](sim_seq* q) { return q->finished; });
    if (live.empty() && next == requests.size()) break;
    if (s.idle()) continue;
    if (m.steps > 200000) return "no end in sight";
    const auto plan = s.schedule();
    if (!m.check(!plan.empty(), "an empty plan while work is queued")) return m.failure;
    std::int64_t tokens = 0, rows = 0;
    for (const auto& c : plan) {
      tokens += c.tokens;
      rows += c.seq->rows_for(c.tokens);
    }
    m.check(tokens <= m.limits.max_tokens, "token budget exceeded");
    m.check(std::int64_t(plan.size()) <= m.limits.max_seqs, "sequence budget exceeded");
    m.check(rows <= s.max_rows(), "logits-row budget exceeded");
    // The step: copies first, then the forward pass writes the planned tokens.
    for (const auto& cp : s.block_copies()) {
      cache[std::size_t(cp.dst)] = cache[std::size_t(cp.src)];
      ++m.copies;
    }
    for (const auto& c : plan) {
      auto* q = static_cast<sim_seq*>(c.seq);
      m.check(std::int64_t(q->blocks.size()) * bs >= q->kv_len + c.tokens, "blocks do not cover the chunk");
      for (std::int64_t p = q->kv_len; p < q->kv_len + c.tokens; ++p) {
        const std::int32_t b = q->blocks[std::size_t(p / bs)];
        m.check(s.blocks().refs(b) == 1, "sequence " + std::to_string(q->id) + "." + std::to_string(q->sample) +
                                             " writes position " + std::to_string(p) + " into shared block " + std::to_string(b));
        cache[std::size_t(b)][std::size_t(p % bs)] = q->tokens[std::size_t(p)];
      }
      m.prompt_rows += std::max<std::int64_t>(0, std::min(q->kv_len + c.tokens, q->rows_end) - std::max(q->kv_len, q->rows_begin));
    }
    s.commit(plan);
    for (const auto& c : plan) {
      auto* q = static_cast<sim_seq*>(c.seq);
      q->rows_begin = std::max(q->rows_begin, std::min(q->kv_len, q->rows_end));  // recorded
      if (!c.sample) continue;
      std::vector<sim_seq*> samples{q};
      if (q->fanout > 1) {  // the engine's fork: samples 1..n-1 continue from q's cache
        for (int k = 1; k < q->n; ++k) {
          auto child = std::make_unique<sim_seq>();
          child->id = q->id;
          child->sample = k;
          child->tokens = q->tokens;
          child->prompt = q->prompt;
          child->token_ids = m.caching ? &child->tokens : nullptr;
          s.fork(q, child.get());
          samples.push_back(child.get());
          live.push_back(child.get());
          q->siblings.push_back(std::move(child));
          ++m.forks;
        }
        q->fanout = 1;
      }
      for (sim_seq* x : samples) {
        x->tokens.push_back(std::int32_t(100000 + x->id * 1000 + x->sample * 100 + std::int32_t(x->tokens.size())));
        x->total_tokens = std::int64_t(x->tokens.size());
        if (x->total_tokens >= x->max_total) {
          s.finish(x);
          x->finished = true;
        }
      }
    }
    // Every sequence reads back its own tokens; every block's count is its number of holders.
    std::map<std::int32_t, int> holders;
    for (sim_seq* q : live) {
      if (q->finished) continue;
      for (auto b : q->blocks) ++holders[b];
      for (std::int64_t p = 0; p < q->kv_len; ++p)
        if (!m.check(cache[std::size_t(q->blocks[std::size_t(p / bs)])][std::size_t(p % bs)] == q->tokens[std::size_t(p)],
                     "sequence " + std::to_string(q->id) + "." + std::to_string(q->sample) + " reads a wrong token at " +
                         std::to_string(p)))
          break;
      if (q->admitted == 0) m.check(q->blocks.empty(), "a waiting sequence holds blocks");
    }
    for (const auto& [b, n] : holders) m.check(s.blocks().refs(b) == n, "block " + std::to_string(b) + " has a wrong count");
    m.check(s.blocks().used_count() == std::int32_t(holders.size()), "blocks in use disagree with their holders");
    if (!m.failure.empty()) return m.failure;
  }
  m.check(s.blocks().used_count() == 0, "blocks still in use at the end");
  m.check(s.idle(), "not idle at the end");
  for (const auto& r : requests) {
    m.check(r->finished && std::int64_t(r->siblings.size()) == r->n - 1, "request " + std::to_string(r->id) + " did not finish");
    for (const auto& c : r->siblings) m.check(c->finished && c->total_tokens == c->max_total, "a sample did not finish");
  }
  return m.failure;
}

}  // namespace

TEST_CASE("scheduler with samples: forks share blocks, copies on write, budgets, no leak", "[runtime][scheduler][samples]") {
  const std::uint64_t seed = mii::test::test_seed("scheduler samples");
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  std::int64_t forks = 0, copies = 0, preemptions_seen = 0, prompt_rows = 0;
  for (int mix = 0; mix < 1500; ++mix) {
    sim m;
    m.limits.block_size = 1 + std::int32_t(rng() % 5);
    m.limits.max_tokens = 1 + std::int64_t(rng() % 40);
    m.limits.max_seqs = 5 + std::int64_t(rng() % 8);  // at least the largest n
    m.limits.max_rows = rng() % 2 ? 0 : 5 + std::int64_t(rng() % 10);
    m.caching = rng() % 2;
    m.limits.prefix_caching = m.caching;
    m.kv_blocks = 4 + std::int32_t(rng() % 30);
    const std::uint64_t mix_seed = rng();
    const std::string failure = run_mix(mix_seed, m);
    INFO("mix " << mix << " (seed " << mix_seed << "): block_size " << m.limits.block_size << ", max_tokens "
                << m.limits.max_tokens << ", max_seqs " << m.limits.max_seqs << ", max_rows " << m.limits.max_rows
                << ", kv_blocks " << m.kv_blocks << ", caching " << m.caching);
    REQUIRE(failure.empty());
    forks += m.forks;
    copies += m.copies;
    prompt_rows += m.prompt_rows;
  }
  (void)preemptions_seen;
  std::printf("scheduler samples: %lld forks, %lld block copies, %lld prompt rows over 1500 mixes\n",
              static_cast<long long>(forks), static_cast<long long>(copies), static_cast<long long>(prompt_rows));
  CHECK(forks > 1000);
  CHECK(copies > 100);
  CHECK(prompt_rows > 1000);
}

TEST_CASE("scheduler: n samples of one prompt hold the prompt's blocks once plus one block each", "[runtime][scheduler][samples]") {
  // A 10-token prompt in blocks of 4: two full blocks and a partial one. After the first sample
  // fans out into 8, the next step's decodes each write position 10 into the partial block:
  // 7 copies, and the last writer keeps the original.
  scheduler s({.max_tokens = 64, .max_seqs = 16, .block_size = 4}, 64);
  sim_seq r;
  for (int i = 0; i < 10; ++i) r.tokens.push_back(i);
  r.total_tokens = 10;
  r.max_total = 20;
  r.n = 8;
  r.fanout = 8;
  s.add(&r);
  auto plan = s.schedule();
  REQUIRE(plan.size() == 1);
  CHECK(plan[0].tokens == 10);
  CHECK(plan[0].sample);
  CHECK(r.rows_for(10) == 8);
  s.commit(plan);
  std::vector<std::unique_ptr<sim_seq>> kids;
  for (int k = 1; k < 8; ++k) {
    kids.push_back(std::make_unique<sim_seq>());
    kids.back()->tokens = r.tokens;
    s.fork(&r, kids.back().get());
  }
  r.fanout = 1;
  CHECK(s.blocks().used_count() == 3);
  CHECK(s.blocks().refs(r.blocks[2]) == 8);
  r.tokens.push_back(1);
  r.total_tokens = 11;
  for (auto& k : kids) {
    k->tokens.push_back(2);
    k->total_tokens = 11;
  }
  plan = s.schedule();
  CHECK(plan.size() == 8);
  CHECK(s.block_copies().size() == 7);
  CHECK(s.blocks().used_count() == 2 + 8);
  CHECK(s.blocks().copies() == 7);
  s.commit(plan);
  s.finish(&r);
  for (auto& k : kids) s.finish(k.get());
  CHECK(s.blocks().used_count() == 0);
}

TEST_CASE("scheduler: prompt rows split a prefill by the logits-row budget", "[runtime][scheduler][samples]") {
  scheduler s({.max_tokens = 100, .max_seqs = 4, .block_size = 4, .max_rows = 4}, 64);
  sim_seq r;
  r.tokens.assign(11, 7);
  r.total_tokens = 11;
  r.max_total = 12;
  r.rows_end = 10;  // a row for positions 0..9 (the next prompt token's log-probability)
  r.fanout = 3;     // and three samples from position 10
  s.add(&r);
  std::vector<std::int32_t> chunks;
  while (r.kv_len < r.total_tokens) {
    const auto plan = s.schedule();
    REQUIRE(plan.size() == 1);
    CHECK(r.rows_for(plan[0].tokens) <= 4);
    chunks.push_back(plan[0].tokens);
    s.commit(plan);
    r.rows_begin = std::min(r.kv_len, r.rows_end);
  }
  // 4 + 4 rows, then 2 prompt rows leave no room for the 3 samples: the last token waits.
  CHECK(chunks == std::vector<std::int32_t>{4, 4, 2, 1});
}

// Automatic prefix caching end to end (issue 16): requests sharing long prefixes reuse cached KV
// blocks, with exactly the greedy tokens of an engine without caching — over random mixes, a
// cache small enough to force evictions and preemptions, and prompts that come back after their
// blocks were evicted.
#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include <mii/backend/host/host_backend.hpp>
#include <mii/models/llama.hpp>
#include <mii/parallel/single.hpp>
#include <mii/pipeline.hpp>
#include <mii/runtime/engine.hpp>

#include "fixtures.hpp"
#include "pipeline_support.hpp"
#include "test_files.hpp"

using mii::generation_finish_reason;
using engine_t = mii::runtime::engine<mii::models::llama, mii::backend::host, mii::parallel::single>;

namespace {

mii::model_config config(bool caching, std::int64_t blocks) {
  mii::model_config c = mii::test::host_config(blocks);
  c.kv_block_size = 4;
  c.max_length = 160;
  c.max_ragged_batch_size = 48;
  c.max_ragged_sequence_count = 8;
  c.prefix_caching = caching;
  c.host_threads = 1;
  return c;
}

}  // namespace

TEST_CASE("prefix caching changes no greedy token, under evictions and preemptions", "[pipeline][prefix]") {
  const std::uint64_t seed = mii::test::test_seed("prefix caching mixes");
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  const std::string text = mii::test::read_text(mii::test::source_dir() / "tests/fixtures/demo_text.txt");
  // Three "system prompts" and many short questions: most requests share a long prefix.
  std::vector<std::string> systems;
  for (int i = 0; i < 3; ++i) systems.push_back(text.substr(std::size_t(i) * 300, 200));
  auto question = [&] { return text.substr(rng() % (text.size() - 40), 5 + rng() % 30); };

  const auto dir = mii::test::fixture_dir("demo-llama");
  // 40 blocks of 4 tokens: room for about two long requests at once.
  engine_t cached(dir, config(true, 40)), plain(dir, config(false, 40));
  mii::generate_params p;
  p.do_sample = false;
  p.ignore_eos = true;
  std::int64_t calls = 0;
  for (int round = 0; round < 12; ++round) {
    std::vector<std::string> prompts;
    for (int i = 0; i < 1 + int(rng() % 10); ++i) prompts.push_back(systems[rng() % systems.size()] + question());
    p.max_new_tokens = 1 + std::int64_t(rng() % 12);
    const auto a = cached.generate(prompts, p), b = plain.generate(prompts, p);
    ++calls;
    REQUIRE(a.size() == b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      INFO("round " << round << ", prompt " << i);
      CHECK(a[i].finish_reason == b[i].finish_reason);
      CHECK(a[i].token_ids == b[i].token_ids);
    }
    REQUIRE(cached.sched().blocks().used_count() == 0);
  }
  const auto& hits = cached.sched().prefix_cache();
  INFO("prefix cache: " << hits.hit << " of " << hits.queried << " prompt tokens found");
  CHECK(hits.hit > hits.queried / 4);  // most tokens are system prompts
  CHECK(cached.sched().preemptions() > 0);
  CHECK(plain.sched().prefix_cache().hit == 0);
  std::printf("prefix caching: %lld of %lld prompt tokens found in the cache, %lld preemptions, %lld calls\n",
              static_cast<long long>(hits.hit), static_cast<long long>(hits.queried),
              static_cast<long long>(cached.sched().preemptions()), static_cast<long long>(calls));
}

TEST_CASE("prefix caching through the pipeline: a repeated prompt reuses its blocks", "[pipeline][prefix]") {
  auto pipe = mii::pipeline(mii::test::fixture_dir("demo-llama"), config(true, 200));
  const std::string prompt = mii::test::read_text(mii::test::source_dir() / "tests/fixtures/demo_text.txt").substr(0, 300);
  mii::generate_params p;
  p.do_sample = false;
  p.max_new_tokens = 8;
  const auto first = pipe(prompt, p);
  const auto before = pipe.stats();
  const auto second = pipe(prompt, p);
  const auto after = pipe.stats();
  CHECK(second.token_ids == first.token_ids);
  const std::int64_t hit = after.prefix_cache_hit_tokens - before.prefix_cache_hit_tokens;
  // All of the prompt but its last partial block (at least one token is computed again).
  CHECK(hit >= second.prompt_length - 4);
  CHECK(hit < second.prompt_length);
  CHECK(after.kv_blocks_cached > 0);
}

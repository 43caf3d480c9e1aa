// The engine as a user's program instantiates it: README.md's C++ example (a typed pipeline
// compiled in this file, not taken from libmii), and the engine under KV-cache exhaustion.
#include <catch2/catch.hpp>

#include <cstdio>
#include <iostream>
#include <sstream>

#include <mii/backend/host/host_backend.hpp>
#include <mii/models/llama.hpp>
#include <mii/parallel/single.hpp>
#include <mii/pipeline.hpp>
#include <mii/runtime/engine.hpp>

#include "fixtures.hpp"
#include "pipeline_support.hpp"

namespace {

// README.md's example, as written there (the architecture and model directory aside).
std::vector<mii::response> readme_example(const std::filesystem::path& dir, std::ostream& out) {
  auto pipe = mii::pipeline<mii::models::llama>(dir);
  auto responses = pipe({"DeepSpeed is", "Seattle is"}, {.max_new_tokens = 16});
  for (const mii::response& r : responses) out << r << '\n';
  return responses;
}

}  // namespace

TEST_CASE("README.md's example compiles and runs", "[pipeline][design]") {
  std::ostringstream printed;
  const auto out = readme_example(mii::test::fixture_dir("demo-llama"), printed);
  REQUIRE(out.size() == 2);
  std::string expected;
  for (const auto& r : out) {
    CHECK(r.generated_length >= 1);
    CHECK(r.generated_length <= 16);
    CHECK(r.finish_reason != mii::generation_finish_reason::error);
    expected += r.generated_text + '\n';
  }
  CHECK(printed.str() == expected);  // operator<< prints generated_text
}

TEST_CASE("KV exhaustion: a cache for one sequence serves many, with the same tokens", "[pipeline][kv]") {
  using engine = mii::runtime::engine<mii::models::llama, mii::backend::host, mii::parallel::single>;
  const auto dir = mii::test::fixture_dir("llama2");
  const auto ref = mii::test::load_reference("llama2");
  // The 20 shortest long prompts (1..457 tokens): enough requests to fight over a small cache.
  const std::vector<std::vector<std::int32_t>> prompts(ref.long_prompts.begin(), ref.long_prompts.begin() + 20);
  std::int64_t longest = 0;
  for (const auto& p : prompts) longest = std::max<std::int64_t>(longest, std::int64_t(p.size()));
  mii::generate_params params;
  params.do_sample = false;
  params.max_new_tokens = 8;
  params.ignore_eos = true;

  engine roomy(dir, mii::test::host_config(4096));
  const auto baseline = roomy.generate_ids(prompts, params);
  REQUIRE(baseline.size() == prompts.size());
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    INFO("prompt " << i);
    CHECK(baseline[i].token_ids == ref.long_greedy[i]);
  }
  CHECK(roomy.sched().preemptions() == 0);

  struct setting {
    std::int32_t block_size;
    std::int64_t max_ragged_batch_size, max_ragged_sequence_count;
  };
  std::int64_t preemptions = 0;
  for (const setting s : {setting{16, 768, 512}, setting{4, 64, 4}, setting{1, 16, 512}, setting{7, 100, 3}}) {
    // Just enough blocks for the longest request (prompt + 8 new tokens) on its own.
    mii::model_config cfg = mii::test::host_config();
    cfg.max_length = longest + 8;
    cfg.kv_block_size = s.block_size;
    cfg.kv_cache_blocks = (longest + 8 + s.block_size - 1) / s.block_size;
    cfg.max_ragged_batch_size = s.max_ragged_batch_size;
    cfg.max_ragged_sequence_count = s.max_ragged_sequence_count;
    INFO("block size " << s.block_size << ", " << *cfg.kv_cache_blocks << " blocks, batch " << s.max_ragged_batch_size
                       << " tokens / " << s.max_ragged_sequence_count << " sequences");
    engine tight(dir, cfg);
    const auto out = tight.generate_ids(prompts, params);
    REQUIRE(out.size() == prompts.size());
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      INFO("prompt " << i);
      CHECK(out[i].finish_reason == mii::generation_finish_reason::length);
      CHECK(out[i].token_ids == baseline[i].token_ids);
    }
    CHECK(tight.sched().blocks().used_count() == 0);
    CHECK(tight.sched().idle());
    preemptions += tight.sched().preemptions();
    std::printf("KV exhaustion: block size %d, %lld blocks: %lld preemptions\n", s.block_size,
                static_cast<long long>(*cfg.kv_cache_blocks), static_cast<long long>(tight.sched().preemptions()));
  }
  CHECK(preemptions > 0);

  SECTION("a cache that cannot hold one sequence of the maximum length is refused") {
    mii::model_config cfg = mii::test::host_config();
    cfg.max_length = 100;
    cfg.kv_cache_blocks = 6;  // 96 tokens
    try {
      engine too_small(dir, cfg);
      FAIL("expected mii::error");
    } catch (const mii::error& e) {
      CHECK_THAT(e.what(), Catch::Matchers::Contains("6 blocks of 16") && Catch::Matchers::Contains("100"));
    }
  }
}

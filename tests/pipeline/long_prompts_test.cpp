// Issue 5's done criterion: the 64 long prompts (lengths 1..2000) of the llama2, mistral, qwen3 and
// gemma2 fixtures, served as one mixed list through the pipeline (Dynamic SplitFuse splits the long ones
// across steps and packs the short ones with other sequences' decodes), give exactly the greedy
// tokens transformers gives, and exactly what each prompt gives when served alone.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>

#include <mii/pipeline.hpp>

#include "fixtures.hpp"
#include "pipeline_support.hpp"

namespace {

void check_long_prompts(const std::string& fixture) {
  INFO("fixture " << fixture);
  const auto ref = mii::test::load_reference(fixture);
  REQUIRE(ref.long_prompts.size() == 64);
  REQUIRE(ref.long_greedy.size() == 64);

  auto pipe = mii::pipeline(mii::test::fixture_dir(fixture), mii::test::host_config());
  mii::generate_params p;
  p.do_sample = false;
  p.max_new_tokens = 8;
  p.ignore_eos = true;
  p.max_length = 4096;

  const auto t0 = std::chrono::steady_clock::now();
  const auto mixed = pipe.generate_ids(ref.long_prompts, p);
  const auto t1 = std::chrono::steady_clock::now();
  REQUIRE(mixed.size() == 64);
  for (std::size_t i = 0; i < 64; ++i) {
    INFO("prompt " << i << " of length " << ref.long_prompts[i].size());
    CHECK(mixed[i].finish_reason == mii::generation_finish_reason::length);
    CHECK(mixed[i].prompt_length == std::int64_t(ref.long_prompts[i].size()));
    CHECK(mixed[i].token_ids == ref.long_greedy[i]);
  }
  CHECK(pipe.kv_blocks_in_use() == 0);

  // Alone: a different batching of the same work must not change a single token.
  for (std::size_t i = 0; i < 64; ++i) {
    INFO("prompt " << i << " alone, length " << ref.long_prompts[i].size());
    const auto alone = pipe.generate_ids({ref.long_prompts[i]}, p);
    REQUIRE(alone.size() == 1);
    CHECK(alone[0].token_ids == mixed[i].token_ids);
  }
  const auto t2 = std::chrono::steady_clock::now();
  std::printf("%s: 64 long prompts mixed in %.2f s, 64 alone in %.2f s\n", fixture.c_str(),
              std::chrono::duration<double>(t1 - t0).count(), std::chrono::duration<double>(t2 - t1).count());
}

}  // namespace

TEST_CASE("llama2: 64 long prompts in one mixed list match transformers' greedy tokens", "[pipeline][long]") {
  check_long_prompts("llama2");
}

TEST_CASE("mistral (sliding window): 64 long prompts in one mixed list match transformers' greedy tokens", "[pipeline][long]") {
  check_long_prompts("mistral");
}

TEST_CASE("qwen3 (q/k norms): 64 long prompts in one mixed list match transformers' greedy tokens", "[pipeline][long]") {
  check_long_prompts("qwen3");
}

TEST_CASE("gemma2 (sliding and global layers, soft-caps): 64 long prompts in one mixed list match transformers' greedy tokens",
          "[pipeline][long]") {
  check_long_prompts("gemma2");
}

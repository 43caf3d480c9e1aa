// Rope scalings end to end (issue 15): the prompts of the dynamic-NTK, linear and Phi-3 longrope
// fixtures served through mii::pipeline with 8 tokens per step, so that Dynamic SplitFuse splits
// every prompt across steps and mixes sequences, give transformers' greedy tokens (its decoding of
// each prompt alone, a fresh model each), all prompts at once and each alone. The prefix cache
// shares blocks only between sequences whose keys were rotated alike.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <mii/backend/host/host_backend.hpp>
#include <mii/models/llama.hpp>
#include <mii/models/phi3.hpp>
#include <mii/parallel/single.hpp>
#include <mii/pipeline.hpp>
#include <mii/runtime/engine.hpp>

#include "fixtures.hpp"
#include "pipeline_support.hpp"

namespace {

mii::model_config small_steps() {
  mii::model_config c = mii::test::host_config(256);
  c.kv_block_size = 4;
  c.max_ragged_batch_size = 8;  // every prompt is split across steps
  c.max_length = 128;           // llama_dynamic: past max_position_embeddings (16), as dynamic NTK allows
  c.host_threads = 1;
  return c;
}

mii::generate_params greedy(std::int64_t n) {
  mii::generate_params p;
  p.do_sample = false;
  p.ignore_eos = true;
  p.max_new_tokens = n;
  return p;
}

void check_pipeline(const std::string& fixture) {
  INFO("fixture " << fixture);
  const auto ref = mii::test::load_reference(fixture);
  auto pipe = mii::pipeline(mii::test::fixture_dir(fixture), small_steps());
  const auto p = greedy(std::int64_t(ref.greedy.at(0).size()));
  const auto mixed = pipe.generate_ids(ref.prompts, p);
  REQUIRE(mixed.size() == ref.prompts.size());
  for (std::size_t i = 0; i < mixed.size(); ++i) {
    INFO("prompt " << i << " of " << ref.prompts[i].size() << " tokens, all prompts at once");
    CHECK(mixed[i].token_ids == ref.greedy[i]);
  }
  for (std::size_t i = 0; i < ref.prompts.size(); ++i) {
    INFO("prompt " << i << " of " << ref.prompts[i].size() << " tokens, alone");
    CHECK(pipe.generate_ids({ref.prompts[i]}, p).at(0).token_ids == ref.greedy[i]);
  }
  CHECK(pipe.kv_blocks_in_use() == 0);
}

template <class Model>
using engine_t = mii::runtime::engine<Model, mii::backend::host, mii::parallel::single>;

}  // namespace

TEST_CASE("dynamic NTK through the pipeline gives transformers' greedy tokens", "[pipeline][rope]") {
  check_pipeline("llama_dynamic");
}
TEST_CASE("linear rope through the pipeline gives transformers' greedy tokens", "[pipeline][rope]") {
  check_pipeline("llama_linear");
}
TEST_CASE("phi-3 longrope crossing the original length through the pipeline gives transformers' tokens",
          "[pipeline][rope]") {
  check_pipeline("phi3_cross");
}

// The phi3 fixture crosses its original length (32) during generation for every prompt (7, 19, 29
// + 32 tokens), with a sliding window of 20.
TEST_CASE("phi-3 longrope fixture through the pipeline gives transformers' tokens", "[pipeline][rope]") {
  check_pipeline("phi3");
}

// Dynamic NTK rotates a prompt past max_position_embeddings with a base of that prompt's own
// length: another prompt that starts with the same tokens must not take its cached blocks.
TEST_CASE("prefix caching: dynamic NTK prompts of different lengths share no blocks", "[pipeline][rope][prefix]") {
  const auto ref = mii::test::load_reference("llama_dynamic");
  const auto& full = ref.prompts.at(2);  // 33 tokens, past max_position_embeddings (16)
  const std::vector<mii::token_id> head(full.begin(), full.begin() + 20);
  engine_t<mii::models::llama> e(mii::test::fixture_dir("llama_dynamic"), small_steps());
  const auto p = greedy(std::int64_t(ref.greedy[2].size()));
  e.generate_ids(std::vector<std::vector<mii::token_id>>{head}, p);
  const auto after_head = e.sched().prefix_cache().hit;
  const auto r = e.generate_ids(std::vector<std::vector<mii::token_id>>{full}, p);
  CHECK(e.sched().prefix_cache().hit == after_head);  // 20 shared tokens, 0 reused
  CHECK(r.at(0).token_ids == ref.greedy[2]);
}

// Longrope rotates every prompt past original_max_position_embeddings alike (long factors):
// those share blocks, and the tokens stay transformers'.
TEST_CASE("prefix caching: phi-3 long prompts share blocks and keep transformers' tokens", "[pipeline][rope][prefix]") {
  const auto ref = mii::test::load_reference("phi3_cross");
  const auto& full = ref.prompts.at(2);  // 30 tokens, past original_max_position_embeddings (24)
  const std::vector<mii::token_id> head(full.begin(), full.begin() + 26);
  engine_t<mii::models::phi3> e(mii::test::fixture_dir("phi3_cross"), small_steps());
  const auto p = greedy(std::int64_t(ref.greedy[2].size()));
  e.generate_ids(std::vector<std::vector<mii::token_id>>{head}, p);
  const auto after_head = e.sched().prefix_cache().hit;
  const auto r = e.generate_ids(std::vector<std::vector<mii::token_id>>{full}, p);
  CHECK(e.sched().prefix_cache().hit >= after_head + 24);  // 6 blocks of 4 of the 26 shared tokens
  CHECK(r.at(0).token_ids == ref.greedy[2]);
}

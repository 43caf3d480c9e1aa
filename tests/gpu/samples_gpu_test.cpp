// Issue 16 on the GPU: the KV block copy (copy-on-write of blocks the samples of one prompt
// share) against the host backend's, and the n-samples and prompt-logprobs paths of the engine
// on the cuda backend: prompt log-probabilities against transformers' log_softmax of its fp32
// logits within the bf16 budget, greedy n giving identical copies, the blocks held after the
// first decode, and seeded samples starting where the prompt alone with seed + k starts.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>

#include <mii/models/llama.hpp>
#include <mii/parallel/single.hpp>
#include <mii/pipeline.hpp>
#include <mii/runtime/engine.hpp>

#include "fixtures.hpp"
#include "gpu_support.hpp"
#include "logit_budgets.hpp"

using namespace mii;
using namespace mii::test::gpu;

namespace {

using mii::test::log_softmax;

model_config cuda_config() {
  model_config c;
  c.backend = "cuda";
  c.kv_block_size = 16;
  c.kv_cache_blocks = 512;
  c.show_progress = false;
  return c;
}

}  // namespace

TEMPLATE_TEST_CASE("cuda copy_kv_blocks equals the host's, copies in list order", "[gpu][samples]", bf16_t, fp16_t) {
  using D = TestType;
  using B = backend_t<D>;
  auto rng = rng_for("copy_kv_blocks");
  auto& ctx = shared_context<D>();
  // block_elements 2 * kv_heads * block_size * head_dim: 16-byte words, and an odd count of
  // 2-byte elements (the narrow path).
  for (const std::int64_t block_elements : {std::int64_t(2 * 2 * 16 * 64), std::int64_t(2 * 1 * 3 * 5)}) {
    INFO("block elements " << block_elements);
    const std::int64_t layers = 3, blocks = 40;
    const auto values = random_values<D>(rng, layers * blocks * block_elements);
    auto d_kv = upload<D>(ctx, values);
    // Fresh destinations from shared sources, a chain (a block copied after it was written), a
    // block copied onto two others, and more pairs than one launch holds.
    std::vector<backend::block_copy> copies = {{3, 10}, {10, 11}, {3, 12}, {5, 3}, {3, 13}};
    std::vector<std::int32_t> order(blocks);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    for (int i = 0; i < 70; ++i) copies.push_back({order[std::size_t(i % 20)], order[20 + std::size_t(i % 20)]});
    std::vector<float> want = values;
    // The host copies fp32 elements, the device 16-bit ones: the same blocks, each in its own bytes.
    backend::host::copy_kv_blocks(host_context(), reinterpret_cast<std::uint8_t*>(want.data()), layers, blocks,
                                  block_elements * std::int64_t(sizeof(float)), copies);
    B::copy_kv_blocks(ctx, reinterpret_cast<std::uint8_t*>(d_kv.data()), layers, blocks,
                      block_elements * std::int64_t(sizeof(D)), copies);
    CHECK(download<D>(ctx, d_kv.data(), layers * blocks * block_elements) == want);
  }
}

TEST_CASE("cuda prompt_logprobs: transformers' log_softmax at every prompt position", "[gpu][samples][logprobs]") {
  const auto ref = test::load_reference("llama2");
  const auto budget = test::logit_budget_for<bf16_t>(false);
  for (const std::int64_t chunk : {std::int64_t(768), std::int64_t(5)}) {
    model_config c = cuda_config();
    c.max_ragged_batch_size = chunk;  // 5: every prompt split over steps, its rows too
    c.max_ragged_sequence_count = chunk == 5 ? 3 : 512;
    auto pipe = mii::pipeline<models::llama>(test::fixture_dir("llama2"), c);
    generate_params p;
    p.do_sample = false;
    p.max_new_tokens = 1;
    p.ignore_eos = true;
    p.prompt_logprobs = 3;
    const auto out = pipe.generate_ids(ref.prompts, p);
    REQUIRE(out.size() == ref.prompts.size());
    double worst = 0;
    int top_mismatches = 0;
    for (std::size_t i = 0; i < ref.prompts.size(); ++i) {
      const auto& prompt = ref.prompts[i];
      REQUIRE(out[i].prompt_logprobs.size() == prompt.size() - 1);
      for (std::size_t j = 1; j < prompt.size(); ++j) {
        INFO("chunk " << chunk << ", prompt " << i << ", token " << j);
        const float* row = ref.logits[i].data() + std::int64_t(j - 1) * ref.vocab;
        const auto lsm = log_softmax(row, ref.vocab);
        float scale = 0;
        for (std::int64_t v = 0; v < ref.vocab; ++v) scale = std::max(scale, std::fabs(row[v]));
        const auto& lp = out[i].prompt_logprobs[j - 1];
        CHECK(lp.token == prompt[j]);
        const double err = std::fabs(lp.logprob - lsm[std::size_t(prompt[j])]);
        worst = std::max(worst, err / std::max(1.0f, scale));
        CHECK(err <= budget.logits * std::max(1.0f, scale));
        REQUIRE(lp.top.size() == 3);
        const auto best = std::int32_t(std::max_element(lsm.begin(), lsm.end()) - lsm.begin());
        if (lp.top[0].first != best) {
          ++top_mismatches;
          CHECK(test::near_tie(budget, float(lsm[std::size_t(best)] - lsm[std::size_t(lp.top[0].first)]), scale));
        }
      }
    }
    std::printf("cuda prompt_logprobs (chunk %lld): worst |error| / max(1, max|logit|) %.2e, %d near-tie top-1 flips\n",
                static_cast<long long>(chunk), worst, top_mismatches);
  }
}

TEST_CASE("cuda n samples: identical greedy copies, shared blocks, seeded samples", "[gpu][samples]") {
  using engine_t = runtime::engine<models::llama, backend::cuda<bf16_t>, parallel::single>;
  model_config c = cuda_config();
  c.kv_block_size = 4;
  c.kv_cache_blocks = 256;
  c.max_length = 128;
  c.prefix_caching = false;
  engine_t e(test::fixture_dir("demo-llama"), c);
  const std::vector<std::int32_t> prompt = e.tok().encode("The quick brown fox");
  REQUIRE(prompt.size() % 4 != 0);  // a partial last block to share and copy
  const std::vector<std::vector<std::int32_t>> one_prompt{prompt};

  generate_params g;
  g.do_sample = false;
  g.max_new_tokens = 16;
  g.ignore_eos = true;
  const auto one = e.generate_ids(one_prompt, g).at(0);
  g.n = 4;
  const auto four = e.generate_ids(one_prompt, g).at(0);
  REQUIRE(four.samples.size() == 4);
  for (const auto& s : four.samples) CHECK(s.token_ids == four.samples[0].token_ids);  // one batch, identical rows
  CHECK(four.samples[0].token_ids == one.token_ids);

  // After the prompt and one decode: the prompt's full blocks once, one block per sample.
  const auto full = std::int32_t(prompt.size() / 4);
  const auto copies_before = e.stats().kv_block_copies;
  e.add(e.make_request(prompt, g, 1));
  e.step();
  CHECK(e.sched().blocks().used_count() == full + 1);
  e.step();
  CHECK(e.sched().blocks().used_count() == full + 4);
  CHECK(e.stats().kv_block_copies == copies_before + 3);
  while (e.has_work()) e.step();
  CHECK(e.sched().blocks().used_count() == 0);

  // Seeded: sample k draws its first token from the prompt's row as the prompt alone with seed + k
  // does (the same prefill); later tokens come from batches of a different size, whose bf16 sums may
  // round differently, so they are compared and counted, not required.
  generate_params s;
  s.n = 4;
  s.seed = 99;
  s.temperature = 1.0;
  s.top_p = 1.0;
  s.max_new_tokens = 16;
  s.ignore_eos = true;
  const auto group = e.generate_ids(one_prompt, s).at(0);
  REQUIRE(group.samples.size() == 4);
  int same = 0;
  for (std::size_t k = 0; k < 4; ++k) {
    generate_params alone = s;
    alone.n = 1;
    alone.seed = 99 + k;
    const auto a = e.generate_ids(one_prompt, alone).at(0);
    CHECK(group.samples[k].token_ids.at(0) == a.token_ids.at(0));
    same += group.samples[k].token_ids == a.token_ids;
  }
  std::printf("cuda n samples: %d of 4 seeded samples equal the prompt alone with seed + k token for token\n", same);
  CHECK(e.sched().blocks().used_count() == 0);
}

// generate_params.prompt_logprobs end to end (issue 16): every prompt position's log-probability
// against transformers' log_softmax of its own logits (the fixtures' reference holds the fp32
// logits of every prompt position), under chunked prefill and small logits-row budgets, with the
// prefix cache holding the prompt, and under preemption.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <vector>

#include <mii/backend/host/host_backend.hpp>
#include <mii/models/llama.hpp>
#include <mii/parallel/single.hpp>
#include <mii/pipeline.hpp>
#include <mii/runtime/engine.hpp>

#include "expect_error.hpp"
#include "fixtures.hpp"
#include "pipeline_support.hpp"

using Catch::Matchers::Contains;

namespace {

using mii::test::log_softmax;

// The response's prompt log-probabilities against the reference logits of prompt i.
void check_against_reference(const mii::response& r, const mii::test::model_reference& ref, std::size_t i, std::int32_t top) {
  const auto& prompt = ref.prompts[i];
  REQUIRE(r.prompt_logprobs.size() == prompt.size() - 1);
  for (std::size_t j = 1; j < prompt.size(); ++j) {
    INFO("prompt token " << j);
    const auto lsm = log_softmax(ref.logits[i].data() + std::int64_t(j - 1) * ref.vocab, ref.vocab);
    const mii::token_logprobs& lp = r.prompt_logprobs[j - 1];
    CHECK(lp.token == prompt[j]);
    CHECK(std::fabs(lp.logprob - lsm[std::size_t(prompt[j])]) <= 1e-4);
    REQUIRE(lp.top.size() == std::size_t(top));
    for (std::size_t k = 0; k < lp.top.size(); ++k) {
      CHECK(std::fabs(lp.top[k].second - lsm[std::size_t(lp.top[k].first)]) <= 1e-4);
      if (k) CHECK(lp.top[k].second <= lp.top[k - 1].second);
    }
    if (top > 0) CHECK(lp.top[0].first == std::int32_t(std::max_element(lsm.begin(), lsm.end()) - lsm.begin()));
  }
}

mii::generate_params prompt_params(std::int32_t top) {
  mii::generate_params p;
  p.do_sample = false;
  p.max_new_tokens = 2;
  p.ignore_eos = true;
  p.prompt_logprobs = top;
  return p;
}

}  // namespace

TEST_CASE("prompt_logprobs equal transformers' log_softmax at every prompt position", "[pipeline][logprobs][prompt]") {
  for (const std::string name : {"llama2", "qwen2", "mistral", "phi3"}) {
    const auto ref = mii::test::load_reference(name);
    // One whole-prompt step, and steps of 5 tokens with at most 3 logits rows each (each prompt
    // split across many steps, its rows across more).
    mii::model_config roomy = mii::test::host_config(256), tight = mii::test::host_config(256);
    tight.max_ragged_batch_size = 5;
    tight.max_ragged_sequence_count = 3;
    for (const auto& cfg : {roomy, tight}) {
      auto pipe = mii::pipeline(mii::test::fixture_dir(name), cfg);
      const auto out = pipe.generate_ids(ref.prompts, prompt_params(4));  // all prompts in one call
      REQUIRE(out.size() == ref.prompts.size());
      for (std::size_t i = 0; i < ref.prompts.size(); ++i) {
        INFO(name << ", prompt " << i << ", max_ragged_batch_size " << cfg.max_ragged_batch_size);
        REQUIRE(out[i].finish_reason == mii::generation_finish_reason::length);
        check_against_reference(out[i], ref, i, 4);
        // The sampled tokens are still transformers' greedy ones.
        REQUIRE(ref.greedy[i].size() >= 2);
        CHECK(out[i].token_ids == std::vector<std::int32_t>(ref.greedy[i].begin(), ref.greedy[i].begin() + 2));
      }
    }
  }
}

TEST_CASE("prompt_logprobs: a prompt the prefix cache holds is computed again for them", "[pipeline][logprobs][prompt]") {
  const auto ref = mii::test::load_reference("llama2");
  mii::model_config cfg = mii::test::host_config(256);
  cfg.kv_block_size = 4;
  cfg.max_length = 128;
  auto pipe = mii::pipeline(mii::test::fixture_dir("llama2"), cfg);
  const std::vector<std::vector<std::int32_t>> prompt{ref.prompts[2]};  // 33 tokens: 8 full blocks
  mii::generate_params plain = prompt_params(0);
  plain.prompt_logprobs.reset();
  pipe.generate_ids(prompt, plain);  // its blocks are now cached
  auto hits = [&] { return pipe.stats().prefix_cache_hit_tokens; };
  const auto before = hits();
  const auto r = pipe.generate_ids(prompt, prompt_params(3)).at(0);
  CHECK(hits() == before);  // nothing taken from the cache
  check_against_reference(r, ref, 2, 3);
  // ... and what it computed is cached for the next request without prompt_logprobs.
  const auto again = pipe.generate_ids(prompt, plain).at(0);
  CHECK(hits() >= before + 32);
  CHECK(again.token_ids == r.token_ids);
}

TEST_CASE("prompt_logprobs under preemption: a cache for one sequence gives the same values", "[pipeline][logprobs][prompt]") {
  using engine = mii::runtime::engine<mii::models::llama, mii::backend::host, mii::parallel::single>;
  const auto ref = mii::test::load_reference("llama2");
  const auto dir = mii::test::fixture_dir("llama2");
  mii::model_config small = mii::test::host_config(6);  // 6 blocks of 16: 96 tokens, about two sequences
  small.max_length = 80;
  small.max_ragged_batch_size = 8;
  small.max_ragged_sequence_count = 4;
  engine tight(dir, small), roomy(dir, mii::test::host_config(512));
  std::vector<std::vector<std::int32_t>> prompts;
  for (int k = 0; k < 4; ++k)
    for (const auto& p : ref.prompts) prompts.push_back(p);
  mii::generate_params p = prompt_params(2);
  p.max_new_tokens = 30;
  const auto a = tight.generate_ids(prompts, p), b = roomy.generate_ids(prompts, p);
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO("prompt " << i);
    CHECK(a[i].token_ids == b[i].token_ids);
    REQUIRE(a[i].prompt_logprobs.size() == b[i].prompt_logprobs.size());
    for (std::size_t j = 0; j < a[i].prompt_logprobs.size(); ++j) {
      CHECK(a[i].prompt_logprobs[j].token == b[i].prompt_logprobs[j].token);
      CHECK(a[i].prompt_logprobs[j].logprob == b[i].prompt_logprobs[j].logprob);
      CHECK(a[i].prompt_logprobs[j].top == b[i].prompt_logprobs[j].top);
    }
    check_against_reference(a[i], ref, i % ref.prompts.size(), 2);
  }
  CHECK(tight.sched().preemptions() > 0);
  CHECK(tight.sched().blocks().used_count() == 0);
}

TEST_CASE("prompt_logprobs: streamed once before the first token, pulled once, written as JSON", "[pipeline][logprobs][prompt]") {
  const auto ref = mii::test::load_reference("llama2");
  auto pipe = mii::pipeline(mii::test::fixture_dir("llama2"), mii::test::host_config(256));
  mii::generate_params p = prompt_params(1);
  std::vector<std::string> order;
  std::vector<mii::token_logprobs> streamed;
  p.stream = [&](const mii::stream_event& e) {
    if (e.prompt_logprobs) {
      order.push_back("prompt");
      streamed = *e.prompt_logprobs;
    } else if (e.token >= 0) {
      order.push_back("token");
    }
  };
  const auto r = pipe.generate_ids({ref.prompts[0]}, p).at(0);
  CHECK(order == std::vector<std::string>{"prompt", "token", "token"});
  REQUIRE(streamed.size() == r.prompt_logprobs.size());
  for (std::size_t j = 0; j < streamed.size(); ++j) CHECK(streamed[j].logprob == r.prompt_logprobs[j].logprob);
  // vLLM's JSON shape: null for the first prompt token.
  CHECK_THAT(r.to_json(), Contains("\"prompt_logprobs\":[null,{\"token_id\":" + std::to_string(ref.prompts[0][1])));

  mii::generate_params q = prompt_params(0);
  mii::request_handle h = pipe.submit_ids(ref.prompts[0], q);
  std::size_t with_prompt = 0;
  while (auto d = h.next())
    if (!d->prompt_logprobs.empty()) {
      ++with_prompt;
      CHECK(d->prompt_logprobs.size() == ref.prompts[0].size() - 1);
    }
  CHECK(with_prompt == 1);

  // A one-token prompt has nothing before its only token.
  CHECK(pipe.generate_ids({{ref.prompts[0][0]}}, q).at(0).prompt_logprobs.empty());
}

TEST_CASE("invalid prompt_logprobs are refused by name", "[pipeline][logprobs][prompt]") {
  auto pipe = mii::pipeline(mii::test::fixture_dir("llama2"), mii::test::host_config(256));
  for (const int bad : {-1, 21}) {
    mii::generate_params p;
    p.prompt_logprobs = bad;
    CHECK_THAT(MII_ERROR_MESSAGE(pipe.generate_ids({{1, 2}}, p)), Contains("generate_params.prompt_logprobs"));
  }
}

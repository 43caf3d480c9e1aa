// Log-probabilities and logit edits end to end (issue 16): logprobs against transformers'
// log_softmax of its own logits (the fixtures' reference), penalties against their formulas
// (transformers' repetition penalty, OpenAI's presence / frequency penalties), logit_bias, min_p,
// and the invalid values refused by name.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <vector>

#include <mii/pipeline.hpp>

#include "expect_error.hpp"
#include "fixtures.hpp"
#include "pipeline_support.hpp"

using Catch::Matchers::Contains;

namespace {

using mii::test::log_softmax;

mii::generation_pipeline& fixture(const std::string& name) {
  static std::map<std::string, mii::generation_pipeline> pipes;
  auto it = pipes.find(name);
  if (it == pipes.end()) it = pipes.emplace(name, mii::pipeline(mii::test::fixture_dir(name), mii::test::host_config(256))).first;
  return it->second;
}

}  // namespace

TEST_CASE("logprobs equal transformers' log_softmax of the next-token logits", "[pipeline][logprobs]") {
  for (const std::string name : {"llama2", "qwen2", "mistral", "phi3"}) {
    const auto ref = mii::test::load_reference(name);
    auto& pipe = fixture(name);
    for (std::size_t i = 0; i < ref.prompts.size(); ++i) {
      INFO(name << ", prompt " << i);
      const std::int64_t len = std::int64_t(ref.prompts[i].size());
      const auto lsm = log_softmax(ref.logits[i].data() + (len - 1) * ref.vocab, ref.vocab);
      for (const bool greedy : {true, false}) {
        mii::generate_params p;
        p.max_new_tokens = 1;
        p.ignore_eos = true;
        p.do_sample = !greedy;
        p.temperature = 1.7;  // log-probabilities come from the logits before temperature
        p.seed = 11;
        p.logprobs = 5;
        const auto r = pipe.generate_ids({ref.prompts[i]}, p).at(0);
        REQUIRE(r.logprobs.size() == 1);
        const auto& lp = r.logprobs[0];
        CHECK(lp.token == r.token_ids[0]);
        CHECK(std::fabs(lp.logprob - lsm[std::size_t(lp.token)]) <= 1e-4);
        REQUIRE(lp.top.size() == 5);
        for (std::size_t k = 0; k < 5; ++k) {
          CHECK(std::fabs(lp.top[k].second - lsm[std::size_t(lp.top[k].first)]) <= 1e-4);
          if (k) CHECK(lp.top[k].second <= lp.top[k - 1].second);
        }
        if (greedy) CHECK(lp.top[0].first == lp.token);
      }
    }
  }
}

TEST_CASE("logprobs: one entry per generated token, streamed with its token", "[pipeline][logprobs]") {
  auto& pipe = fixture("llama2");
  mii::generate_params p;
  p.do_sample = false;
  p.max_new_tokens = 6;
  p.ignore_eos = true;
  p.logprobs = 0;
  std::vector<mii::token_logprobs> streamed;
  p.stream = [&](const mii::stream_event& e) {
    if (e.token >= 0) {
      REQUIRE(e.logprobs);
      streamed.push_back(*e.logprobs);
    }
  };
  const auto r = pipe.generate_ids({{1, 45, 99, 173}}, p).at(0);
  REQUIRE(r.logprobs.size() == 6);
  REQUIRE(streamed.size() == 6);
  for (std::size_t i = 0; i < 6; ++i) {
    CHECK(r.logprobs[i].token == r.token_ids[i]);
    CHECK(r.logprobs[i].top.empty());
    CHECK(r.logprobs[i].logprob <= 0.0f);
    CHECK(streamed[i].logprob == r.logprobs[i].logprob);
  }
  // The JSON line of mii-generate --json carries them.
  CHECK_THAT(r.to_json(), Contains("\"logprobs\":[{\"token_id\":" + std::to_string(r.token_ids[0])));
  // Without logprobs: none.
  p.logprobs.reset();
  p.stream = nullptr;
  CHECK(pipe.generate_ids({{1, 45, 99, 173}}, p).at(0).logprobs.empty());
}

TEST_CASE("repetition penalty: the greedy token of transformers' penalised logits", "[pipeline][penalties]") {
  const auto ref = mii::test::load_reference("llama2");
  auto& pipe = fixture("llama2");
  for (const double penalty : {1.3, 0.7, 2.5}) {
    for (std::size_t i = 0; i < ref.prompts.size(); ++i) {
      INFO("penalty " << penalty << ", prompt " << i);
      const auto& prompt = ref.prompts[i];
      std::vector<float> row(ref.logits[i].end() - ref.vocab, ref.logits[i].end());
      // transformers' RepetitionPenaltyLogitsProcessor over the prompt's ids.
      for (auto t : prompt) {
        float& x = row[std::size_t(t)];
        x = x < 0 ? float(x * penalty) : float(x / penalty);
      }
      const auto want = std::int32_t(std::max_element(row.begin(), row.end()) - row.begin());
      mii::generate_params p;
      p.do_sample = false;
      p.max_new_tokens = 1;
      p.ignore_eos = true;
      p.repetition_penalty = penalty;
      CHECK(pipe.generate_ids({prompt}, p).at(0).token_ids[0] == want);
    }
  }
}

TEST_CASE("presence and frequency penalties: OpenAI's formula at every step", "[pipeline][penalties]") {
  auto& pipe = fixture("llama2");
  const std::vector<std::int32_t> prompt = {1, 45, 99, 173};
  for (const auto& [presence, frequency] : {std::pair{1.5, 0.0}, std::pair{0.0, 1.2}, std::pair{0.8, 0.6}, std::pair{-1.0, 0.0}}) {
    INFO("presence " << presence << ", frequency " << frequency);
    mii::generate_params p;
    p.do_sample = false;
    p.max_new_tokens = 24;
    p.ignore_eos = true;
    p.presence_penalty = presence;
    p.frequency_penalty = frequency;
    p.logprobs = 20;  // the raw logits (up to a constant) of the 20 best candidates at each step
    const auto r = pipe.generate_ids({prompt}, p).at(0);
    REQUIRE(r.logprobs.size() == 24);
    std::map<std::int32_t, int> counts;
    int checked = 0;
    for (std::size_t s = 0; s < r.logprobs.size(); ++s) {
      // mu[j] - c[j] * frequency_penalty - (c[j] > 0) * presence_penalty, over the candidates.
      double best = -INFINITY;
      std::int32_t best_id = -1;
      for (const auto& [id, lp] : r.logprobs[s].top) {
        const int c = counts.count(id) ? counts[id] : 0;
        const double v = double(lp) - c * frequency - (c > 0 ? presence : 0.0);
        if (v > best + 1e-6) best = v, best_id = id;
      }
      // The chosen token is the best penalised candidate (when the penalty did not push the
      // winner out of the 20 best raw logits).
      const bool in_top = std::any_of(r.logprobs[s].top.begin(), r.logprobs[s].top.end(),
                                      [&](const auto& c) { return c.first == r.token_ids[s]; });
      if (in_top) {
        CHECK(r.token_ids[s] == best_id);
        ++checked;
      }
      ++counts[r.token_ids[s]];
    }
    CHECK(checked >= 12);
  }
  // Without penalties the same prompt repeats itself somewhere in 24 tokens; with a strong
  // frequency penalty no token comes back more than twice.
  mii::generate_params p;
  p.do_sample = false;
  p.max_new_tokens = 24;
  p.ignore_eos = true;
  p.frequency_penalty = 2.0;
  std::map<std::int32_t, int> counts;
  for (auto t : pipe.generate_ids({prompt}, p).at(0).token_ids) ++counts[t];
  for (const auto& [t, c] : counts) CHECK(c <= 2);
}

TEST_CASE("logit_bias and min_p", "[pipeline][penalties]") {
  auto& pipe = fixture("llama2");
  const std::vector<std::int32_t> prompt = {1, 45, 99, 173};
  mii::generate_params p;
  p.do_sample = false;
  p.max_new_tokens = 5;
  p.ignore_eos = true;
  const auto plain = pipe.generate_ids({prompt}, p).at(0);
  p.logit_bias = {{234, 100.0}};
  CHECK(pipe.generate_ids({prompt}, p).at(0).token_ids == std::vector<std::int32_t>(5, 234));
  p.logit_bias = {{plain.token_ids[0], -100.0}};
  CHECK(pipe.generate_ids({prompt}, p).at(0).token_ids[0] != plain.token_ids[0]);
  // min_p = 1 while sampling keeps only the top candidate: greedy tokens.
  mii::generate_params s;
  s.max_new_tokens = 5;
  s.ignore_eos = true;
  s.temperature = 2.0;
  s.min_p = 1.0;
  s.seed = 5;
  CHECK(pipe.generate_ids({prompt}, s).at(0).token_ids == plain.token_ids);
}

TEST_CASE("invalid logprobs, penalties and biases are refused by name", "[pipeline][penalties]") {
  auto& pipe = fixture("llama2");
  const std::vector<std::vector<std::int32_t>> one = {{1, 45}};
  auto refused = [&](auto&& set) {
    mii::generate_params p;
    set(p);
    return MII_ERROR_MESSAGE(pipe.generate_ids(one, p));
  };
  CHECK_THAT(refused([](auto& p) { p.logprobs = 21; }), Contains("generate_params.logprobs") && Contains("21"));
  CHECK_THAT(refused([](auto& p) { p.presence_penalty = 2.5; }), Contains("generate_params.presence_penalty"));
  CHECK_THAT(refused([](auto& p) { p.frequency_penalty = -3; }), Contains("generate_params.frequency_penalty"));
  CHECK_THAT(refused([](auto& p) { p.repetition_penalty = 0; }), Contains("generate_params.repetition_penalty"));
  CHECK_THAT(refused([](auto& p) { p.min_p = 1.5; }), Contains("generate_params.min_p"));
  CHECK_THAT(refused([](auto& p) { p.logit_bias = {{5, 101.0}}; }), Contains("generate_params.logit_bias[5]"));
  CHECK_THAT(refused([](auto& p) { p.logit_bias = {{5, 1.0}, {5, 2.0}}; }), Contains("twice"));
  // A token past the vocabulary: the prompt fails (the vocabulary is the model's).
  mii::generate_params p;
  p.logit_bias = {{1 << 30, 1.0}};
  const auto r = pipe.generate_ids(one, p).at(0);
  CHECK(r.finish_reason == mii::generation_finish_reason::error);
  CHECK_THAT(r.error, Contains("logit_bias") && Contains("outside the model's vocabulary"));
}

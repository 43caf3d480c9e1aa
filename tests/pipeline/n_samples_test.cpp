// generate_params.n end to end on the host backend (issue 16): n samples per prompt from one
// prefill, sharing the prompt's KV blocks. Checked: seeded sample i equals the prompt run alone
// with n = 1 and seed + i (vLLM's rule), whatever runs beside it; greedy n gives n identical
// copies of the n = 1 answer; the blocks in use after the first decode are the prompt's full
// blocks plus one per sample; streaming and pulling say which sample a delta belongs to;
// cancelling ends every sample; a tiny cache (preemptions, recomputes) changes no token and
// leaks no block.
#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <string>
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
using mii::generation_finish_reason;
using engine_t = mii::runtime::engine<mii::models::llama, mii::backend::host, mii::parallel::single>;

namespace {

mii::generation_pipeline& demo() {
  static mii::generation_pipeline pipe = [] {
    mii::model_config c = mii::test::host_config(512);
    c.kv_block_size = 4;
    return mii::pipeline(mii::test::fixture_dir("demo-llama"), c);
  }();
  return pipe;
}

mii::generate_params sampling(std::int32_t n, std::uint64_t seed) {
  mii::generate_params p;
  p.n = n;
  p.seed = seed;
  p.temperature = 1.3;
  p.top_p = 1.0;
  p.max_new_tokens = 12;
  p.ignore_eos = true;
  return p;
}

}  // namespace

TEST_CASE("n samples: sample i is the prompt alone with n = 1 and seed + i, whatever runs beside it", "[pipeline][samples]") {
  auto& pipe = demo();
  const std::string prompt = "DeepSpeed is";
  std::vector<mii::response> alone;
  for (int k = 0; k < 4; ++k) alone.push_back(pipe(prompt, sampling(1, 1234 + std::uint64_t(k))));
  // The same request in two different calls with different company.
  const auto mixed_a = pipe({"The quick brown", prompt, "Seattle is"}, sampling(4, 1234));
  const auto mixed_b = pipe({prompt, "A model is a"}, sampling(4, 1234));
  for (const mii::response* r : {&mixed_a[1], &mixed_b[0]}) {
    REQUIRE(r->samples.size() == 4);
    std::set<std::vector<std::int32_t>> distinct;
    for (std::size_t k = 0; k < 4; ++k) {
      INFO("sample " << k);
      CHECK(r->samples[k].index == k);
      CHECK(r->samples[k].token_ids == alone[k].token_ids);
      CHECK(r->samples[k].generated_text == alone[k].generated_text);
      CHECK(r->samples[k].finish_reason == alone[k].finish_reason);
      distinct.insert(r->samples[k].token_ids);
    }
    CHECK(distinct.size() > 1);  // they are samples, not copies
    // The response's own fields are sample 0's.
    CHECK(r->token_ids == r->samples[0].token_ids);
    CHECK(r->generated_text == r->samples[0].generated_text);
    CHECK(r->generated_length == r->samples[0].generated_length);
  }
  // The JSON line lists them.
  CHECK_THAT(mixed_b[0].to_json(), Contains("\"samples\":[{\"index\":0,"));
  // n = 1 responses carry no samples list.
  CHECK(mixed_a[0].samples.size() == 4);
  CHECK(alone[0].samples.empty());
}

TEST_CASE("n samples: greedy gives n identical copies of the n = 1 answer", "[pipeline][samples]") {
  auto& pipe = demo();
  mii::generate_params g;
  g.do_sample = false;
  g.max_new_tokens = 10;
  const auto one = pipe("The quick brown fox", g);
  g.n = 3;
  const auto three = pipe("The quick brown fox", g);
  REQUIRE(three.samples.size() == 3);
  for (const auto& s : three.samples) {
    CHECK(s.token_ids == one.token_ids);
    CHECK(s.generated_text == one.generated_text);
  }
}

TEST_CASE("n samples: one prefill; blocks in use are the prompt's full blocks plus one per sample", "[pipeline][samples]") {
  mii::model_config c = mii::test::host_config(64);
  c.kv_block_size = 4;
  c.max_length = 64;
  c.prefix_caching = false;
  engine_t e(mii::test::fixture_dir("demo-llama"), c);
  mii::generate_params p = sampling(8, 99);
  std::vector<std::int32_t> prompt(10);
  for (int i = 0; i < 10; ++i) prompt[std::size_t(i)] = 20 + i;  // 10 tokens: 2 full blocks and 2 tokens
  e.add(e.make_request(prompt, p, 99));
  e.step();  // the whole prompt, once; 8 samples drawn from its last row
  CHECK(e.sched().running() == 8);
  CHECK(e.sched().blocks().used_count() == 3);
  CHECK(e.stats().prompt_tokens == 10);
  e.step();  // every sample writes position 10 into the partial block: 7 copies
  CHECK(e.sched().blocks().used_count() == 2 + 8);
  CHECK(e.stats().kv_block_copies == 7);
  CHECK(e.stats().generated_tokens == 16);
  while (e.has_work()) e.step();
  CHECK(e.sched().blocks().used_count() == 0);
  CHECK(e.stats().kv_block_copies == 7);  // later blocks are each sample's own
}

TEST_CASE("n samples: stream events and pulled deltas say which sample they carry", "[pipeline][samples]") {
  auto& pipe = demo();
  mii::generate_params p = sampling(3, 7);
  std::map<std::size_t, std::string> text;
  std::map<std::size_t, int> ended;
  int finished = 0;
  p.stream = [&](const mii::stream_event& e) {
    if (e.finished) {
      ++finished;
      return;
    }
    CHECK(e.sample < 3);
    if (e.sample_finished) {
      ++ended[e.sample];
      CHECK(e.finish_reason == generation_finish_reason::length);
    }
    text[e.sample] += e.text;
  };
  const auto r = pipe("Seattle is", p);
  REQUIRE(r.samples.size() == 3);
  CHECK(finished == 1);
  for (std::size_t k = 0; k < 3; ++k) {
    CHECK(text[k] == r.samples[k].generated_text);
    CHECK(ended[k] == 1);
  }

  p.stream = nullptr;
  mii::request_handle h = pipe.submit("Seattle is", p);
  std::map<std::size_t, std::string> pulled;
  std::map<std::size_t, std::vector<std::int32_t>> ids;
  std::map<std::size_t, int> pulled_ends;
  bool last = false;
  while (auto d = h.next()) {
    REQUIRE_FALSE(last);  // nothing after the final delta
    pulled[d->sample] += d->text;
    ids[d->sample].insert(ids[d->sample].end(), d->token_ids.begin(), d->token_ids.end());
    if (d->sample_finished) ++pulled_ends[d->sample];
    last = d->finished;
  }
  CHECK(last);
  const auto again = h.get();
  for (std::size_t k = 0; k < 3; ++k) {
    CHECK(pulled[k] == again.samples[k].generated_text);
    CHECK(ids[k] == again.samples[k].token_ids);
    CHECK(pulled_ends[k] == 1);
    CHECK(again.samples[k].token_ids == r.samples[k].token_ids);  // seeded: the same as streamed above
  }
}

TEST_CASE("n samples: cancelling ends every sample and frees their blocks", "[pipeline][samples]") {
  auto& pipe = demo();
  mii::generate_params p = sampling(4, 3);
  p.max_new_tokens = 200;
  mii::request_handle h = pipe.submit("The quick brown fox jumps", p);
  for (int pulls = 0; pulls < 3; ++pulls)
    if (!h.next()) break;
  h.cancel();
  const auto r = h.get();
  CHECK(r.finish_reason == generation_finish_reason::cancelled);
  for (const auto& s : r.samples) CHECK(s.finish_reason == generation_finish_reason::cancelled);
  CHECK(pipe.stats().kv_blocks_used == 0);
  CHECK(pipe.stats().running == 0);
}

TEST_CASE("n samples under preemption: a tiny cache gives the same samples and leaks nothing", "[pipeline][samples]") {
  mii::model_config tight = mii::test::host_config(12);  // 12 blocks of 4 tokens
  tight.kv_block_size = 4;
  tight.max_length = 40;
  tight.max_ragged_batch_size = 16;
  tight.max_ragged_sequence_count = 6;
  mii::model_config roomy = tight;
  roomy.kv_cache_blocks = 512;
  const auto dir = mii::test::fixture_dir("demo-llama");
  engine_t small(dir, tight), large(dir, roomy);
  const std::vector<std::string> prompts = {"DeepSpeed is a", "The quick brown fox", "Seattle is", "A model"};
  for (const bool greedy : {false, true}) {
    mii::generate_params p = sampling(3, 21);
    p.do_sample = !greedy;
    p.max_new_tokens = 20;
    const auto a = small.generate(prompts, p), b = large.generate(prompts, p);
    REQUIRE(a.size() == b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      REQUIRE(a[i].samples.size() == 3);
      for (std::size_t k = 0; k < 3; ++k) {
        INFO("prompt " << i << ", sample " << k << (greedy ? ", greedy" : ", sampled"));
        CHECK(a[i].samples[k].token_ids == b[i].samples[k].token_ids);
      }
    }
    CHECK(small.sched().blocks().used_count() == 0);
    CHECK(small.sched().idle());
  }
  CHECK(small.sched().preemptions() > 0);
}

TEST_CASE("invalid n is refused by name", "[pipeline][samples]") {
  auto& pipe = demo();
  for (const int bad : {0, -2, 129}) {
    mii::generate_params p;
    p.n = bad;
    CHECK_THAT(MII_ERROR_MESSAGE(pipe("DeepSpeed is", p)), Contains("generate_params.n"));
  }
  mii::model_config c = mii::test::host_config(64);
  c.max_length = 64;
  c.max_ragged_sequence_count = 4;
  auto narrow = mii::pipeline(mii::test::fixture_dir("demo-llama"), c);
  mii::generate_params p;
  p.n = 5;
  CHECK_THAT(MII_ERROR_MESSAGE(narrow("DeepSpeed is", p)), Contains("max_ragged_sequence_count"));
}

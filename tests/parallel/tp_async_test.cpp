// The async front under tensor parallelism (threads communicator, host backend): rank 0 admits
// requests from any number of threads and every rank runs the same steps; ranks that mirror rank
// 0's calls get their responses matched by order, and ranks that make no calls follow().
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include <mii/models/llama.hpp>
#include <mii/parallel/threads.hpp>
#include <mii/pipeline.hpp>

#include "fixtures.hpp"

using namespace mii;

namespace {

model_config tp_config(int tp) {
  model_config c;
  c.tensor_parallel = tp;
  c.backend = "host";
  c.kv_cache_blocks = 128;
  c.kv_block_size = 8;
  c.max_length = 256;
  c.max_ragged_batch_size = 64;
  c.show_progress = false;
  c.host_threads = 1;
  return c;
}

generate_params greedy(std::int64_t n) {
  generate_params p;
  p.do_sample = false;
  p.max_new_tokens = n;
  p.ignore_eos = true;
  return p;
}

const std::vector<std::string> prompts = {"DeepSpeed is", "Seattle is a city in", "The quick brown fox", "Once upon"};

std::vector<response> single_rank(const generate_params& p) {
  auto pipe = pipeline<models::llama, backend::host>(test::fixture_dir("llama2"), tp_config(1));
  return pipe(prompts, p);
}

}  // namespace

TEST_CASE("TP async: rank 0 serves several threads while the other ranks follow", "[parallel][tp][async]") {
  const auto want = single_rank(greedy(10));
  for (int tp : {2, 4}) {
    INFO("tp " << tp);
    std::vector<response> got(prompts.size());
    std::vector<std::int32_t> blocks_after(std::size_t(tp), -1);
    parallel::run_ranks(tp, [&](parallel::threads& comm) {
      auto pipe = pipeline<models::llama, backend::host, parallel::threads>(test::fixture_dir("llama2"), tp_config(tp), comm);
      if (comm.rank() != 0) {
        pipe.follow();  // returns when rank 0 shuts down
        blocks_after[std::size_t(comm.rank())] = pipe.kv_blocks_in_use();
        return;
      }
      std::vector<std::thread> callers;
      for (std::size_t i = 0; i < prompts.size(); ++i)
        callers.emplace_back([&, i] { got[i] = pipe.submit(prompts[i], greedy(10)).get(); });
      // One more request, cancelled while it runs: every rank drops it at the same step.
      request_handle doomed = pipe.submit(prompts[0], greedy(200));
      REQUIRE(doomed.next());
      doomed.cancel();
      for (auto& c : callers) c.join();
      CHECK(doomed.get().finish_reason == generation_finish_reason::cancelled);
      blocks_after[0] = pipe.kv_blocks_in_use();
      pipe.shutdown();
    });
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      INFO("prompt " << i);
      CHECK(got[i].token_ids == want[i].token_ids);
      CHECK(got[i].generated_text == want[i].generated_text);
    }
    for (int r = 0; r < tp; ++r) CHECK(blocks_after[std::size_t(r)] == 0);
  }
}

TEST_CASE("TP async: ranks that mirror rank 0's submissions get matching handles", "[parallel][tp][async]") {
  const auto want = single_rank(greedy(6));
  std::vector<std::vector<response>> got(2);
  parallel::run_ranks(2, [&](parallel::threads& comm) {
    model_config cfg = tp_config(2);
    cfg.all_rank_output = true;
    auto pipe = pipeline<models::llama, backend::host, parallel::threads>(test::fixture_dir("llama2"), cfg, comm);
    std::vector<request_handle> hs;
    for (const auto& p : prompts) hs.push_back(pipe.submit(p, greedy(6)));
    for (auto& h : hs) got[std::size_t(comm.rank())].push_back(h.get());
  });
  for (int r = 0; r < 2; ++r)
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      INFO("rank " << r << ", prompt " << i);
      CHECK(got[std::size_t(r)][i].token_ids == want[i].token_ids);
    }
}

TEST_CASE("TP async: n samples and prompt_logprobs: every rank forks and records the same", "[parallel][tp][async][samples]") {
  generate_params p;
  p.n = 3;
  p.seed = 17;
  p.temperature = 1.2;
  p.max_new_tokens = 8;
  p.ignore_eos = true;
  p.prompt_logprobs = 2;
  generate_params g = greedy(6);
  g.n = 2;
  g.prompt_logprobs = 0;
  const auto want = single_rank(g);
  std::vector<std::vector<response>> sampled(2), greedy_out(2);
  std::vector<std::int32_t> blocks_after(2, -1);
  parallel::run_ranks(2, [&](parallel::threads& comm) {
    model_config cfg = tp_config(2);
    cfg.all_rank_output = true;
    cfg.kv_cache_blocks = 24;  // 192 tokens: the samples share and copy blocks under pressure
    cfg.max_length = 64;
    auto pipe = pipeline<models::llama, backend::host, parallel::threads>(test::fixture_dir("llama2"), cfg, comm);
    sampled[std::size_t(comm.rank())] = pipe(prompts, p);
    greedy_out[std::size_t(comm.rank())] = pipe(prompts, g);
    blocks_after[std::size_t(comm.rank())] = pipe.kv_blocks_in_use();
  });
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    INFO("prompt " << i);
    REQUIRE(sampled[0][i].samples.size() == 3);
    REQUIRE(sampled[1][i].samples.size() == 3);
    for (std::size_t k = 0; k < 3; ++k) CHECK(sampled[1][i].samples[k].token_ids == sampled[0][i].samples[k].token_ids);
    CHECK(sampled[1][i].prompt_logprobs.size() == sampled[0][i].prompt_logprobs.size());
    // Greedy: both copies are the single rank's answer; the prompt's log-probabilities agree.
    REQUIRE(greedy_out[0][i].samples.size() == 2);
    for (std::size_t k = 0; k < 2; ++k) CHECK(greedy_out[0][i].samples[k].token_ids == want[i].token_ids);
    REQUIRE(greedy_out[0][i].prompt_logprobs.size() == want[i].prompt_logprobs.size());
    for (std::size_t j = 0; j < want[i].prompt_logprobs.size(); ++j) {
      CHECK(greedy_out[0][i].prompt_logprobs[j].token == want[i].prompt_logprobs[j].token);
      CHECK(std::fabs(greedy_out[0][i].prompt_logprobs[j].logprob - want[i].prompt_logprobs[j].logprob) <= 1e-4);
    }
  }
  CHECK(blocks_after == std::vector<std::int32_t>{0, 0});
}

// Ranks that follow() learn each request from rank 0's control packet: that must carry what
// prepare() derived from the prompt, the rope length included, or the heads of ranks != 0 are
// rotated for the wrong forward length (dynamic NTK past max_position_embeddings).
TEST_CASE("TP follow: rope that depends on the prompt's length reaches every rank", "[parallel][tp][async][rope]") {
  const auto ref = test::load_reference("llama_dynamic");
  const auto p = greedy(std::int64_t(ref.greedy.at(0).size()));
  std::vector<response> got;
  parallel::run_ranks(2, [&](parallel::threads& comm) {
    auto pipe = pipeline<models::llama, backend::host, parallel::threads>(test::fixture_dir("llama_dynamic"), tp_config(2), comm);
    if (comm.rank() != 0) {
      pipe.follow();
      return;
    }
    got = pipe.generate_ids(ref.prompts, p);
    pipe.shutdown();
  });
  REQUIRE(got.size() == ref.prompts.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("prompt " << i << " of " << ref.prompts[i].size() << " tokens");
    CHECK(got[i].token_ids == ref.greedy[i]);
  }
}

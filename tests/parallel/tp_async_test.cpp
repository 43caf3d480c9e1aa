// The async front under tensor parallelism (threads communicator, host backend): rank 0 admits
// requests from any number of threads and every rank runs the same steps; ranks that mirror rank
// 0's calls get their responses matched by order, and ranks that make no calls follow().
#include <catch2/catch.hpp>

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

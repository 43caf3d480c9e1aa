// The engine under tensor parallelism (threads communicator, host backend): responses on rank 0
// only unless all_rank_output is set, the same responses as one rank, streaming on the output
// ranks only, and ranks that agree without a seed (rank 0's random seed is shared) and on the
// KV cache size measured from memory.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <mii/backend/host/host_backend.hpp>
#include <mii/models/llama.hpp>
#include <mii/parallel/single.hpp>
#include <mii/parallel/threads.hpp>
#include <mii/runtime/engine.hpp>

#include "fixtures.hpp"

using namespace mii;

namespace {

const std::vector<std::string> prompts = {"DeepSpeed is", "Seattle is a city in", "The quick brown fox"};

model_config engine_config(bool all_rank_output) {
  model_config c;
  c.kv_block_size = 8;
  c.kv_cache_blocks = 128;
  c.max_length = 256;
  c.max_ragged_batch_size = 64;  // prompts and decodes share steps
  c.show_progress = false;
  c.host_threads = 1;
  c.all_rank_output = all_rank_output;
  return c;
}

generate_params greedy(std::int64_t n) {
  generate_params p;
  p.do_sample = false;
  p.max_new_tokens = n;
  p.ignore_eos = true;
  return p;
}

template <class Comm>
std::vector<response> generate(Comm comm, const model_config& cfg, const generate_params& p) {
  runtime::engine<models::llama, backend::host, Comm> e(test::fixture_dir("llama2"), cfg, comm);
  return e.generate(prompts, p);
}

// Each rank's responses from a tp-rank engine.
std::vector<std::vector<response>> generate_tp(int tp, const model_config& cfg, const generate_params& p) {
  std::vector<std::vector<response>> out(static_cast<std::size_t>(tp));
  parallel::run_ranks(tp, [&](parallel::threads& comm) { out[std::size_t(comm.rank())] = generate(comm, cfg, p); });
  return out;
}

void check_same(const std::vector<response>& got, const std::vector<response>& want) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("prompt " << i);
    CHECK(got[i].token_ids == want[i].token_ids);
    CHECK(got[i].generated_text == want[i].generated_text);
    CHECK(got[i].finish_reason == want[i].finish_reason);
    CHECK(got[i].prompt_length == want[i].prompt_length);
  }
}

}  // namespace

TEST_CASE("tp engine: responses on rank 0 only, the same as one rank's", "[parallel][tp][engine]") {
  const auto base = generate(parallel::single{}, engine_config(false), greedy(12));
  REQUIRE(base.size() == prompts.size());
  CHECK(base[0].generated_length == 12);
  for (int tp : {2, 4}) {
    INFO("tensor_parallel " << tp);
    const auto ranks = generate_tp(tp, engine_config(false), greedy(12));
    check_same(ranks[0], base);
    for (int r = 1; r < tp; ++r) CHECK(ranks[std::size_t(r)].empty());
  }
}

TEST_CASE("tp engine: all_rank_output gives every rank the same responses", "[parallel][tp][engine]") {
  const auto base = generate(parallel::single{}, engine_config(false), greedy(12));
  const auto ranks = generate_tp(4, engine_config(true), greedy(12));
  for (int r = 0; r < 4; ++r) {
    INFO("rank " << r);
    check_same(ranks[std::size_t(r)], base);
  }
}

TEST_CASE("tp engine: sampling without a seed and a cache sized from memory stay in lockstep", "[parallel][tp][engine]") {
  model_config cfg = engine_config(true);
  cfg.kv_cache_blocks.reset();
  cfg.kv_cache_memory_fraction = 0.002;  // of the host backend's 1 GiB budget: agreed as the minimum over ranks
  generate_params p;
  p.max_new_tokens = 16;
  p.ignore_eos = true;
  p.temperature = 1.5;  // flat distributions: ranks drawing different seeds would disagree at once
  p.top_p = 1.0;
  for (int call = 0; call < 2; ++call) {
    INFO("call " << call);
    const auto ranks = generate_tp(4, cfg, p);
    for (int r = 1; r < 4; ++r) {
      INFO("rank " << r);
      check_same(ranks[std::size_t(r)], ranks[0]);
    }
  }
}

TEST_CASE("tp engine: streaming callbacks run on the output ranks only", "[parallel][tp][engine]") {
  for (bool all : {false, true}) {
    INFO("all_rank_output " << all);
    std::vector<int> events(2), finished(2);
    parallel::run_ranks(2, [&](parallel::threads& comm) {
      generate_params p = greedy(5);
      const std::size_t r = std::size_t(comm.rank());
      p.stream = [&, r](const stream_event& e) {
        ++events[r];
        finished[r] += e.finished;
      };
      (void)generate(comm, engine_config(all), p);
    });
    CHECK(events[0] > 0);
    CHECK(finished[0] == int(prompts.size()));
    CHECK(events[1] == (all ? events[0] : 0));
    CHECK(finished[1] == (all ? int(prompts.size()) : 0));
  }
}

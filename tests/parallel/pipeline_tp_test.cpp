// The public entry points under tensor parallelism: mii::pipeline with a communicator, and
// mii::pipeline_tp's checks before it touches a GPU.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>
#include <vector>

#include <mii/models/llama.hpp>
#include <mii/parallel/threads.hpp>
#include <mii/pipeline.hpp>

#include "expect_error.hpp"
#include "fixtures.hpp"

using namespace mii;

namespace {

model_config small(int tp) {
  model_config c;
  c.tensor_parallel = tp;
  c.kv_cache_blocks = 128;
  c.kv_block_size = 8;
  c.max_length = 256;
  c.show_progress = false;
  c.host_threads = 1;
  return c;
}

// Clears the launch variables for one scope (a test binary may itself run under a launcher).
struct no_launcher {
  std::vector<std::pair<std::string, std::string>> saved;
  no_launcher() {
    for (const char* n : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"}) {
      if (const char* v = std::getenv(n)) saved.emplace_back(n, v);
      ::unsetenv(n);
    }
  }
  ~no_launcher() {
    for (const auto& [k, v] : saved) ::setenv(k.c_str(), v.c_str(), 1);
  }
};

}  // namespace

TEST_CASE("mii::pipeline with the threads communicator: rank 0 gets the responses", "[parallel][tp][pipeline]") {
  std::vector<std::vector<response>> out(2);
  parallel::run_ranks(2, [&](parallel::threads& comm) {
    auto pipe = pipeline<models::llama, backend::host, parallel::threads>(test::fixture_dir("llama2"), small(2), comm);
    generate_params p;
    p.do_sample = false;
    p.max_new_tokens = 8;
    out[std::size_t(comm.rank())] = pipe({"DeepSpeed is", "Seattle is"}, p);
  });
  REQUIRE(out[0].size() == 2);
  CHECK(out[0][0].generated_length == 8);
  CHECK(out[1].empty());
}

TEST_CASE("mii::pipeline: tensor_parallel must match the communicator", "[parallel][tp][pipeline]") {
  const std::string message = MII_ERROR_MESSAGE(parallel::run_ranks(2, [&](parallel::threads& comm) {
    (void)pipeline<models::llama, backend::host, parallel::threads>(test::fixture_dir("llama2"), small(1), comm);
  }));
  CHECK_THAT(message, Catch::Contains("tensor_parallel is 1 but the threads communicator has 2 ranks"));
  CHECK_THAT(MII_ERROR_MESSAGE(pipeline<models::llama>(test::fixture_dir("llama2"), small(2))),
             Catch::Contains("mii-launch --num_gpus 2") && Catch::Contains("mii::pipeline_tp"));
}

TEST_CASE("mii::pipeline_tp: tensor_parallel must match the launched job", "[parallel][tp][pipeline]") {
  no_launcher clean;
  CHECK_THAT(MII_ERROR_MESSAGE(pipeline_tp<models::llama>(test::fixture_dir("llama2"), small(2))),
             Catch::Contains("no launcher started this process") && Catch::Contains("mii-launch --num_gpus 2"));
  ::setenv("RANK", "1", 1);
  ::setenv("WORLD_SIZE", "4", 1);
  CHECK_THAT(MII_ERROR_MESSAGE(pipeline_tp<models::llama>(test::fixture_dir("llama2"), small(2))),
             Catch::Contains("rank 1 of a job of 4"));
  model_config host = small(4);
  host.backend = "host";
  CHECK_THAT(MII_ERROR_MESSAGE(pipeline_tp<models::llama>(test::fixture_dir("llama2"), host)),
             Catch::Contains("runs on the cuda backend"));
  ::unsetenv("RANK");
  ::unsetenv("WORLD_SIZE");
}

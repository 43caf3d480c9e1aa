// The nccl communicator on the GPU ([gpu]: run `mii_test_parallel "[nccl]"` on a GPU machine
// for world size 1, or `mii-launch --num_gpus N mii_test_parallel "[nccl]~[nccl-world1]"` for N
// ranks; tools/gpu/run-tp.sh does both).
//   - collectives on the context's stream: sums of bf16, fp16 and fp32, gathers of fp32 and
//     int32, exact for any world size up to 8;
//   - at world size 1 ([nccl-world1]), an engine (and mii::pipeline_tp) with the nccl
//     communicator gives exactly the single communicator's responses on a fixture.
// Without a usable GPU these tests fail rather than pass having done nothing; selected alone
// (`"[nccl]"`), the process exits 77 first and CTest reports them skipped
// (tests/support/catch_main.cpp).
#include <catch2/catch.hpp>

#if MII_WITH_CUDA

#include <cstdlib>
#include <string>
#include <type_traits>
#include <vector>

#include <mii/backend/cuda/cuda_backend.hpp>
#include <mii/backend/device.hpp>
#include <mii/models/llama.hpp>
#include <mii/parallel/agree.hpp>
#include <mii/parallel/nccl.hpp>
#include <mii/parallel/single.hpp>
#include <mii/pipeline.hpp>
#include <mii/runtime/engine.hpp>

#include "fixtures.hpp"

using namespace mii;

namespace {

void require_gpu() {
  if (const auto why = cuda_unavailable_reason(); !why.empty())
    FAIL("no usable GPU (" << why << "): the nccl tests cannot run here; select them alone with \"[nccl]\" "
         "to have them reported as skipped");
  ::setenv("NCCL_NVLS_ENABLE", "0", 0);  // NVLink multicast stays off (docs/parallel.md)
}

// One communicator for the collective tests: every rank of a launched job creates the same ones
// in the same order. Never destroyed: NCCL teardown during static destruction, after the CUDA
// runtime may have gone, is asking for trouble.
parallel::nccl& shared_comm() {
  static parallel::nccl& comm = *new parallel::nccl(parallel::nccl::from_environment());
  return comm;
}

template <class D>
D from_float(float v) {
  if constexpr (std::is_same_v<D, bf16_t>) return to_bf16(v);
  else if constexpr (std::is_same_v<D, fp16_t>) return to_fp16(v);
  else return v;
}
template <class D>
float as_float(D v) {
  if constexpr (std::is_same_v<D, float>) return v;
  else return to_float(v);
}

// Sums of small integers: exact in bf16 and fp16 for up to 8 ranks, so the check is exact too.
template <class Backend, class D>
void check_all_reduce(typename Backend::context& ctx, parallel::nccl& comm) {
  const std::int64_t n = 4099;  // not a multiple of anything NCCL likes
  const int W = comm.size(), R = comm.rank();
  std::vector<D> host(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) host[std::size_t(i)] = from_float<D>(float((R + 1) * (i % 7 - 3)));
  auto dev = Backend::template alloc<D>(ctx, n);
  Backend::copy_to_device(ctx, dev.data(), host.data(), n);
  comm.all_reduce_sum(ctx, dev.data(), n);
  Backend::copy_to_host(ctx, host.data(), dev.data(), n);
  ctx.synchronize();
  int wrong = 0;
  for (std::int64_t i = 0; i < n; ++i)
    wrong += as_float(host[std::size_t(i)]) != float((i % 7 - 3) * W * (W + 1) / 2);
  CHECK(wrong == 0);
}

template <class Backend, class T>
void check_all_gather(typename Backend::context& ctx, parallel::nccl& comm) {
  const std::int64_t n = 1031;
  const int W = comm.size(), R = comm.rank();
  std::vector<T> mine(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) mine[std::size_t(i)] = T(R * 10000 + i);
  auto send = Backend::template alloc<T>(ctx, n);
  auto recv = Backend::template alloc<T>(ctx, n * W);
  Backend::copy_to_device(ctx, send.data(), mine.data(), n);
  comm.all_gather(ctx, send.data(), n, recv.data());
  std::vector<T> all(static_cast<std::size_t>(n * W));
  Backend::copy_to_host(ctx, all.data(), recv.data(), n * W);
  ctx.synchronize();
  int wrong = 0;
  for (int r = 0; r < W; ++r)
    for (std::int64_t i = 0; i < n; ++i) wrong += all[std::size_t(r * n + i)] != T(r * 10000 + i);
  CHECK(wrong == 0);
}

model_config fixture_config() {
  model_config c;
  c.kv_block_size = 8;
  c.kv_cache_blocks = 128;
  c.max_length = 256;
  c.show_progress = false;
  return c;
}

}  // namespace

TEST_CASE("nccl: all-reduce and all-gather on the context's stream", "[gpu][nccl]") {
  require_gpu();
  auto& comm = shared_comm();
  INFO("rank " << comm.rank() << " of " << comm.size() << ", device " << comm.device());
  using bf16_backend = backend::cuda<bf16_t>;
  using fp16_backend = backend::cuda<fp16_t>;
  bf16_backend::context ctx(comm.device());
  fp16_backend::context ctx16(comm.device());
  check_all_reduce<bf16_backend, bf16_t>(ctx, comm);
  check_all_reduce<bf16_backend, float>(ctx, comm);
  check_all_reduce<fp16_backend, fp16_t>(ctx16, comm);
  check_all_gather<bf16_backend, float>(ctx, comm);
  check_all_gather<bf16_backend, std::int32_t>(ctx, comm);
  CHECK(parallel::gather_values<bf16_backend>(ctx, comm, 1000 + comm.rank()).size() == std::size_t(comm.size()));
  CHECK(parallel::rank0_value<bf16_backend>(ctx, comm, std::int64_t(comm.rank()) << 40) == 0);
  CHECK(parallel::min_value<bf16_backend>(ctx, comm, 7 - comm.rank()) == 7 - (comm.size() - 1));
}

TEST_CASE("nccl at world size 1: engine and pipeline_tp give the single communicator's responses",
          "[gpu][nccl][nccl-world1]") {
  require_gpu();
  // Under mii-launch select "[nccl]~[nccl-world1]": run with N ranks this test would compare nothing.
  if (shared_comm().size() != 1)
    FAIL("world size " << shared_comm().size() << ": this comparison runs at world size 1 only (exclude [nccl-world1])");
  using cuda = backend::cuda<bf16_t>;
  const auto dir = test::fixture_dir("llama2");
  const std::vector<std::string> prompts = {"DeepSpeed is", "Seattle is a city in", "The quick brown fox"};
  generate_params p;
  p.do_sample = false;
  p.max_new_tokens = 24;
  p.ignore_eos = true;

  runtime::engine<models::llama, cuda, parallel::single> single_engine(dir, fixture_config());
  const auto want = single_engine.generate(prompts, p);
  runtime::engine<models::llama, cuda, parallel::nccl> nccl_engine(dir, fixture_config(), parallel::nccl::from_environment());
  CHECK(nccl_engine.comm().size() == 1);
  const auto got = nccl_engine.generate(prompts, p);
  auto pipe = pipeline_tp<models::llama>(dir, fixture_config());
  CHECK(pipe.backend_name() == "cuda");
  const auto piped = pipe(prompts, p);

  REQUIRE(want.size() == prompts.size());
  REQUIRE(got.size() == prompts.size());
  REQUIRE(piped.size() == prompts.size());
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    INFO("prompt " << i);
    CHECK(want[i].generated_length == 24);
    CHECK(got[i].token_ids == want[i].token_ids);
    CHECK(got[i].generated_text == want[i].generated_text);
    CHECK(piped[i].token_ids == want[i].token_ids);
  }
}

#endif  // MII_WITH_CUDA

// The threads communicator: sums and gathers are right, summed in rank order (so every rank
// holds the same bits), and a rank that fails or falls out of step stops the others instead of
// hanging them. Catch2 is not thread-safe: ranks record, the test thread checks.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include <mii/backend/host/host_backend.hpp>
#include <mii/parallel/agree.hpp>
#include <mii/parallel/single.hpp>
#include <mii/parallel/threads.hpp>

using namespace mii;

namespace {

struct no_context {};

// Values whose sum depends on the order of addition in fp32: a rank-order sum is a specific answer.
float value(int rank, std::int64_t i) {
  const float big[] = {1e8f, 1.0f, -1e8f, 3.25f, 0.1f};
  return big[(rank + i) % 5] * float(1 + (i % 3)) + float(i) * 1e-3f;
}

}  // namespace

TEST_CASE("threads all_reduce_sum adds in rank order and every rank gets the same bits", "[parallel][threads]") {
  for (int size : {1, 2, 3, 4}) {
    for (std::int64_t n : {0, 1, 5, 1000}) {
      INFO("size " << size << ", n " << n);
      std::vector<std::vector<float>> result(static_cast<std::size_t>(size));
      parallel::run_ranks(size, [&](parallel::threads& comm) {
        no_context ctx;
        std::vector<float> data(static_cast<std::size_t>(n));
        for (std::int64_t i = 0; i < n; ++i) data[std::size_t(i)] = value(comm.rank(), i);
        comm.all_reduce_sum(ctx, data.data(), n);
        comm.all_reduce_sum(ctx, data.data(), 0);  // empty collectives are fine too
        result[std::size_t(comm.rank())] = data;
      });
      std::vector<float> expected(static_cast<std::size_t>(n));
      for (std::int64_t i = 0; i < n; ++i) {
        float acc = value(0, i);
        for (int r = 1; r < size; ++r) acc += value(r, i);
        expected[std::size_t(i)] = acc;
      }
      for (int r = 0; r < size; ++r) {
        INFO("rank " << r);
        REQUIRE(result[std::size_t(r)].size() == std::size_t(n));
        // bitwise: every rank must get the same bits (memcmp needs non-null pointers, so n > 0)
        if (n > 0) CHECK(std::memcmp(result[std::size_t(r)].data(), expected.data(), std::size_t(n) * sizeof(float)) == 0);
      }
    }
  }
}

TEST_CASE("threads all_reduce_sum on bf16 sums in fp32 and rounds once", "[parallel][threads]") {
  std::vector<std::vector<bf16_t>> result(3);
  parallel::run_ranks(3, [&](parallel::threads& comm) {
    no_context ctx;
    std::vector<bf16_t> data = {to_bf16(1.0f), to_bf16(float(comm.rank())), to_bf16(256.0f)};
    comm.all_reduce_sum(ctx, data.data(), 3);
    result[std::size_t(comm.rank())] = data;
  });
  for (const auto& v : result) {
    CHECK(to_float(v[0]) == 3.0f);
    CHECK(to_float(v[1]) == 3.0f);
    CHECK(to_float(v[2]) == 768.0f);
  }
}

TEST_CASE("threads all_gather lays ranks out in order, repeatedly", "[parallel][threads]") {
  for (int size : {1, 2, 4}) {
    std::vector<std::vector<std::int32_t>> result(static_cast<std::size_t>(size));
    parallel::run_ranks(size, [&](parallel::threads& comm) {
      no_context ctx;
      std::vector<std::int32_t> all;
      for (int round = 0; round < 50; ++round) {  // back-to-back collectives must not overtake each other
        const std::vector<std::int32_t> mine = {comm.rank() * 100 + round, -comm.rank()};
        std::vector<std::int32_t> got(2 * std::size_t(size));
        comm.all_gather(ctx, mine.data(), 2, got.data());
        all.insert(all.end(), got.begin(), got.end());
      }
      result[std::size_t(comm.rank())] = all;
    });
    std::vector<std::int32_t> expected;
    for (int round = 0; round < 50; ++round)
      for (int r = 0; r < size; ++r) {
        expected.push_back(r * 100 + round);
        expected.push_back(-r);
      }
    for (const auto& got : result) CHECK(got == expected);
  }
}

TEST_CASE("threads ranks out of step fail on every rank instead of hanging", "[parallel][threads]") {
  std::atomic<int> failures{0};
  std::string message;
  try {
    parallel::run_ranks(3, [&](parallel::threads& comm) {
      no_context ctx;
      std::vector<float> data(comm.rank() == 2 ? 7 : 8);
      try {
        comm.all_reduce_sum(ctx, data.data(), std::int64_t(data.size()));
      } catch (const mii::error&) {
        ++failures;
        throw;
      }
    });
  } catch (const mii::error& e) {
    message = e.what();
  }
  CHECK(failures == 3);
  CHECK_THAT(message, Catch::Contains("rank 2 called all_reduce_sum with 7 elements"));
  CHECK_THAT(message, Catch::Contains("out of step"));
}

TEST_CASE("threads a failing rank releases the ranks waiting for it; its error is rethrown", "[parallel][threads]") {
  const auto start = std::chrono::steady_clock::now();
  std::string message;
  try {
    parallel::run_ranks(4, [&](parallel::threads& comm) {
      no_context ctx;
      float x = 1;
      comm.all_reduce_sum(ctx, &x, 1);
      if (comm.rank() == 1) throw mii::error("rank 1 cannot load its weights");
      comm.all_reduce_sum(ctx, &x, 1);  // ranks 0, 2, 3 wait here for rank 1
    });
  } catch (const mii::error& e) {
    message = e.what();
  }
  CHECK(message == "rank 1 cannot load its weights");
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
}

TEST_CASE("agree: gather_values, rank0_value and min_value over the threads communicator", "[parallel][threads]") {
  std::vector<std::vector<std::int64_t>> gathered(3);
  std::vector<std::int64_t> first(3), smallest(3);
  parallel::run_ranks(3, [&](parallel::threads& comm) {
    backend::host::context ctx(1);
    const std::int64_t mine = comm.rank() == 1 ? -5 : (std::int64_t(0x7fffffff) << 20) + comm.rank();  // > 32 bits
    gathered[std::size_t(comm.rank())] = parallel::gather_values<backend::host>(ctx, comm, mine);
    first[std::size_t(comm.rank())] = parallel::rank0_value<backend::host>(ctx, comm, mine);
    smallest[std::size_t(comm.rank())] = parallel::min_value<backend::host>(ctx, comm, mine);
  });
  const std::vector<std::int64_t> expected = {std::int64_t(0x7fffffff) << 20, -5, (std::int64_t(0x7fffffff) << 20) + 2};
  for (int r = 0; r < 3; ++r) {
    CHECK(gathered[std::size_t(r)] == expected);
    CHECK(first[std::size_t(r)] == expected[0]);
    CHECK(smallest[std::size_t(r)] == -5);
  }
  backend::host::context ctx(1);
  parallel::single one;
  CHECK(parallel::rank0_value<backend::host>(ctx, one, 42) == 42);
}

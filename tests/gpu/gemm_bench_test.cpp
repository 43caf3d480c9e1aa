// Decode-size linear layers: achieved bandwidth of cuBLASLt for a Mistral-7B MLP weight (4096 x
// 14336, both orientations) at 1..16 rows and of the single-row GEMV kernel that linear() uses at
// 1 row, against the device's copy bandwidth (a device-to-device copy, bytes read + written).
// Prints a table; checks nothing but that the runs complete.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>

#include "gpu_support.hpp"

using namespace mii;
using namespace mii::test::gpu;

namespace {

using D = bf16_t;
using B = backend::cuda<D>;

// Random (never zero) device data without converting 100M values on the host: a random tile
// repeated.
B::buffer<D> random_device(B::context& ctx, std::int64_t n, std::mt19937& rng) {
  const std::int64_t tile = 1 << 20;
  const auto values = random_values<D>(rng, tile, -0.1f, 0.1f);
  std::vector<D> s(values.size());
  for (std::size_t i = 0; i < s.size(); ++i) s[i] = from_float<D>(values[i] == 0.0f ? 0.01f : values[i]);
  auto b = B::alloc<D>(ctx, n);
  for (std::int64_t at = 0; at < n; at += tile) B::copy_to_device(ctx, b.data() + at, s.data(), std::min(tile, n - at));
  ctx.synchronize();
  return b;
}

template <class F>
double seconds_per_call(B::context& ctx, int reps, F&& f) {
  for (int i = 0; i < 5; ++i) f();  // warm-up: plans, heuristics, clocks
  ctx.synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) f();
  ctx.synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
}

}  // namespace

TEST_CASE("cuda linear bandwidth at decode sizes (GEMV kernel vs cuBLASLt)", "[gpu][bench]") {
  auto& ctx = shared_context<D>();
  auto rng = rng_for("gemm bench");

  // Copy ceiling: 512 MiB of floats copied, counted as read + written.
  const std::int64_t copy_n = std::int64_t(1) << 27;
  auto src = B::alloc<float>(ctx, copy_n), dst = B::alloc<float>(ctx, copy_n);
  B::fill(ctx, src.data(), copy_n, 1.5f);
  const double copy_s = seconds_per_call(ctx, 20, [&] { B::copy_2d(ctx, dst.data(), copy_n, src.data(), copy_n, copy_n, 1); });
  const double copy_bw = 2.0 * double(copy_n) * sizeof(float) / copy_s;
  std::printf("\ndevice-to-device copy: %.0f GB/s (read + write)\n", copy_bw / 1e9);

  const std::int64_t a = 4096, b = 14336;
  auto w = random_device(ctx, a * b, rng);
  auto x = random_device(ctx, 16 * b, rng);
  auto y = B::alloc<D>(ctx, 16 * b);

  ::setenv("MII_CUDA_GEMV_MAX_ROWS", "0", 1);
  B::context lt_ctx(0);  // every shape through cuBLASLt
  ::unsetenv("MII_CUDA_GEMV_MAX_ROWS");

  std::printf("%-22s %5s %12s %12s %10s %12s %10s\n", "weight [out, in]", "rows", "path", "us/call", "GB/s", "% of copy", "");
  for (const auto [out, in] : {std::pair{a, b}, std::pair{b, a}}) {
    for (const std::int64_t rows : {1, 2, 4, 8, 16}) {
      const double bytes = double(out * in + rows * in + rows * out) * sizeof(D);
      for (int path = 0; path < 2; ++path) {
        if (path == 0 && rows > 1) continue;  // linear() sends only single rows to the GEMV kernel
        B::context& c = path == 0 ? ctx : lt_ctx;
        const double s = seconds_per_call(c, 50, [&] { B::linear(c, x.data(), rows, in, w.data(), out, nullptr, y.data()); });
        std::printf("[%5lld, %5lld]         %5lld %12s %12.1f %10.0f %11.0f%%\n", (long long)out, (long long)in,
                    (long long)rows, path == 0 ? "gemv" : "cublasLt", s * 1e6, bytes / s / 1e9, 100.0 * bytes / s / copy_bw);
      }
    }
  }
  std::fflush(stdout);
  SUCCEED();
}

// The shared Catch2 main. GPU suites (compiled with MII_GPU_SUITE) exit 77 -- "skipped" to
// CTest -- when no CUDA device can be used, so CI machines without a GPU stay green honestly.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

#include <mii/backend/device.hpp>

int main(int argc, char** argv) {
#ifdef MII_GPU_SUITE
  if (const auto why = mii::cuda_unavailable_reason(); !why.empty()) {
    std::printf("GPU suite skipped: %s\n", why.c_str());
    return 77;
  }
#endif
  return Catch::Session().run(argc, argv);
}

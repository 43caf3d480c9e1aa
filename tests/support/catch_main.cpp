// The shared Catch2 main. A test that needs a GPU must not pass by doing nothing where there is
// none, and Catch2 v2 has no "skipped" result; so the process exits 77 -- "skipped" to CTest
// (SKIP_RETURN_CODE) -- when no CUDA device can be used and every selected test needs one:
//   - GPU suites (compiled with MII_GPU_SUITE): always, every test in them needs the GPU;
//   - host suites: when the command line selects only tests tagged [gpu] (e.g.
//     `mii_test_parallel "[nccl]"`). A [gpu] test selected together with host tests fails
//     instead (tests/parallel/nccl_gpu_test.cpp), so no GPU test is ever counted as passed
//     without running.
// The reason is printed as the last line, e.g. "skipped: 2 test cases need a GPU: no usable ...".
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>

#include <mii/backend/device.hpp>

namespace {

bool needs_gpu(const Catch::TestCase& t) {
  return std::find(t.lcaseTags.begin(), t.lcaseTags.end(), "gpu") != t.lcaseTags.end();
}

}  // namespace

int main(int argc, char** argv) {
  Catch::Session session;
  if (const int rc = session.applyCommandLine(argc, argv); rc != 0) return rc;
#ifdef MII_GPU_SUITE
  if (const auto why = mii::cuda_unavailable_reason(); !why.empty()) {
    std::printf("GPU suite skipped: %s\n", why.c_str());
    return 77;
  }
#else
  const Catch::Config& cfg = session.config();
  if (!cfg.listTests() && !cfg.listTestNamesOnly() && !cfg.listTags() && !cfg.listReporters()) {
    const auto selected = Catch::filterTests(Catch::getAllTestCasesSorted(cfg), cfg.testSpec(), cfg);
    if (!selected.empty() && std::all_of(selected.begin(), selected.end(), needs_gpu)) {
      if (const auto why = mii::cuda_unavailable_reason(); !why.empty()) {
        std::printf("skipped: %zu test case(s) need a GPU: %s\n", selected.size(), why.c_str());
        return 77;
      }
    }
  }
#endif
  return session.run();
}

// The shared Catch2 main (tests/support/catch_main.cpp) must not let a test that needs a GPU
// pass by doing nothing: selected alone on a machine without a usable GPU, [gpu] tests make the
// process exit 77 (CTest: skipped) and say why; selected together with host tests they run and
// fail. Checked by running this test binary again on a hidden [gpu] probe.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

#include <mii/backend/device.hpp>

namespace {

struct run_result {
  int status = -1;
  std::string output;
};

run_result run_self(const std::string& args) {
  run_result r;
  // Resolved here: under popen's shell, /proc/self/exe would be the shell.
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  FILE* p = ::popen(("'" + self + "' " + args + " 2>&1").c_str(), "r");
  REQUIRE(p);
  std::array<char, 4096> buf{};
  for (std::size_t n; (n = std::fread(buf.data(), 1, buf.size(), p)) > 0;) r.output.append(buf.data(), n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

}  // namespace

// Hidden: it runs only when selected by name, from the test below.
TEST_CASE("gpu probe: a test that needs a usable GPU", "[.gpu-probe][gpu]") { REQUIRE(mii::cuda_available()); }

TEST_CASE("[gpu] tests selected alone are skipped (exit 77) without a GPU, never passed empty", "[model][catch-main]") {
  const bool gpu = mii::cuda_available();
  const auto alone = run_self("\"[gpu-probe]\"");
  INFO(alone.output);
  if (gpu) {
    CHECK(alone.status == 0);
  } else {
    CHECK(alone.status == 77);
    CHECK_THAT(alone.output, Catch::Contains("skipped: 1 test case(s) need a GPU: " + mii::cuda_unavailable_reason()));
    // With a host test in the selection the probe runs, and fails: not a silent pass.
    const auto mixed = run_self("\"[gpu-probe],[catch-main-host]\"");
    INFO(mixed.output);
    CHECK(mixed.status != 0);
    CHECK(mixed.status != 77);
    CHECK_THAT(mixed.output, Catch::Contains("cuda_available()"));
  }
}

TEST_CASE("catch-main host probe: runs anywhere", "[.catch-main-host]") { SUCCEED("a host test to mix with the probe"); }

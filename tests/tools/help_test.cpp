// Every mii-* program built in the tools directory (found by listing it, so a new tool is covered
// without editing this file) and bench's mii-bench answer --help and -h with their usage on
// stdout and exit 0; usage errors go to stderr with exit 2 (issue 17, row 4).
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <string>
#include <vector>

#include "tool_runs.hpp"

using namespace mii;

namespace {

std::vector<std::filesystem::path> built_tools() {
  std::vector<std::filesystem::path> tools;
  for (const auto& e : std::filesystem::directory_iterator(test::tools_dir())) {
    const auto name = e.path().filename().string();
    struct stat st {};
    if (!name.starts_with("mii-") || !e.is_regular_file() || ::stat(e.path().c_str(), &st) != 0 || !(st.st_mode & S_IXUSR))
      continue;
    tools.push_back(e.path());
  }
#ifdef MII_BENCH_PATH
  tools.emplace_back(MII_BENCH_PATH);
#endif
  std::sort(tools.begin(), tools.end());
  return tools;
}

std::string lowercase(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

}  // namespace

TEST_CASE("every tool prints its usage on stdout for --help and -h, exit 0", "[tools][help]") {
  const auto tools = built_tools();
  // The tools this project has always had: if the listing misses them, it lists the wrong place.
  for (const char* name : {"mii-generate", "mii-tokenize", "mii-launch"})
    CHECK(std::count(tools.begin(), tools.end(), test::tools_dir() / name) == 1);
#ifndef MII_BENCH_PATH
  WARN("mii-bench is not built in this configuration (MII_BUILD_BENCH=OFF): its --help is not checked");
#endif
  for (const auto& tool : tools) {
    for (const char* flag : {"--help", "-h"}) {
      const auto r = test::run_tool({tool.string(), flag}, {}, {}, std::chrono::seconds(30));
      INFO(tool.filename().string() << " " << flag << "\nstdout:\n" << r.out << "\nstderr:\n" << r.err);
      CHECK(r.code == 0);
      CHECK(lowercase(r.out).find("usage") != std::string::npos);
    }
  }
}

TEST_CASE("usage errors go to stderr with exit 2", "[tools][help]") {
  const auto dir = test::tools_dir();
  for (const char* tool : {"mii-generate", "mii-generate-llama", "mii-tokenize", "mii-launch"}) {
    const auto r = test::run_tool({(dir / tool).string(), "--no-such-option"});
    INFO(tool << "\nstdout:\n" << r.out << "\nstderr:\n" << r.err);
    CHECK(r.code == 2);
    CHECK(r.out.empty());
    CHECK_THAT(r.err, Catch::StartsWith(std::string(tool) + ": unknown option --no-such-option"));
  }
  // mii-launch stops reading options at PROGRAM: "-h" after it is the program's.
  const auto launched = test::run_tool({(dir / "mii-launch").string(), "--num_gpus", "1", "sh", "-c", "echo got $0", "-h"});
  INFO(launched.err);
  CHECK(launched.code == 0);
  CHECK(launched.out == "got -h\n");
}

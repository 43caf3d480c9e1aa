// Running the command-line tools as a user would: built next to this test (tests/tools/extra.cmake
// passes their paths), stdin from a string, stdout and stderr apart, exit code, a hard timeout.
#pragma once
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "../parallel/process_support.hpp"
#include "test_files.hpp"

namespace mii::test {

// MII_TEST_TOOLS_DIR runs the suite against other builds of the tools (an installed bin/, or
// older ones to see a test fail).
inline std::filesystem::path tools_dir() {
  if (const char* dir = std::getenv("MII_TEST_TOOLS_DIR"); dir && *dir) return dir;
  return MII_TOOLS_DIR;
}
inline std::string generate_tool() {
  if (const char* dir = std::getenv("MII_TEST_TOOLS_DIR"); dir && *dir) return (tools_dir() / "mii-generate").string();
  return MII_GENERATE_PATH;
}
inline std::filesystem::path demo_model() { return std::filesystem::path(MII_SOURCE_DIR) / "tests/fixtures/models/demo-llama"; }

struct tool_run {
  int code = -1;
  std::string out, err;
  bool timed_out = false;
};

inline tool_run run_tool(const std::vector<std::string>& argv, std::string_view input = {},
                         const std::map<std::string, std::string>& env = {},
                         std::chrono::milliseconds timeout = std::chrono::seconds(120)) {
  temp_dir dir("tool");
  write_text(dir / "stdin", input);
  const auto r = run_process(argv, env, timeout, {.input = dir / "stdin", .split_stderr = true});
  return {r.exit_code(), r.output, r.errors, r.timed_out};
}

// mii-generate on the bundled demo model, on the host backend (deterministic, any machine).
inline tool_run generate(std::vector<std::string> args, std::string_view input = {}) {
  std::vector<std::string> argv = {generate_tool(), demo_model().string(), "--backend", "host"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_tool(argv, input);
}

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t begin = 0;
  for (std::size_t nl; (nl = text.find('\n', begin)) != std::string::npos; begin = nl + 1)
    lines.push_back(text.substr(begin, nl - begin));
  if (begin < text.size()) lines.push_back(text.substr(begin));
  return lines;
}

}  // namespace mii::test

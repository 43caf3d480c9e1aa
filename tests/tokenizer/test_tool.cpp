// mii-tokenize, run as a user would: ids on one line, --add-special, --decode round trip, and
// exit status 2 for input that is not UTF-8.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sys/wait.h>
#include <unistd.h>

#include "tokenizer_fixtures.hpp"

using namespace mii_test;

namespace {

// The tool is built next to this test: <build>/tools/mii-tokenize.
std::filesystem::path tool_path() {
  const auto self = std::filesystem::read_symlink("/proc/self/exe");
  return self.parent_path().parent_path() / "tools" / "mii-tokenize";
}

struct run_result {
  int status;
  std::string out, err;
};

run_result run_tool(const std::string& args, const std::string& input) {
  const auto dir = std::filesystem::temp_directory_path() / ("mii_tokenize_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "in", std::ios::binary) << input;
  const std::string cmd = tool_path().string() + " " + args + " < " + (dir / "in").string() + " > " +
                          (dir / "out").string() + " 2> " + (dir / "err").string();
  const int raw = std::system(cmd.c_str());
  run_result r{WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, read_text(dir / "out"), read_text(dir / "err")};
  std::filesystem::remove_all(dir);
  return r;
}

}  // namespace

TEST_CASE("mii-tokenize command line", "[tokenizer][tool]") {
  if (!std::filesystem::exists(tool_path())) {
    WARN("mii-tokenize not built (MII_BUILD_TOOLS=OFF?): " << tool_path());
    return;
  }
  const std::string dir = tokenizer_path("llama3").parent_path().string();
  const std::string text = "Hello <|eot_id|> w\xC3\xB6rld\n";
  const auto& tok = real_tokenizer("llama3");
  std::string expected_line;
  for (auto id : tok.encode(text, false)) expected_line += (expected_line.empty() ? "" : " ") + std::to_string(id);

  const auto plain = run_tool(dir, text);
  CHECK(plain.status == 0);
  CHECK(plain.out == expected_line + "\n");

  const auto file_arg = run_tool(tokenizer_path("llama2").string() + " --add-special", "Hello");
  CHECK(file_arg.status == 0);
  CHECK(file_arg.out.rfind("1 ", 0) == 0);  // BOS first

  const auto decoded = run_tool(dir + " --decode", plain.out);
  CHECK(decoded.status == 0);
  CHECK(decoded.out == text);
  const auto skipped = run_tool(dir + " --decode --skip-special", plain.out);
  CHECK(skipped.out == "Hello  w\xC3\xB6rld\n");

  const auto bad = run_tool(dir, "ab\xC3(");
  CHECK(bad.status == 2);
  CHECK(bad.err.find("byte offset 2") != std::string::npos);
  CHECK(bad.out.empty());

  const auto missing = run_tool("/nonexistent/tokenizer.json", "x");
  CHECK(missing.status == 1);
  CHECK(missing.err.find("/nonexistent/tokenizer.json") != std::string::npos);
}

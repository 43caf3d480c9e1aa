// mii_chat_oracle_runner CASES.json: the in-process half of the chat_oracle test.
// tests/chat/oracle_test.py renders its cases with jinja2 (configured as transformers configures
// it) and writes them with jinja2's outcome; this renders each with the library and wants the same
// text, the same raise_exception message, or an error where jinja2 failed. One process for all
// cases: starting one per case costs more than rendering them all.
// Prints each disagreement, then "N passed, M failed"; exit 1 when any failed.
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include <mii/chat.hpp>

#include "io/json_reader.hpp"

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) mii::fail(path, ": cannot read the file");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct outcome {
  std::string kind, text;
};

outcome render(const std::string& path, const std::optional<std::string>& template_file, const std::string& variables) {
  try {
    const mii::chat_template t = template_file
        ? mii::chat_template::from_source(read_file(*template_file), *template_file, read_file(path))
        : mii::chat_template::from_path(path);
    return {"ok", t.render(variables)};
  } catch (const mii::chat_template_refused& e) {
    return {"refused", e.what()};
  } catch (const mii::error& e) {
    return {"error", e.what()};
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: mii_chat_oracle_runner CASES.json (written by tests/chat/oracle_test.py)\n");
    return 2;
  }
  try {
    const auto doc = mii::detail::json_document::from_file(argv[1]);
    simdjson::dom::array cases;
    if (doc.root().get_array().get(cases)) mii::fail(argv[1], ": expected a JSON array of cases");
    int passed = 0, failed = 0;
    for (simdjson::dom::element c : cases) {
      const auto row = mii::detail::json_object::expect(c, argv[1], "");
      const std::string name = row.require(row.get_string("name"), "name");
      const std::string expected_kind = row.require(row.get_string("outcome"), "outcome");
      const std::string expected_text = row.require(row.get_string("text"), "text");
      const std::string variables = row.require(row.get_string("variables"), "variables");
      const outcome got = render(row.require(row.get_string("path"), "path"), row.get_string("template"), variables);
      // Where jinja2 fails, mii must fail too; the messages are each engine's own.
      if (got.kind == expected_kind && (expected_kind == "error" || got.text == expected_text)) {
        ++passed;
        continue;
      }
      ++failed;
      std::printf("FAIL %s\n  variables: %s\n  jinja2: %s: %s\n  mii:    %s: %s\n", name.c_str(), variables.c_str(),
                  expected_kind.c_str(), expected_text.c_str(), got.kind.c_str(), got.text.c_str());
    }
    std::printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
  } catch (const mii::error& e) {
    std::fprintf(stderr, "mii_chat_oracle_runner: %s\n", e.what());
    return 2;
  }
}

// jinja2's own answers (known_answers.inc, printed by print_known_answers.py from jinja2
// configured as transformers configures it) for the constructs real chat templates lean on:
// whitespace control, scoping, loop variables, Python's printing of values, generators,
// undefined values, tojson, macros. The live comparison with jinja2 over many more templates is
// the chat_oracle test (oracle_test.py); this table keeps the check where Python is absent.
#include <catch2/catch.hpp>

#include <string>

#include <mii/chat.hpp>

namespace {

struct known_answer {
  const char* tmpl;
  const char* expected;
};

constexpr known_answer known_answers[] = {
#include "known_answers.inc"
};

// The variables and special tokens print_known_answers.py renders with.
constexpr const char* variables = R"json({
  "messages": [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "héllo 你好 😀"},
    {"role": "assistant", "content": "Hi!"},
    {"role": "user", "content": "  bye  "}
  ],
  "l": [3, 1, 2],
  "d": {"b": 1, "a": [1, 2.5, null, true]},
  "s": "it's"
})json";
constexpr const char* tokens = R"json({"bos_token": "<s>", "eos_token": "</s>"})json";

}  // namespace

TEST_CASE("templates render as jinja2 renders them (known answers)", "[chat]") {
  REQUIRE(std::size(known_answers) >= 25);
  for (const auto& k : known_answers) {
    INFO("template: " << k.tmpl);
    const auto t = mii::chat_template::from_source(k.tmpl, "known_answer", tokens);
    CHECK(t.render(variables) == k.expected);
  }
}

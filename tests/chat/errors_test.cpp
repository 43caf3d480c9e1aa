// What a broken template, a refusing template and hostile input produce: a mii::error naming the
// origin, line and column (syntax errors, unknown filters, type errors), the distinct
// chat_template_refused for raise_exception, and errors (not hangs, crashes or exhausted memory)
// at the limits of src/chat/limits.hpp.
#include <catch2/catch.hpp>

#include <string>

#include <mii/chat.hpp>

#include "expect_error.hpp"

namespace {

std::string render_error(const std::string& tmpl, const std::string& vars = "{}") {
  return MII_ERROR_MESSAGE(mii::chat_template::from_source(tmpl, "t.jinja").render(vars));
}

}  // namespace

TEST_CASE("syntax errors name the origin, line and column", "[chat]") {
  using Catch::Contains;
  CHECK_THAT(render_error("line one\n{% for m in messages %}\n  {{ m | no_such }}\n{% endfor %}"),
             Contains("t.jinja:3:10: syntax error: no filter named 'no_such'"));
  CHECK_THAT(render_error("ok\n\n  {{ x is frob }}"), Contains("t.jinja:3:11: syntax error: no test named 'frob'"));
  CHECK_THAT(render_error("{% if x %}\nnever closed"),
             Contains("t.jinja:2:13: syntax error: unexpected end of template: the 'if' block opened at line 1 is not closed"));
  CHECK_THAT(render_error("{{ (1 + 2 }}"), Contains("t.jinja:1:11: syntax error: unexpected '}', expected ')'"));
  CHECK_THAT(render_error("{% frob %}"), Contains("t.jinja:1:4: syntax error: unknown tag 'frob'"));
  CHECK_THAT(render_error("{% break %}"), Contains("t.jinja:1:4: syntax error: 'break' outside of a for loop"));
  CHECK_THAT(render_error("{# open"), Contains("t.jinja:1:1: syntax error: missing end of comment tag"));
  CHECK_THAT(render_error("{{ 'open }}"), Contains("t.jinja:1:4: syntax error: unterminated string literal"));
  CHECK_THAT(render_error("{% include 'x' %}"), Contains("the 'include' tag is not supported"));
  // Found by fuzz_chat_template: a slice beside another subscript has no object to slice.
  CHECK_THAT(render_error("{{ words[2::, 1] }}"), Contains("t.jinja:1:10: syntax error: a slice inside a tuple subscript"));
  CHECK_THAT(render_error("{{ words[0, :1] }}"), Contains("t.jinja:1:13: syntax error: a slice inside a tuple subscript"));
  CHECK(mii::chat_template::from_source("{{ [1, 2, 3][1:] }}{{ {(1, 2): 'k'}[1, 2] }}", "t").render("{}") == "[2, 3]k");
  // Columns count characters, not bytes.
  CHECK_THAT(render_error("你好 {{ x|nope }}"), Contains("t.jinja:1:9:"));
  // jinja2 knows these filters; mii does not implement them: a clear error when reached.
  CHECK_THAT(render_error("{{ 'x'|urlize }}"), Contains("t.jinja:1:8: the 'urlize' filter is not supported"));
  CHECK(mii::chat_template::from_source("{% if false %}{{ 'x'|urlize }}{% endif %}ok", "t").render("{}") == "ok");
}

TEST_CASE("runtime errors name the line and column of the failing expression", "[chat]") {
  using Catch::Contains;
  CHECK_THAT(render_error("a\n  {{ 'x' + 1 }}"), Contains("t.jinja:2:10: can only concatenate str (not \"int\") to str"));
  CHECK_THAT(render_error("{{ missing.attr }}"), Contains("t.jinja:1:12: 'missing' is undefined"));
  CHECK_THAT(render_error("{{ messages[0].content }}", R"({"messages": []})"), Contains("list object has no element 0"));
  CHECK_THAT(render_error("{% for x in 5 %}{% endfor %}"), Contains("t.jinja:1:13: 'int' object is not iterable"));
  CHECK_THAT(render_error("{{ [1].append(2) }}"), Contains("access to attribute 'append' of 'list' object is unsafe"));
  CHECK_THAT(render_error("{{ 1 // 0 }}"), Contains("integer division or modulo by zero"));
  CHECK_THAT(render_error("{{ 9223372036854775807 + 1 }}"), Contains("does not fit in 64 bits"));
  CHECK_THAT(render_error("{{ x }}", "[1, 2]"), Contains("variables: must be a JSON object"));
  CHECK_THAT(render_error("{{ x }}", "{"), Contains("malformed JSON"));
}

TEST_CASE("raise_exception refuses the input with its own message, as its own error type", "[chat]") {
  const auto t = mii::chat_template::from_source(
      "{% if messages[0].role != 'user' %}{{ raise_exception('Conversation must start with a user message, not ' ~ messages[0].role) }}{% endif %}ok",
      "t");
  CHECK(t.render(R"({"messages": [{"role": "user"}]})") == "ok");
  try {
    t.render(R"({"messages": [{"role": "assistant"}]})");
    FAIL("expected chat_template_refused");
  } catch (const mii::chat_template_refused& e) {
    CHECK(std::string(e.what()) == "Conversation must start with a user message, not assistant");
  }
  // A broken template is a plain mii::error, not a refusal.
  const auto broken = mii::chat_template::from_source("{{ 1 + 'a' }}", "t");
  CHECK_THROWS_MATCHES(broken.render("{}"), mii::error, Catch::Predicate<mii::error>([](const mii::error& e) {
                         return dynamic_cast<const mii::chat_template_refused*>(&e) == nullptr;
                       }, "not a refusal"));
}

TEST_CASE("templates are valid UTF-8, as Python reads them", "[chat]") {
  CHECK_THAT(MII_ERROR_MESSAGE(mii::chat_template::from_source("ok \xff", "bad.jinja")),
             Catch::Contains("bad.jinja: not valid UTF-8: bad byte 0xFF at byte offset 3"));
}

TEST_CASE("limits end hostile templates with an error", "[chat]") {
  using Catch::Contains;
  // Nesting: parentheses, blocks and macro recursion.
  CHECK_THAT(render_error("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}"),
             Contains("nests deeper than the limit"));
  std::string blocks;
  for (int i = 0; i < 500; ++i) blocks += "{% if true %}";
  CHECK_THAT(render_error(blocks), Contains("nests deeper than the limit"));
  CHECK_THAT(render_error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"),
             Contains("macro calls nest deeper than the limit of 50"));
  // Work: loops that would run for hours, strings and lists that would fill memory.
  CHECK_THAT(render_error("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"),
             Contains("steps"));
  CHECK_THAT(render_error("{{ range(1000000) }}"), Contains("Range too big"));
  CHECK_THAT(render_error("{{ 'x' * 1000000000 }}"), Contains("limit"));
  CHECK_THAT(render_error("{{ [0] * 1000000000 }}"), Contains("limit"));
  CHECK_THAT(render_error("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"),
             Contains("limit"));
  CHECK_THAT(render_error("{% set a = [1] * 1000 %}{% set b = [a] * 1000 %}{% set c = [b] * 1000 %}{{ c }}"),
             Contains("limit"));
  CHECK_THAT(render_error("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}"), Contains("limit"));
  CHECK_THAT(render_error("{{ 'a'|center(1000000000) }}"), Contains("limit"));
  CHECK_THAT(MII_ERROR_MESSAGE(mii::chat_template::from_source(std::string(5 << 20, 'x'), "huge")),
             Contains("more than the limit"));
}

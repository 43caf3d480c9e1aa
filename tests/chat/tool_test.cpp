// mii-chat-template as a server script or a user runs it: stdout is the rendering exactly, a
// refusal (raise_exception) exits 1 with its message, a broken template exits 2 naming the file,
// line and column, and -h prints the usage.
#include <catch2/catch.hpp>

#ifdef MII_CHAT_TEMPLATE_TOOL
#include <chrono>
#include <string>

#include "../parallel/process_support.hpp"
#include "test_files.hpp"

namespace {

struct run {
  int code;
  std::string out, err;
};

run chat_template_tool(std::vector<std::string> args, std::string_view stdin_text) {
  mii::test::temp_dir dir("chat-tool");
  mii::test::write_text(dir / "stdin", stdin_text);
  args.insert(args.begin(), MII_CHAT_TEMPLATE_TOOL);
  const auto r = mii::test::run_process(args, {}, std::chrono::seconds(60), {.input = dir / "stdin", .split_stderr = true});
  REQUIRE_FALSE(r.timed_out);
  return {r.exit_code(), r.output, r.errors};
}

}  // namespace

TEST_CASE("mii-chat-template prints the rendering and nothing else", "[chat][tool]") {
  mii::test::temp_dir dir("chat-tool-model");
  mii::test::write_text(dir / "tokenizer_config.json", R"({"bos_token": "<s>", "chat_template":
      "{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}{% if messages[-1].role != 'user' %}{{ raise_exception('last message must be from the user') }}{% endif %}"})");
  const auto ok = chat_template_tool({dir.path().string()}, R"({"messages": [{"role": "user", "content": "héllo 😀"}]})");
  CHECK(ok.code == 0);
  CHECK(ok.out == "<s>[user] héllo 😀\n");
  CHECK(ok.err.empty());

  const auto refused = chat_template_tool({(dir / "tokenizer_config.json").string()}, R"({"messages": [{"role": "assistant", "content": "x"}]})");
  CHECK(refused.code == 1);
  CHECK(refused.out.empty());
  CHECK(refused.err == "last message must be from the user\n");

  mii::test::write_text(dir / "other.jinja", "{{ bos_token }}\n{{ 1 + }}");
  const auto broken = chat_template_tool({dir.path().string(), "--template", (dir / "other.jinja").string()}, "{}");
  CHECK(broken.code == 2);
  CHECK_THAT(broken.err, Catch::Contains((dir / "other.jinja").string() + ":2:8: syntax error"));

  mii::test::write_text(dir / "other.jinja", "{{ bos_token }}{{ messages|length }}");
  const auto other = chat_template_tool({dir.path().string(), "--template", (dir / "other.jinja").string()}, R"({"messages": [1, 2]})");
  CHECK(other.code == 0);
  CHECK(other.out == "<s>2");

  const auto bad_json = chat_template_tool({dir.path().string()}, "not json");
  CHECK(bad_json.code == 2);
  CHECK_THAT(bad_json.err, Catch::Contains("malformed JSON"));
}

TEST_CASE("mii-chat-template -h prints its usage", "[chat][tool]") {
  for (const char* flag : {"-h", "--help"}) {
    const auto r = chat_template_tool({flag}, "");
    CHECK(r.code == 0);
    CHECK_THAT(r.out, Catch::StartsWith("usage: mii-chat-template PATH"));
  }
  const auto r = chat_template_tool({"--frob"}, "");
  CHECK(r.code == 2);
  CHECK(r.out.empty());
  CHECK_THAT(r.err, Catch::StartsWith("mii-chat-template: unknown option --frob"));
}
#endif

// Where a chat template comes from and what it sees, as transformers decides it
// (tokenization_utils_base.py): chat_template.jinja (and additional_chat_templates/*.jinja)
// replace tokenizer_config.json's field; a list of named templates picks "tool_use" when tools
// are given; the special tokens are strings or AddedToken objects; the caller's variables win.
#include <catch2/catch.hpp>

#include <string>

#include <mii/chat.hpp>

#include "expect_error.hpp"
#include "test_files.hpp"

namespace {

using mii::test::temp_dir;
using mii::test::write_text;

constexpr const char* hi = R"({"messages": [{"role": "user", "content": "hi"}]})";
constexpr const char* hi_with_tools =
    R"({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "f"}}]})";

}  // namespace

TEST_CASE("chat_template.jinja takes precedence over tokenizer_config.json's chat_template", "[chat]") {
  temp_dir dir("chat-src");
  write_text(dir / "tokenizer_config.json", R"({"bos_token": "<s>", "chat_template": "CONFIG"})");
  write_text(dir / "chat_template.jinja", "FILE {{ bos_token }} {{ messages[0].content }}\n");
  const auto t = mii::chat_template::from_path(dir.path());
  CHECK(t.render(hi) == "FILE <s> hi");  // the file's trailing newline is dropped, as jinja2 does
  CHECK(t.origin() == (dir / "chat_template.jinja").string());
  CHECK(t.names().empty());
  // Given the config file itself, its field is the template.
  CHECK(mii::chat_template::from_path(dir / "tokenizer_config.json").render(hi) == "CONFIG");
  // Given the .jinja file, the special tokens still come from the config beside it.
  CHECK(mii::chat_template::from_path(dir / "chat_template.jinja").render(hi) == "FILE <s> hi");
}

TEST_CASE("named templates: tool_use when tools are given, default otherwise", "[chat]") {
  temp_dir dir("chat-named");
  write_text(dir / "tokenizer_config.json", R"({"chat_template": [
      {"name": "default", "template": "DEFAULT {{ tools is none }}"},
      {"name": "tool_use", "template": "TOOLS {{ tools|length }}"}]})");
  const auto t = mii::chat_template::from_path(dir.path());
  CHECK(t.names() == std::vector<std::string>{"default", "tool_use"});
  CHECK(t.render(hi) == "DEFAULT True");
  CHECK(t.render(hi_with_tools) == "TOOLS 1");
  // transformers tests `tools is not None`: an explicit null is no tools, an empty list is tools.
  CHECK(t.render(R"({"messages": [], "tools": null})") == "DEFAULT True");
  CHECK(t.render(R"({"messages": [], "tools": []})") == "TOOLS 0");
}

TEST_CASE("a named set without 'default' fails when nothing else applies, naming the choices", "[chat]") {
  temp_dir dir("chat-nodefault");
  write_text(dir / "tokenizer_config.json", R"({"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "rag", "template": "R"}]})");
  const auto t = mii::chat_template::from_path(dir.path());
  CHECK(t.render(hi_with_tools) == "T");
  const std::string msg = MII_ERROR_MESSAGE(t.render(hi));
  CHECK_THAT(msg, Catch::Contains("tokenizer_config.json") && Catch::Contains("'rag', 'tool_use'"));
}

TEST_CASE("additional_chat_templates/*.jinja add named templates beside chat_template.jinja", "[chat]") {
  temp_dir dir("chat-extra");
  std::filesystem::create_directories(dir / "additional_chat_templates");
  write_text(dir / "tokenizer_config.json", R"({"chat_template": "CONFIG"})");
  write_text(dir / "chat_template.jinja", "MAIN");
  write_text(dir / "additional_chat_templates" / "tool_use.jinja", "EXTRA {{ tools[0].function.name }}");
  const auto t = mii::chat_template::from_path(dir.path());
  CHECK(t.names() == std::vector<std::string>{"default", "tool_use"});
  CHECK(t.render(hi) == "MAIN");
  CHECK(t.render(hi_with_tools) == "EXTRA f");
}

TEST_CASE("find() is empty without a template; from_path() says why", "[chat]") {
  temp_dir dir("chat-none");
  CHECK_FALSE(mii::chat_template::find(dir.path()).has_value());
  CHECK_THAT(MII_ERROR_MESSAGE(mii::chat_template::from_path(dir.path())),
             Catch::Contains(dir.path().string()) && Catch::Contains("no tokenizer_config.json"));
  write_text(dir / "tokenizer_config.json", R"({"eos_token": "</s>", "chat_template": null})");
  CHECK_FALSE(mii::chat_template::find(dir.path()).has_value());
  CHECK_THAT(MII_ERROR_MESSAGE(mii::chat_template::from_path(dir.path())),
             Catch::Contains("tokenizer_config.json has no chat_template field"));
  write_text(dir / "tokenizer_config.json", R"({"chat_template": "{{ messages|length }}"})");
  REQUIRE(mii::chat_template::find(dir.path()).has_value());
  CHECK(mii::chat_template::find(dir.path())->render(hi) == "1");
  // A template that does not parse is an error, not "no template".
  write_text(dir / "tokenizer_config.json", R"({"chat_template": "{% if %}"})");
  CHECK_THAT(MII_ERROR_MESSAGE(mii::chat_template::find(dir.path())), Catch::Contains("tokenizer_config.json (chat_template):1:7"));
  CHECK_THAT(MII_ERROR_MESSAGE(mii::chat_template::find(dir / "missing")), Catch::Contains("not a directory"));
  CHECK_THAT(MII_ERROR_MESSAGE(mii::chat_template::from_path(dir / "missing.json")), Catch::Contains("missing.json: file not found"));
}

TEST_CASE("special tokens: strings or AddedToken objects, unset ones absent, the caller's keys win", "[chat]") {
  temp_dir dir("chat-tokens");
  write_text(dir / "tokenizer_config.json", R"({
      "bos_token": {"__type": "AddedToken", "content": "<｜begin▁of▁sentence｜>", "lstrip": false},
      "eos_token": "</s>", "pad_token": null, "unk_token": null,
      "additional_special_tokens": ["<a>", {"content": "<b>"}],
      "extra_special_tokens": {"image_token": "<img>"},
      "model_max_length": 1000000000000000019884624838656,
      "chat_template": "{{ bos_token }}|{{ eos_token }}|{{ pad_token is defined }}|{{ additional_special_tokens }}|{{ image_token }}|{{ tools }}|{{ documents }}|{{ add_generation_prompt }}"})");
  const auto t = mii::chat_template::from_path(dir / "tokenizer_config.json");
  CHECK(t.render("{}") == "<｜begin▁of▁sentence｜>|</s>|False|['<a>', '<b>']|<img>|None|None|False");
  CHECK(t.render(R"({"bos_token": "B", "add_generation_prompt": true, "tools": [1]})") ==
        "B|</s>|False|['<a>', '<b>']|<img>|[1]|None|True");
  write_text(dir / "tokenizer_config.json", R"({"bos_token": 5, "chat_template": "x"})");
  CHECK_THAT(MII_ERROR_MESSAGE(mii::chat_template::from_path(dir.path())),
             Catch::Contains("field 'bos_token' must be a string or an AddedToken object") && Catch::Contains("5"));
}

TEST_CASE("from_source takes the special tokens as given", "[chat]") {
  const auto t = mii::chat_template::from_source("{{ bos_token }}{{ eos_token }}", "inline", R"({"bos_token": "<s>"})");
  CHECK(t.render("{}") == "<s>");
  CHECK(t.origin() == "inline");
  CHECK_THAT(MII_ERROR_MESSAGE(mii::chat_template::from_source("x", "inline", "[1]")), Catch::Contains("must be a JSON object"));
}

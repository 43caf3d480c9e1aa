// Chat templates: a model's Jinja `chat_template` rendered exactly as Hugging Face transformers'
// apply_chat_template(..., tokenize=False) renders it (sandboxed jinja2 with trim_blocks,
// lstrip_blocks, loop controls, transformers' tojson, raise_exception and strftime_now, the
// tokenizer's special tokens as variables). docs/chat-templates.md says what is supported.
//
//   const auto tmpl = mii::chat_template::from_path("/models/Qwen3-8B");
//   std::string prompt = tmpl.render(R"({"messages": [{"role": "user", "content": "Hi"}],
//                                        "add_generation_prompt": true})");
#pragma once
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <mii/error.hpp>

namespace mii {

// The template itself refused the input: its raise_exception(message) was called (e.g.
// "Conversation roles must alternate user/assistant/..."). what() is that message, unchanged;
// a server answers it as a client error, unlike a broken template (plain mii::error).
struct chat_template_refused : error {
  using error::error;
};

class chat_template {
 public:
  // From a model directory (chat_template.jinja and additional_chat_templates/*.jinja, else
  // tokenizer_config.json's chat_template) or a tokenizer_config.json path (a .jinja file path
  // works too); special tokens come from the tokenizer_config.json beside it. Throws mii::error
  // naming the file when there is no template or it does not parse.
  static chat_template from_path(const std::filesystem::path& path);
  // nullopt when the model directory has no chat template at all (parse errors still throw).
  static std::optional<chat_template> find(const std::filesystem::path& model_dir);
  // From template text (tests, --template); special tokens as given: a JSON object whose values
  // are strings, {"content": ...} objects or lists of those (tokenizer_config.json's spelling).
  static chat_template from_source(std::string source, std::string origin, std::string special_tokens_json = "{}");

  // Renders with the variables of one JSON object ({"messages": [...], "add_generation_prompt":
  // true, "tools": [...]}); special tokens are added unless the object sets them, and tools,
  // documents (None) and add_generation_prompt (False) default as transformers passes them. The
  // named template ("tool_use" when tools are given and the config has one) is picked as
  // transformers picks it. Thread-safe (const). Throws chat_template_refused for
  // raise_exception, mii::error otherwise ("origin:line:column: what went wrong").
  std::string render(std::string_view variables_json) const;

  // Where the template came from (the file, or the origin given to from_source).
  const std::string& origin() const;
  // The names of the templates when the model has several ("default", "tool_use"...); empty
  // when it has one.
  std::vector<std::string> names() const;

 private:
  struct impl;
  explicit chat_template(std::shared_ptr<const impl> p) : impl_(std::move(p)) {}
  std::shared_ptr<const impl> impl_;
};

}  // namespace mii

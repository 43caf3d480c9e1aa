// Fuzzes the chat-template engine (src/chat/): arbitrary template text, arbitrary variables, and
// the real chat templates that tools/fetch-tokenizers.sh caches (Llama 3, Qwen3, Gemma 3,
// DeepSeek-V3) with arbitrary variables.
//
// The first input byte picks the mode. Even: the rest is TEMPLATE, optionally followed by a NUL
// byte and a JSON object of variables; the template is rendered with those and with a fixed
// conversation. Odd: the rest is the variables for one of the real templates.
// Checked: the only failure is a mii::error (chat_template_refused included), never a crash, a
// hang or unbounded memory (src/chat/limits.hpp); the output is valid UTF-8; and a render is a
// function of its input (a second render of the same input gives the same text).
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <mii/chat.hpp>

#include "fuzz_support.hpp"
#include "tokenizer/unicode.hpp"

namespace {

constexpr const char* special_tokens = R"({"bos_token": "<s>", "eos_token": {"content": "</s>"},
  "additional_special_tokens": ["<a>"], "extra_special_tokens": {"image_token": "<img>"}})";

constexpr const char* conversation = R"({"messages": [
  {"role": "system", "content": "Be brief. 你好 😀"},
  {"role": "user", "content": "What's the weather in Paris?"},
  {"role": "assistant", "content": null, "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
  {"role": "tool", "content": "21 C"},
  {"role": "assistant", "content": "<think>\nok\n</think>\n\nIt is 21 C."},
  {"role": "user", "content": [{"type": "text", "text": "thanks"}, {"type": "image"}]}],
  "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
  "add_generation_prompt": true, "enable_thinking": false, "n": 3, "f": 2.5, "s": "text", "l": [3, 1, 2], "d": {"b": 1, "a": [null, true]}})";

std::vector<mii::chat_template> load_real_templates() {
  std::vector<mii::chat_template> out;
  const std::filesystem::path cache = MII_TEST_CACHE_DIR "/tokenizers";
  for (const char* name : {"llama3", "qwen3", "gemma3", "deepseek_v3"}) {
    const auto dir = cache / name;
    if (!std::filesystem::exists(dir / "tokenizer_config.json")) continue;
    out.push_back(mii::chat_template::from_path(dir));
    std::fprintf(stderr, "fuzz_chat_template: loaded %s\n", dir.c_str());
  }
  return out;
}

// Renders twice; a mii::error is the expected answer to bad input.
void render_checked(const mii::chat_template& t, std::string_view variables) {
  std::optional<std::string> first;
  mii::fuzz::accepts([&] { first = t.render(variables); });
  if (!first) return;
  if (mii::detail::tok::find_invalid_utf8(*first) != std::string::npos) mii::fuzz::finding("render produced invalid UTF-8");
  std::string second;
  if (!mii::fuzz::accepts([&] { second = t.render(variables); }) || second != *first)
    mii::fuzz::finding("rendering the same input twice gave different results");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::vector<mii::chat_template> real = load_real_templates();
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 1) {
    if (!real.empty()) render_checked(real[(data[0] / 2) % real.size()], rest);
    return 0;
  }
  const std::size_t nul = rest.find('\0');
  const std::string_view source = rest.substr(0, nul);
  std::optional<mii::chat_template> t;
  if (!mii::fuzz::accepts([&] { t = mii::chat_template::from_source(std::string(source), "fuzz.jinja", special_tokens); }))
    return 0;
  render_checked(*t, conversation);
  if (nul != std::string_view::npos) render_checked(*t, rest.substr(nul + 1));
  return 0;
}

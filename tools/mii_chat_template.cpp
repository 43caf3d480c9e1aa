// mii-chat-template PATH [--template FILE] [--revision R]
//
// Renders a model's chat template the way transformers' apply_chat_template(tokenize=False)
// does. PATH is a model directory, a tokenizer_config.json (the template and the special
// tokens) or a Hugging Face Hub id (its tokenizer files from the cache, docs/hub.md); --template
// FILE takes the template text from FILE instead (special tokens still from PATH). stdin is one
// JSON object of template variables ({"messages": [...], "add_generation_prompt": true,
// "tools": [...]}); stdout is the rendered text exactly, nothing added. Exit status: 0 ok; 1 the
// template refused the input (its raise_exception; the message on stderr); 2 any other error
// (message on stderr naming the file, line and column).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>

#include "mii/chat.hpp"
#include "mii/error.hpp"
#include "mii/io/hub.hpp"

namespace {

void usage(std::FILE* to) {
  std::fputs(
      "usage: mii-chat-template PATH [--template FILE] [--revision R]\n"
      "  PATH             a model directory or its tokenizer_config.json: the chat template\n"
      "                   (chat_template.jinja first, as transformers) and the special tokens;\n"
      "                   or a Hub id (org/name), its files from the Hugging Face cache\n"
      "  --revision R     the Hub id's branch, tag or commit (default main)\n"
      "  --template FILE  render FILE's template instead (special tokens still from PATH)\n"
      "  stdin            one JSON object of template variables, e.g.\n"
      "                   {\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"add_generation_prompt\": true}\n"
      "  stdout           the rendered text, exactly\n"
      "  exit status      0 ok, 1 the template refused the input (raise_exception), 2 other errors\n",
      to);
}

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) mii::fail(p.string(), ": cannot read the file");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

int main(int argc, char** argv) {
  std::string path, template_file, revision = "main";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      usage(stdout);
      return 0;
    }
    if (arg == "--template") {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "mii-chat-template: --template needs a FILE\n");
        return 2;
      }
      template_file = argv[++i];
    } else if (arg == "--revision") {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "mii-chat-template: --revision needs a value\n");
        return 2;
      }
      revision = argv[++i];
    } else if (!arg.empty() && arg[0] == '-') {
      std::fprintf(stderr, "mii-chat-template: unknown option %s\n", arg.c_str());
      usage(stderr);
      return 2;
    } else if (path.empty()) {
      path = arg;
    } else {
      std::fprintf(stderr, "mii-chat-template: more than one PATH given\n");
      return 2;
    }
  }
  if (path.empty()) {
    usage(stderr);
    return 2;
  }
  try {
    const std::string variables{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
    path = mii::io::resolve_model(path, {.revision = revision, .files = mii::io::hub_files::tokenizer}).string();
    std::optional<mii::chat_template> tmpl;
    if (!template_file.empty()) {
      std::filesystem::path config = path;
      if (std::filesystem::is_directory(config)) config /= "tokenizer_config.json";
      const std::string tokens = std::filesystem::exists(config) ? read_text(config) : "{}";
      tmpl = mii::chat_template::from_source(read_text(template_file), template_file, tokens);
    } else {
      tmpl = mii::chat_template::from_path(path);
    }
    const std::string text = tmpl->render(variables);
    std::fwrite(text.data(), 1, text.size(), stdout);
    return std::fflush(stdout) == 0 ? 0 : 2;
  } catch (const mii::chat_template_refused& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  } catch (const mii::error& e) {
    std::fprintf(stderr, "mii-chat-template: %s\n", e.what());
    return 2;
  }
}

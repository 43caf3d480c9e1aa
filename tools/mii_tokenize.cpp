// mii-tokenize PATH [--add-special] [--decode [--skip-special]] [--revision R]
//
// Encodes all of stdin (UTF-8 text) with the tokenizer.json at PATH (a file, a directory that
// holds one, or a Hugging Face Hub id whose tokenizer files come from the cache) and prints the ids on one line, separated by single spaces. --add-special adds the
// post-processor's special tokens (BOS...). --decode reads whitespace-separated ids instead and
// prints their text exactly (no newline added). Exit status: 0 ok (and for --help, which prints
// the usage on stdout), 2 a usage error or input that is not valid UTF-8, 1 any other error
// (message on stderr).
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "mii/error.hpp"
#include "mii/io/hub.hpp"
#include "mii/tokenizer/tokenizer.hpp"
#include "tokenizer/unicode.hpp"

namespace {

void usage(std::FILE* to) {
  std::fputs(
      "usage: mii-tokenize PATH [--add-special] [--decode [--skip-special]] [--revision R]\n"
      "  PATH            tokenizer.json, a directory holding one, or a Hub id (org/name; docs/hub.md)\n"
      "  --revision R    the Hub id's branch, tag or commit (default main)\n"
      "  (default)       read UTF-8 text on stdin, print its token ids on one line\n"
      "  --add-special   also add the special tokens the post-processor defines (e.g. BOS)\n"
      "  --decode        read token ids on stdin, print their text\n"
      "  --skip-special  with --decode: leave special tokens out of the text\n",
      to);
}

// Usage errors exit 2, as in the other mii tools.
int usage_error(const std::string& why) {
  std::fprintf(stderr, "mii-tokenize: %s\n", why.c_str());
  usage(stderr);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string path, revision = "main";
  bool add_special = false, decode = false, skip_special = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--add-special") add_special = true;
    else if (arg == "--decode") decode = true;
    else if (arg == "--skip-special") skip_special = true;
    else if (arg == "--revision") {
      if (i + 1 >= argc) return usage_error("--revision needs a value");
      revision = argv[++i];
    }
    else if (arg == "-h" || arg == "--help") { usage(stdout); return 0; }
    else if (!arg.empty() && arg[0] == '-') return usage_error("unknown option " + arg);
    else if (path.empty()) path = arg;
    else return usage_error("more than one PATH given (" + path + ", " + arg + ")");
  }
  if (path.empty()) return usage_error("missing PATH");

  try {
    const std::string input{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
    const mii::tokenizer tok = mii::tokenizer::from_file(
        mii::io::resolve_model(path, {.revision = revision, .files = mii::io::hub_files::tokenizer}));
    if (decode) {
      std::vector<mii::token_id> ids;
      std::istringstream in(input);
      std::string word;
      while (in >> word) {
        char* end = nullptr;
        const long v = std::strtol(word.c_str(), &end, 10);
        if (*end != '\0' || v < 0 || v > INT32_MAX) mii::fail("not a token id: \"", word, "\"");
        ids.push_back(static_cast<mii::token_id>(v));
      }
      const std::string text = tok.decode(ids, skip_special);
      std::fwrite(text.data(), 1, text.size(), stdout);
      return 0;
    }
    if (const std::size_t bad = mii::detail::tok::find_invalid_utf8(input); bad != std::string::npos) {
      std::fprintf(stderr, "mii-tokenize: input is not valid UTF-8: bad byte 0x%02X at byte offset %zu\n",
                   static_cast<unsigned>(static_cast<unsigned char>(input[bad])), bad);
      return 2;
    }
    const std::vector<mii::token_id> ids = tok.encode(input, add_special);
    std::string line;
    line.reserve(ids.size() * 6 + 1);
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (i) line.push_back(' ');
      line += std::to_string(ids[i]);
    }
    line.push_back('\n');
    std::fwrite(line.data(), 1, line.size(), stdout);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mii-tokenize: %s\n", e.what());
    return 1;
  }
}

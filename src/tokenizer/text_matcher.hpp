// Finding pattern matches in text, with the semantics of the Hugging Face `tokenizers` library
// (which uses Oniguruma): successive leftmost matches, an empty match right after the previous
// match is skipped. Three implementations: PCRE2 (JIT) for any pattern, a hand-written matcher for
// the GPT-2 / Llama-3 / Qwen2 pre-tokenizer patterns (much faster, proven identical to PCRE2 by
// the tests), and plain literal strings.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mii::detail::tok {

struct match_span {
  std::uint32_t begin, end;
};

class text_matcher {
 public:
  virtual ~text_matcher() = default;
  // Replaces `out` with the matches in `text` (well-formed UTF-8), left to right.
  virtual void find_all(std::string_view text, std::vector<match_span>& out) const = 0;
  virtual std::string_view engine() const = 0;  // "pcre2-jit", "pcre2", "builtin", "literal"
};

// Compiles an Oniguruma-syntax pattern (as written in tokenizer.json). With `allow_builtin`, a
// pattern that is one of the well-known pre-tokenizer patterns gets the hand-written matcher.
// Returns nullptr and sets `error` when the pattern does not compile.
std::unique_ptr<text_matcher> make_regex_matcher(std::string_view pattern, bool allow_builtin,
                                                 std::string& error);
std::unique_ptr<text_matcher> make_literal_matcher(std::string_view literal);

// The hand-written matcher for a well-known pattern, or nullptr when `pattern` is not one.
std::unique_ptr<text_matcher> make_builtin_matcher(std::string_view pattern);

// The pattern the ByteLevel pre-tokenizer uses when `use_regex` is true (GPT-2's).
extern const std::string_view gpt2_pattern;

}  // namespace mii::detail::tok

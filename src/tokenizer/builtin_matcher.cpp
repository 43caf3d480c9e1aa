// Hand-written matchers for the pre-tokenizer patterns that almost every byte-level BPE model
// uses (GPT-2, Llama-3, Qwen2/Qwen3). The pattern is an alternation tried left to right at each
// position; every code point is a letter (\p{L}), a number (\p{N}), a space (\s) or "other", and
// each of the four has an alternative that matches it, so the matches tile the text. Each
// alternative is simple enough to resolve its backtracking by hand; the comments show which
// alternative each branch is. tests/tokenizer/test_matchers.cpp checks them against PCRE2.
#include "tokenizer/text_matcher.hpp"
#include "tokenizer/unicode.hpp"

namespace mii::detail::tok {

const std::string_view gpt2_pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

constexpr std::string_view llama3_pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view qwen2_pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

struct cp_info {
  char32_t c;
  std::uint8_t cls;
  std::uint8_t len;
};

inline cp_info info_at(std::string_view s, std::size_t i) {
  const auto b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) return {b, ascii_classes[b], 1};
  std::size_t j = i;
  const char32_t c = next_code_point(s, j);
  return {c, classify_slow(c), static_cast<std::uint8_t>(j - i)};
}

constexpr std::uint8_t cls_lns = cls_letter | cls_number | cls_space;

struct pattern_family {
  bool contractions_ignore_case;  // (?i:'s|...) vs 's|...
  bool letter_prefix_any;         // [^\r\n\p{L}\p{N}]?\p{L}+ vs ' ?\p{L}+'
  unsigned max_digits;            // \p{N}{1,max}; 0 = ' ?\p{N}+'
  bool punct_newlines;            // ' ?[^\s\p{L}\p{N}]+[\r\n]*' vs without [\r\n]*
  bool newline_run;               // has the \s*[\r\n]+ alternative
};

class builtin_matcher final : public text_matcher {
 public:
  explicit builtin_matcher(pattern_family f) : f_(f) {}

  void find_all(std::string_view s, std::vector<match_span>& out) const override {
    out.clear();
    std::size_t p = 0;
    while (p < s.size()) {
      const std::size_t e = match_at(s, p);
      out.push_back({static_cast<std::uint32_t>(p), static_cast<std::uint32_t>(e)});
      p = e;
    }
  }
  std::string_view engine() const override { return "builtin"; }

 private:
  std::size_t scan_class(std::string_view s, std::size_t i, std::uint8_t cls) const {
    while (i < s.size()) {
      const auto b = static_cast<unsigned char>(s[i]);
      if (b < 0x80) {
        if (!(ascii_classes[b] & cls)) break;
        ++i;
        continue;
      }
      const cp_info ci = info_at(s, i);
      if (!(ci.cls & cls)) break;
      i += ci.len;
    }
    return i;
  }
  // Length of a contraction ('s 't 're 've 'm 'll 'd) at s[p] == '\'', or 0.
  std::size_t contraction(std::string_view s, std::size_t p) const {
    const std::size_t n = s.size();
    if (p + 1 >= n) return 0;
    auto lower = [&](std::size_t i) -> char {
      const char c = s[i];
      return f_.contractions_ignore_case && c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
    };
    const char a = lower(p + 1);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    // U+017F LATIN SMALL LETTER LONG S case-folds to 's'.
    if (f_.contractions_ignore_case && s[p + 1] == '\xC5' && p + 2 < n && s[p + 2] == '\xBF') return 3;
    if (p + 2 >= n) return 0;
    const char b = lower(p + 2);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
  }

  std::size_t match_at(std::string_view s, std::size_t p) const {
    const std::size_t n = s.size();
    if (s[p] == '\'') {
      if (const std::size_t k = contraction(s, p)) return p + k;
    }
    const cp_info c0 = info_at(s, p);
    const std::size_t p1 = p + c0.len;
    // letters
    if (c0.cls & cls_letter) return scan_class(s, p1, cls_letter);
    if (p1 < n) {
      const bool prefix_ok = f_.letter_prefix_any
                                 ? !(c0.cls & (cls_letter | cls_number)) && c0.c != '\r' && c0.c != '\n'
                                 : c0.c == ' ';
      if (prefix_ok && (info_at(s, p1).cls & cls_letter)) return scan_class(s, p1, cls_letter);
    }
    // numbers
    if (f_.max_digits) {
      if (c0.cls & cls_number) {
        std::size_t e = p1;
        for (unsigned k = 1; k < f_.max_digits && e < n; ++k) {
          const cp_info ci = info_at(s, e);
          if (!(ci.cls & cls_number)) break;
          e += ci.len;
        }
        return e;
      }
    } else {
      if (c0.cls & cls_number) return scan_class(s, p1, cls_number);
      if (c0.c == ' ' && p1 < n && (info_at(s, p1).cls & cls_number)) return scan_class(s, p1, cls_number);
    }
    // other (not space, letter or number), optionally after one ' '
    std::size_t q = static_cast<std::size_t>(-1);
    if (!(c0.cls & cls_lns)) q = p1;
    else if (c0.c == ' ' && p1 < n && !(info_at(s, p1).cls & cls_lns)) q = p1 + info_at(s, p1).len;
    if (q != static_cast<std::size_t>(-1)) {
      std::size_t e = q;
      while (e < n) {
        const cp_info ci = info_at(s, e);
        if (ci.cls & cls_lns) break;
        e += ci.len;
      }
      if (f_.punct_newlines)
        while (e < n && (s[e] == '\r' || s[e] == '\n')) ++e;
      return e;
    }
    // whitespace: c0 is a space here
    std::size_t e = p, last_char = p, last_newline_end = 0;
    while (e < n) {
      const cp_info ci = info_at(s, e);
      if (!(ci.cls & cls_space)) break;
      last_char = e;
      e += ci.len;
      if (ci.cls & cls_newline) last_newline_end = e;
    }
    if (f_.newline_run && last_newline_end) return last_newline_end;  // \s*[\r\n]+
    if (e == n) return e;                                                // \s+(?!\S) at the end
    if (last_char > p) return last_char;                                 // \s+(?!\S): leave one
    return e;                                                            // \s+
  }

  pattern_family f_;
};

}  // namespace

std::unique_ptr<text_matcher> make_builtin_matcher(std::string_view pattern) {
  if (pattern == gpt2_pattern) return std::make_unique<builtin_matcher>(pattern_family{false, false, 0, false, false});
  if (pattern == llama3_pattern) return std::make_unique<builtin_matcher>(pattern_family{true, true, 3, true, true});
  if (pattern == qwen2_pattern) return std::make_unique<builtin_matcher>(pattern_family{true, true, 1, true, true});
  return nullptr;
}

}  // namespace mii::detail::tok

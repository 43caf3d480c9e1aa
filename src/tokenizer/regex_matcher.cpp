// PCRE2-backed matcher. Why PCRE2: the pre-tokenizer patterns need Unicode properties (\p{L},
// \p{N}), case-insensitive groups and lookahead (\s+(?!\S)), i.e. a backtracking engine like the
// Oniguruma that the reference uses; PCRE2 is that, is in Debian, and its JIT is fast.
#include <pcre2.h>

#include "mii/error.hpp"
#include "tokenizer/text_matcher.hpp"

namespace mii::detail::tok {

namespace {

// Oniguruma's \s: TAB..CR, SPACE, NEL and the Unicode separators (Zs, Zl, Zp). PCRE2's \s in UCP
// mode differs at the edges (no NEL; U+180E, a format character since Unicode 6.3, included), so
// \s is spelled out.
constexpr std::string_view onig_space = "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\p{Zs}\\p{Zl}\\p{Zp}";

// Rewrites the few Oniguruma escapes whose meaning differs in PCRE2:
//  - \s / \S: see onig_space;
//  - \h / \H: a hex digit in Oniguruma (Ruby syntax), horizontal space in PCRE2.
std::string translate_oniguruma(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 16);
  int class_depth = 0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char e = p[i + 1];
      ++i;
      if (e == 's') {
        if (!class_depth) out += '[';
        out += onig_space;
        if (!class_depth) out += ']';
      } else if (e == 'S' && !class_depth) {
        out += "[^";
        out += onig_space;
        out += ']';
      }
      else if (e == 'h') out += class_depth ? "0-9a-fA-F" : "[0-9a-fA-F]";
      else if (e == 'H' && !class_depth) out += "[^0-9a-fA-F]";
      else { out += '\\'; out += e; }
      continue;
    }
    if (c == '[') {
      // "[]" or "[^]" at the start of a class is a literal ']' in both engines.
      ++class_depth;
      out += c;
      if (i + 1 < p.size() && p[i + 1] == '^') { out += '^'; ++i; }
      if (i + 1 < p.size() && p[i + 1] == ']') { out += ']'; ++i; }
      continue;
    }
    if (c == ']' && class_depth) --class_depth;
    out += c;
  }
  return out;
}

struct thread_match_state {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;
  thread_match_state() {
    data = pcre2_match_data_create(1, nullptr);
    context = pcre2_match_context_create(nullptr);
    jit_stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
    if (jit_stack) pcre2_jit_stack_assign(context, nullptr, jit_stack);
  }
  ~thread_match_state() {
    pcre2_match_data_free(data);
    pcre2_match_context_free(context);
    if (jit_stack) pcre2_jit_stack_free(jit_stack);
  }
};

thread_match_state& match_state() {
  thread_local thread_match_state state;  // match data is reused across calls on a thread
  return state;
}

class pcre2_matcher final : public text_matcher {
 public:
  pcre2_matcher(pcre2_code* code, bool jit) : code_(code), jit_(jit) {}
  ~pcre2_matcher() override { pcre2_code_free(code_); }

  void find_all(std::string_view text, std::vector<match_span>& out) const override {
    out.clear();
    thread_match_state& st = match_state();
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    std::size_t last_end = 0;
    std::size_t last_match_end = static_cast<std::size_t>(-1);
    while (last_end <= text.size()) {
      const int rc = jit_ ? pcre2_jit_match(code_, subject, text.size(), last_end, 0, st.data, st.context)
                          : pcre2_match(code_, subject, text.size(), last_end, PCRE2_NO_UTF_CHECK, st.data,
                                        st.context);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        // A resource limit (a pathological pattern on a long text): an error, never silently
        // different ids.
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(rc, message, sizeof message);
        mii::fail("tokenizer: regular expression matching failed: ", reinterpret_cast<const char*>(message));
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(st.data);
      const std::size_t s = ov[0], e = ov[1];
      if (s == e && last_match_end == e) {
        // An empty match right where the previous one ended: step one character and retry.
        last_end += last_end < text.size() ? utf8_step(text, last_end) : 1;
        continue;
      }
      last_end = e;
      last_match_end = e;
      out.push_back({static_cast<std::uint32_t>(s), static_cast<std::uint32_t>(e)});
    }
  }
  std::string_view engine() const override { return jit_ ? "pcre2-jit" : "pcre2"; }

 private:
  static std::size_t utf8_step(std::string_view s, std::size_t i) {
    const auto b = static_cast<unsigned char>(s[i]);
    return b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
  }
  pcre2_code* code_;
  bool jit_;
};

class literal_matcher final : public text_matcher {
 public:
  explicit literal_matcher(std::string_view literal) : literal_(literal) {}
  void find_all(std::string_view text, std::vector<match_span>& out) const override {
    out.clear();
    if (literal_.empty()) return;
    std::size_t pos = 0;
    while ((pos = text.find(literal_, pos)) != std::string_view::npos) {
      out.push_back({static_cast<std::uint32_t>(pos), static_cast<std::uint32_t>(pos + literal_.size())});
      pos += literal_.size();
    }
  }
  std::string_view engine() const override { return "literal"; }

 private:
  std::string literal_;
};

}  // namespace

std::unique_ptr<text_matcher> make_regex_matcher(std::string_view pattern, bool allow_builtin,
                                                 std::string& error) {
  if (allow_builtin)
    if (auto builtin = make_builtin_matcher(pattern)) return builtin;
  const std::string translated = translate_oniguruma(pattern);
  int code = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                                 PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &code, &offset, nullptr);
  if (!re) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(code, message, sizeof message);
    error = std::string(reinterpret_cast<const char*>(message)) + " at offset " + std::to_string(offset);
    return nullptr;
  }
  const bool jit = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
  return std::make_unique<pcre2_matcher>(re, jit);
}

std::unique_ptr<text_matcher> make_literal_matcher(std::string_view literal) {
  return std::make_unique<literal_matcher>(literal);
}

}  // namespace mii::detail::tok

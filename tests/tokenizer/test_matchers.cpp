// The hand-written matchers for the GPT-2 / Llama-3 / Qwen2 pre-tokenizer patterns must find
// exactly the matches PCRE2 finds for the same pattern (PCRE2 stands in for Oniguruma, the
// engine of the reference). Checked on the corpus and on random strings built from the
// characters where the patterns' alternatives meet.
#include <catch2/catch.hpp>

#include <random>

#include "tokenizer/text_matcher.hpp"
#include "tokenizer/unicode.hpp"
#include "tokenizer_fixtures.hpp"

using namespace mii::detail::tok;

namespace {

const char* const known_patterns[] = {
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)",
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
};

std::string show(const std::vector<match_span>& m, std::string_view text) {
  std::string s;
  for (const auto& x : m) s += "[" + std::string(text.substr(x.begin, x.end - x.begin)) + "]";
  return s;
}

}  // namespace

TEST_CASE("builtin pre-tokenizer matchers agree with PCRE2", "[tokenizer][regex]") {
  // Characters around which the alternatives compete: apostrophes and contraction letters in
  // both cases (and U+017F, which case-folds to s), spaces of every kind including NEL, CR/LF,
  // letters, digits of several scripts, punctuation, marks, emoji.
  const std::vector<std::string> pool = {
      "'", "'", "s", "S", "t", "T", "r", "e", "E", "v", "m", "M", "l", "L", "d", "D", "\xC5\xBF", " ", " ", " ",
      "\t", "\n", "\r", "\r\n", "\xC2\x85", "\xC2\xA0", "\xE3\x80\x80", "\xE2\x80\x83", "\x0B", "\x0C", "a", "Z",
      "\xC3\xA9", "\xD0\x96", "\xE6\x97\xA5", "1", "2", "3", "\xD9\xA3", "\xE2\x85\xAB", "\xC2\xBD", ".", ",",
      "!", "-", "(", "_", "$", "\xF0\x9F\x98\x80", "\xCC\x81", "\xE2\x80\x8B", "\xEF\xBB\xBF", "<", ">"};
  std::mt19937 rng(12345);
  std::vector<std::string> texts;
  for (const auto& item : mii_test::corpus()) texts.push_back(item.text);
  for (int i = 0; i < 20000; ++i) {
    std::string s;
    const int len = static_cast<int>(rng() % 24);
    for (int k = 0; k < len; ++k) s += pool[rng() % pool.size()];
    texts.push_back(s);
  }
  for (const char* pattern : known_patterns) {
    auto builtin = make_builtin_matcher(pattern);
    REQUIRE(builtin);
    std::string error;
    auto pcre = make_regex_matcher(pattern, /*allow_builtin=*/false, error);
    REQUIRE(pcre);
    REQUIRE(std::string(pcre->engine()).rfind("pcre2", 0) == 0);
    std::vector<match_span> a, b;
    std::size_t differences = 0;
    std::string first;
    for (const std::string& t : texts) {
      builtin->find_all(t, a);
      pcre->find_all(t, b);
      const bool same = a.size() == b.size() &&
                        std::equal(a.begin(), a.end(), b.begin(), [](const match_span& x, const match_span& y) {
                          return x.begin == y.begin && x.end == y.end;
                        });
      if (!same && differences++ == 0) first = "text [" + t + "]: builtin " + show(a, t) + " pcre2 " + show(b, t);
    }
    INFO("pattern " << pattern << "\n" << first);
    CHECK(differences == 0);
  }
}

TEST_CASE("unknown patterns go to PCRE2, with Oniguruma's meaning of \\s", "[tokenizer][regex]") {
  std::string error;
  auto m = make_regex_matcher(R"(\s+)", true, error);
  REQUIRE(m);
  CHECK(std::string(m->engine()).rfind("pcre2", 0) == 0);
  std::vector<match_span> out;
  m->find_all("a\xC2\x85\xC2\x85z", out);  // U+0085 NEL is \s in Oniguruma (not in PCRE2's UCP \s)
  REQUIRE(out.size() == 1);
  CHECK(out[0].begin == 1);
  CHECK(out[0].end == 5);
  auto cls = make_regex_matcher(R"([^\s\p{L}]+)", true, error);
  REQUIRE(cls);
  cls->find_all("a\xC2\x85-", out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].begin == 3);

  CHECK(make_regex_matcher("(unclosed", true, error) == nullptr);
  CHECK_FALSE(error.empty());
}

TEST_CASE("empty matches follow Oniguruma's find_iter", "[tokenizer][regex]") {
  std::string error;
  auto m = make_regex_matcher("a*", true, error);
  REQUIRE(m);
  std::vector<match_span> out;
  m->find_all("baaac", out);
  // (0,0); the empty match at 4 right after "aaa" is skipped; (5,5) at the end.
  REQUIRE(out.size() == 3);
  CHECK((out[0].begin == 0 && out[0].end == 0));
  CHECK((out[1].begin == 1 && out[1].end == 4));
  CHECK((out[2].begin == 5 && out[2].end == 5));
}

TEST_CASE("UTF-8 helpers", "[tokenizer][unicode]") {
  CHECK(find_invalid_utf8("plain ascii text that is long enough") == std::string_view::npos);
  CHECK(find_invalid_utf8("\xE6\x97\xA5\xE6\x9C\xAC") == std::string_view::npos);
  CHECK(find_invalid_utf8("ab\xC3") == 2);
  CHECK(find_invalid_utf8("\xED\xA0\x80") == 0);  // a UTF-16 surrogate
  CHECK(find_invalid_utf8("\xC0\xAF") == 0);      // overlong
  CHECK(find_invalid_utf8("ok\xF4\x90\x80\x80") == 2);  // above U+10FFFF
  // from_utf8_lossy: one U+FFFD per maximal ill-formed subpart.
  std::string out;
  append_utf8_lossy(out, "a\xF0\x9F\x98" "b\x80\xE6\x97", true);
  CHECK(out == "a\xEF\xBF\xBD" "b\xEF\xBF\xBD\xEF\xBF\xBD");
  out.clear();
  CHECK(append_utf8_lossy(out, "a\xE6\x97", false) == 1);  // the incomplete character waits
  CHECK(out == "a");
}

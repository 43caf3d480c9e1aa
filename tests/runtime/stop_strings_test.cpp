// stop_matcher against a byte-at-a-time reference: for every way of splitting a text into pieces
// the output is the same, it is cut where the first completed stop string begins, and nothing is
// held back that could not still become a stop string.
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include <mii/runtime/stop_strings.hpp>

#include "test_files.hpp"

using mii::runtime::stop_matcher;

namespace {

struct reference_result {
  std::string output;
  bool matched = false;
};

// Generation stops at the first byte where the text so far ends with a stop string; the output is
// cut where the longest stop string ending there begins.
reference_result reference(const std::string& text, const std::vector<std::string>& stops) {
  for (std::size_t end = 1; end <= text.size(); ++end) {
    std::size_t cut = std::string::npos;
    for (const auto& s : stops)
      if (!s.empty() && s.size() <= end && text.compare(end - s.size(), s.size(), s) == 0) cut = std::min(cut, end - s.size());
    if (cut != std::string::npos) return {text.substr(0, cut), true};
  }
  return {text, false};
}

// What may be held back after `received`: its longest suffix that is a proper prefix of a stop.
std::size_t holdable(const std::string& received, const std::vector<std::string>& stops) {
  std::size_t best = 0;
  for (const auto& s : stops)
    for (std::size_t len = 1; len < s.size() && len <= received.size(); ++len)
      if (received.compare(received.size() - len, len, s, 0, len) == 0) best = std::max(best, len);
  return best;
}

// Feeds `pieces` to a matcher and checks it against the reference after every piece. Returns an
// empty string or what went wrong.
std::string check_split(const std::vector<std::string>& pieces, const std::vector<std::string>& stops) {
  std::string text;
  for (const auto& p : pieces) text += p;
  const auto want = reference(text, stops);
  stop_matcher m(stops);
  std::string emitted, received;
  auto where = [&] {
    std::string s = "text '" + text + "' split as";
    for (const auto& p : pieces) s += " '" + p + "'";
    s += ", stops";
    for (const auto& x : stops) s += " '" + x + "'";
    return s + ": ";
  };
  for (const auto& p : pieces) {
    const bool was_matched = m.matched();
    const std::string out = m.push(p);
    if (was_matched && !out.empty()) return where() + "output after the match";
    emitted += out;
    received += p;
    if (m.matched()) {
      if (!want.matched) return where() + "matched, but no stop string occurs";
      if (emitted != want.output) return where() + "cut as '" + emitted + "', expected '" + want.output + "'";
      continue;
    }
    const auto first_stop = reference(received, stops);
    if (first_stop.matched) return where() + "a stop string arrived and was not matched";
    // No false holds: everything except a possible stop-string start is out already.
    if (emitted != received.substr(0, received.size() - holdable(received, stops)))
      return where() + "after '" + received + "' emitted '" + emitted + "'";
  }
  const std::string rest = m.flush();
  if (m.matched() != want.matched) return where() + "matched() disagrees";
  if (m.matched() && !rest.empty()) return where() + "flush returned text after a match";
  if (emitted + rest != want.output) return where() + "output '" + emitted + rest + "', expected '" + want.output + "'";
  return {};
}

// Every split of `text` into pieces (2^(n-1) of them).
void check_every_split(const std::string& text, const std::vector<std::string>& stops) {
  REQUIRE(text.size() <= 16);
  const std::uint32_t splits = 1u << (text.size() - 1);
  for (std::uint32_t mask = 0; mask < splits; ++mask) {
    std::vector<std::string> pieces(1);
    for (std::size_t i = 0; i < text.size(); ++i) {
      pieces.back() += text[i];
      if (i + 1 < text.size() && (mask >> i & 1u)) pieces.emplace_back();
    }
    const auto why = check_split(pieces, stops);
    if (!why.empty()) FAIL(why);
  }
}

}  // namespace

TEST_CASE("stop strings split across pieces in every possible way", "[runtime][stop]") {
  SECTION("one stop string") { check_every_split("abc STOP here", {"STOP"}); }
  SECTION("no stop string occurs; a prefix of it does, twice") { check_every_split("xxSTOxSTxSTO", {"STOP"}); }
  SECTION("several stop strings: the first completed wins") {
    check_every_split("ab END cd HALT", {"HALT", "END"});
    check_every_split("pre HALT END", {"END", "HALT"});
  }
  SECTION("a stop string inside another completes first") {
    check_every_split("xxabcdyy", {"abcd", "bc"});  // "bc" completes before "abcd" does
    check_every_split("xxabcyy", {"abc", "bc"});    // both end together: cut where the longer begins
  }
  SECTION("overlapping prefixes and self-overlap") {
    check_every_split("aaaab", {"aab"});
    check_every_split("abababac", {"abac"});
    check_every_split("aabaab", {"aabaab", "baa"});
  }
  SECTION("a stop string at the very start and at the very end") {
    check_every_split("STOPabc", {"STOP"});
    check_every_split("abcSTOP", {"STOP"});
  }
  SECTION("multi-byte UTF-8 (pieces may split characters; output must match byte for byte)") {
    check_every_split("caf\xc3\xa9 \xc3\xa9t\xc3\xa9", {"\xc3\xa9t"});
  }
}

TEST_CASE("stop strings: random texts, stop sets and splits against the reference", "[runtime][stop]") {
  const std::uint64_t seed = mii::test::test_seed("stop strings random");
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  auto word = [&](std::size_t max_len) {
    std::string s(1 + rng() % max_len, 'a');
    for (auto& c : s) c = char('a' + rng() % 3);  // a small alphabet makes overlaps common
    return s;
  };
  for (int trial = 0; trial < 20000; ++trial) {
    std::vector<std::string> stops;
    for (std::size_t i = 0, n = 1 + rng() % 3; i < n; ++i) stops.push_back(word(5));
    const std::string text = word(30);
    std::vector<std::string> pieces(1);
    for (std::size_t i = 0; i < text.size(); ++i) {
      pieces.back() += text[i];
      if (i + 1 < text.size() && rng() % 3 == 0) pieces.emplace_back();
    }
    const auto why = check_split(pieces, stops);
    if (!why.empty()) FAIL("trial " << trial << ": " << why);
  }
}

TEST_CASE("stop_matcher without stop strings passes text through", "[runtime][stop]") {
  stop_matcher none;
  CHECK(none.empty());
  CHECK(none.push("anything STOP") == "anything STOP");
  CHECK(none.flush().empty());
  CHECK_FALSE(none.matched());
  stop_matcher only_empty({""});  // empty stop strings are ignored, not matched everywhere
  CHECK(only_empty.empty());
  CHECK(only_empty.push("text") == "text");
  CHECK_FALSE(only_empty.matched());
}

TEST_CASE("stop_matcher holds back only what can still become a stop string", "[runtime][stop]") {
  stop_matcher m({"###"});
  CHECK(m.push("hello") == "hello");     // no '#' at the end: nothing held
  CHECK(m.push(" wor#") == " wor");      // '#' may start "###"
  CHECK(m.push("#") == "");              // "##" too
  CHECK(m.push("x#") == "##x");          // "##x" cannot; the new '#' can
  CHECK(m.flush() == "#");               // the end: whatever was held
  CHECK_FALSE(m.matched());
  stop_matcher n({"###"});
  CHECK(n.push("a##") == "a");
  CHECK(n.push("#b") == "");
  CHECK(n.matched());
  CHECK(n.push("more") == "");
  CHECK(n.flush() == "");
}

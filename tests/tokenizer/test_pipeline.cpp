// Unit tests of the tokenizer.json pipeline on small hand-written tokenizers: each feature the
// issue lists (normalizers, pre-tokenizers, BPE options, added-token flags, post-processor,
// decoders, streaming) with the ids and texts the Hugging Face library gives for them.
#include <catch2/catch.hpp>

#include <cstdio>

#include "mii/error.hpp"
#include "mii/tokenizer/tokenizer.hpp"
#include "synthetic_json.hpp"

using namespace mii_test;
using ids = std::vector<mii::token_id>;

namespace {

const std::string marker = "\xE2\x96\x81";  // U+2581, SentencePiece's word marker

// A SentencePiece-style tokenizer in the layout of Llama-2's tokenizer.json.
// ids: <unk> 0, <s> 1, </s> 2, <0x00>..<0xFF> 3..258, ▁ 259, a 260, b 261, ▁a 262, ab 263, ▁ab 264, c 265
std::vector<std::string> sp_vocab() {
  std::vector<std::string> v{"<unk>", "<s>", "</s>"};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    v.push_back(name);
  }
  for (const std::string t : {marker, std::string("a"), std::string("b"), marker + "a", std::string("ab"), marker + "ab",
                              std::string("c")})
    v.push_back(t);
  return v;
}
const std::vector<std::string> sp_merges{marker + " a", "a b", marker + "a b"};

tokenizer_json_parts sp_parts(const std::string& model_extra = "\"byte_fallback\": true, \"fuse_unk\": true, \"unk_token\": \"<unk>\"") {
  tokenizer_json_parts p;
  p.model = bpe_json(sp_vocab(), sp_merges, model_extra);
  p.normalizer = "{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Prepend\", \"prepend\": \"" + marker +
                 "\"}, {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"" + marker + "\"}]}";
  p.decoder = "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Replace\", \"pattern\": {\"String\": \"" + marker +
              "\"}, \"content\": \" \"}, {\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}, "
              "{\"type\": \"Strip\", \"content\": \" \", \"start\": 1, \"stop\": 0}]}";
  p.post_processor =
      "{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}}, "
      "{\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}, {\"SpecialToken\": {\"id\": \"</s>\", \"type_id\": 0}}], "
      "\"pair\": [], \"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [1], \"tokens\": [\"<s>\"]}, "
      "\"</s>\": {\"id\": \"</s>\", \"ids\": [2], \"tokens\": [\"</s>\"]}}}";
  p.added_tokens = "[" + added_json(0, "<unk>", true, "\"normalized\": false") + ", " +
                   added_json(1, "<s>", true, "\"normalized\": false") + ", " +
                   added_json(2, "</s>", true, "\"normalized\": false") + "]";
  return p;
}

mii::tokenizer load(const tokenizer_json_parts& p) { return mii::tokenizer::from_json(tokenizer_json(p), "test.json"); }

std::vector<std::string> stream_all(const mii::tokenizer& tok, const ids& in, bool skip, ids context = {}) {
  auto s = tok.make_stream_decoder(skip, std::move(context));
  std::vector<std::string> deltas;
  for (auto id : in) deltas.push_back(s.push(id));
  deltas.push_back(s.flush());
  return deltas;
}

std::string concat(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x;
  return s;
}

}  // namespace

TEST_CASE("SentencePiece-style BPE: Prepend/Replace, merges, byte fallback, template", "[tokenizer][pipeline]") {
  const auto tok = load(sp_parts());
  CHECK(tok.vocab_size() == 266);
  CHECK(tok.encode("ab ab", false) == ids{264, 264});
  CHECK(tok.encode("ab ab", true) == ids{1, 264, 264, 2});
  CHECK(tok.bos_id() == 1);
  CHECK(tok.eos_id() == 2);
  CHECK(tok.encode("", false).empty());
  CHECK(tok.encode("", true) == ids{1, 2});
  // é is not in the vocabulary: its two bytes become <0xC3> <0xA9>.
  CHECK(tok.encode("\xC3\xA9", false) == ids{259, 3 + 0xC3, 3 + 0xA9});
  CHECK(tok.decode({259, 3 + 0xC3, 3 + 0xA9}) == "\xC3\xA9");
  // A lone <0xC3> is not UTF-8: one U+FFFD per byte of the run.
  CHECK(tok.decode({262, 3 + 0xC3, 260}) == "a\xEF\xBF\xBD" "a");
  CHECK(tok.decode({3 + 0xC3, 3 + 0xC3}) == "\xEF\xBF\xBD\xEF\xBF\xBD");
  // Special-token text in the input is recognised even without add_special_tokens, and the
  // normalizer runs on each piece between added tokens (each gets its own ▁).
  CHECK(tok.encode("a<s>b", false) == ids{262, 1, 259, 261});
  CHECK(tok.decode({1, 262, 2}, false) == "<s> a</s>");
  CHECK(tok.decode({1, 262, 2}, true) == "a");
  CHECK(tok.is_special(1));
  CHECK_FALSE(tok.is_special(262));
  CHECK(tok.token_to_id(marker + "ab") == 264);
  CHECK(tok.id_to_token(264) == marker + "ab");
  CHECK(tok.id_to_token(9999).empty());
  CHECK_FALSE(tok.token_to_id("zzz").has_value());
  // Ids nothing defines are dropped by decode, as the reference does.
  CHECK(tok.decode({262, 9999, 260}) == "aa");
}

TEST_CASE("a token with the word marker inside keeps merges across words", "[tokenizer][pipeline]") {
  // "a▁" lets a merge cross the point before "▁b": words must not be cut there (bpe.hpp,
  // marker splitting). Also a regression test: a marker right after a 1-byte character.
  tokenizer_json_parts p = sp_parts();
  auto vocab = sp_vocab();
  vocab.push_back("a" + marker);  // id 266
  p.model = bpe_json(vocab, {"a " + marker}, "\"byte_fallback\": true");
  const auto tok = load(p);
  CHECK(tok.encode("a b", false) == ids{259, 266, 261});
  CHECK(tok.decode({259, 266, 261}) == "a b");
}

TEST_CASE("unknown characters: unk_token with and without fuse_unk", "[tokenizer][pipeline]") {
  const auto fused = load(sp_parts("\"byte_fallback\": false, \"fuse_unk\": true, \"unk_token\": \"<unk>\""));
  CHECK(fused.encode("xx", false) == ids{259, 0});
  CHECK(fused.encode("xxa", false) == ids{259, 0, 260});
  const auto separate = load(sp_parts("\"byte_fallback\": false, \"fuse_unk\": false, \"unk_token\": \"<unk>\""));
  CHECK(separate.encode("xx", false) == ids{259, 0, 0});
  // Without an unk token unknown characters vanish.
  auto p = sp_parts("\"byte_fallback\": false");
  CHECK(load(p).encode("axb", false) == ids{264});  // x is dropped before merging
}

TEST_CASE("added tokens: lstrip, rstrip, single_word, normalized", "[tokenizer][pipeline]") {
  auto p = sp_parts();
  p.added_tokens.pop_back();
  p.added_tokens += ", " + added_json(266, "<mask>", true, "\"lstrip\": true, \"normalized\": false") + ", " +
                    added_json(267, "<r>", true, "\"rstrip\": true, \"normalized\": false") + ", " +
                    added_json(268, "cc", false, "\"single_word\": true, \"normalized\": false") + "]";
  const auto tok = load(p);
  // lstrip: the space before <mask> goes with it.
  CHECK(tok.encode("a <mask>b", false) == ids{262, 266, 259, 261});
  // rstrip: the spaces after <r> go with it.
  CHECK(tok.encode("a<r>  b", false) == ids{262, 267, 259, 261});
  // single_word: "cc" inside "ccc" is not the added token.
  CHECK(tok.encode("cc ccc cc", false) == ids{268, 259, 259, 265, 265, 265, 259, 268});
  CHECK(tok.decode({268}, true) == "cc");  // not special: kept by skip_special_tokens

  // normalized: matched in the normalized text, decoded as its normalized form.
  tokenizer_json_parts q;
  q.model = bpe_json({"s", "a", "y", " ", "h", "e", "l", "o"}, {});
  q.normalizer = "{\"type\": \"Lowercase\"}";
  q.added_tokens = "[" + added_json(8, "HELLO", false, "\"normalized\": true") + "]";
  const auto lower = load(q);
  CHECK(lower.encode("Say HELLO", false) == ids{0, 1, 2, 3, 8});
  CHECK(lower.encode("say hello", false) == ids{0, 1, 2, 3, 8});
  CHECK(lower.decode({8}) == "hello");
  CHECK(lower.decode({0, 1}) == "s a");  // no decoder: tokens joined by spaces
}

TEST_CASE("Metaspace pre-tokenizer and decoder", "[tokenizer][pipeline]") {
  tokenizer_json_parts p;
  p.model = bpe_json({marker, "a", "b", marker + "a", marker + "b"}, {marker + " a", marker + " b"});
  const auto meta = [&](const std::string& scheme) {
    return "{\"type\": \"Metaspace\", \"replacement\": \"" + marker + "\", \"prepend_scheme\": \"" + scheme +
           "\", \"split\": true}";
  };
  p.added_tokens = "[" + added_json(5, "<s>", true, "\"normalized\": false") + "]";
  p.pre_tokenizer = meta("first");
  p.decoder = meta("first");
  const auto first = load(p);
  CHECK(first.encode("a b", false) == ids{3, 4});
  // "first": only text at the very start of the input gets the marker.
  CHECK(first.encode("<s>a b", false) == ids{5, 1, 4});
  CHECK(first.decode({3, 4}) == "a b");
  CHECK(first.decode({1, 4}) == "a b");
  p.pre_tokenizer = meta("always");
  CHECK(load(p).encode("<s>a b", false) == ids{5, 3, 4});
  p.pre_tokenizer = meta("never");
  p.decoder = meta("never");
  const auto never = load(p);
  CHECK(never.encode("a b", false) == ids{1, 4});
  CHECK(never.decode({3, 4}) == " a b");
}

TEST_CASE("Digits and Split behaviours", "[tokenizer][pipeline]") {
  tokenizer_json_parts d;
  d.model = bpe_json({"1", "2", "3", "12", "23"}, {"1 2", "2 3"});
  CHECK(load(d).encode("123", false) == ids{3, 2});
  d.pre_tokenizer = "{\"type\": \"Digits\", \"individual_digits\": true}";
  CHECK(load(d).encode("123", false) == ids{0, 1, 2});
  d.pre_tokenizer = "{\"type\": \"Digits\", \"individual_digits\": false}";
  CHECK(load(d).encode("123", false) == ids{3, 2});

  tokenizer_json_parts s;
  s.model = bpe_json({"a", "b", "ab", "-", "a-", "-b", "--"}, {"a b", "a -", "- b", "- -"});
  const auto split = [&](const std::string& behavior, bool invert = false) {
    s.pre_tokenizer = "{\"type\": \"Split\", \"pattern\": {\"String\": \"-\"}, \"behavior\": \"" + behavior +
                      "\", \"invert\": " + (invert ? "true" : "false") + "}";
    return load(s);
  };
  CHECK(split("Isolated").encode("a-b", false) == ids{0, 3, 1});
  CHECK(split("Removed").encode("a-b", false) == ids{0, 1});
  CHECK(split("MergedWithPrevious").encode("a-b", false) == ids{4, 1});
  CHECK(split("MergedWithNext").encode("a-b", false) == ids{0, 5});
  CHECK(split("Contiguous").encode("a--b", false) == ids{0, 6, 1});
  CHECK(split("Isolated").encode("a--b", false) == ids{0, 3, 3, 1});
  CHECK(split("Removed", true).encode("a-b", false) == ids{3});
  // A regex pattern goes through PCRE2.
  s.pre_tokenizer = "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"[ab]\"}, \"behavior\": \"Isolated\", \"invert\": false}";
  CHECK(load(s).encode("ab", false) == ids{0, 1});
}

TEST_CASE("decoders: Strip, BPEDecoder, no decoder, and streaming them", "[tokenizer][pipeline]") {
  tokenizer_json_parts p;
  p.model = bpe_json({"a", " ", "hel", "lo</w>", "wor", "ld</w>"}, {});
  p.decoder = "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Fuse\"}, {\"type\": \"Strip\", \"content\": \" \", "
              "\"start\": 0, \"stop\": 2}]}";
  const auto strip = load(p);
  CHECK(strip.decode({0, 1, 1, 1}) == "a ");
  const auto deltas = stream_all(strip, {0, 1, 1, 1}, false);
  CHECK(deltas == std::vector<std::string>{"a", "", "", "", " "});  // trailing spaces wait for the end
  CHECK(concat(stream_all(strip, {0, 1, 0, 1, 1}, false)) == strip.decode({0, 1, 0, 1, 1}));

  p.decoder = "{\"type\": \"BPEDecoder\", \"suffix\": \"</w>\"}";
  const auto bpe = load(p);
  CHECK(bpe.decode({2, 3, 4, 5}) == "hello world");
  CHECK(concat(stream_all(bpe, {2, 3, 4, 5}, false)) == "hello world");

  p.decoder = "null";
  CHECK(load(p).decode({2, 4}) == "hel wor");
}

TEST_CASE("stream decoder: byte fallback runs, spacing with context, skip_special", "[tokenizer][stream]") {
  const auto tok = load(sp_parts());
  // The bytes of é are held back until their run ends.
  CHECK(stream_all(tok, {262, 3 + 0xC3, 3 + 0xA9, 260}, false) ==
        std::vector<std::string>{"a", "", "", "\xC3\xA9" "a", ""});
  // First token: its leading space is stripped, as in the full decode.
  CHECK(stream_all(tok, {264, 264}, true) == std::vector<std::string>{"ab", " ab", ""});
  // With the prompt as context, the first streamed token keeps its space.
  CHECK(concat(stream_all(tok, {264}, true, {1, 262})) == " ab");
  // Skipped specials do not count as the first token.
  CHECK(concat(stream_all(tok, {1, 264, 2}, true)) == "ab");
  CHECK(concat(stream_all(tok, {1, 264, 2}, false)) == "<s> ab</s>");
  // Copies are independent.
  auto s1 = tok.make_stream_decoder(false);
  CHECK(s1.push(264) == "ab");
  auto s2 = s1;
  CHECK(s2.push(264) == " ab");
  CHECK(s1.push(262) == " a");
  CHECK(s1.ids() == ids{264, 262});
}

TEST_CASE("invalid UTF-8 input is an error naming the byte offset", "[tokenizer][pipeline]") {
  const auto tok = load(sp_parts());
  REQUIRE_THROWS_AS(tok.encode("ab\xC3", false), mii::error);
  REQUIRE_THROWS_WITH(tok.encode("ab\xC3", false), Catch::Contains("byte offset 2"));
  REQUIRE_THROWS_WITH(tok.encode("\xFF", false), Catch::Contains("byte offset 0"));
  REQUIRE_THROWS_WITH(tok.encode("ok \xED\xA0\x80", false), Catch::Contains("byte offset 3"));
  const std::vector<std::string> batch{"ab", "a\x80"};
  REQUIRE_THROWS_AS(tok.encode_batch(batch), mii::error);
}

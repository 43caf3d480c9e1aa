// Randomised checks: byte-level BPE round-trips any text; the stream decoder's deltas add up to
// decode() for any id sequence, including byte tokens that do not form UTF-8 and special tokens.
#include <catch2/catch.hpp>

#include <random>

#include "tokenizer_fixtures.hpp"

using namespace mii_test;

TEST_CASE("Llama-3 round-trips random text", "[tokenizer][random]") {
  const auto& tok = real_tokenizer("llama3");
  const std::vector<std::string> pool = {"a", "Z", " ", "  ", "\n", "\r\n", "\t", "'s", "'LL", "1", "123", "\xC3\xA9",
                                         "\xE6\x97\xA5", "\xF0\x9F\x98\x80", "\xE2\x80\x8D", "<|eot_id|>", "<|", "|>",
                                         ".", "!?", "\xD9\xA3", "\xC2\x85", "\xE3\x80\x80", "x\xCC\x81"};
  std::mt19937 rng(7);
  std::size_t failures = 0;
  std::string first;
  for (int i = 0; i < 3000; ++i) {
    std::string s;
    const int len = static_cast<int>(rng() % 30);
    for (int k = 0; k < len; ++k) s += pool[rng() % pool.size()];
    const std::string back = tok.decode(tok.encode(s, false), false);
    if (back != s && failures++ == 0) first = s;
  }
  INFO("first failure: [" << first << "]");
  CHECK(failures == 0);
}

TEST_CASE("stream decoding equals decode for random id sequences", "[tokenizer][random][stream]") {
  std::mt19937 rng(11);
  for (const std::string name : {"llama2", "llama3", "qwen3"}) {
    const auto& tok = real_tokenizer(name);
    const int vocab = tok.vocab_size();
    std::size_t failures = 0;
    std::string detail;
    for (int i = 0; i < 1500; ++i) {
      std::vector<mii::token_id> ids;
      const int len = static_cast<int>(rng() % 16);
      for (int k = 0; k < len; ++k) {
        const unsigned r = rng() % 10;
        // Mostly low ids (bytes, byte-fallback tokens, specials in Llama-2), some anywhere, some
        // at the top (added tokens).
        mii::token_id id = r < 5 ? static_cast<mii::token_id>(rng() % 300)
                           : r < 8 ? static_cast<mii::token_id>(rng() % vocab)
                                   : vocab - 1 - static_cast<mii::token_id>(rng() % 30);
        ids.push_back(id);
      }
      for (const bool skip : {false, true}) {
        auto stream = tok.make_stream_decoder(skip);
        std::string streamed;
        for (auto id : ids) streamed += stream.push(id);
        streamed += stream.flush();
        if (streamed != tok.decode(ids, skip) && failures++ == 0) detail = tok.decode(ids, skip) + " vs " + streamed;
      }
      // With a context, the deltas are the text decode(context + ids) adds to decode(context).
      if (ids.size() >= 2) {
        const std::vector<mii::token_id> context(ids.begin(), ids.begin() + 1), rest(ids.begin() + 1, ids.end());
        auto stream = tok.make_stream_decoder(true, context);
        std::string streamed;
        for (auto id : rest) streamed += stream.push(id);
        streamed += stream.flush();
        const std::string full = tok.decode(ids, true), prefix = tok.decode(context, true);
        if (full.rfind(prefix, 0) == 0 && full.substr(prefix.size()) != streamed && failures++ == 0)
          detail = "context: " + full + " vs " + prefix + "|" + streamed;
      }
    }
    INFO(name << ": " << detail);
    CHECK(failures == 0);
  }
}

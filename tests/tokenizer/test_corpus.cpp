// The corpus (tests/fixtures/tokenizer/corpus.jsonl) against the Hugging Face oracle's ids and
// texts, for the real Llama-2, Llama-3, Qwen3 and Gemma 3 tokenizer.json files. Any difference fails.
#include <catch2/catch.hpp>

#include <map>
#include <sstream>

#include "tokenizer_fixtures.hpp"

using namespace mii_test;

namespace {

std::string show_ids(const std::vector<std::int32_t>& ids) {
  std::ostringstream os;
  os << '[';
  for (std::size_t i = 0; i < ids.size(); ++i) os << (i ? " " : "") << ids[i];
  os << ']';
  return os.str();
}

struct mismatch_log {
  std::size_t count = 0;
  std::ostringstream first;
  void add(const corpus_item& item, const std::string& what, const std::string& got, const std::string& want) {
    if (count++ < 8)
      first << "  #" << item.id << " (" << item.kind << ") " << what << ": got " << got << " want " << want << "\n";
  }
};

}  // namespace

TEST_CASE("expected files from the oracle exist", "[tokenizer][corpus]") {
  std::size_t found = 0;
  for (const auto& name : tokenizer_names())
    if (expected(name)) ++found;
  INFO("looked in " << expected_dir().string() << " for expected_{llama2,llama3,qwen3,gemma3}.jsonl");
  REQUIRE(found == tokenizer_names().size());
}

TEST_CASE("corpus matches the oracle token for token", "[tokenizer][corpus]") {
  REQUIRE(corpus().size() >= 2000);
  for (const auto& name : tokenizer_names()) {
    const expected_file* exp = expected(name);
    if (!exp) continue;  // reported by the test above
    DYNAMIC_SECTION(name) {
      const mii::tokenizer& tok = real_tokenizer(name);
      mismatch_log ids_log, special_log, decode_log, skip_log, roundtrip_log, stream_log, stream_skip_log;
      std::size_t round_trips = 0, compared = 0;
      std::map<std::string, std::size_t> per_oracle;
      std::vector<std::string> texts;
      for (const corpus_item& item : corpus()) {
        auto it = exp->by_id.find(item.id);
        if (it == exp->by_id.end()) continue;
        const expected_item& e = it->second;
        ++compared;
        ++per_oracle[exp->oracle_of.at(item.id)];
        texts.push_back(item.text);
        const auto ids = tok.encode(item.text, false);
        const auto ids_special = tok.encode(item.text, true);
        if (ids != e.ids) ids_log.add(item, "ids", show_ids(ids), show_ids(e.ids));
        if (ids_special != e.ids_special) special_log.add(item, "ids_special", show_ids(ids_special), show_ids(e.ids_special));
        const std::string decoded = tok.decode(e.ids, false);
        if (decoded != e.decoded) decode_log.add(item, "decode", decoded, e.decoded);
        const std::string decoded_skip = tok.decode(e.ids_special, true);
        if (decoded_skip != e.decoded_skip) skip_log.add(item, "decode(skip_special)", decoded_skip, e.decoded_skip);
        // decode(encode(x)) == x wherever the oracle round-trips too.
        if (e.decoded == item.text) {
          ++round_trips;
          const std::string back = tok.decode(tok.encode(item.text, false), false);
          if (back != item.text) roundtrip_log.add(item, "decode(encode(x))", back, item.text);
        }
        // Streaming: the deltas add up to the full decode, with and without skipping specials.
        for (const bool skip : {false, true}) {
          auto stream = tok.make_stream_decoder(skip);
          std::string streamed;
          for (const auto id : e.ids_special) streamed += stream.push(id);
          streamed += stream.flush();
          const std::string full = tok.decode(e.ids_special, skip);
          if (streamed != full) (skip ? stream_skip_log : stream_log).add(item, "stream", streamed, full);
        }
      }
      std::ostringstream oracles;
      for (const auto& [oracle, n] : per_oracle) oracles << n << " by " << oracle << "; ";
      INFO("compared " << compared << " strings (" << oracles.str() << round_trips << " round-trip in the oracle)");
      INFO(ids_log.first.str() << special_log.first.str() << decode_log.first.str() << skip_log.first.str()
                               << roundtrip_log.first.str() << stream_log.first.str() << stream_skip_log.first.str());
      CHECK(compared == corpus().size());
      CHECK(ids_log.count == 0);
      CHECK(special_log.count == 0);
      CHECK(decode_log.count == 0);
      CHECK(skip_log.count == 0);
      CHECK(roundtrip_log.count == 0);
      CHECK(stream_log.count == 0);
      CHECK(stream_skip_log.count == 0);
      CHECK(round_trips > corpus().size() / 2);

      // Batch encoding gives the single encodings.
      const auto batch = tok.encode_batch(texts, true);
      REQUIRE(batch.size() == texts.size());
      std::size_t batch_mismatches = 0;
      for (std::size_t i = 0; i < texts.size(); ++i)
        if (batch[i] != tok.encode(texts[i], true)) ++batch_mismatches;
      CHECK(batch_mismatches == 0);
    }
  }
}

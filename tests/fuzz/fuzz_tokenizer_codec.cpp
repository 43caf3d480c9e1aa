// Fuzzes encode and decode of real tokenizers on arbitrary bytes: the fixture byte-level BPE
// (tests/fixtures/models/tokenizer.json) always, and the Llama-2 (SentencePiece-style with byte
// fallback), Llama-3 and Qwen3 tokenizer.json files when tools/fetch-tokenizers.sh has cached them.
//
// The first input byte picks the tokenizer and the flags; the rest is the text to encode, and
// the same bytes read as little-endian int16/int32 values are the ids to decode (any id: negative
// and past the vocabulary too). Checked:
//  - invalid UTF-8 is refused with a mii::error, valid UTF-8 always encodes;
//  - encoded ids are inside the id space; byte-level tokenizers without a normalizer round-trip
//    (decode(encode(text)) == text);
//  - decode never fails and always returns valid UTF-8 (stray bytes from ByteFallback / ByteLevel
//    pieces become U+FFFD, as Hugging Face's from_utf8_lossy makes them);
//  - the stream decoder's deltas plus flush() equal the full decode (its documented contract).
#include <filesystem>
#include <memory>
#include <vector>

#include <mii/tokenizer/tokenizer.hpp>

#include "fuzz_support.hpp"
#include "tokenizer/unicode.hpp"

namespace {

struct loaded {
  std::string name;
  mii::tokenizer tok;
  bool lossless;  // byte-level BPE without a normalizer: decode(encode(text)) == text
};

std::vector<loaded> load_all() {
  std::vector<loaded> out;
  const auto fixture = mii::fuzz::source_dir() / "tests/fixtures/models/tokenizer.json";
  out.push_back({"fixture", mii::tokenizer::from_file(fixture), true});
  const std::filesystem::path cache = MII_TEST_CACHE_DIR "/tokenizers";
  for (const char* name : {"llama2", "llama3", "qwen3"}) {
    const auto path = cache / name / "tokenizer.json";
    if (std::filesystem::exists(path)) {
      // Llama-2 prepends U+2581 and Qwen3 normalizes to NFC: neither is lossless on every input.
      out.push_back({name, mii::tokenizer::from_file(path), std::string_view(name) == "llama3"});
      std::fprintf(stderr, "fuzz_tokenizer_codec: loaded %s\n", path.c_str());
    }
  }
  return out;
}

void check_stream(const mii::tokenizer& tok, const std::vector<mii::token_id>& ids, bool skip_special,
                  const std::string& full) {
  auto stream = tok.make_stream_decoder(skip_special);
  std::string streamed;
  for (auto id : ids) streamed += stream.push(id);
  streamed += stream.flush();
  if (mii::detail::tok::find_invalid_utf8(full) != std::string_view::npos)
    mii::fuzz::finding("decode returned invalid UTF-8");
  if (streamed != full)
    mii::fuzz::finding("stream decoder deltas (" + std::to_string(streamed.size()) + " bytes) != decode (" +
                       std::to_string(full.size()) + " bytes)");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mii;
  static const std::vector<loaded> tokenizers = load_all();
  fuzz::byte_reader in(data, size);
  const std::uint8_t flags = in.u8();
  const loaded& t = tokenizers[flags % tokenizers.size()];
  const bool add_special = flags & 0x10, skip_special = flags & 0x20, wide_ids = flags & 0x40;
  const std::string text = in.rest();

  // Encode: valid UTF-8 must encode, invalid must be refused.
  const bool valid = detail::tok::find_invalid_utf8(text) == std::string_view::npos;
  std::vector<token_id> ids;
  const bool encoded = fuzz::accepts([&] { ids = t.tok.encode(text, add_special); });
  if (encoded != valid)
    fuzz::finding(std::string(t.name) + ": encode " + (encoded ? "accepted invalid" : "refused valid") + " UTF-8");
  if (encoded) {
    for (auto id : ids)
      if (id < 0 || id >= t.tok.vocab_size()) fuzz::finding(t.name + ": encode produced id " + std::to_string(id));
    const std::string back = t.tok.decode(ids, /*skip_special_tokens=*/false);
    if (t.lossless && !add_special && back != text) fuzz::finding(t.name + ": decode(encode(text)) != text");
    check_stream(t.tok, ids, skip_special, t.tok.decode(ids, skip_special));
  }

  // Decode ids made from the raw bytes, in or out of the vocabulary.
  std::vector<token_id> raw;
  fuzz::byte_reader id_bytes(data + 1 - (size == 0), size ? size - 1 : 0);
  while (!id_bytes.empty())
    raw.push_back(wide_ids ? id_bytes.value<std::int32_t>() : std::int32_t(id_bytes.value<std::int16_t>()));
  const std::string full = t.tok.decode(raw, skip_special);
  check_stream(t.tok, raw, skip_special, full);
  return 0;
}

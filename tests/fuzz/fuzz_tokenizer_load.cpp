// Fuzzes tokenizer.json loading (model, added tokens, normalizers, pre-tokenizers with their
// regexes, post-processor, decoders). A tokenizer that loads must then encode and decode a few
// texts without failing in any way but a mii::error, and keep its documented contracts.
#include <mii/tokenizer/tokenizer.hpp>

#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace mii;
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  std::optional<tokenizer> tok;
  if (!fuzz::accepts([&] { tok.emplace(tokenizer::from_json(json, "fuzz/tokenizer.json")); })) return 0;
  static const char* const texts[] = {"Hello world", " DeepSpeed is  fast.\n", "<s>x</s>", "café ñ 日本語 🙂", "12345", ""};
  for (const char* text : texts) {
    for (bool special : {false, true}) {
      std::vector<token_id> ids;
      if (!fuzz::accepts([&] { ids = tok->encode(text, special); })) continue;
      for (token_id id : ids)
        if (id < 0 || id >= tok->vocab_size())
          fuzz::finding("encode produced id " + std::to_string(id) + " outside [0, vocab_size " +
                        std::to_string(tok->vocab_size()) + ")");
      std::string full;
      if (!fuzz::accepts([&] { full = tok->decode(ids, /*skip_special_tokens=*/false); })) continue;
      fuzz::accepts([&] {
        auto stream = tok->make_stream_decoder(/*skip_special_tokens=*/false);
        std::string streamed;
        for (token_id id : ids) streamed += stream.push(id);
        streamed += stream.flush();
        if (streamed != full) fuzz::finding("stream_decoder deltas '" + streamed + "' != decode '" + full + "'");
      });
    }
  }
  for (token_id id : {-1, 0, 1, 2, 255, tok->vocab_size() - 1, tok->vocab_size()}) {
    (void)tok->id_to_token(id);
    (void)tok->is_special(id);
  }
  if (auto b = tok->bos_id(); b && (*b < 0 || *b >= tok->vocab_size())) fuzz::finding("bos id out of range");
  if (auto e = tok->eos_id(); e && (*e < 0 || *e >= tok->vocab_size())) fuzz::finding("eos id out of range");
  return 0;
}

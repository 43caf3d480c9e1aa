// The loaded tokenizer: every stage of the tokenizer.json pipeline, immutable after loading.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mii/tokenizer/tokenizer.hpp"
#include "tokenizer/added_tokens.hpp"
#include "tokenizer/bpe.hpp"
#include "tokenizer/decoder.hpp"
#include "tokenizer/normalizer.hpp"
#include "tokenizer/post_processor.hpp"
#include "tokenizer/pre_tokenizer.hpp"

namespace mii::detail {

struct tokenizer_impl {
  std::string origin;  // the file (or "<memory>") named in error messages
  std::unique_ptr<tok::normalizer> normalizer;
  std::unique_ptr<tok::pre_tokenizer> pre_tokenizer;
  std::unique_ptr<tok::bpe_model> model;
  std::vector<tok::added_token> added;  // in tokenizer.json order
  tok::added_token_matcher raw_added;         // added tokens with normalized = false
  tok::added_token_matcher normalized_added;  // with normalized = true (matched after normalizing)
  std::vector<std::string> added_decode_text;  // per added token: its text for decoding
  std::vector<std::int32_t> added_by_id;       // id -> index into `added`, -1 if none
  std::vector<std::uint8_t> special_by_id;     // id -> 1 when decode(skip_special) drops it
  std::optional<tok::post_processor> post;
  tok::decoder_chain decoder;
  std::optional<token_id> bos, eos;
  std::int32_t id_limit = 0;

  void encode_into(std::string_view text, bool add_special_tokens, std::vector<token_id>& out) const;
  // The string decode() feeds the decoders for `id`, or nullopt for an id nothing defines.
  std::optional<std::string_view> decode_text(token_id id) const;
  bool skipped(token_id id, bool skip_special) const {
    return skip_special && id >= 0 && id < static_cast<token_id>(special_by_id.size()) && special_by_id[static_cast<std::size_t>(id)];
  }
};

struct stream_state {
  explicit stream_state(const tok::decoder_chain& chain) : run(chain) {}
  tok::decode_run run;
  std::size_t skip_bytes = 0;  // text of the context not to emit again
};

// Loads tokenizer.json text. `config_json` (optional) is tokenizer_config.json, used only for
// bos/eos when the post-processor does not name them.
std::shared_ptr<const tokenizer_impl> load_tokenizer(std::string_view json, std::string origin,
                                                     std::string_view config_json = {});

}  // namespace mii::detail

// A Hugging Face tokenizer.json, loaded once and shared (cheap to copy: it holds a shared_ptr to
// the immutable tables). Thread-safe for concurrent encode/decode.
//
//   auto tok = mii::tokenizer::from_file("/models/Mistral-7B-v0.1");   // dir or tokenizer.json
//   std::vector<std::int32_t> ids = tok.encode("Hello world");          // with BOS as configured
//   std::string text = tok.decode(ids, /*skip_special_tokens=*/true);
#pragma once
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mii {

using token_id = std::int32_t;

namespace detail {
struct tokenizer_impl;
struct stream_state;  // the decoder pipeline's state between pushes
}

class tokenizer {
 public:
  // `path` is a tokenizer.json file or a directory holding one. Throws mii::error naming the
  // file and the JSON field on anything it cannot load.
  static tokenizer from_file(const std::filesystem::path& path);
  // Parses tokenizer.json text already in memory; `origin` names it in error messages.
  static tokenizer from_json(std::string_view json, std::string origin = "<memory>");

  // Throws mii::error on invalid UTF-8 (naming the byte offset).
  std::vector<token_id> encode(std::string_view text, bool add_special_tokens = true) const;
  std::vector<std::vector<token_id>> encode_batch(std::span<const std::string> texts,
                                                  bool add_special_tokens = true) const;
  std::string decode(std::span<const token_id> ids, bool skip_special_tokens = false) const;
  std::string decode(std::initializer_list<token_id> ids, bool skip_special_tokens = false) const {
    return decode(std::span<const token_id>(ids.begin(), ids.size()), skip_special_tokens);
  }

  // Size of the id space: model vocab plus added tokens (max id + 1).
  std::int32_t vocab_size() const;
  std::optional<token_id> token_to_id(std::string_view token) const;
  // The raw vocabulary string of an id ("" when out of range).
  std::string_view id_to_token(token_id id) const;
  bool is_special(token_id id) const;
  // BOS/EOS as the post-processor and added tokens define them, when they do.
  std::optional<token_id> bos_id() const;
  std::optional<token_id> eos_id() const;

  // Incremental detokenization for streaming: push ids one at a time, get text deltas back.
  // Never emits half a UTF-8 character or a leading space the full decode would not produce;
  // the concatenation of all deltas plus flush() equals decode(all ids).
  class stream_decoder {
   public:
    stream_decoder(const stream_decoder& other);
    stream_decoder& operator=(const stream_decoder& other);
    stream_decoder(stream_decoder&&) noexcept;
    stream_decoder& operator=(stream_decoder&&) noexcept;
    ~stream_decoder();

    // Text newly made final by `id` (possibly empty).
    std::string push(token_id id);
    // Whatever is still held back (an incomplete character at the very end is emitted as the
    // full decode would render it). Ends the stream: a later push starts a new one.
    std::string flush();
    const std::vector<token_id>& ids() const { return ids_; }

   private:
    friend class tokenizer;
    stream_decoder(std::shared_ptr<const detail::tokenizer_impl> impl, bool skip_special,
                   std::vector<token_id> context);
    std::shared_ptr<const detail::tokenizer_impl> impl_;
    bool skip_special_;
    std::vector<token_id> ids_;
    // The decoders run incrementally (see src/tokenizer/decoder.hpp): each push feeds one token
    // through them and returns the text they have made final, so no re-decoding window is needed.
    std::unique_ptr<detail::stream_state> state_;
  };
  // `context`: ids already emitted before streaming starts (e.g. the prompt), used only so that
  // the first streamed token gets the spacing it has in the full text.
  stream_decoder make_stream_decoder(bool skip_special_tokens = true,
                                     std::vector<token_id> context = {}) const;

 private:
  explicit tokenizer(std::shared_ptr<const detail::tokenizer_impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const detail::tokenizer_impl> impl_;
};

}  // namespace mii

// The BPE model: vocabulary, merge ranks and the merge loop, with a per-thread word cache.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/hash_tables.hpp"
#include "tokenizer/json_reader.hpp"

namespace mii::detail::tok {

class bpe_model {
 public:
  // Reads the "model" object of tokenizer.json (type BPE). Throws mii::error naming the field.
  explicit bpe_model(const json_value& model);

  // Appends the ids of one pre-tokenized word.
  void tokenize(std::string_view word, std::vector<std::int32_t>& out) const;

  // Words arrive as raw bytes and each byte stands for its GPT-2 byte-level character: the model
  // then looks up byte strings directly instead of mapping every word to characters first (a
  // ByteLevel pre-tokenizer at the end of the chain can skip its mapping). Returns false, and
  // changes nothing, when the vocabulary cannot be used that way.
  bool enable_raw_bytes();

  // For models without a pre-tokenizer (SentencePiece-style, e.g. Llama-2): when the word
  // marker "\u2581" is a token and no token has it after another character, no merge can cross
  // the point before a marker that follows another character. Words are then cut there and the
  // pieces encoded separately (and cached) -- the same ids, much faster than one long merge.
  // Returns whether the condition holds (and the splitting is on).
  bool enable_marker_splitting();

  void disable_marker_splitting() { split_marker_.clear(); }
  bool marker_splitting() const { return !split_marker_.empty(); }
  // For the tests: BPE of one word without the cache, the whole-word shortcut or the marker
  // splitting, with the merge loop of choice.
  void tokenize_uncached(std::string_view word, bool force_heap, std::vector<std::int32_t>& out) const;

  std::optional<std::int32_t> token_to_id(std::string_view token) const;
  std::string_view id_to_token(std::int32_t id) const;
  // max id + 1 (the reference's get_vocab_size is the number of entries; for gap-free vocabs
  // they agree).
  std::int32_t id_limit() const { return static_cast<std::int32_t>(id_tokens_.size()); }
  std::size_t vocab_entries() const { return vocab_.size(); }

  // Merge algorithm switch point, exposed for the tests: words with at most this many symbols use
  // the quadratic scan, longer ones the priority queue. Both give the reference's result.
  static constexpr std::size_t scan_limit = 24;
  void merge_symbols(std::vector<std::int32_t>& symbols, bool force_heap = false) const;

 private:
  void tokenize_piece(std::string_view word, std::vector<std::int32_t>& out) const;
  void initial_symbols(std::string_view word, std::vector<std::int32_t>& symbols) const;
  void merge_by_scan(std::vector<std::int32_t>& symbols) const;
  void merge_by_heap(std::vector<std::int32_t>& symbols) const;

  std::string arena_;  // all token strings, back to back
  struct token_ref {
    std::uint32_t offset = 0, length = 0;
  };
  std::vector<token_ref> id_tokens_;  // id -> its string in arena_ (length 0 for unused ids)
  string_table vocab_;                // token string -> id
  pair_table merges_;

  bool raw_bytes_ = false;
  std::string raw_arena_;
  string_table raw_vocab_;  // byte string -> id, for the byte-level tokens
  std::array<std::int32_t, 256> byte_symbol_{};  // raw mode: the id of each single byte

  std::optional<std::int32_t> unk_id_;
  std::string unk_token_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::string prefix_;  // continuing_subword_prefix
  std::string suffix_;  // end_of_word_suffix
  std::array<std::int32_t, 256> fallback_ids_{};  // <0xXX> tokens, -1 when absent
  std::string split_marker_;     // empty: words are not cut (see enable_marker_splitting)
  bool duplicate_ids_ = false;  // some id is given to two vocab entries
  std::uint64_t cache_owner_;                     // identifies this model in the per-thread caches
};

}  // namespace mii::detail::tok

// Pre-tokenizers: cut (and sometimes rewrite) normalized text into the words the model encodes
// one by one. Pieces are byte ranges of a per-call work buffer, so cutting never copies.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/json_reader.hpp"
#include "tokenizer/text_matcher.hpp"

namespace mii::detail::tok {

struct piece {
  std::uint32_t begin, end;  // into pre_tokenize_state::buffer
  bool at_origin;            // starts at offset 0 of the original input (Metaspace "first")
};

struct pre_tokenize_state {
  std::string buffer;           // the text; rewriting steps append their output here
  std::vector<piece> pieces;    // current pieces, in order, never empty
  std::vector<piece> next;      // scratch for the step being applied
  std::vector<match_span> matches;
  std::string_view text(const piece& p) const { return std::string_view(buffer).substr(p.begin, p.end - p.begin); }
};

class pre_tokenizer {
 public:
  virtual ~pre_tokenizer() = default;
  virtual void apply(pre_tokenize_state& st) const = 0;
  // True for ByteLevel: its byte -> character mapping can be left to the model when it is the
  // last step (see bpe_model::raw_bytes).
  virtual bool is_byte_level() const { return false; }
  // Asks a trailing ByteLevel step to skip the mapping (the model consumes raw bytes).
  virtual void set_skip_byte_mapping(bool) {}
};

// Builds the pre-tokenizer described by `spec`. `byte_level_last` is set when the chain ends with
// a ByteLevel step.
std::unique_ptr<pre_tokenizer> make_pre_tokenizer(const json_value& spec);
// The last step of a chain (itself unless it is a Sequence).
pre_tokenizer* last_step(pre_tokenizer* p);

// The 256 printable characters GPT-2's byte-level BPE uses for bytes, as UTF-8.
struct byte_level_tables {
  char utf8[256][3];
  std::uint8_t length[256];
  // Code point -> byte, for code points < 0x144 (all stand-ins are below it); -1 if none.
  std::int16_t byte_of[0x144];
};
const byte_level_tables& byte_level();
void append_byte_level_chars(std::string& out, std::string_view bytes);

}  // namespace mii::detail::tok

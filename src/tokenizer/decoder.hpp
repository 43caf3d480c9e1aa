// Decoders: token strings -> text. Each decoder of tokenizer.json is a stage of a pipeline that
// consumes tokens incrementally (pieces of tokens, in fact: Fuse turns everything after it into
// one growing token) and emits text as soon as no later token can change it. decode() pushes all
// tokens and finishes; the stream decoder pushes one token at a time. Both therefore produce the
// same text by construction, which is what streaming needs ("deltas concatenate to the decode").
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/json_reader.hpp"

namespace mii::detail::tok {

class text_matcher;

struct decoder_step {
  enum class kind { byte_level, metaspace, byte_fallback, fuse, strip, replace, bpe_suffix } type;
  // metaspace: replacement and whether the first token loses it; strip: content, start, stop;
  // replace: matcher + content; bpe_suffix: suffix.
  char32_t ch = 0;
  bool strip_first = false;
  std::size_t start = 0, stop = 0;
  std::shared_ptr<const text_matcher> matcher;
  std::string content;
};

// A decoder pipeline description (immutable, shared).
class decoder_chain {
 public:
  decoder_chain() = default;  // no decoder: tokens are joined with single spaces
  explicit decoder_chain(const json_value& spec);
  const std::vector<decoder_step>& steps() const { return steps_; }
  bool join_with_spaces() const { return steps_.empty(); }

 private:
  void add(const json_value& spec);
  std::vector<decoder_step> steps_;
};

// One run of a decoder pipeline: push tokens, collect text.
class decode_run {
 public:
  explicit decode_run(const decoder_chain& chain);
  ~decode_run();
  decode_run(const decode_run&);
  decode_run& operator=(const decode_run&) = delete;
  void push(std::string_view token);
  void finish();
  // Text emitted so far (final: later tokens cannot change it).
  std::string& text() { return out_; }

  struct stage;

 private:
  std::vector<std::unique_ptr<stage>> stages_;
  std::string out_;
};

}  // namespace mii::detail::tok

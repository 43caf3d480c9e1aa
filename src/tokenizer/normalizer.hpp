// Normalizers: text -> text transformations applied before pre-tokenization (and to the text
// between added tokens). Offsets are not tracked: mii only needs the resulting ids.
#pragma once
#include <memory>
#include <string>
#include <string_view>

#include "tokenizer/json_reader.hpp"

namespace mii::detail::tok {

class normalizer {
 public:
  virtual ~normalizer() = default;
  // Returns false when the text is unchanged (out untouched), else writes the result to out.
  virtual bool apply(std::string_view in, std::string& out) const = 0;
};

class text_matcher;
// {"String": "..."} (a literal) or {"Regex": "..."} (Oniguruma syntax), as Replace and Split use.
std::unique_ptr<text_matcher> make_pattern_matcher(const json_value& pattern);

// Builds the normalizer described by `spec` (the "normalizer" object of tokenizer.json).
std::unique_ptr<normalizer> make_normalizer(const json_value& spec);

}  // namespace mii::detail::tok

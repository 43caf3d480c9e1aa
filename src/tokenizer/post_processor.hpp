// Post-processors: what encode(text, add_special_tokens=true) adds around the ids (BOS/EOS...).
// mii encodes single sequences, so every supported post-processor reduces to "these ids before,
// those ids after".
#pragma once
#include <cstdint>
#include <vector>

#include "tokenizer/json_reader.hpp"

namespace mii::detail::tok {

struct post_processor {
  std::vector<std::int32_t> prefix;
  std::vector<std::int32_t> suffix;
  void apply(std::vector<std::int32_t>& ids) const {
    if (!prefix.empty()) ids.insert(ids.begin(), prefix.begin(), prefix.end());
    ids.insert(ids.end(), suffix.begin(), suffix.end());
  }
};

// Reads "post_processor": TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing or a
// Sequence of them.
post_processor make_post_processor(const json_value& spec);

}  // namespace mii::detail::tok

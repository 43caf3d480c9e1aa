// Added tokens (tokenizer.json "added_tokens"): found in the text before anything else, with the
// reference's rules -- leftmost-longest match, `single_word`, `lstrip` / `rstrip`, and the
// `normalized` flag deciding whether they are looked for in the raw or the normalized text.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mii::detail::tok {

struct added_token {
  std::string content;
  std::int32_t id = -1;
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
};

// One piece of text: either an added token (id >= 0) or text to tokenize (id < 0).
struct text_split {
  std::uint32_t begin, end;
  std::int32_t id;
};

// A byte trie over the contents of a set of added tokens, searched leftmost-longest.
class added_token_matcher {
 public:
  // `patterns[i]` is what is searched for token index `token_index[i]` (the normalized content
  // for normalized tokens).
  void build(const std::vector<std::string>& patterns, const std::vector<std::uint32_t>& token_index);
  bool empty() const { return nodes_.size() <= 1; }
  // Splits `text` as the reference's AddedVocabulary::find_matches does.
  void split(std::string_view text, const std::vector<added_token>& tokens, std::vector<text_split>& out) const;

 private:
  struct node {
    std::int32_t token = -1;      // token index ending here
    std::uint32_t first_child = 0;  // children are contiguous: [first_child, first_child + child_count)
    std::uint16_t child_count = 0;
    unsigned char byte = 0;
  };
  std::vector<node> nodes_;
  bool first_byte_[256] = {};
};

}  // namespace mii::detail::tok

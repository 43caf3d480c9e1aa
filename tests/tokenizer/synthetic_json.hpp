// Builds small tokenizer.json documents for the unit tests.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace mii_test {

inline std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// A BPE model object: vocab in id order, merges as "a b" strings.
inline std::string bpe_json(const std::vector<std::string>& vocab, const std::vector<std::string>& merges,
                            const std::string& extra = "") {
  std::string v = "{";
  for (std::size_t i = 0; i < vocab.size(); ++i) v += (i ? ", " : "") + json_string(vocab[i]) + ": " + std::to_string(i);
  v += "}";
  std::string m = "[";
  for (std::size_t i = 0; i < merges.size(); ++i) m += (i ? ", " : "") + json_string(merges[i]);
  m += "]";
  return "{\"type\": \"BPE\", \"vocab\": " + v + ", \"merges\": " + m + (extra.empty() ? "" : ", " + extra) + "}";
}

struct tokenizer_json_parts {
  std::string model;
  std::string normalizer = "null";
  std::string pre_tokenizer = "null";
  std::string post_processor = "null";
  std::string decoder = "null";
  std::string added_tokens = "[]";
};

inline std::string tokenizer_json(const tokenizer_json_parts& p) {
  return "{\"version\": \"1.0\", \"truncation\": null, \"padding\": null, \"added_tokens\": " + p.added_tokens +
         ", \"normalizer\": " + p.normalizer + ", \"pre_tokenizer\": " + p.pre_tokenizer +
         ", \"post_processor\": " + p.post_processor + ", \"decoder\": " + p.decoder + ", \"model\": " + p.model + "}";
}

inline std::string added_json(int id, const std::string& content, bool special, const std::string& flags = "") {
  return "{\"id\": " + std::to_string(id) + ", \"content\": " + json_string(content) +
         ", \"special\": " + (special ? "true" : "false") + (flags.empty() ? "" : ", " + flags) + "}";
}

}  // namespace mii_test

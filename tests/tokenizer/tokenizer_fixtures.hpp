// Shared by the tokenizer tests: where the real tokenizer.json files, the corpus and the expected
// ids (made by the Hugging Face oracle) live, and loading them once per test run.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "mii/tokenizer/tokenizer.hpp"
#include "mini_json.hpp"

namespace mii_test {

inline const std::vector<std::string>& tokenizer_names() {
  static const std::vector<std::string> names{"llama2", "llama3", "qwen3", "gemma3"};
  return names;
}

inline std::filesystem::path fixture_dir() { return std::filesystem::path(MII_SOURCE_DIR) / "tests/fixtures/tokenizer"; }

// MII_TOKENIZER_EXPECTED_DIR points the tests at another oracle's output (e.g. the JS port's,
// written by make_expected_js.mjs) while the committed files are missing or being regenerated.
inline std::filesystem::path expected_dir() {
  if (const char* dir = std::getenv("MII_TOKENIZER_EXPECTED_DIR"); dir && *dir) return dir;
  return fixture_dir();
}

inline std::filesystem::path tokenizer_path(const std::string& name) {
  return std::filesystem::path(MII_TEST_CACHE_DIR) / "tokenizers" / name / "tokenizer.json";
}

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct corpus_item {
  int id;
  std::string kind, text;
};

inline const std::vector<corpus_item>& corpus() {
  static const std::vector<corpus_item> items = [] {
    std::vector<corpus_item> out;
    std::istringstream in(read_text(fixture_dir() / "corpus.jsonl"));
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      const json j = parse_json(line);
      out.push_back({static_cast<int>(j["id"].num), j["kind"].str, j["text"].str});
    }
    return out;
  }();
  return items;
}

struct expected_item {
  std::vector<std::int32_t> ids, ids_special;
  std::string decoded, decoded_skip;
};

struct expected_file {
  std::string oracle;  // e.g. "tokenizers 0.23.2"
  std::map<int, expected_item> by_id;
  std::map<int, std::string> oracle_of;  // id -> the oracle that answered for it
};

// Reads one expected_<name>.jsonl into `f`, keeping entries already there.
inline bool read_expected(const std::filesystem::path& path, expected_file& f) {
  if (!std::filesystem::exists(path)) return false;
  std::istringstream in(read_text(path));
  std::string line, oracle;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const json j = parse_json(line);
    if (j.has("oracle")) {
      oracle = j["oracle"].str + " " + (j.has("version") ? j["version"].str : std::string());
      if (f.oracle.empty()) f.oracle = oracle;
      continue;
    }
    const int id = static_cast<int>(j["id"].num);
    if (f.by_id.count(id)) continue;
    f.by_id[id] = expected_item{j["ids"].ints(), j["ids_special"].ints(), j["decoded"].str, j["decoded_skip"].str};
    f.oracle_of[id] = oracle;
  }
  return true;
}

// The oracle's answers for tokenizer `name`: expected_<name>.jsonl (the Rust library's, made by
// make_expected.py), and for corpus strings added after it was made, js/expected_<name>.jsonl
// (the JS port's, made by make_expected_js.mjs --first-id). nullptr when the first is missing.
inline const expected_file* expected(const std::string& name) {
  static std::map<std::string, std::unique_ptr<expected_file>> cache;
  if (auto it = cache.find(name); it != cache.end()) return it->second.get();
  auto f = std::make_unique<expected_file>();
  if (!read_expected(expected_dir() / ("expected_" + name + ".jsonl"), *f)) f.reset();
  else read_expected(fixture_dir() / "js" / ("expected_" + name + ".jsonl"), *f);
  return (cache[name] = std::move(f)).get();
}

inline const mii::tokenizer& real_tokenizer(const std::string& name) {
  static std::map<std::string, mii::tokenizer> cache;
  if (auto it = cache.find(name); it != cache.end()) return it->second;
  return cache.emplace(name, mii::tokenizer::from_file(tokenizer_path(name))).first->second;
}

}  // namespace mii_test

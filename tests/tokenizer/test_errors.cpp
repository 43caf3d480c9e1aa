// Malformed tokenizer.json files must fail to load with a mii::error that names the file, the
// JSON field and the offending value.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "mii/error.hpp"
#include "mii/tokenizer/tokenizer.hpp"
#include "synthetic_json.hpp"

using namespace mii_test;

namespace {

struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    path = std::filesystem::temp_directory_path() / ("mii_tokenizer_errors_" + std::to_string(::getpid()));
    std::filesystem::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

// Writes `json` to <tmp>/<name>/tokenizer.json and returns the message of the error loading it
// throws (or "<loaded>" when it loads).
std::string load_error(const temp_dir& tmp, const std::string& name, const std::string& json, std::string& file) {
  const auto dir = tmp.path / name;
  std::filesystem::create_directories(dir);
  file = (dir / "tokenizer.json").string();
  std::ofstream(file, std::ios::binary) << json;
  try {
    mii::tokenizer::from_file(dir);
  } catch (const mii::error& e) {
    return e.what();
  }
  return "<loaded>";
}

tokenizer_json_parts valid_parts() {
  tokenizer_json_parts p;
  p.model = bpe_json({"a", "b", "ab", "c"}, {"a b"});
  return p;
}

}  // namespace

TEST_CASE("a valid small tokenizer.json loads", "[tokenizer][errors]") {
  temp_dir tmp;
  std::string file;
  CHECK(load_error(tmp, "valid", tokenizer_json(valid_parts()), file) == "<loaded>");
}

TEST_CASE("malformed tokenizer.json files give clear errors", "[tokenizer][errors]") {
  temp_dir tmp;
  struct bad_case {
    std::string name, json;
    std::vector<std::string> expected;  // substrings the message must contain
  };
  std::vector<bad_case> cases;
  const auto with = [](auto change) {
    tokenizer_json_parts p = valid_parts();
    change(p);
    return tokenizer_json(p);
  };
  cases.push_back({"bad_json", "{\"model\": {\"type\": \"BPE\", ", {"not valid JSON"}});
  cases.push_back({"not_object", "[1, 2]", {"top level", "array"}});
  cases.push_back({"missing_model", "{\"version\": \"1.0\", \"added_tokens\": []}", {"missing required field 'model'"}});
  cases.push_back({"unknown_model_type",
                   with([](auto& p) { p.model = "{\"type\": \"Unigram\", \"vocab\": [[\"a\", 0.0]]}"; }),
                   {"field 'model.type'", "Unigram"}});
  cases.push_back({"unknown_pre_tokenizer",
                   with([](auto& p) {
                     p.pre_tokenizer = "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Digits\"}, {\"type\": \"Shout\"}]}";
                   }),
                   {"field 'pre_tokenizer.pretokenizers[1].type'", "Shout"}});
  cases.push_back({"unknown_normalizer", with([](auto& p) { p.normalizer = "{\"type\": \"Precompiled\"}"; }),
                   {"field 'normalizer.type'", "Precompiled"}});
  cases.push_back({"unknown_decoder", with([](auto& p) { p.decoder = "{\"type\": \"CTC\"}"; }),
                   {"field 'decoder.type'", "CTC"}});
  cases.push_back({"merge_unknown_token", with([](auto& p) { p.model = bpe_json({"a", "b", "ab"}, {"a b", "a zz"}); }),
                   {"field 'model.merges[1]'", "\"zz\"", "not in model.vocab"}});
  cases.push_back({"merge_result_unknown", with([](auto& p) { p.model = bpe_json({"a", "b"}, {"a b"}); }),
                   {"field 'model.merges[0]'", "\"ab\""}});
  cases.push_back({"merge_wrong_shape", with([](auto& p) { p.model = bpe_json({"a", "b", "ab"}, {"a b c"}); }),
                   {"field 'model.merges[0]'", "a b c"}});
  cases.push_back({"vocab_id_string",
                   with([](auto& p) { p.model = "{\"type\": \"BPE\", \"vocab\": {\"a\": \"zero\"}, \"merges\": []}"; }),
                   {"field 'model.vocab.a'", "\"zero\""}});
  cases.push_back({"merges_not_array",
                   with([](auto& p) { p.model = "{\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": 7}"; }),
                   {"field 'model.merges'", "expected an array", "7"}});
  cases.push_back({"missing_vocab", with([](auto& p) { p.model = "{\"type\": \"BPE\", \"merges\": []}"; }),
                   {"field 'model'", "missing required field 'vocab'"}});
  cases.push_back({"added_token_flag_type",
                   with([](auto& p) { p.added_tokens = "[{\"id\": 9, \"content\": \"<x>\", \"special\": true, \"lstrip\": \"yes\"}]"; }),
                   {"field 'added_tokens[0].lstrip'", "\"yes\""}});
  cases.push_back({"added_token_no_content", with([](auto& p) { p.added_tokens = "[{\"id\": 9, \"special\": true}]"; }),
                   {"field 'added_tokens[0]'", "content"}});
  cases.push_back({"bad_regex",
                   with([](auto& p) {
                     p.pre_tokenizer = "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"(ab\"}, \"behavior\": \"Isolated\", \"invert\": false}";
                   }),
                   {"field 'pre_tokenizer.pattern.Regex'", "(ab"}});
  cases.push_back({"bad_behavior",
                   with([](auto& p) {
                     p.pre_tokenizer = "{\"type\": \"Split\", \"pattern\": {\"String\": \"-\"}, \"behavior\": \"Sideways\", \"invert\": false}";
                   }),
                   {"field 'pre_tokenizer.behavior'", "Sideways"}});
  cases.push_back({"template_unknown_special",
                   with([](auto& p) {
                     p.post_processor = "{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\"}}, "
                                        "{\"Sequence\": {\"id\": \"A\"}}], \"special_tokens\": {}}";
                   }),
                   {"field 'post_processor.single[0].SpecialToken'", "<s>"}});
  cases.push_back({"unk_not_in_vocab",
                   with([](auto& p) { p.model = bpe_json({"a"}, {}, "\"unk_token\": \"<unk>\""); }),
                   {"field 'model.unk_token'", "<unk>"}});
  cases.push_back({"vocab_id_huge",
                   with([](auto& p) { p.model = "{\"type\": \"BPE\", \"vocab\": {\"a\": 2000000000}, \"merges\": []}"; }),
                   {"field 'model.vocab.a'", "2000000000"}});
  cases.push_back({"template_id_outside_vocab",
                   with([](auto& p) {
                     p.post_processor = "{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\"}}, "
                                        "{\"Sequence\": {\"id\": \"A\"}}], \"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [77]}}}";
                   }),
                   {"field 'post_processor'", "77", "outside the vocabulary"}});
  std::string bad_version = tokenizer_json(valid_parts());
  bad_version.replace(bad_version.find("\"1.0\""), 5, "\"2.0\"");
  cases.push_back({"bad_version", bad_version, {"field 'version'", "2.0"}});

  for (const bad_case& c : cases) {
    DYNAMIC_SECTION(c.name) {
      std::string file;
      const std::string message = load_error(tmp, c.name, c.json, file);
      INFO("message: " << message);
      CHECK(message.find(file) != std::string::npos);  // names the file
      for (const auto& part : c.expected) CHECK(message.find(part) != std::string::npos);
    }
  }
}

TEST_CASE("missing files and directories are named", "[tokenizer][errors]") {
  temp_dir tmp;
  const auto empty_dir = tmp.path / "empty";
  std::filesystem::create_directories(empty_dir);
  REQUIRE_THROWS_WITH(mii::tokenizer::from_file(empty_dir), Catch::Contains(empty_dir.string()) && Catch::Contains("no tokenizer.json"));
  REQUIRE_THROWS_WITH(mii::tokenizer::from_file(tmp.path / "nope.json"), Catch::Contains("nope.json"));
  REQUIRE_THROWS_WITH(mii::tokenizer::from_json("{}", "my-origin"), Catch::Contains("my-origin") && Catch::Contains("model"));
}

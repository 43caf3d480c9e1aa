// What limits a request (issue 17, rows 1, 2 and 10): max_length and max_new_tokens both apply, as
// in DeepSpeed-MII's Request.stop_generation; stop strings need a tokenizer; a prompt whose bytes
// alone prove it too long is refused before it is tokenized.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include <mii/models/llama.hpp>
#include <mii/pipeline.hpp>

#include "expect_error.hpp"
#include "fixtures.hpp"
#include "pipeline_support.hpp"
#include "test_files.hpp"

using Catch::Matchers::Contains;
using mii::generation_finish_reason;

namespace {

mii::generation_pipeline& demo() {
  static mii::generation_pipeline pipe = mii::pipeline(mii::test::fixture_dir("demo-llama"), mii::test::host_config(512));
  return pipe;
}

}  // namespace

TEST_CASE("max_length and max_new_tokens: whichever comes first ends generation", "[pipeline][limits]") {
  const std::vector<mii::token_id> four{1, 300, 301, 302};
  mii::generate_params p;
  p.do_sample = false;
  p.ignore_eos = true;
  p.max_length = 8;
  p.max_new_tokens = 12;
  auto r = demo().generate_ids({four}, p).at(0);
  CHECK(r.generated_length == 4);  // 4 + 4 = max_length
  CHECK(r.finish_reason == generation_finish_reason::length);
  p.max_length = 100;
  p.max_new_tokens = 5;
  CHECK(demo().generate_ids({four}, p).at(0).generated_length == 5);
  p.max_new_tokens.reset();  // max_length alone
  p.max_length = 10;
  CHECK(demo().generate_ids({four}, p).at(0).generated_length == 6);
}

TEST_CASE("stop strings without a tokenizer are refused, not ignored", "[pipeline][limits]") {
  mii::test::temp_dir dir("no-tokenizer");
  for (const char* f : {"config.json", "generation_config.json", "model.safetensors"})
    std::filesystem::copy_file(mii::test::fixture_dir("demo-llama") / f, dir.path() / f);
  auto pipe = mii::pipeline<mii::models::llama>(dir.path(), mii::test::host_config(256));
  mii::generate_params p;
  p.do_sample = false;
  p.max_new_tokens = 4;
  CHECK(pipe.generate_ids({{1, 300, 301}}, p).at(0).generated_length >= 1);  // ids alone still work
  p.stop = {"the"};
  const auto r = pipe.generate_ids({{1, 300, 301}}, p).at(0);
  CHECK(r.finish_reason == generation_finish_reason::error);
  CHECK_THAT(r.error, Contains("generate_params.stop") && Contains("tokenizer.json"));
  CHECK_THAT(MII_ERROR_MESSAGE(pipe.submit_ids({1, 300, 301}, p)), Contains("generate_params.stop"));
}

TEST_CASE("a prompt too long by its bytes alone is refused before tokenizing", "[pipeline][limits]") {
  const std::string huge(100u << 20, 'a');  // 100 MB
  const auto r = demo()(std::vector<std::string>{huge}, mii::generate_params{}).at(0);
  CHECK(r.finish_reason == generation_finish_reason::error);
  // Counted in bytes: the tokenizer never saw it (tokenizing it took 16 s and 2 GB).
  CHECK_THAT(r.error, Contains("104857600 bytes") && Contains("context is 2048 tokens"));
  // A prompt just long enough in tokens is still measured by the tokenizer (the message counts tokens).
  std::string long_words;
  for (int i = 0; i < 3000; ++i) long_words += " the";
  CHECK_THAT(demo()(std::vector<std::string>{long_words}, mii::generate_params{}).at(0).error, Contains("tokens"));
}

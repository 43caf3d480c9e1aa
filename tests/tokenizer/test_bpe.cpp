// The speed-ups inside the BPE model must not change a single id: the quadratic merge loop for
// short words equals the priority-queue loop, and cutting SentencePiece words before each "▁"
// (marker splitting, see bpe.hpp) equals encoding the whole word.
#include <catch2/catch.hpp>

#include <sstream>

#include "tokenizer/tokenizer_impl.hpp"
#include "tokenizer_fixtures.hpp"

using namespace mii_test;

namespace {

std::shared_ptr<const mii::detail::tokenizer_impl> load_impl(const std::string& name) {
  const auto path = tokenizer_path(name);
  return mii::detail::load_tokenizer(read_text(path), path.string());
}

std::vector<std::string> words_of_corpus() {
  std::vector<std::string> words;
  for (const auto& item : corpus()) {
    std::istringstream in(item.text);
    std::string w;
    while (in >> w) words.push_back(w), words.push_back(" " + w);
  }
  return words;
}

}  // namespace

TEST_CASE("short-word merge loop equals the priority-queue loop", "[tokenizer][bpe]") {
  const auto words = words_of_corpus();
  for (const std::string name : {"llama2", "llama3", "qwen3"}) {
    const auto impl = load_impl(name);
    std::size_t compared = 0, different = 0;
    std::vector<std::int32_t> scan, heap;
    for (const auto& w : words) {
      if (w.size() > mii::detail::tok::bpe_model::scan_limit) continue;
      scan.clear();
      heap.clear();
      impl->model->tokenize_uncached(w, false, scan);
      impl->model->tokenize_uncached(w, true, heap);
      ++compared;
      if (scan != heap) ++different;
    }
    INFO(name << ": compared " << compared << " words");
    CHECK(compared > 5000);
    CHECK(different == 0);
  }
}

TEST_CASE("marker splitting gives the ids of whole-word BPE", "[tokenizer][bpe]") {
  const auto split = load_impl("llama2");
  const auto whole = load_impl("llama2");
  REQUIRE(split->model->marker_splitting());  // Llama-2's vocabulary allows it
  whole->model->disable_marker_splitting();
  REQUIRE_FALSE(whole->model->marker_splitting());
  std::vector<std::string> texts;
  std::string long_text;
  for (const auto& item : corpus()) {
    texts.push_back(item.text);
    long_text += item.text;
    if (long_text.size() > 4000) texts.push_back(std::move(long_text)), long_text.clear();
  }
  std::size_t different = 0;
  std::vector<std::int32_t> a, b;
  for (const auto& t : texts) {
    a.clear();
    b.clear();
    split->encode_into(t, false, a);
    whole->encode_into(t, false, b);
    if (a != b) ++different;
  }
  CHECK(different == 0);
}

TEST_CASE("real tokenizers: vocabulary, special tokens, bos and eos", "[tokenizer][real]") {
  const auto& llama2 = real_tokenizer("llama2");
  CHECK(llama2.vocab_size() == 32000);
  CHECK(llama2.bos_id() == 1);
  CHECK(llama2.eos_id() == 2);
  CHECK(llama2.encode("Hello", true).front() == 1);
  const auto& llama3 = real_tokenizer("llama3");
  CHECK(llama3.vocab_size() == 128256);
  CHECK(llama3.token_to_id("<|begin_of_text|>") == 128000);
  CHECK(llama3.id_to_token(128000) == "<|begin_of_text|>");
  CHECK(llama3.is_special(128009));
  CHECK_FALSE(llama3.is_special(1000));
  CHECK(llama3.bos_id() == 128000);  // from tokenizer_config.json (the post-processor adds none)
  CHECK(llama3.eos_id() == 128001);
  const auto& qwen3 = real_tokenizer("qwen3");
  CHECK(qwen3.vocab_size() == 151669);
  CHECK_FALSE(qwen3.bos_id().has_value());
  CHECK(qwen3.eos_id() == 151645);  // <|im_end|>
  CHECK(qwen3.token_to_id("<think>") == 151667);
  CHECK_FALSE(qwen3.is_special(151667));  // <think> is an added token but not special
}

TEST_CASE("streaming byte-level tokens never splits a character", "[tokenizer][stream]") {
  const auto& tok = real_tokenizer("llama3");
  // Rare characters are spelled out in byte tokens: each delta must be whole UTF-8.
  const std::string text = "x \xF0\x93\x80\x80\xF0\x93\x80\x81 \xE1\xBC\x80\xE1\xBC\x81 done";
  const auto ids = tok.encode(text, false);
  auto s = tok.make_stream_decoder(true);
  std::string all;
  std::size_t empty_pushes = 0;
  for (auto id : ids) {
    const std::string d = s.push(id);
    if (d.empty()) ++empty_pushes;
    for (std::size_t i = 0; i < d.size();) {  // well-formed UTF-8, character by character
      const auto b = static_cast<unsigned char>(d[i]);
      const std::size_t n = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
      REQUIRE(i + n <= d.size());
      i += n;
    }
    all += d;
  }
  all += s.flush();
  CHECK(all == text);
  CHECK(empty_pushes > 0);  // some bytes had to wait for the rest of their character
}

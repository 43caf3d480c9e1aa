// Regression tests for what fuzzing and the soak found (docs/reliability.md lists each): bad input
// that used to be accepted, crash, or give a wrong result, and calls that ended early leaving the
// engine unusable.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

#include <mii/backend/host/host_backend.hpp>
#include <mii/io/hf_config.hpp>
#include <mii/io/safetensors.hpp>
#include <mii/models/llama.hpp>
#include <mii/parallel/single.hpp>
#include <mii/runtime/engine.hpp>

#include "expect_error.hpp"
#include "fixtures.hpp"
#include "test_files.hpp"

using Catch::Matchers::Contains;
namespace io = mii::io;

namespace {

using engine_t = mii::runtime::engine<mii::models::llama, mii::backend::host, mii::parallel::single>;

mii::model_config small_config() {
  mii::model_config c;
  c.backend = "host";
  c.host_threads = 1;
  c.kv_block_size = 4;
  c.max_length = 64;
  c.kv_cache_blocks = 64;
  c.show_progress = false;
  return c;
}

engine_t& fixture_engine() {
  static engine_t e(mii::test::fixture_dir("llama2"), small_config());
  return e;
}

std::vector<mii::token_id> prompt_ids() { return fixture_engine().tok().encode("DeepSpeed is"); }

mii::generate_params seeded(std::uint64_t seed, std::int64_t new_tokens = 12) {
  mii::generate_params p;
  p.do_sample = true;
  p.top_p = 1.0;
  p.seed = seed;
  p.max_new_tokens = new_tokens;
  p.ignore_eos = true;
  return p;
}

std::vector<mii::token_id> tokens_of(const mii::generate_params& p) {
  auto out = fixture_engine().generate_ids(std::vector<std::vector<mii::token_id>>{prompt_ids()}, p);
  REQUIRE(out.at(0).finish_reason != mii::generation_finish_reason::error);
  return out[0].token_ids;
}

// A safetensors file from a header written by hand and `data_bytes` zero bytes.
std::string safetensors_bytes(const std::string& header, std::size_t data_bytes) {
  std::string out(8, '\0');
  const std::uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + std::string(data_bytes, '\0');
}

const char* const small_llama_config = R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
  "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_hidden_layers": 2,
  "vocab_size": 512 CHANGE})";

std::string config_with(std::string_view change) {
  return mii::test::replace_once(small_llama_config, " CHANGE", std::string(change));
}

}  // namespace

TEST_CASE("safetensors: a tensor named twice in the header is refused", "[regression][io]") {
  // Found by fuzz_safetensors: JSON keys may repeat (here spelled with a \u escape); lookups then
  // returned either entry.
  mii::test::temp_dir dir("dup");
  const auto file = dir / "model.safetensors";
  mii::test::write_text(file, safetensors_bytes(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                                R"("\u0077":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                                8));
  CHECK_THAT(MII_ERROR_MESSAGE(io::safetensors_file::open(file)),
             Contains(file.string()) && Contains("tensor 'w' is listed twice"));
}

TEST_CASE("config.json: sizes that do not fit the runtime's 32-bit ints are refused", "[regression][io][config]") {
  // Found by fuzz_hf_config: head_dim 2^62 reached an int conversion in model::resolve_shape
  // (undefined behaviour); a negative head_dim was accepted.
  CHECK_THAT(MII_ERROR_MESSAGE(io::parse_hf_config(config_with(R"(, "head_dim": 4611686018427387904)"), "c.json")),
             Contains("c.json") && Contains("'head_dim'") && Contains("more than mii supports"));
  CHECK_THAT(MII_ERROR_MESSAGE(io::parse_hf_config(config_with(R"(, "head_dim": -16)"), "c.json")),
             Contains("'head_dim'") && Contains("positive"));
  CHECK_THAT(MII_ERROR_MESSAGE(io::parse_hf_config(config_with(R"(, "max_position_embeddings": 4294967296)"), "c.json")),
             Contains("'max_position_embeddings'"));
  CHECK_THAT(MII_ERROR_MESSAGE(io::parse_hf_config(config_with(R"(, "max_position_embeddings": 1e300)"), "c.json")),
             Contains("'max_position_embeddings'") && Contains("integer"));
  CHECK(io::parse_hf_config(config_with(R"(, "head_dim": 16.0)"), "c.json").head_dim == 16);  // exact doubles still read
}

TEST_CASE("config.json: rope settings that make infinite or NaN frequencies are refused", "[regression][io][config]") {
  CHECK_THAT(MII_ERROR_MESSAGE(io::parse_hf_config(config_with(R"(, "rope_theta": 0)"), "c.json")),
             Contains("'rope_theta'") && Contains("positive"));
  CHECK_THAT(MII_ERROR_MESSAGE(io::parse_hf_config(
                 config_with(R"(, "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0,
                                "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})"),
                 "c.json")),
             Contains("'rope_scaling.high_freq_factor'") && Contains("greater than low_freq_factor"));
  CHECK_THAT(MII_ERROR_MESSAGE(io::parse_hf_config(
                 config_with(R"(, "rope_parameters": {"rope_type": "default", "rope_theta": -1.0})"), "c.json")),
             Contains("'rope_parameters.rope_theta'"));
}

TEST_CASE("model_config.kv_cache_blocks past 32 bits is refused, not wrapped", "[regression][runtime]") {
  // 2^32 + 8 used to become a cache of 8 blocks.
  mii::model_config c = small_config();
  c.kv_cache_blocks = (std::int64_t(1) << 32) + 8;
  CHECK_THAT(MII_ERROR_MESSAGE(engine_t(mii::test::fixture_dir("llama2"), c)), Contains("kv_cache_blocks"));
}

TEST_CASE("serve(): bad submissions get error responses, wherever they are in line", "[regression][runtime]") {
  // Found by fuzz_generate_params: a failed request at the front of the live list was collected
  // through a null params pointer (undefined behaviour), and invalid parameters threw out of
  // serve(), dropping every other request in flight.
  engine_t& e = fixture_engine();
  mii::generate_params good = seeded(5, 6), invalid;
  invalid.top_p = 0.0;
  const std::vector<mii::token_id> too_long(100, 17), ok = prompt_ids();
  std::vector<std::optional<mii::response>> got(4);
  bool submitted = false;
  e.serve(
      [&](std::vector<mii::serve_request>& in) {
        if (submitted) return;
        in.push_back({0, too_long, &good});
        in.push_back({1, ok, &invalid});
        in.push_back({2, {}, &good});
        in.push_back({3, ok, &good});
        submitted = true;
      },
      [&](std::size_t id, mii::response r) { got.at(id) = std::move(r); },
      [&] { return !submitted; });
  for (int i = 0; i < 3; ++i) {
    INFO("request " << i);
    REQUIRE(got[std::size_t(i)]);
    CHECK(got[std::size_t(i)]->finish_reason == mii::generation_finish_reason::error);
    CHECK(!got[std::size_t(i)]->error.empty());
  }
  CHECK_THAT(got[1]->error, Contains("top_p"));
  REQUIRE(got[3]);
  CHECK(got[3]->token_ids == tokens_of(good));
  CHECK(e.sched().blocks().used_count() == 0);
}

TEST_CASE("a stream callback that throws ends its request and leaves the engine clean", "[regression][runtime]") {
  // It used to unwind the whole call (and, on a server, every request in flight). Now the step
  // completes, the request whose callback threw ends with an error naming the exception before
  // the next step, its KV blocks are freed, and the other requests run to the end.
  engine_t& e = fixture_engine();
  const auto before = tokens_of(seeded(11));
  mii::generate_params p = seeded(11);
  int events = 0;
  p.stream = [&](const mii::stream_event& ev) {
    if (ev.prompt_index == 1 && ++events == 3) throw std::runtime_error("client went away");
  };
  const std::vector<std::string> prompts{"DeepSpeed is", "Seattle is", "The quick brown fox"};
  const auto out = e.generate(prompts, p);
  REQUIRE(out.size() == 3);
  CHECK(out[1].finish_reason == mii::generation_finish_reason::error);
  CHECK_THAT(out[1].error, Contains("generate_params.stream threw: client went away"));
  CHECK(out[0].finish_reason != mii::generation_finish_reason::error);
  CHECK(out[2].finish_reason != mii::generation_finish_reason::error);
  CHECK(e.sched().blocks().used_count() == 0);
  CHECK(e.sched().idle());
  CHECK(tokens_of(seeded(11)) == before);  // and the next call is unaffected
}

TEST_CASE("sampling parameters at the edges of their types", "[regression][runtime]") {
  // A temperature whose float is tiny (or denormal) made logit / temperature overflow to inf and
  // the probabilities NaN, which sampled the least likely candidate; such temperatures sample
  // greedily. top_k above 2^31 wrapped to a small int32 (2^32 + 1 became top-1).
  mii::generate_params greedy;
  greedy.do_sample = false;
  greedy.max_new_tokens = 12;
  greedy.ignore_eos = true;
  const auto greedy_tokens = tokens_of(greedy);
  for (double t : {1e-30, 1e-45, 1e-300}) {
    mii::generate_params p = seeded(3);
    p.temperature = t;
    INFO("temperature " << t);
    CHECK(tokens_of(p) == greedy_tokens);
  }
  mii::generate_params all = seeded(7), huge_k = seeded(7);
  huge_k.top_k = (std::int64_t(1) << 32) + 1;
  CHECK(tokens_of(huge_k) == tokens_of(all));
  mii::generate_params hot = seeded(9);
  hot.temperature = 1e300;  // valid: finite; the float the sampler uses saturates
  for (auto id : tokens_of(hot)) CHECK((id >= 0 && id < fixture_engine().shape().vocab));
}

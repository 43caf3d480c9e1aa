// model_config validation and architecture dispatch: every bad setting is a mii::error naming the
// field and its value, raised while the pipeline is built.
#include <catch2/catch.hpp>

#include <mii/pipeline.hpp>

#include "expect_error.hpp"
#include "fixtures.hpp"
#include "pipeline_support.hpp"
#include "test_files.hpp"

using Catch::Matchers::Contains;

namespace {
std::string load_error(const mii::model_config& cfg) {
  return MII_ERROR_MESSAGE(mii::pipeline(mii::test::fixture_dir("demo-llama"), cfg));
}
}  // namespace

TEST_CASE("model_config: invalid settings name the field and value", "[pipeline][config]") {
  auto cfg = mii::test::host_config();
  SECTION("kv_cache_memory_fraction") {
    cfg.kv_cache_blocks.reset();
    cfg.kv_cache_memory_fraction = 0;
    CHECK_THAT(load_error(cfg), Contains("model_config.kv_cache_memory_fraction") && Contains("got 0"));
    cfg.kv_cache_memory_fraction = 1.5;
    CHECK_THAT(load_error(cfg), Contains("model_config.kv_cache_memory_fraction") && Contains("1.5"));
  }
  SECTION("kv_block_size") {
    cfg.kv_block_size = 0;
    CHECK_THAT(load_error(cfg), Contains("model_config.kv_block_size") && Contains("got 0"));
  }
  SECTION("kv_cache_blocks") {
    cfg.kv_cache_blocks = 0;
    CHECK_THAT(load_error(cfg), Contains("model_config.kv_cache_blocks") && Contains("got 0"));
    cfg.kv_cache_blocks = 10;  // 160 tokens, the model's context is 2048
    CHECK_THAT(load_error(cfg), Contains("10 blocks of 16") && Contains("2048") && Contains("max_length"));
  }
  SECTION("dtype that the backend does not compute in") {
    cfg.dtype = "fp16";
    CHECK_THAT(load_error(cfg), Contains("model_config.dtype") && Contains("\"fp16\"") && Contains("F32"));
    cfg.dtype = "bf16";
    CHECK_THAT(load_error(cfg), Contains("\"bf16\""));
    cfg.dtype = "float64";
    CHECK_THAT(load_error(cfg), Contains("\"float64\""));
    cfg.dtype = "fp32";
    CHECK_NOTHROW(mii::pipeline(mii::test::fixture_dir("demo-llama"), cfg));
  }
  SECTION("tensor_parallel with the single-rank communicator") {
    cfg.tensor_parallel = 2;
    CHECK_THAT(load_error(cfg), Contains("model_config.tensor_parallel is 2") && Contains("single-rank"));
  }
  SECTION("backend") {
    cfg.backend = "tpu";
    CHECK_THAT(load_error(cfg), Contains("model_config.backend") && Contains("\"tpu\""));
#if !MII_WITH_CUDA
    cfg.backend = "cuda";
    CHECK_THAT(load_error(cfg), Contains("model_config.backend") && Contains("without the CUDA backend"));
#endif
  }
  SECTION("max_length and max_context") {
    cfg.max_length = 1;
    CHECK_THAT(load_error(cfg), Contains("model_config.max_length") && Contains("got 1"));
    cfg.max_length = 4096;  // past max_position_embeddings
    CHECK_THAT(load_error(cfg), Contains("model_config.max_length is 4096") && Contains("2048"));
    cfg.max_length.reset();
    cfg.max_context = 0;
    CHECK_THAT(load_error(cfg), Contains("model_config.max_context") && Contains("got 0"));
  }
  SECTION("scheduler budgets") {
    cfg.max_ragged_batch_size = 0;
    CHECK_THAT(load_error(cfg), Contains("model_config.max_ragged_batch_size") && Contains("got 0"));
    cfg.max_ragged_batch_size = 768;
    cfg.max_ragged_sequence_count = 0;
    CHECK_THAT(load_error(cfg), Contains("model_config.max_ragged_sequence_count") && Contains("got 0"));
  }
  SECTION("tracked sequences") {
    cfg.max_tracked_sequences = 0;
    CHECK_THAT(load_error(cfg), Contains("model_config.max_tracked_sequences") && Contains("got 0"));
  }
  SECTION("a tokenizer path that does not exist") {
    cfg.tokenizer = "/nonexistent/tokenizer.json";
    CHECK_THAT(load_error(cfg), Contains("/nonexistent/tokenizer.json"));
  }
}

TEST_CASE("model_config: a smaller max_length limits every request", "[pipeline][config]") {
  auto cfg = mii::test::host_config(16);  // 256 tokens: enough once max_length is 200
  cfg.max_length = 200;
  auto pipe = mii::pipeline(mii::test::fixture_dir("demo-llama"), cfg);
  mii::generate_params p;
  p.do_sample = false;
  p.ignore_eos = true;
  p.max_new_tokens = 500;
  const auto r = pipe("DeepSpeed is", p);
  CHECK(r.prompt_length + r.generated_length == 200);
  CHECK(r.finish_reason == mii::generation_finish_reason::length);
}

TEST_CASE("mii::pipeline(dir) dispatches on config.json and lists what it knows", "[pipeline][config]") {
  const auto known = mii::builtin_architectures();
  for (std::string_view name : {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "MixtralForCausalLM",
                                "Phi3ForCausalLM", "FalconForCausalLM", "OPTForCausalLM", "PhiForCausalLM",
                                "Gemma2ForCausalLM", "Gemma3ForCausalLM", "Qwen3ForCausalLM", "Qwen3MoeForCausalLM",
                                "Qwen2MoeForCausalLM"})
    CHECK(std::find(known.begin(), known.end(), name) != known.end());
  auto pipe = mii::pipeline(mii::test::fixture_dir("mistral"), mii::test::host_config());
  CHECK(pipe.model_name() == "mii::models::mistral");

  mii::test::temp_dir dir("arch");
  mii::test::copy_dir(mii::test::fixture_dir("demo-llama"), dir.path());
  const auto config = dir / "config.json";
  std::string text = mii::test::replace_once(mii::test::read_text(config), "\"LlamaForCausalLM\"", "\"MambaForCausalLM\"");
  mii::test::write_text(config, mii::test::replace_once(text, "\"model_type\": \"llama\"", "\"model_type\": \"mamba\""));
  const auto msg = MII_ERROR_MESSAGE(mii::pipeline(dir.path(), mii::test::host_config()));
  CHECK_THAT(msg, Contains(config.string()) && Contains("'architectures'") && Contains("MambaForCausalLM") &&
                      Contains("'model_type' is \"mamba\""));
  for (auto name : known) CHECK_THAT(msg, Contains(std::string(name)));
}

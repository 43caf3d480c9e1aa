// A fixture copied to a temp directory and broken in one place: loading it must fail with a
// mii::error that names the tensor or field and both the value found and the value expected.
// Loads go through the registry (mii::pipeline(dir)) and a typed pipeline (mii::pipeline<llama>).
#include <catch2/catch.hpp>

#include <mii/io/safetensors.hpp>
#include <mii/pipeline.hpp>

#include "expect_error.hpp"
#include "fixtures.hpp"
#include "models/instantiations.hpp"  // the registry's pipelines are compiled in libmii
#include "test_files.hpp"

using Catch::Matchers::Contains;
namespace fs = std::filesystem;
namespace io = mii::io;

namespace {

mii::model_config host_config() {
  mii::model_config c;
  c.backend = "host";
  c.show_progress = false;
  c.kv_block_size = 16;
  c.kv_cache_blocks = 512;
  c.host_threads = 1;
  return c;
}

// A copy of the llama2 fixture whose files the test may edit.
struct broken_copy {
  mii::test::temp_dir dir{"badmodel"};
  broken_copy() { mii::test::copy_dir(mii::test::fixture_dir("llama2"), dir.path()); }
  fs::path config() const { return dir / "config.json"; }
  void edit_config(std::string_view from, std::string_view to) const {
    mii::test::write_text(config(), mii::test::replace_once(mii::test::read_text(config()), from, to));
  }
  // Rewrites model.safetensors from the fixture's tensors, with `name` dropped (new_shape empty)
  // or given `new_shape` (and the leading bytes of its data).
  void rewrite_weights(const std::string& name, std::vector<std::int64_t> new_shape) const {
    const auto original = io::safetensors_file::open(mii::test::fixture_dir("llama2") / "model.safetensors");
    std::vector<io::tensor_to_write> out;
    bool found = false;
    for (const auto& t : original.tensors()) {
      if (t.name != name) {
        out.push_back({t.name, t.type, t.shape, t.bytes});
        continue;
      }
      found = true;
      if (new_shape.empty()) continue;
      std::int64_t n = 1;
      for (auto d : new_shape) n *= d;
      REQUIRE(std::size_t(n) * mii::dtype_size(t.type) <= t.bytes.size());
      out.push_back({t.name, t.type, new_shape, t.bytes.first(std::size_t(n) * mii::dtype_size(t.type))});
    }
    REQUIRE(found);
    io::write_safetensors(dir / "model.safetensors", out);
  }
};

}  // namespace

TEST_CASE("an intact copy of the fixture loads (the broken ones below differ only in their defect)", "[io][model]") {
  broken_copy copy;
  copy.rewrite_weights("model.norm.weight", {64});  // rewritten by our writer, unchanged
  auto pipe = mii::pipeline(copy.dir.path(), host_config());
  CHECK(pipe.model_name() == "mii::models::llama");
  CHECK(pipe.backend_name() == "host");
  const std::vector<std::vector<mii::token_id>> prompt = {{5, 6, 7}};
  mii::generate_params p;
  p.do_sample = false;
  p.max_new_tokens = 2;
  CHECK(pipe.generate_ids(prompt, p).at(0).generated_length == 2);
}

TEST_CASE("broken model directories fail with the tensor or field and both values", "[io][model]") {
  broken_copy copy;
  const std::string weights = (copy.dir / "model.safetensors").string();
  const std::string config = copy.config().string();

  SECTION("a tensor with the wrong shape") {
    copy.rewrite_weights("model.layers.1.self_attn.k_proj.weight", {16, 64});
    for (int typed = 0; typed < 2; ++typed) {
      const auto msg = typed ? MII_ERROR_MESSAGE(mii::pipeline<mii::models::llama>(copy.dir.path(), host_config()))
                             : MII_ERROR_MESSAGE(mii::pipeline(copy.dir.path(), host_config()));
      CHECK_THAT(msg, Contains(weights) && Contains("'model.layers.1.self_attn.k_proj.weight'") &&
                          Contains("[16, 64]") && Contains("[32, 64]"));
    }
  }
  SECTION("a missing tensor") {
    copy.rewrite_weights("model.layers.0.mlp.down_proj.weight", {});
    CHECK_THAT(MII_ERROR_MESSAGE(mii::pipeline(copy.dir.path(), host_config())),
               Contains(copy.dir.path().string()) && Contains("'model.layers.0.mlp.down_proj.weight'") &&
                   Contains("missing"));
  }
  SECTION("config values that disagree with the tensors") {
    copy.edit_config("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 4");
    CHECK_THAT(MII_ERROR_MESSAGE(mii::pipeline(copy.dir.path(), host_config())),
               Contains("k_proj.weight'") && Contains("[32, 64]") && Contains("[64, 64]"));
  }
  SECTION("a vocabulary size that disagrees with the embedding") {
    copy.edit_config("\"vocab_size\": 512", "\"vocab_size\": 1000");
    CHECK_THAT(MII_ERROR_MESSAGE(mii::pipeline(copy.dir.path(), host_config())),
               Contains("[512, 64]") && Contains("[1000, 64]"));
  }
  SECTION("an unknown architecture: the registry lists the ones it knows") {
    copy.edit_config("\"LlamaForCausalLM\"", "\"GPTNeoXForCausalLM\"");
    copy.edit_config("\"model_type\": \"llama\"", "\"model_type\": \"gpt_neox\"");
    CHECK_THAT(MII_ERROR_MESSAGE(mii::pipeline(copy.dir.path(), host_config())),
               Contains(config) && Contains("'architectures'") && Contains("GPTNeoXForCausalLM") &&
                   Contains("'model_type'") && Contains("\"gpt_neox\"") && Contains("LlamaForCausalLM") &&
                   Contains("MistralForCausalLM") && Contains("Qwen2ForCausalLM") && Contains("MixtralForCausalLM") &&
                   Contains("Phi3ForCausalLM") && Contains("FalconForCausalLM") && Contains("OPTForCausalLM") &&
                   Contains("PhiForCausalLM") && Contains("model_type llama, mistral, qwen2, mixtral"));
    CHECK_THAT(MII_ERROR_MESSAGE(mii::pipeline<mii::models::llama>(copy.dir.path(), host_config())),
               Contains(config) && Contains("\"GPTNeoXForCausalLM\"") && Contains("\"gpt_neox\"") &&
                   Contains("mii::models::llama") && Contains("\"LlamaForCausalLM\"") && Contains("[\"llama\"]"));
  }
  SECTION("no architectures, or a wrapper class: model_type decides, as in transformers' Auto classes") {
    const std::vector<std::vector<mii::token_id>> prompt = {{5, 6, 7, 8}};
    mii::generate_params p;
    p.do_sample = false;
    p.max_new_tokens = 6;
    const auto intact = mii::pipeline(copy.dir.path(), host_config()).generate_ids(prompt, p).at(0).token_ids;
    REQUIRE(intact.size() == 6);
    for (std::string_view arch : {"", "\"LlamaForCausalLMWithValueHead\""}) {
      broken_copy edited;
      edited.edit_config("\"LlamaForCausalLM\"", arch);
      auto pipe = mii::pipeline(edited.dir.path(), host_config());
      CHECK(pipe.model_name() == "mii::models::llama");
      CHECK(pipe.generate_ids(prompt, p).at(0).token_ids == intact);
      // A typed pipeline of another model still refuses it, naming model_type.
      CHECK_THAT(MII_ERROR_MESSAGE(mii::pipeline<mii::models::mistral>(edited.dir.path(), host_config())),
                 Contains("'model_type' is \"llama\"") && Contains("mii::models::mistral") && Contains("[\"mistral\"]"));
    }
  }
  SECTION("a checkpoint of another architecture given to a typed pipeline") {
    CHECK_THAT(MII_ERROR_MESSAGE(mii::pipeline<mii::models::mistral>(copy.dir.path(), host_config())),
               Contains("\"LlamaForCausalLM\"") && Contains("mii::models::mistral") && Contains("\"MistralForCausalLM\""));
  }
  SECTION("hidden_act that the architecture was not built with") {
    copy.edit_config("\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"");
    CHECK_THAT(MII_ERROR_MESSAGE(mii::pipeline(copy.dir.path(), host_config())),
               Contains(config) && Contains("'hidden_act'") && Contains("\"gelu\"") && Contains("\"silu\""));
  }
  SECTION("sliding_window on llama") {
    copy.edit_config("\"tie_word_embeddings\": false", "\"tie_word_embeddings\": false, \"sliding_window\": 4096");
    CHECK_THAT(MII_ERROR_MESSAGE(mii::pipeline(copy.dir.path(), host_config())),
               Contains(config) && Contains("'sliding_window'") && Contains("4096") && Contains("mii::models::llama") &&
                   Contains("without sliding-window"));
  }
  SECTION("attention biases the architecture does not have") {
    copy.edit_config("\"attention_bias\": false", "\"attention_bias\": true");
    CHECK_THAT(MII_ERROR_MESSAGE(mii::pipeline(copy.dir.path(), host_config())),
               Contains(config) && Contains("attention_bias") && Contains("qkv bias off"));
  }
  SECTION("a broken config.json") {
    copy.edit_config("\"hidden_size\": 64", "\"hidden_size\": \"64\"");
    CHECK_THAT(MII_ERROR_MESSAGE(mii::pipeline(copy.dir.path(), host_config())),
               Contains(config) && Contains("'hidden_size'") && Contains("\"64\""));
  }
  SECTION("a truncated weights file") {
    const std::string bytes = mii::test::read_text(copy.dir / "model.safetensors");
    mii::test::write_text(copy.dir / "model.safetensors", bytes.substr(0, bytes.size() - 100));
    CHECK_THAT(MII_ERROR_MESSAGE(mii::pipeline(copy.dir.path(), host_config())),
               Contains(weights) && Contains("truncated"));
  }
  SECTION("no config.json") {
    fs::remove(copy.config());
    CHECK_THAT(MII_ERROR_MESSAGE(mii::pipeline(copy.dir.path(), host_config())),
               Contains(config) && Contains("not found"));
  }
}

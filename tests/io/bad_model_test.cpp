// A fixture copied to a temp directory and broken in one place: loading it must fail with a
// mii::error that names the tensor or field and both the value found and the value expected.
// Loads go through the registry (mii::pipeline(dir)) and a typed pipeline (mii::pipeline<llama>).
#include <catch2/catch.hpp>

#include <cstring>
#include <limits>

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
  // Rewrites model.safetensors with the fixture's tensors plus `extra` F32 tensors of zeros.
  void add_tensors(const std::vector<std::pair<std::string, std::vector<std::int64_t>>>& extra) const {
    const auto original = io::safetensors_file::open(mii::test::fixture_dir("llama2") / "model.safetensors");
    std::vector<io::tensor_to_write> out;
    for (const auto& t : original.tensors()) out.push_back({t.name, t.type, t.shape, t.bytes});
    std::vector<std::vector<std::byte>> data;
    data.reserve(extra.size());  // spans into it must stay valid
    for (const auto& [name, shape] : extra) {
      std::int64_t n = 1;
      for (auto d : shape) n *= d;
      data.emplace_back(std::size_t(n) * sizeof(float));
      out.push_back({name, mii::dtype::f32, shape, data.back()});
    }
    io::write_safetensors(dir / "model.safetensors", out);
  }
  // Rewrites model.safetensors with element `index` of the F32 tensor `name` set to `value`.
  void poison(const std::string& name, std::int64_t index, float value) const {
    const auto original = io::safetensors_file::open(mii::test::fixture_dir("llama2") / "model.safetensors");
    std::vector<io::tensor_to_write> out;
    std::vector<std::byte> changed;
    for (const auto& t : original.tensors()) {
      if (t.name != name) {
        out.push_back({t.name, t.type, t.shape, t.bytes});
        continue;
      }
      REQUIRE(t.type == mii::dtype::f32);
      REQUIRE(index < t.numel());
      changed.assign(t.bytes.begin(), t.bytes.end());
      std::memcpy(changed.data() + index * std::int64_t(sizeof(float)), &value, sizeof value);
      out.push_back({t.name, t.type, t.shape, changed});
    }
    REQUIRE(!changed.empty());
    io::write_safetensors(dir / "model.safetensors", out);
  }
  void edit_file(std::string_view file, std::string_view from, std::string_view to) const {
    mii::test::write_text(dir / file, mii::test::replace_once(mii::test::read_text(dir / file), from, to));
  }
};

std::vector<mii::token_id> greedy_ids(const fs::path& dir, const mii::model_config& cfg = host_config()) {
  const std::vector<std::vector<mii::token_id>> prompt = {{5, 6, 7, 8}};
  mii::generate_params p;
  p.do_sample = false;
  p.max_new_tokens = 6;
  return mii::pipeline(dir, cfg).generate_ids(prompt, p).at(0).token_ids;
}

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

// Checkpoints that used to load and then compute garbage (all-NaN logits read as token 0), run
// fewer layers than they hold, or fail later on some prompts only: refused while loading.
TEST_CASE("configs and checkpoints that disagree are refused at load, naming the field and both values", "[io][model]") {
  broken_copy copy;
  const std::string weights = (copy.dir / "model.safetensors").string();
  const std::string config = copy.config().string();

  SECTION("rms_norm_eps -1 (rsqrt of a negative variance: NaN logits, greedy token 0)") {
    copy.edit_config("\"rms_norm_eps\": 1e-06", "\"rms_norm_eps\": -1");
    CHECK_THAT(MII_ERROR_MESSAGE(mii::pipeline(copy.dir.path(), host_config())),
               Contains(config) && Contains("'rms_norm_eps'") && Contains("positive") && Contains("got -1"));
  }
  SECTION("max_position_embeddings 0 (used to become model_config.max_context, 8192)") {
    copy.edit_config("\"max_position_embeddings\": 4096", "\"max_position_embeddings\": 0");
    CHECK_THAT(MII_ERROR_MESSAGE(mii::pipeline(copy.dir.path(), host_config())),
               Contains(config) && Contains("'max_position_embeddings'") && Contains("got 0"));
  }
  SECTION("num_hidden_layers smaller than the checkpoint's layers (the rest were ignored)") {
    copy.edit_config("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1");
    for (int typed = 0; typed < 2; ++typed) {
      const auto msg = typed ? MII_ERROR_MESSAGE(mii::pipeline<mii::models::llama>(copy.dir.path(), host_config()))
                             : MII_ERROR_MESSAGE(mii::pipeline(copy.dir.path(), host_config()));
      CHECK_THAT(msg, Contains(config) && Contains("'num_hidden_layers' is 1") && Contains("tensors of 2 layers") &&
                          Contains("'model.layers.1."));
    }
  }
  SECTION("a tensor the config does not describe (a bias attention_bias turns off)") {
    copy.add_tensors({{"model.layers.0.self_attn.q_proj.bias", {64}}});
    CHECK_THAT(MII_ERROR_MESSAGE(mii::pipeline(copy.dir.path(), host_config())),
               Contains(weights) && Contains("'model.layers.0.self_attn.q_proj.bias'") &&
                   Contains("mii::models::llama does not use"));
  }
  SECTION("a tokenizer whose ids reach past vocab_size (used to fail on some prompts only)") {
    // An added token not in the model's vocabulary gets the next id (512), as in HF tokenizers.
    copy.edit_file("tokenizer.json", "\"added_tokens\": [",
                   "\"added_tokens\": [{\"id\": 600, \"content\": \"<extra_600>\", \"single_word\": false, "
                   "\"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": true},");
    CHECK_THAT(MII_ERROR_MESSAGE(mii::pipeline(copy.dir.path(), host_config())),
               Contains((copy.dir / "tokenizer.json").string()) && Contains("up to 512") && Contains("<extra_600>") &&
                   Contains("'vocab_size' is 512"));
  }
  SECTION("an eos_token_id outside the vocabulary (generation could never stop on it)") {
    copy.edit_file("generation_config.json", "\"eos_token_id\": 2", "\"eos_token_id\": 512");
    CHECK_THAT(MII_ERROR_MESSAGE(mii::pipeline(copy.dir.path(), host_config())),
               Contains((copy.dir / "generation_config.json").string()) && Contains("'eos_token_id' holds 512") &&
                   Contains("[0, 512)"));
  }
  SECTION("a NaN weight: model_config.check_weights names the tensor and the element") {
    copy.poison("model.layers.1.mlp.up_proj.weight", 3 * 64 + 5, std::numeric_limits<float>::quiet_NaN());
    mii::model_config checked = host_config();
    checked.check_weights = true;
    for (int typed = 0; typed < 2; ++typed) {
      const auto msg = typed ? MII_ERROR_MESSAGE(mii::pipeline<mii::models::llama>(copy.dir.path(), checked))
                             : MII_ERROR_MESSAGE(mii::pipeline(copy.dir.path(), checked));
      CHECK_THAT(msg, Contains(weights) && Contains("'model.layers.1.mlp.up_proj.weight'") && Contains("[3, 5]") &&
                          Contains("nan") && Contains("check_weights"));
    }
    // The scan is opt-in (one pass over every weight): without it the checkpoint loads.
    CHECK_NOTHROW(mii::pipeline(copy.dir.path(), host_config()));
  }
}

TEST_CASE("tensors the loader legitimately leaves unread still load", "[io][model]") {
  const auto intact = greedy_ids(mii::test::fixture_dir("llama2"));
  REQUIRE(intact.size() == 6);
  SECTION("rotary inv_freq buffers (saved by transformers before 4.31)") {
    broken_copy copy;
    copy.add_tensors({{"model.layers.0.self_attn.rotary_emb.inv_freq", {8}},
                      {"model.layers.1.self_attn.rotary_emb.inv_freq", {8}}});
    CHECK(greedy_ids(copy.dir.path()) == intact);
  }
  SECTION("a clean checkpoint passes check_weights and gives the same tokens") {
    mii::model_config checked = host_config();
    checked.check_weights = true;
    CHECK(greedy_ids(mii::test::fixture_dir("llama2"), checked) == intact);
  }
  SECTION("tied embeddings with lm_head.weight stored too (it is used, so it counts as read)") {
    broken_copy copy;
    copy.edit_config("\"tie_word_embeddings\": false", "\"tie_word_embeddings\": true");
    CHECK(greedy_ids(copy.dir.path()) == intact);
  }
  SECTION("tied embeddings without lm_head.weight (the llama3 fixture)") {
    CHECK(greedy_ids(mii::test::fixture_dir("llama3")).size() == 6);
  }
}

// The bad inputs of docs/reliability.md's table: each must be refused with a mii::error (never
// accepted, never another exception) whose message names the file or the field. With
// MII_PRINT_BAD_INPUTS=1 the test prints the table's rows, which is how the table is regenerated:
//   MII_PRINT_BAD_INPUTS=1 build/tests/mii_test_soak "[bad-inputs]"
#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <limits>
#include <regex>

#include <mii/io/hf_config.hpp>
#include <mii/io/safetensors.hpp>
#include <mii/pipeline.hpp>

#include "fixtures.hpp"
#include "models/instantiations.hpp"  // the registry's pipelines are compiled in libmii
#include "test_files.hpp"

namespace fs = std::filesystem;
using namespace mii;

namespace {

struct bad_input {
  std::string what;
  std::function<void()> run;
  std::string must_name;  // a file or field the message must contain
};

// Checks every case; prints "| what | `message` |" rows when MII_PRINT_BAD_INPUTS is set, with
// `dir` shown as <dir>.
void check_all(const std::string& section, const std::vector<bad_input>& cases, const fs::path& dir = {}) {
  const bool print = std::getenv("MII_PRINT_BAD_INPUTS") != nullptr;
  if (print) std::cout << "\n### " << section << "\n\n| input | error |\n|---|---|\n";
  for (const auto& c : cases) {
    INFO(section << ": " << c.what);
    std::string message;
    try {
      c.run();
      FAIL_CHECK("accepted");
      continue;
    } catch (const mii::error& e) {
      message = e.what();
    }
    CHECK_THAT(message, Catch::Contains(c.must_name));
    if (print) {
      if (!dir.empty()) message = std::regex_replace(message, std::regex(dir.string() + "/"), "<dir>/");
      std::cout << "| " << c.what << " | `" << message << "` |\n";
    }
  }
}

std::string safetensors_bytes(const std::string& header, std::size_t data_bytes) {
  std::string out(8, '\0');
  const std::uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + std::string(data_bytes, '\0');
}

model_config host_config() {
  model_config c;
  c.backend = "host";
  c.show_progress = false;
  c.kv_cache_blocks = 64;
  c.kv_block_size = 16;
  c.host_threads = 1;
  c.max_length = 256;
  return c;
}

}  // namespace

TEST_CASE("bad safetensors files get a mii::error naming the file", "[bad-inputs]") {
  test::temp_dir dir("bad-st");
  const fs::path f = dir / "model.safetensors";
  const auto open = [&](std::string bytes) {
    return [=] {
      test::write_text(f, bytes);
      (void)io::safetensors_file::open(f);
    };
  };
  const std::string n = "model.safetensors";
  std::string past_end = safetensors_bytes("{}", 0);
  past_end[0] = 0x7f;
  check_all("safetensors",
            {{"file of 5 bytes", open("abcde"), n},
             {"header length past the end", open(past_end), n},
             {"header not JSON", open(safetensors_bytes("{\"a\":", 0)), n},
             {"header a JSON array", open(safetensors_bytes("[1]", 0)), "top level"},
             {"tensor without dtype", open(safetensors_bytes(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", 4)), "'w.dtype'"},
             {"dtype I64", open(safetensors_bytes(R"({"w":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", 8)), "I64"},
             {"negative dimension", open(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4)), "'w.shape'"},
             {"shape overflowing 64 bits",
              open(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", 4)), "'w.shape'"},
             {"numel x dtype size overflowing 64 bits",
              open(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})", 0)), "tensor 'w'"},
             {"three data_offsets", open(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", 8)), "'w.data_offsets'"},
             {"begin > end", open(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8)), "tensor 'w'"},
             {"end past the data", open(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 2)), "truncated"},
             {"size != shape x dtype", open(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 16)), "tensor 'w'"},
             {"overlapping tensors",
              open(safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8)),
              "overlap"},
             {"tensor named twice †",
              open(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"\u0077":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8)),
              "listed twice"},
             {"metadata value not a string", open(safetensors_bytes(R"({"__metadata__":{"format":1}})", 0)), "'__metadata__.format'"}},
            dir.path());
}

TEST_CASE("bad config.json and generation_config.json get a mii::error naming the field", "[bad-inputs]") {
  const auto cfg = [](std::string json) { return [=] { (void)io::parse_hf_config(json, "config.json"); }; };
  const std::string base = R"({"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":64,)"
                           R"("intermediate_size":128,"num_attention_heads":4,"num_hidden_layers":2,"vocab_size":512)";
  check_all("config.json",
            {{"not JSON", cfg("{"), "config.json"},
             {"no model_type nor architectures", cfg("{}"), "'model_type'"},
             {"vocab_size a string", cfg(R"({"model_type":"llama","vocab_size":"big"})"), "'vocab_size'"},
             {"vocab_size 1e300", cfg(R"({"model_type":"llama","vocab_size":1e300})"), "'vocab_size'"},
             {"vocab_size 2^64", cfg(R"({"model_type":"llama","vocab_size":18446744073709551615})"), "'vocab_size'"},
             {"hidden_size 0", cfg(R"({"model_type":"llama","hidden_size":0})"), "'hidden_size'"},
             {"head_dim -16 †", cfg(base + R"(,"head_dim":-16})"), "'head_dim'"},
             {"head_dim 2^62 †", cfg(base + R"(,"head_dim":4611686018427387904})"), "'head_dim'"},
             {"heads not dividing hidden", cfg(R"({"model_type":"llama","hidden_size":100,"num_attention_heads":3})"), "'num_attention_heads'"},
             {"kv heads not dividing heads", cfg(base + R"(,"num_key_value_heads":3})"), "'num_key_value_heads'"},
             {"rope type yarn", cfg(base + R"(,"rope_scaling":{"type":"yarn","factor":2}})"), "'rope_scaling.type'"},
             {"llama3 rope without original_max_position_embeddings",
              cfg(base + R"(,"rope_scaling":{"rope_type":"llama3","factor":8}})"), "'rope_scaling.original_max_position_embeddings'"},
             {"llama3 high_freq_factor == low_freq_factor †",
              cfg(base + R"(,"rope_scaling":{"rope_type":"llama3","factor":8,"low_freq_factor":4,"high_freq_factor":4,"original_max_position_embeddings":8192}})"),
              "'rope_scaling.high_freq_factor'"},
             {"linear factor 0.5", cfg(base + R"(,"rope_scaling":{"type":"linear","factor":0.5}})"), "'rope_scaling.factor'"},
             {"rope_theta 0 †", cfg(base + R"(,"rope_theta":0})"), "'rope_theta'"},
             {"partial_rotary_factor 1.5", cfg(base + R"(,"partial_rotary_factor":1.5})"), "'partial_rotary_factor'"},
             {"sliding_window 0", cfg(R"({"model_type":"mistral","sliding_window":0})"), "'sliding_window'"},
             {"eos_token_id [\"x\"]", cfg(base + R"(,"eos_token_id":["x"]})"), "'eos_token_id'"},
             {"falcon alibi", cfg(R"({"model_type":"falcon","alibi":true})"), "'alibi'"},
             {"qwen2 use_sliding_window", cfg(R"({"model_type":"qwen2","use_sliding_window":true})"), "'use_sliding_window'"},
             {"rms_norm_eps -1 †", cfg(base + R"(,"rms_norm_eps":-1})"), "'rms_norm_eps'"},
             {"layer_norm_eps 0 †", cfg(R"({"model_type":"phi","layer_norm_eps":0})"), "'layer_norm_eps'"},
             {"max_position_embeddings 0 †", cfg(base + R"(,"max_position_embeddings":0})"), "'max_position_embeddings'"},
             {"llama3 low_freq_factor 0 †",
              cfg(base + R"(,"rope_scaling":{"rope_type":"llama3","factor":8,"low_freq_factor":0,"original_max_position_embeddings":8192}})"),
              "'rope_scaling.low_freq_factor'"},
             {"longrope short_factor holding 0 †",
              cfg(base + R"(,"rope_scaling":{"type":"longrope","short_factor":[1,1,0,1,1,1,1,1],"long_factor":[1,1,1,1,1,1,1,1]}})"),
              "'rope_scaling.short_factor'"},
             {"opt word_embed_proj_dim 0 †", cfg(R"({"model_type":"opt","word_embed_proj_dim":0})"), "'word_embed_proj_dim'"},
             {"falcon num_ln_in_parallel_attn 3 †", cfg(R"({"model_type":"falcon","num_ln_in_parallel_attn":3})"), "'num_ln_in_parallel_attn'"},
             {"gemma2 layer_types entry unknown",
              cfg(R"({"model_type":"gemma2","num_hidden_layers":2,"layer_types":["sliding_attention","chunked_attention"]})"),
              "'layer_types'"},
             {"gemma2 layer_types of the wrong length",
              cfg(R"({"model_type":"gemma2","num_hidden_layers":2,"layer_types":["full_attention"]})"), "'layer_types'"},
             {"gemma2 attn_logit_softcapping 0", cfg(R"({"model_type":"gemma2","attn_logit_softcapping":0})"),
              "'attn_logit_softcapping'"},
             {"gemma3 rope_parameters for an unknown layer type",
              cfg(R"({"model_type":"gemma3_text","rope_parameters":{"local_attention":{"rope_type":"default"}}})"),
              "'rope_parameters.local_attention'"},
             {"qwen3 use_sliding_window", cfg(R"({"model_type":"qwen3","use_sliding_window":true})"), "'use_sliding_window'"},
             {"qwen3_moe num_experts_per_tok 9 of 8 experts",
              cfg(R"({"model_type":"qwen3_moe","num_experts":8,"num_experts_per_tok":9})"), "'num_experts_per_tok'"},
             {"qwen2_moe num_experts 0", cfg(R"({"model_type":"qwen2_moe","num_experts":0})"), "'num_experts'"},
             {"qwen2_moe decoder_sparse_step 0", cfg(R"({"model_type":"qwen2_moe","decoder_sparse_step":0})"),
              "'decoder_sparse_step'"},
             {"qwen3_moe mlp_only_layers past the last layer",
              cfg(R"({"model_type":"qwen3_moe","num_hidden_layers":2,"mlp_only_layers":[2]})"), "'mlp_only_layers'"},
             {"qwen2_moe shared_expert_intermediate_size 0",
              cfg(R"({"model_type":"qwen2_moe","shared_expert_intermediate_size":0})"), "'shared_expert_intermediate_size'"}});

  test::temp_dir dir("bad-gen");
  const auto gen = [&](std::string json) {
    return [=, &dir] {
      test::write_text(dir / "generation_config.json", json);
      (void)io::load_generation_config(dir.path());
    };
  };
  check_all("generation_config.json",
            {{"eos_token_id a string", gen(R"({"eos_token_id":"2"})"), "'eos_token_id'"},
             {"not JSON", gen("{"), "generation_config.json"}},
            dir.path());
}

TEST_CASE("bad model_config and generate_params get a mii::error naming the field", "[bad-inputs]") {
  test::temp_dir dir("bad-cfg");
  const fs::path model = dir / "model";
  test::copy_dir(test::fixture_dir("llama2"), model);
  const auto with = [&](std::function<void(model_config&)> change) {
    return [=] {
      model_config c = host_config();
      change(c);
      (void)mii::pipeline(model, c);
    };
  };
  check_all("model_config (mii::pipeline)",
            {{"backend \"tpu\"", with([](auto& c) { c.backend = "tpu"; }), "model_config.backend"},
             {"kv_cache_blocks 0", with([](auto& c) { c.kv_cache_blocks = 0; }), "model_config.kv_cache_blocks"},
             {"kv_cache_blocks 2^32 + 8 †", with([](auto& c) { c.kv_cache_blocks = (std::int64_t(1) << 32) + 8; }), "model_config.kv_cache_blocks"},
             {"kv_block_size 0", with([](auto& c) { c.kv_block_size = 0; }), "model_config.kv_block_size"},
             {"kv_cache_dtype \"fp8_e5m2\"", with([](auto& c) { c.kv_cache_dtype = "fp8_e5m2"; }), "model_config.kv_cache_dtype"},
             {"cache smaller than one sequence", with([](auto& c) { c.kv_cache_blocks = 2; }), "model_config.max_length"},
             {"max_length > max_position_embeddings", with([](auto& c) { c.max_length = 100000; }), "max_position_embeddings"},
             {"max_ragged_batch_size 0", with([](auto& c) { c.max_ragged_batch_size = 0; }), "model_config.max_ragged_batch_size"},
             {"dtype fp16 on the host backend", with([](auto& c) { c.dtype = "fp16"; }), "model_config.dtype"},
             {"tensor_parallel 2 with one rank", with([](auto& c) { c.tensor_parallel = 2; }), "model_config.tensor_parallel"}},
            dir.path());

  // A copy of the fixture with one file edited, loaded through the registry.
  int copies = 0;
  const auto edited = [&](std::string file, std::string from, std::string to) {
    const fs::path copy = dir / ("edited" + std::to_string(copies++));
    test::copy_dir(test::fixture_dir("llama2"), copy);
    test::write_text(copy / file, test::replace_once(test::read_text(copy / file), from, to));
    return [=] { (void)mii::pipeline(copy, host_config()); };
  };
  // Copies of the fixture whose weights get a NaN in the last element of model.norm.weight (the
  // fixture is F32), or one tensor more than the config describes.
  const fs::path nan_copy = dir / "nan", extra_copy = dir / "extra";
  {
    const auto original = io::safetensors_file::open(test::fixture_dir("llama2") / "model.safetensors");
    std::vector<io::tensor_to_write> out;
    for (const auto& t : original.tensors()) out.push_back({t.name, t.type, t.shape, t.bytes});
    const std::vector<std::byte> zeros(64 * sizeof(float));
    test::copy_dir(test::fixture_dir("llama2"), extra_copy);
    out.push_back({"model.layers.0.self_attn.q_proj.bias", dtype::f32, {64}, zeros});
    io::write_safetensors(extra_copy / "model.safetensors", out);
    out.pop_back();
    std::vector<std::byte> poisoned;
    for (auto& t : out) {
      if (t.name != "model.norm.weight") continue;
      poisoned.assign(t.bytes.begin(), t.bytes.end());
      const float nan = std::numeric_limits<float>::quiet_NaN();
      std::memcpy(poisoned.data() + poisoned.size() - sizeof nan, &nan, sizeof nan);
      t.bytes = poisoned;
    }
    test::copy_dir(test::fixture_dir("llama2"), nan_copy);
    io::write_safetensors(nan_copy / "model.safetensors", out);
  }
  check_all("checkpoint and config.json that disagree (mii::pipeline)",
            {{"num_hidden_layers 1, the checkpoint holds 2 †",
              edited("config.json", "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1"), "'num_hidden_layers'"},
             {"a tensor the config does not describe (a q_proj bias on llama) †", [=] { (void)mii::pipeline(extra_copy, host_config()); },
              "'model.layers.0.self_attn.q_proj.bias'"},
             {"tokenizer ids past vocab_size †",
              edited("tokenizer.json", "\"added_tokens\": [",
                     "\"added_tokens\": [{\"id\": 512, \"content\": \"<x>\", \"special\": true},"),
              "'vocab_size'"},
             {"eos_token_id outside the vocabulary †", edited("generation_config.json", "\"eos_token_id\": 2", "\"eos_token_id\": 600"),
              "'eos_token_id'"},
             {"a NaN weight, model_config.check_weights on †",
              [=] {
                model_config c = host_config();
                c.check_weights = true;
                (void)mii::pipeline(nan_copy, c);
              },
              "'model.norm.weight'"}},
            dir.path());

  const fs::path gpt2 = dir / "gpt2";
  test::copy_dir(test::fixture_dir("llama2"), gpt2);
  test::write_text(gpt2 / "config.json", R"({"architectures":["GPT2LMHeadModel"],"model_type":"gpt2","vocab_size":512,)"
                                         R"("hidden_size":64,"num_attention_heads":4,"num_hidden_layers":2,"intermediate_size":128})");
  check_all("config.json architectures",
            {{"unknown architecture", [&] { (void)mii::pipeline(gpt2, host_config()); }, "'architectures'"},
             {"a quantized checkpoint mii cannot run (AWQ, GPTQ, ...)",
              edited("config.json", "\"num_hidden_layers\": 2,",
                     "\"num_hidden_layers\": 2, \"quantization_config\": {\"quant_method\": \"awq\", "
                     "\"bits\": 4, \"group_size\": 128},"),
              "'quantization_config.quant_method'"},
             {"an FP8 quantization_config over unquantized weights",
              edited("config.json", "\"num_hidden_layers\": 2,",
                     "\"num_hidden_layers\": 2, \"quantization_config\": {\"quant_method\": \"fp8\", "
                     "\"weight_block_size\": [128, 128]},"),
              "no linear weight is F8_E4M3"}},
            dir.path());

  auto pipe = mii::pipeline(model, host_config());
  const auto params = [&](std::function<void(generate_params&)> change) {
    return [=, &pipe] {
      generate_params p;
      change(p);
      (void)pipe(std::vector<std::string>{"hi"}, p);
    };
  };
  check_all("generate_params",
            {{"max_length 0", params([](auto& p) { p.max_length = 0; }), "generate_params.max_length"},
             {"max_new_tokens 0", params([](auto& p) { p.max_new_tokens = 0; }), "generate_params.max_new_tokens"},
             {"min_new_tokens -1", params([](auto& p) { p.min_new_tokens = -1; }), "generate_params.min_new_tokens"},
             {"min_new_tokens > max_new_tokens", params([](auto& p) { p.max_new_tokens = 2, p.min_new_tokens = 3; }), "generate_params.min_new_tokens"},
             {"top_p 0", params([](auto& p) { p.top_p = 0; }), "generate_params.top_p"},
             {"top_p NaN", params([](auto& p) { p.top_p = std::numeric_limits<double>::quiet_NaN(); }), "generate_params.top_p"},
             {"top_k -1", params([](auto& p) { p.top_k = -1; }), "generate_params.top_k"},
             {"temperature -1", params([](auto& p) { p.temperature = -1; }), "generate_params.temperature"},
             {"temperature inf", params([](auto& p) { p.temperature = std::numeric_limits<double>::infinity(); }), "generate_params.temperature"},
             {"stop [\"\"]", params([](auto& p) { p.stop = {""}; }), "generate_params.stop[0]"}});
  CHECK(pipe.kv_blocks_in_use() == 0);
}

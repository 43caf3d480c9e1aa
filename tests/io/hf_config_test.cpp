// config.json and generation_config.json: every fixture (transformers 5.x form), hand-written
// transformers 4.x forms and the aliases older checkpoints on the hub use, and errors that name
// the file and the field.
#include <catch2/catch.hpp>

#include <string>

#include <mii/io/hf_config.hpp>

#include "expect_error.hpp"
#include "fixtures.hpp"
#include "test_files.hpp"

using Catch::Matchers::Contains;
using Catch::Matchers::Equals;
namespace io = mii::io;

namespace {
io::hf_config parse(std::string_view json) { return io::parse_hf_config(json, "test/config.json"); }
}  // namespace

TEST_CASE("config.json of every fixture (transformers 5.x form)", "[io][config]") {
  SECTION("llama2") {
    const auto c = io::load_hf_config(mii::test::fixture_dir("llama2"));
    CHECK(c.file == mii::test::fixture_dir("llama2") / "config.json");
    CHECK(c.architectures == std::vector<std::string>{"LlamaForCausalLM"});
    CHECK(c.model_type == "llama");
    CHECK(c.vocab_size == 512);
    CHECK(c.hidden_size == 64);
    CHECK(c.intermediate_size == 128);
    CHECK(c.num_hidden_layers == 2);
    CHECK(c.num_attention_heads == 4);
    CHECK(c.num_key_value_heads == 2);
    CHECK(c.head_dim == 16);
    CHECK(c.max_position_embeddings == 4096);
    CHECK(c.norm_eps == 1e-6);
    CHECK(c.hidden_act == "silu");
    CHECK_FALSE(c.tie_word_embeddings);
    CHECK_FALSE(c.sliding_window);
    CHECK(c.rope.type == "default");
    CHECK(c.rope.theta == 10000.0);
    CHECK_FALSE(c.qkv_bias);
    CHECK_FALSE(c.mlp_bias);
    CHECK(c.bos_token_id == 1);
    CHECK(c.eos_token_ids == std::vector<std::int64_t>{2});
    CHECK(c.pad_token_id == 0);
    CHECK(c.dtype == "float32");
  }
  SECTION("llama3: llama3 rope scaling in rope_parameters, tied, one kv head") {
    const auto c = io::load_hf_config(mii::test::fixture_dir("llama3"));
    CHECK(c.rope.type == "llama3");
    CHECK(c.rope.theta == 500000.0);
    CHECK(c.rope.factor == 8.0);
    CHECK(c.rope.low_freq_factor == 1.0);
    CHECK(c.rope.high_freq_factor == 4.0);
    CHECK(c.rope.original_max_position_embeddings == 64);
    CHECK(c.tie_word_embeddings);
    CHECK(c.num_key_value_heads == 1);
    CHECK(c.head_dim == 32);
    CHECK(c.norm_eps == 1e-5);
  }
  SECTION("mistral: sliding window") {
    const auto c = io::load_hf_config(mii::test::fixture_dir("mistral"));
    CHECK(c.model_type == "mistral");
    CHECK(c.sliding_window == 8);
  }
  SECTION("mixtral: experts, null head_dim and sliding_window") {
    for (const char* name : {"mixtral", "mixtral_v5layout"}) {
      const auto c = io::load_hf_config(mii::test::fixture_dir(name));
      CHECK(c.num_local_experts == 8);
      CHECK(c.num_experts_per_tok == 2);
      CHECK(c.intermediate_size == 96);
      CHECK(c.head_dim == 16);  // null: hidden / heads
      CHECK_FALSE(c.sliding_window);
      CHECK(c.rope.theta == 1e6);
    }
  }
  SECTION("qwen2: q/k/v biases, no o bias, window off") {
    const auto c = io::load_hf_config(mii::test::fixture_dir("qwen2"));
    CHECK(c.qkv_bias);
    CHECK_FALSE(c.o_bias);
    CHECK_FALSE(c.sliding_window);
    CHECK(c.rope.theta == 1e6);
  }
  SECTION("phi3: longrope, window, original_max_position_embeddings") {
    const auto c = io::load_hf_config(mii::test::fixture_dir("phi3"));
    CHECK(c.rope.type == "longrope");
    CHECK(c.rope.original_max_position_embeddings == 32);
    CHECK(c.rope.short_factor.size() == 8);
    CHECK(c.rope.long_factor.size() == 8);
    CHECK(c.rope.short_factor[1] == 1.05);
    CHECK(c.rope.long_factor[7] == Approx(4.3));
    CHECK_FALSE(c.rope.attention_factor);
    CHECK(c.sliding_window == 20);
    CHECK(c.num_attention_heads == 6);
    CHECK(c.head_dim == 16);
  }
  SECTION("phi2: partial rotary from rope_parameters, biases everywhere") {
    const auto c = io::load_hf_config(mii::test::fixture_dir("phi2"));
    CHECK(c.rope.partial_rotary_factor == 0.4);
    CHECK(c.hidden_act == "gelu_new");
    CHECK(c.qkv_bias);
    CHECK(c.o_bias);
    CHECK(c.mlp_bias);
    CHECK(c.lm_head_bias);
    CHECK(c.norm_eps == 1e-5);
  }
  SECTION("falcon: the three layouts") {
    const auto n = io::load_hf_config(mii::test::fixture_dir("falcon_new"));
    CHECK(n.new_decoder_architecture);
    CHECK(n.num_key_value_heads == 2);
    CHECK(n.num_ln_in_parallel_attn == 2);
    CHECK(n.intermediate_size == 128);
    CHECK(n.hidden_act == "gelu");
    CHECK(n.tie_word_embeddings);
    const auto o = io::load_hf_config(mii::test::fixture_dir("falcon_old"));
    CHECK(o.num_key_value_heads == 1);  // multi_query
    CHECK(o.num_ln_in_parallel_attn == 1);
    CHECK(o.parallel_attn);
    CHECK_FALSE(o.qkv_bias);
    const auto r = io::load_hf_config(mii::test::fixture_dir("falcon_rw"));
    CHECK(r.num_key_value_heads == 4);
    CHECK_FALSE(r.parallel_attn);
    CHECK(r.qkv_bias);
    CHECK(r.o_bias);
    CHECK(r.mlp_bias);
  }
  SECTION("opt: ffn_dim, word_embed_proj_dim, post-norm, no rotary") {
    const auto c = io::load_hf_config(mii::test::fixture_dir("opt"));
    CHECK(c.intermediate_size == 128);
    CHECK(c.word_embed_proj_dim == 64);
    CHECK(c.do_layer_norm_before);
    CHECK(c.final_layer_norm);
    CHECK(c.rope.type == "none");
    CHECK(c.hidden_act == "relu");
    CHECK(c.num_key_value_heads == 4);
    CHECK(c.qkv_bias);
    CHECK(c.bos_token_id == 2);
    CHECK(c.pad_token_id == 1);
    const auto p = io::load_hf_config(mii::test::fixture_dir("opt_postln"));
    CHECK(p.word_embed_proj_dim == 32);
    CHECK_FALSE(p.do_layer_norm_before);
    CHECK_FALSE(p.final_layer_norm);
  }
  SECTION("every fixture's summary names its architecture") {
    for (const char* name : {"llama2", "llama3", "mistral", "mixtral", "qwen2", "phi3", "phi2", "falcon_new", "opt", "demo-llama",
                             "qwen3", "qwen3_moe", "qwen2_moe", "gemma2", "gemma3"}) {
      const auto c = io::load_hf_config(mii::test::fixture_dir(name));
      CHECK_THAT(io::summarize(c), Contains(c.architectures.at(0)) && Contains(std::to_string(c.num_hidden_layers) + " layers"));
    }
  }
}

TEST_CASE("config.json in the transformers 4.x form", "[io][config]") {
  SECTION("llama 3.1: rope_theta + rope_scaling, torch_dtype, eos list") {
    for (const char* key : {"type", "rope_type"}) {
      const auto c = parse(R"({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
        "intermediate_size": 14336, "num_attention_heads": 32, "num_hidden_layers": 32,
        "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "torch_dtype": "bfloat16",
        "rope_scaling": {")" + std::string(key) + R"(": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
        "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]})");
      INFO("rope_scaling spelled with '" << key << "'");
      CHECK(c.rope.type == "llama3");
      CHECK(c.rope.theta == 500000.0);
      CHECK(c.rope.factor == 8.0);
      CHECK(c.rope.original_max_position_embeddings == 8192);
      CHECK(c.dtype == "bfloat16");
      CHECK(c.eos_token_ids == std::vector<std::int64_t>{128001, 128008, 128009});
      CHECK(c.head_dim == 128);
      CHECK(c.num_key_value_heads == 8);
      CHECK(c.file == "test/config.json");
    }
  }
  SECTION("defaults of the model type fill what the file leaves out") {
    const auto c = parse(R"({"architectures": ["MistralForCausalLM"], "model_type": "mistral", "eos_token_id": 2})");
    CHECK(c.hidden_size == 4096);
    CHECK(c.intermediate_size == 14336);
    CHECK(c.num_key_value_heads == 8);   // absent: MistralConfig's default (8), not the head count
    CHECK(c.head_dim == 128);
    CHECK(c.sliding_window == 4096);     // absent: transformers' Mistral default
    CHECK(c.norm_eps == 1e-6);
    CHECK(c.eos_token_ids == std::vector<std::int64_t>{2});
    CHECK(c.dtype.empty());
    const auto n = parse(R"({"model_type": "mistral", "sliding_window": null})");
    CHECK_FALSE(n.sliding_window);
    const auto l = parse(R"({"model_type": "llama", "num_attention_heads": 16, "hidden_size": 1024})");
    CHECK(l.num_key_value_heads == 16);  // LlamaConfig: absent means multi-head attention
    CHECK(l.intermediate_size == 11008);
    CHECK(l.max_position_embeddings == 2048);
  }
  SECTION("phi-3 with the 'su' spelling of longrope") {
    std::string factors = "[";
    for (int i = 0; i < 48; ++i) factors += (i ? ", " : "") + std::to_string(1.0 + i / 100.0);
    factors += "]";
    const auto c = parse(R"({"architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "hidden_size": 3072,
        "num_attention_heads": 32, "max_position_embeddings": 131072, "original_max_position_embeddings": 4096,
        "rope_scaling": {"type": "su", "short_factor": )" + factors + R"(, "long_factor": )" + factors + "}}");
    CHECK(c.rope.type == "longrope");
    CHECK(c.rope.original_max_position_embeddings == 4096);
    CHECK(c.rope.short_factor.size() == 48);
    CHECK(c.rope.long_factor.size() == 48);
  }
  SECTION("linear and dynamic scaling") {
    const auto l = parse(R"({"model_type": "llama", "rope_scaling": {"type": "linear", "factor": 4}})");
    CHECK(l.rope.type == "linear");
    CHECK(l.rope.factor == 4.0);
    const auto d = parse(R"({"model_type": "llama", "max_position_embeddings": 2048, "rope_scaling": {"type": "dynamic", "factor": 2.0}})");
    CHECK(d.rope.type == "dynamic");
    CHECK(d.rope.original_max_position_embeddings == 2048);
  }
  SECTION("falcon aliases: n_layer, n_head, n_head_kv, n_embed") {
    const auto c = parse(R"({"architectures": ["FalconForCausalLM"], "model_type": "falcon", "n_embed": 256,
        "n_layer": 3, "n_head": 8, "n_head_kv": 2, "new_decoder_architecture": true, "bias": true, "vocab_size": 1000})");
    CHECK(c.hidden_size == 256);
    CHECK(c.num_hidden_layers == 3);
    CHECK(c.num_attention_heads == 8);
    CHECK(c.num_key_value_heads == 2);
    CHECK(c.head_dim == 32);
    CHECK(c.intermediate_size == 1024);  // 4 * hidden when ffn_hidden_size is absent
    CHECK(c.qkv_bias);
    CHECK(c.num_ln_in_parallel_attn == 2);
    const auto mq = parse(R"({"model_type": "falcon", "hidden_size": 64, "n_head": 4, "multi_query": true})");
    CHECK(mq.num_key_value_heads == 1);
    const auto mha = parse(R"({"model_type": "falcon", "hidden_size": 64, "n_head": 4, "multi_query": false})");
    CHECK(mha.num_key_value_heads == 4);
  }
  SECTION("opt fields") {
    const auto c = parse(R"({"architectures": ["OPTForCausalLM"], "model_type": "opt", "hidden_size": 512,
        "ffn_dim": 2048, "num_attention_heads": 16, "num_hidden_layers": 24, "word_embed_proj_dim": 256,
        "do_layer_norm_before": false, "enable_bias": false, "activation_function": "relu", "eos_token_id": 2})");
    CHECK(c.intermediate_size == 2048);
    CHECK(c.word_embed_proj_dim == 256);
    CHECK_FALSE(c.do_layer_norm_before);
    CHECK_FALSE(c.final_layer_norm);
    CHECK_FALSE(c.qkv_bias);
    CHECK_FALSE(c.mlp_bias);
    CHECK(c.rope.type == "none");
    CHECK(c.num_key_value_heads == 16);
    const auto r = parse(R"({"model_type": "opt", "_remove_final_layer_norm": true})");
    CHECK_FALSE(r.final_layer_norm);
    CHECK(r.word_embed_proj_dim == r.hidden_size);
  }
  SECTION("integers written as 4096.0 are accepted when exact") {
    const auto c = parse(R"({"model_type": "llama", "hidden_size": 4096.0})");
    CHECK(c.hidden_size == 4096);
  }
}

TEST_CASE("config.json errors name the file and the field", "[io][config]") {
  mii::test::temp_dir dir("config");
  const std::string file = (dir / "config.json").string();
  auto load = [&](std::string_view text) {
    mii::test::write_text(dir / "config.json", text);
    return io::load_hf_config(dir.path());
  };
  CHECK_THAT(MII_ERROR_MESSAGE(io::load_hf_config(dir.path())), Contains(file) && Contains("not found"));
  CHECK_THAT(MII_ERROR_MESSAGE(load("{\"model_type\": \"llama\",")), Contains(file) && Contains("malformed JSON"));
  CHECK_THAT(MII_ERROR_MESSAGE(load("[]")), Contains(file) && Contains("JSON object"));
  CHECK_THAT(MII_ERROR_MESSAGE(load(R"({"model_type": "llama", "hidden_size": "abc"})")),
             Contains(file) && Contains("'hidden_size'") && Contains("an integer") && Contains("\"abc\""));
  CHECK_THAT(MII_ERROR_MESSAGE(load(R"({"model_type": "llama", "hidden_size": 64.5})")),
             Contains("'hidden_size'") && Contains("64.5"));
  CHECK_THAT(MII_ERROR_MESSAGE(load(R"({"model_type": "llama", "hidden_size": 1e30})")),
             Contains("'hidden_size'") && Contains("an integer"));
  CHECK_THAT(MII_ERROR_MESSAGE(load(R"({"model_type": "llama", "num_hidden_layers": 18446744073709551615})")),
             Contains("'num_hidden_layers'") && Contains("fits in 64 bits"));
  CHECK_THAT(MII_ERROR_MESSAGE(load(R"({"model_type": "llama", "tie_word_embeddings": "yes"})")),
             Contains("'tie_word_embeddings'") && Contains("true or false"));
  CHECK_THAT(MII_ERROR_MESSAGE(load(R"({"model_type": 7})")), Contains("'model_type'") && Contains("a string"));
  CHECK_THAT(MII_ERROR_MESSAGE(load(R"({"architectures": "LlamaForCausalLM"})")),
             Contains("'architectures'") && Contains("a list of strings"));
  CHECK_THAT(MII_ERROR_MESSAGE(load(R"({"model_type": "llama", "eos_token_id": [2, "x"]})")),
             Contains("'eos_token_id'") && Contains("integers"));
  CHECK_THAT(MII_ERROR_MESSAGE(load(R"({"hidden_size": 64})")),
             Contains(file) && Contains("'model_type'") && Contains("'architectures'") && Contains("missing"));
  CHECK_THAT(MII_ERROR_MESSAGE(load(R"({"model_type": "llama", "num_attention_heads": 4, "num_key_value_heads": 3, "hidden_size": 64})")),
             Contains(file) && Contains("'num_key_value_heads'") && Contains("(3)") && Contains("(4)"));
  CHECK_THAT(MII_ERROR_MESSAGE(load(R"({"model_type": "llama", "num_attention_heads": 5, "hidden_size": 64})")),
             Contains("'num_attention_heads'") && Contains("(5)") && Contains("(64)"));
  CHECK_THAT(MII_ERROR_MESSAGE(load(R"({"model_type": "llama", "hidden_size": -64})")),
             Contains("'hidden_size'") && Contains("-64"));
  CHECK_THAT(MII_ERROR_MESSAGE(load(R"({"model_type": "llama", "rope_parameters": {"rope_type": "yarn", "factor": 4}})")),
             Contains(file) && Contains("'rope_parameters.rope_type'") && Contains("\"yarn\"") && Contains("llama3"));
  CHECK_THAT(MII_ERROR_MESSAGE(load(R"({"model_type": "llama", "rope_scaling": {"type": "ntk", "factor": 4}})")),
             Contains("'rope_scaling.type'") && Contains("\"ntk\""));
  CHECK_THAT(MII_ERROR_MESSAGE(load(R"({"model_type": "llama", "rope_scaling": {"type": "linear", "factor": 0.5}})")),
             Contains("'rope_scaling.factor'") && Contains("0.5"));
  CHECK_THAT(MII_ERROR_MESSAGE(load(R"({"model_type": "llama", "rope_scaling": {"rope_type": "llama3", "factor": 8}})")),
             Contains("'rope_scaling.original_max_position_embeddings'") && Contains("missing"));
  CHECK_THAT(MII_ERROR_MESSAGE(load(R"({"model_type": "phi3", "rope_scaling": {"type": "longrope", "short_factor": [1.0]}})")),
             Contains("'rope_scaling.long_factor'"));
  CHECK_THAT(MII_ERROR_MESSAGE(load(R"({"model_type": "phi3", "hidden_size": 64, "num_attention_heads": 4,
                                        "rope_scaling": {"type": "su", "short_factor": [1, 1], "long_factor": [1, 1]}})")),
             Contains("'rope_scaling'") && Contains("2/2 entries") && Contains("is 8"));
  CHECK_THAT(MII_ERROR_MESSAGE(load(R"({"model_type": "mistral", "sliding_window": 0})")),
             Contains("'sliding_window'") && Contains("got 0"));
  CHECK_THAT(MII_ERROR_MESSAGE(load(R"({"model_type": "qwen2", "use_sliding_window": true})")),
             Contains("'use_sliding_window'"));
  CHECK_THAT(MII_ERROR_MESSAGE(load(R"({"model_type": "falcon", "alibi": true})")), Contains("'alibi'"));
  CHECK_THAT(MII_ERROR_MESSAGE(load(R"({"model_type": "opt", "layer_norm_elementwise_affine": false})")),
             Contains("'layer_norm_elementwise_affine'"));
  CHECK_THAT(MII_ERROR_MESSAGE(load(R"({"model_type": "llama", "partial_rotary_factor": 1.5})")),
             Contains("'partial_rotary_factor'") && Contains("1.5"));
  // Quantized checkpoints: refused at the config, naming the method (AWQ's spelling), not at the
  // first tensor whose dtype or name mii does not expect.
  CHECK_THAT(MII_ERROR_MESSAGE(load(R"({"model_type": "mistral", "quantization_config": {"quant_method": "awq", "bits": 4}})")),
             Contains("'quantization_config.quant_method'") && Contains("\"awq\""));
  CHECK_THAT(MII_ERROR_MESSAGE(load(R"({"model_type": "llama", "quantization_config": {"bits": 4}})")),
             Contains("'quantization_config.quant_method'") && Contains("is missing"));
}

// compressed-tensors FP8 as llm-compressor writes its FP8_DYNAMIC scheme (the config of e.g.
// neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8-dynamic): read; each way it can differ from the scheme
// mii runs is refused naming the field and the value.
TEST_CASE("config.json: compressed-tensors FP8_DYNAMIC is read, other quantization schemes are refused", "[io][config]") {
  const std::string group = R"("targets": ["Linear"], "output_activations": null,
      "weights": {"num_bits": 8, "type": "float", "symmetric": true, "dynamic": false, "strategy": "channel",
                  "group_size": null, "block_structure": null, "actorder": null, "observer": "minmax", "observer_kwargs": {}},
      "input_activations": {"num_bits": 8, "type": "float", "symmetric": true, "dynamic": true, "strategy": "token",
                            "group_size": null, "block_structure": null, "actorder": null, "observer": null, "observer_kwargs": {}})";
  auto config = [&](const std::string& g, const std::string& extra = "") {
    return R"({"model_type": "llama", "quantization_config": {"quant_method": "compressed-tensors",
      "format": "float-quantized", "quantization_status": "compressed", "ignore": ["lm_head"], "kv_cache_scheme": null,
      "config_groups": {"group_0": {)" + g + "}" + extra + "}}}";
  };
  auto replaced_in = [&](std::string text, std::string from, std::string to) {
    const auto at = text.find(from);
    REQUIRE(at != std::string::npos);
    return text.replace(at, from.size(), to);
  };
  auto replaced = [&](std::string from, std::string to) { return replaced_in(group, from, to); };
  const auto c = io::parse_hf_config(config(group), "test/config.json");
  CHECK(c.quantization.fp8);
  CHECK(c.quantization.ignore == std::vector<std::string>{"lm_head"});
  CHECK_FALSE(io::parse_hf_config(R"({"model_type": "llama"})", "test/config.json").quantization.fp8);
  auto msg = [&](const std::string& json) { return MII_ERROR_MESSAGE(io::parse_hf_config(json, "test/config.json")); };
  // per-tensor weight scales load too
  CHECK(io::parse_hf_config(config(replaced(R"("strategy": "channel")", R"("strategy": "tensor")")), "c").quantization.fp8);
  CHECK_THAT(msg(config(replaced(R"("strategy": "channel")", R"("strategy": "block")"))),
             Contains("test/config.json") && Contains("'quantization_config.config_groups.group_0.weights.strategy'") &&
                 Contains("\"block\"") && Contains("FP8_DYNAMIC"));
  CHECK_THAT(msg(config(replaced(R"("num_bits": 8, "type": "float", "symmetric": true, "dynamic": false)",
                                 R"("num_bits": 4, "type": "int", "symmetric": true, "dynamic": false)"))),
             Contains("'quantization_config.config_groups.group_0.weights.type'") && Contains("\"int\""));
  // Static input scales per tensor load (the checkpoint's input_scale tensors); other static or
  // dynamic strategies do not.
  const auto static_inputs =
      io::parse_hf_config(config(replaced(R"("dynamic": true, "strategy": "token")", R"("dynamic": false, "strategy": "tensor")")), "c");
  CHECK(static_inputs.quantization.fp8);
  CHECK(static_inputs.quantization.static_input_scales);
  CHECK_FALSE(c.quantization.static_input_scales);
  CHECK_THAT(msg(config(replaced(R"("dynamic": true, "strategy": "token")", R"("dynamic": false, "strategy": "token")"))),
             Contains("'quantization_config.config_groups.group_0.input_activations.strategy'") && Contains("\"token\""));
  CHECK_THAT(msg(config(replaced(R"("dynamic": true, "strategy": "token")", R"("dynamic": true, "strategy": "tensor")"))),
             Contains("'quantization_config.config_groups.group_0.input_activations.strategy'") && Contains("\"tensor\""));
  CHECK_THAT(msg(config(replaced(R"("input_activations": {)", R"("input_activations": null, "unused": {)"))),
             Contains("'quantization_config.config_groups.group_0.input_activations'") && Contains("weight-only"));
  CHECK_THAT(msg(config(group, R"(, "group_1": {)" + group + "}")),
             Contains("'quantization_config.config_groups.group_1'") && Contains("second config group"));
  CHECK_THAT(msg(R"({"model_type": "llama", "quantization_config": {"quant_method": "compressed-tensors",
                     "format": "pack-quantized", "config_groups": {}}})"),
             Contains("'quantization_config.format'") && Contains("\"pack-quantized\""));
  CHECK_THAT(msg(R"({"model_type": "llama", "quantization_config": {"quant_method": "compressed-tensors",
                     "format": "float-quantized", "config_groups": {}}})"),
             Contains("'quantization_config.config_groups'") && Contains("no config group"));
  // kv_cache_scheme: static per-tensor 8-bit float scales are read; other KV schemes are refused.
  const auto kv = [&](const std::string& scheme) {
    return R"({"model_type": "llama", "quantization_config": {"quant_method": "compressed-tensors",
                     "kv_cache_scheme": )" + scheme + R"(, "config_groups": {"g": {)" + group + "}}}}";
  };
  const std::string kv_ok = R"({"num_bits": 8, "type": "float", "symmetric": true, "dynamic": false, "strategy": "tensor"})";
  CHECK(io::parse_hf_config(kv(kv_ok), "config.json").quantization.kv_cache_scales);
  CHECK_FALSE(io::parse_hf_config(kv("null"), "config.json").quantization.kv_cache_scales);
  CHECK_THAT(msg(kv(R"({"num_bits": 8})")), Contains("'quantization_config.kv_cache_scheme.type'") && Contains("is missing"));
  CHECK_THAT(msg(kv(replaced_in(kv_ok, R"("strategy": "tensor")", R"("strategy": "attn_head")"))),
             Contains("'quantization_config.kv_cache_scheme.strategy'") && Contains("\"attn_head\"") &&
                 Contains("k_scale"));
  CHECK_THAT(msg(kv(replaced_in(kv_ok, R"("dynamic": false)", R"("dynamic": true)"))),
             Contains("'quantization_config.kv_cache_scheme.dynamic'"));
  CHECK_THAT(msg(kv(replaced_in(kv_ok, R"("num_bits": 8)", R"("num_bits": 4)"))),
             Contains("'quantization_config.kv_cache_scheme.num_bits'") && Contains("is 4"));
  CHECK_THAT(msg(R"({"model_type": "llama", "quantization_config": {"quant_method": "gptq", "bits": 4}})"),
             Contains("'quantization_config.quant_method'") && Contains("\"gptq\"") && Contains("compressed-tensors") &&
                 Contains("--quantization fp8"));
}

// transformers' block-wise FP8 as FineGrainedFP8Config writes it (the config of e.g.
// Qwen/Qwen3-8B-FP8 and deepseek-ai/DeepSeek-V3): read with its block size; the variants that
// compute something else are refused naming the field and the value.
TEST_CASE("config.json: transformers' block-wise FP8 is read, its other variants are refused", "[io][config]") {
  auto config = [](const std::string& fields) {
    return R"({"model_type": "llama", "quantization_config": {"quant_method": "fp8", )" + fields + "}}";
  };
  const std::string written = R"("activation_scheme": "dynamic", "dequantize": false, "modules_to_convert": null,
      "modules_to_not_convert": null, "scale_fmt": "float", "weight_block_size": [128, 128])";
  const auto c = io::parse_hf_config(config(written), "test/config.json");
  CHECK(c.quantization.fp8);
  CHECK(c.quantization.block_rows == 128);
  CHECK(c.quantization.block_cols == 128);
  CHECK_FALSE(c.quantization.static_input_scales);
  // DeepSeek-V3's own spelling: "fmt", no scale_fmt; modules left alone named
  const auto ds = io::parse_hf_config(config(R"("activation_scheme": "dynamic", "fmt": "e4m3", "weight_block_size": [64, 32],
      "modules_to_not_convert": ["lm_head", "mlp.gate"])"), "c");
  CHECK(ds.quantization.block_rows == 64);
  CHECK(ds.quantization.block_cols == 32);
  CHECK(ds.quantization.ignore == std::vector<std::string>{"lm_head", "mlp.gate"});
  auto msg = [&](const std::string& json) { return MII_ERROR_MESSAGE(io::parse_hf_config(json, "test/config.json")); };
  CHECK_THAT(msg(config(R"("activation_scheme": "static", "weight_block_size": [128, 128])")),
             Contains("test/config.json") && Contains("'quantization_config.activation_scheme'") && Contains("\"static\""));
  CHECK_THAT(msg(config(R"("scale_fmt": "ue8m0", "weight_block_size": [128, 128])")),
             Contains("'quantization_config.scale_fmt'") && Contains("\"ue8m0\""));
  CHECK_THAT(msg(config(R"("fmt": "e5m2", "weight_block_size": [128, 128])")),
             Contains("'quantization_config.fmt'") && Contains("\"e5m2\""));
  CHECK_THAT(msg(config(R"("activation_scheme": "dynamic")")),
             Contains("'quantization_config.weight_block_size'") && Contains("is missing"));
  CHECK_THAT(msg(config(R"("weight_block_size": [128, 0])")),
             Contains("'quantization_config.weight_block_size'") && Contains("[128, 0]") && Contains(">= 1"));
  CHECK_THAT(msg(config(R"("weight_block_size": [128])")),
             Contains("'quantization_config.weight_block_size'") && Contains("[128]"));
}

// Values no model can have, which used to load and compute garbage (an eps <= 0 gives NaN
// logits, read as token 0 by greedy decoding) or to be replaced silently (max_position_embeddings
// 0 became model_config.max_context): refused naming the field and the value.
TEST_CASE("config.json values no model can have are refused", "[io][config]") {
  const std::string llama = R"({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4)";
  auto msg = [&](std::string_view json) { return MII_ERROR_MESSAGE(parse(json)); };
  SECTION("norm eps <= 0, in each of its spellings") {
    CHECK_THAT(msg(llama + R"(, "rms_norm_eps": -1})"), Contains("test/config.json") && Contains("'rms_norm_eps'") && Contains("got -1"));
    CHECK_THAT(msg(llama + R"(, "rms_norm_eps": 0})"), Contains("'rms_norm_eps'") && Contains("positive") && Contains("got 0"));
    CHECK_THAT(msg(R"({"model_type": "phi", "layer_norm_eps": -1e-05})"), Contains("'layer_norm_eps'") && Contains("got -1e-05"));
    CHECK_THAT(msg(R"({"model_type": "falcon", "layer_norm_epsilon": 0})"), Contains("'layer_norm_epsilon'") && Contains("got 0"));
    CHECK(parse(llama + R"(, "rms_norm_eps": 1e-12})").norm_eps == 1e-12);  // tiny is fine
  }
  SECTION("max_position_embeddings 0 or negative") {
    CHECK_THAT(msg(llama + R"(, "max_position_embeddings": 0})"), Contains("'max_position_embeddings'") && Contains("got 0"));
    CHECK_THAT(msg(llama + R"(, "max_position_embeddings": -4096})"), Contains("'max_position_embeddings'") && Contains("got -4096"));
  }
  SECTION("OPT word_embed_proj_dim 0 or negative") {
    CHECK_THAT(msg(R"({"model_type": "opt", "word_embed_proj_dim": 0})"), Contains("'word_embed_proj_dim'") && Contains("got 0"));
    CHECK_THAT(msg(R"({"model_type": "opt", "word_embed_proj_dim": -5})"), Contains("'word_embed_proj_dim'") && Contains("got -5"));
  }
  SECTION("Falcon num_ln_in_parallel_attn other than 1 or 2") {
    CHECK_THAT(msg(R"({"model_type": "falcon", "num_ln_in_parallel_attn": 3})"), Contains("'num_ln_in_parallel_attn'") && Contains("got 3"));
  }
  SECTION("rope scaling factors that divide by zero or flip signs") {
    CHECK_THAT(msg(llama + R"(, "rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 0,
                  "high_freq_factor": 4, "original_max_position_embeddings": 8192}})"),
               Contains("'rope_scaling.low_freq_factor'") && Contains("got 0"));
    CHECK_THAT(msg(llama + R"(, "rope_scaling": {"rope_type": "llama3", "factor": 8, "original_max_position_embeddings": -1}})"),
               Contains("'original_max_position_embeddings'") && Contains("got -1"));
    CHECK_THAT(msg(llama + R"(, "rope_scaling": {"rope_type": "dynamic", "factor": 2, "original_max_position_embeddings": -8}})"),
               Contains("'original_max_position_embeddings'") && Contains("got -8"));
    const std::string eight = "[1, 1, 1, 1, 1, 1, 1, 1]";
    CHECK_THAT(msg(llama + R"(, "rope_scaling": {"type": "longrope", "short_factor": [1, 1, 0, 1, 1, 1, 1, 1], "long_factor": )" + eight + "}}"),
               Contains("'rope_scaling.short_factor'") && Contains("[2]") && Contains("got 0"));
    CHECK_THAT(msg(llama + R"(, "rope_scaling": {"type": "longrope", "attention_factor": -1, "short_factor": )" + eight +
                   R"(, "long_factor": )" + eight + "}}"),
               Contains("'rope_scaling.attention_factor'") && Contains("got -1"));
    // transformers' rule for longrope without original_max_position_embeddings: max_position_embeddings.
    const auto c = parse(llama + R"(, "max_position_embeddings": 2048, "rope_scaling": {"type": "longrope", "short_factor": )" +
                         eight + R"(, "long_factor": )" + eight + "}}");
    CHECK(c.rope.original_max_position_embeddings == 2048);
  }
}

TEST_CASE("generation_config.json: present, absent, malformed", "[io][config]") {
  SECTION("a fixture's") {
    const auto g = io::load_generation_config(mii::test::fixture_dir("llama2"));
    CHECK(g.eos_token_ids == std::vector<std::int64_t>{2});
    CHECK(g.bos_token_id == 1);
    CHECK(g.pad_token_id == 0);
    CHECK_FALSE(g.do_sample);
    CHECK_FALSE(g.max_new_tokens);
  }
  mii::test::temp_dir dir("genconfig");
  SECTION("absent: an empty config") {
    const auto g = io::load_generation_config(dir.path());
    CHECK(g.eos_token_ids.empty());
    CHECK_FALSE(g.bos_token_id);
    CHECK_FALSE(g.temperature);
  }
  SECTION("every field, eos as a list") {
    mii::test::write_text(dir / "generation_config.json", R"({"eos_token_id": [128001, 128009], "do_sample": true,
        "temperature": 0.6, "top_p": 0.9, "top_k": 50, "max_new_tokens": 256, "max_length": 4096, "bos_token_id": 128000})");
    const auto g = io::load_generation_config(dir.path());
    CHECK(g.eos_token_ids == std::vector<std::int64_t>{128001, 128009});
    CHECK(g.do_sample == true);
    CHECK(g.temperature == 0.6);
    CHECK(g.top_p == 0.9);
    CHECK(g.top_k == 50);
    CHECK(g.max_new_tokens == 256);
    CHECK(g.max_length == 4096);
    CHECK(g.bos_token_id == 128000);
    CHECK(io::load_generation_config(dir / "generation_config.json").eos_token_ids.size() == 2);
  }
  SECTION("malformed or mistyped") {
    const std::string file = (dir / "generation_config.json").string();
    mii::test::write_text(dir / "generation_config.json", "{\"eos_token_id\": 2,,}");
    CHECK_THAT(MII_ERROR_MESSAGE(io::load_generation_config(dir.path())), Contains(file) && Contains("malformed JSON"));
    mii::test::write_text(dir / "generation_config.json", R"({"temperature": "hot"})");
    CHECK_THAT(MII_ERROR_MESSAGE(io::load_generation_config(dir.path())),
               Contains(file) && Contains("'temperature'") && Contains("\"hot\""));
    mii::test::write_text(dir / "generation_config.json", R"({"eos_token_id": "</s>"})");
    CHECK_THAT(MII_ERROR_MESSAGE(io::load_generation_config(dir.path())), Contains("'eos_token_id'") && Contains("\"</s>\""));
  }
}

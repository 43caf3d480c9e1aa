// Pre-quantized FP8 checkpoints in compressed-tensors' layout (llm-compressor's FP8_DYNAMIC:
// F8_E4M3 weights with a weight_scale beside each, config.json's quantization_config).
// - Checkpoints written by torch (tests/fixtures/make_fp8_references.py): llama3_fp8_channel
//   (per-channel fp32 scales) and qwen2_fp8_tensor (one bf16 scale per tensor) match torch's
//   logits of the same bytes and scales within 1e-4, and their greedy tokens.
// - A checkpoint written here from a fixture with mii's own quantization runs bit for bit as the
//   same fixture quantized while loading (the bytes and scales are the same; only the path differs).
// - What cannot run is refused naming the file and the tensor: e4m3 outside the dense linear
//   layers, a projection half quantized, a missing or misshapen weight_scale, an input_scale on some
//   projections of a fused layer only, an input scale that is not a positive number.
// - Static input scales (compressed-tensors' FP8 scheme, "dynamic": false per tensor): a checkpoint
//   written by torch with scales calibrated on its first prompt (so the others saturate) matches
//   torch's model that quantizes its inputs with those scales.
#include "check_fixture.hpp"

#include <cmath>
#include <regex>

#include "expect_error.hpp"

using namespace mii;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

test::fixture_check_options prequantized_options() {
  test::fixture_check_options o;
  o.reference_variant = "fp8";
  o.tolerance = 1e-4;      // as for the fixtures quantized while loading (fp8_test.cpp)
  o.greedy_near_tie = 2e-2;
  o.greedy_max_mismatches = 1;
  return o;
}

const char* quantization_config = R"("quantization_config": {"quant_method": "compressed-tensors",
  "format": "float-quantized", "ignore": ["lm_head"], "config_groups": {"group_0": {"targets": ["Linear"],
  "weights": {"num_bits": 8, "type": "float", "symmetric": true, "dynamic": false, "strategy": "channel"},
  "input_activations": {"num_bits": 8, "type": "float", "symmetric": true, "dynamic": true, "strategy": "token"}}}},
  )";

// A copy of `fixture` with its dense linear weights quantized by mii's host conversions (per row,
// fp32 scales), written as compressed-tensors does. `edit` may change the tensor list before writing.
struct quantized_copy {
  test::temp_dir dir{"fp8ckpt"};
  std::vector<std::vector<std::byte>> storage;
  std::vector<io::tensor_to_write> tensors;

  explicit quantized_copy(const std::string& fixture) {
    test::copy_dir(test::fixture_dir(fixture), dir.path());
    const std::string config = test::read_text(dir / "config.json");
    test::write_text(dir / "config.json", "{" + std::string(quantization_config) + config.substr(config.find('{') + 1));
    const auto original = io::safetensors_file::open(test::fixture_dir(fixture) / "model.safetensors");
    // (Mixtral's experts are w1 / w3 / w2.)
    static const std::regex linear(R"(.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj|w1|w2|w3)\.weight)");
    storage.reserve(original.tensors().size() * 2);
    for (const auto& t : original.tensors()) {
      if (!std::regex_match(t.name, linear)) {
        storage.emplace_back(t.bytes.begin(), t.bytes.end());
        tensors.push_back({t.name, t.type, t.shape, storage.back()});
        continue;
      }
      const std::int64_t rows = t.shape[0], cols = t.shape[1];
      std::vector<float> w(std::size_t(rows * cols));
      io::convert(t, dtype::f32, w.data());
      std::vector<std::byte> q(std::size_t(rows * cols)), s(std::size_t(rows) * 4);
      for (std::int64_t r = 0; r < rows; ++r) {
        float amax = 0;
        for (std::int64_t c = 0; c < cols; ++c) amax = std::max(amax, std::fabs(w[std::size_t(r * cols + c)]));
        const float scale = fp8_scale(amax);
        std::memcpy(s.data() + r * 4, &scale, 4);
        for (std::int64_t c = 0; c < cols; ++c) q[std::size_t(r * cols + c)] = std::byte(to_e4m3(w[std::size_t(r * cols + c)] / scale));
      }
      storage.push_back(std::move(q));
      tensors.push_back({t.name, dtype::f8_e4m3, t.shape, storage.back()});
      storage.push_back(std::move(s));
      tensors.push_back({t.name + "_scale", dtype::f32, {rows, 1}, storage.back()});
    }
  }
  io::tensor_to_write* find(const std::string& name) {
    for (auto& t : tensors)
      if (t.name == name) return &t;
    FAIL("no tensor " << name);
    return nullptr;
  }
  void write() { io::write_safetensors(dir / "model.safetensors", tensors); }
};

template <class Model = models::llama>
std::vector<std::vector<float>> logits_of(const fs::path& dir, const model_config& cfg,
                                          const std::string& reference = "llama3") {
  test::harness<Model> h(dir, cfg);
  const auto ref = test::load_reference(reference);
  return test::run_pieces(h.runner, ref, test::whole_prompt_steps(test::prompt_lengths(ref)));
}

}  // namespace

TEST_CASE("compressed-tensors FP8 checkpoint written by torch (per-channel scales) matches torch", "[model][fp8]") {
  test::check_fixture<models::llama>("llama3_fp8_channel", "llama3_fp8_channel", prequantized_options());
}

TEST_CASE("compressed-tensors FP8 checkpoint with static input scales (written by torch) matches torch", "[model][fp8]") {
  test::check_fixture<models::llama>("llama3_fp8_static", "llama3_fp8_static", prequantized_options());
}

TEST_CASE("compressed-tensors FP8 checkpoint written by torch (bf16 per-tensor scales, qkv bias) matches torch",
          "[model][fp8]") {
  test::check_fixture<models::qwen2>("qwen2_fp8_tensor", "qwen2_fp8_tensor", prequantized_options());
}

TEST_CASE("compressed-tensors FP8 checkpoint with static KV-cache scales (written by torch) matches torch's FP8 cache",
          "[model][fp8][kvfp8]") {
  // llama3_fp8_kv: llama3_fp8_channel plus kv_cache_scheme and a k_scale / v_scale per layer,
  // calibrated on the first prompt (the others saturate some keys and values); the reference
  // stores e4m3(clamp(x / s, -448, 448)) * s in its cache.
  test::fixture_check_options o = prequantized_options();
  o.config.kv_cache_dtype = "fp8_e4m3";
  test::check_fixture<models::llama>("llama3_fp8_kv", "llama3_fp8_kv", o);
}

TEST_CASE("static KV-cache scales are unused with a compute-dtype KV cache", "[model][fp8][kvfp8]") {
  // As vLLM's kv_cache_dtype "auto": the checkpoint runs as its FP8 weights alone, bit for bit.
  const auto plain = logits_of(test::fixture_dir("llama3_fp8_channel"), test::fixture_config());
  CHECK(logits_of(test::fixture_dir("llama3_fp8_kv"), test::fixture_config()) == plain);
  // and with the FP8 cache, its scales change the result
  model_config fp8_cache = test::fixture_config();
  fp8_cache.kv_cache_dtype = "fp8_e4m3";
  CHECK(logits_of(test::fixture_dir("llama3_fp8_kv"), fp8_cache) != logits_of(test::fixture_dir("llama3_fp8_channel"), fp8_cache));
}

TEST_CASE("static KV-cache scales mii cannot use are refused naming the tensor", "[model][fp8][kvfp8]") {
  test::temp_dir dir("kvscales");
  test::copy_dir(test::fixture_dir("llama3_fp8_kv"), dir.path());
  const auto original = io::safetensors_file::open(test::fixture_dir("llama3_fp8_kv") / "model.safetensors");
  std::vector<std::vector<std::byte>> storage;
  std::vector<io::tensor_to_write> tensors;
  storage.reserve(original.tensors().size());
  for (const auto& t : original.tensors()) {
    storage.emplace_back(t.bytes.begin(), t.bytes.end());
    tensors.push_back({t.name, t.type, t.shape, storage.back()});
  }
  auto load_error = [&] {
    io::write_safetensors(dir / "model.safetensors", tensors);
    return MII_ERROR_MESSAGE(test::harness<models::llama>(dir.path()));
  };
  auto find = [&](const std::string& name) -> io::tensor_to_write& {
    for (auto& t : tensors)
      if (t.name == name) return t;
    FAIL("no tensor " << name);
    return tensors.front();
  };
  SECTION("a layer without its v_scale") {
    std::erase_if(tensors, [](const auto& t) { return t.name == "model.layers.1.self_attn.v_scale"; });
    CHECK_THAT(load_error(), Contains("kv_cache_scheme") && Contains("layer 1") &&
                                 Contains("'model.layers.1.self_attn.v_scale'") &&
                                 Contains("'model.layers.1.self_attn.v_proj.output_scale'"));
  }
  SECTION("a scale of zero") {
    static std::vector<std::byte> zero(4);
    auto& k = find("model.layers.0.self_attn.k_scale");
    k.bytes = zero;
    CHECK_THAT(load_error(), Contains("'model.layers.0.self_attn.k_scale' is 0") && Contains("finite number > 0"));
  }
  SECTION("a scale per head") {
    static std::vector<std::byte> two(8);
    auto& k = find("model.layers.0.self_attn.k_scale");
    k.bytes = two;
    k.shape = {2};
    CHECK_THAT(load_error(), Contains("'model.layers.0.self_attn.k_scale' has shape [2]") && Contains("one value"));
  }
}

TEST_CASE("a pre-quantized checkpoint runs bit for bit as the same weights quantized while loading", "[model][fp8]") {
  quantized_copy copy("llama3");
  copy.write();
  model_config on_load = test::fixture_config();
  on_load.quantization = "fp8";
  const auto expected = logits_of(test::fixture_dir("llama3"), on_load);
  const auto got = logits_of(copy.dir.path(), test::fixture_config());
  REQUIRE(got.size() == expected.size());
  for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == expected[i]);
  // model_config.quantization = "fp8" on a checkpoint that already is: the same.
  CHECK(logits_of(copy.dir.path(), on_load) == expected);
}

TEST_CASE("a pre-quantized MoE checkpoint (mixtral, every expert per channel) runs bit for bit as quantized while loading",
          "[model][fp8]") {
  // Each expert's w1 / w3 / w2 with its own weight_scale (compressed-tensors' layout for
  // Mixtral): the plan attaches each expert's scales as a dense layer's.
  quantized_copy copy("mixtral");
  copy.write();
  model_config on_load = test::fixture_config();
  on_load.quantization = "fp8";
  const auto expected = logits_of<models::mixtral>(test::fixture_dir("mixtral"), on_load, "mixtral");
  const auto got = logits_of<models::mixtral>(copy.dir.path(), test::fixture_config(), "mixtral");
  REQUIRE(got.size() == expected.size());
  for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == expected[i]);
  // and not the unquantized model's
  CHECK(logits_of<models::mixtral>(test::fixture_dir("mixtral"), test::fixture_config(), "mixtral") != expected);

  SECTION("static input scales on experts are refused naming the tensor") {
    static std::vector<std::byte> one(4);
    const float v = 0.01f;
    std::memcpy(one.data(), &v, 4);
    copy.tensors.push_back({"model.layers.0.block_sparse_moe.experts.3.w2.input_scale", dtype::f32, {1}, one});
    copy.write();
    const std::string msg = MII_ERROR_MESSAGE(test::harness<models::mixtral>(copy.dir.path()));
    CHECK_THAT(msg, Contains("model.safetensors") && Contains("'model.layers.0.block_sparse_moe.experts.3.w2.input_scale'") &&
                        Contains("static input scales on MoE experts are not supported"));
  }
}

TEST_CASE("FP8 experts stacked in one tensor (transformers 5's layout) are refused naming the tensor", "[model][fp8]") {
  // qwen3_moe_v5layout holds experts.gate_up_proj [E, 2F, H] and experts.down_proj [E, H, F].
  test::temp_dir dir("fp8stacked");
  test::copy_dir(test::fixture_dir("qwen3_moe_v5layout"), dir.path());
  const auto original = io::safetensors_file::open(test::fixture_dir("qwen3_moe_v5layout") / "model.safetensors");
  std::vector<std::vector<std::byte>> storage;
  std::vector<io::tensor_to_write> tensors;
  storage.reserve(original.tensors().size());
  std::string stacked;
  for (const auto& t : original.tensors()) {
    if (t.shape.size() == 3 && t.name.ends_with("experts.gate_up_proj") && stacked.empty()) {
      stacked = t.name;
      storage.emplace_back(std::size_t(t.numel()));  // zero bytes: e4m3 zeros
      tensors.push_back({t.name, dtype::f8_e4m3, t.shape, storage.back()});
      continue;
    }
    storage.emplace_back(t.bytes.begin(), t.bytes.end());
    tensors.push_back({t.name, t.type, t.shape, storage.back()});
  }
  REQUIRE_FALSE(stacked.empty());
  io::write_safetensors(dir / "model.safetensors", tensors);
  const std::string config = test::read_text(dir / "config.json");
  test::write_text(dir / "config.json", "{" + std::string(quantization_config) + config.substr(config.find('{') + 1));
  const std::string msg = MII_ERROR_MESSAGE(test::harness<models::qwen3_moe>(dir.path()));
  CHECK_THAT(msg, Contains("'" + stacked + "'") && Contains("stacked in one tensor are not supported"));
}

TEST_CASE("FP8 tensors mii cannot run are refused naming the file and the tensor", "[model][fp8]") {
  quantized_copy copy("llama3");
  auto load_error = [&] {
    copy.write();
    return MII_ERROR_MESSAGE(test::harness<models::llama>(copy.dir.path()));
  };
  SECTION("an embedding in e4m3") {
    auto* t = copy.find("model.embed_tokens.weight");
    std::vector<std::byte> bytes(t->bytes.size() / 4);
    copy.storage.push_back(bytes);
    t->type = dtype::f8_e4m3;
    t->bytes = copy.storage.back();
    CHECK_THAT(load_error(), Contains("model.safetensors") && Contains("'model.embed_tokens.weight' is F8_E4M3") &&
                                 Contains("linear layers only"));
  }
  SECTION("k_proj unquantized beside a quantized q_proj") {
    auto* k = copy.find("model.layers.0.self_attn.k_proj.weight");
    const auto original = io::safetensors_file::open(test::fixture_dir("llama3") / "model.safetensors");
    const auto* src = original.find("model.layers.0.self_attn.k_proj.weight");
    copy.storage.emplace_back(src->bytes.begin(), src->bytes.end());
    k->type = src->type;
    k->bytes = copy.storage.back();
    std::erase_if(copy.tensors, [](const auto& t) { return t.name == "model.layers.0.self_attn.k_proj.weight_scale"; });
    CHECK_THAT(load_error(), Contains("'model.layers.0.self_attn.k_proj.weight' is F32") && Contains("F8_E4M3") &&
                                 Contains("layer 0 qkv"));
  }
  SECTION("a missing weight_scale") {
    std::erase_if(copy.tensors, [](const auto& t) { return t.name == "model.layers.1.mlp.down_proj.weight_scale"; });
    CHECK_THAT(load_error(), Contains("model.layers.1.mlp.down_proj.weight_scale"));
  }
  SECTION("a weight_scale of the wrong shape") {
    copy.find("model.layers.0.mlp.up_proj.weight_scale")->shape = {1, copy.find("model.layers.0.mlp.up_proj.weight")->shape[0]};
    CHECK_THAT(load_error(), Contains("'model.layers.0.mlp.up_proj.weight_scale' has shape [1, ") && Contains("per channel"));
  }
  SECTION("a static input scale of 0") {
    static const float zero = 0.0f;
    copy.tensors.push_back({"model.layers.0.self_attn.o_proj.input_scale", dtype::f32, {1},
                            std::as_bytes(std::span(&zero, 1))});
    CHECK_THAT(load_error(), Contains("'model.layers.0.self_attn.o_proj.input_scale' is 0") && Contains("> 0"));
  }
  SECTION("a static input scale on q_proj only") {
    static const float one = 1.0f;
    copy.tensors.push_back({"model.layers.0.self_attn.q_proj.input_scale", dtype::f32, {1},
                            std::as_bytes(std::span(&one, 1))});
    CHECK_THAT(load_error(), Contains("layer 0 qkv") && Contains("static input_scale and others none"));
  }
}

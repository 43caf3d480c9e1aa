// FP8 linear layers (model_config.quantization = "fp8", backend/fp8.hpp) on the host backend,
// against torch (tests/fixtures/make_fp8_references.py, run on the GPU machine):
// - mii::to_e4m3 gives torch's float8_e4m3fn code for every value of a sweep (ties, subnormals,
//   out of range, NaN);
// - every fixture with its linear layers quantized (MoE experts too) matches the transformers
//   model whose nn.Linear layers and experts quantize the same way: logits within 1e-4 relative
//   (whole prompts, chunks through the KV cache, ragged steps; one measured knife-edge row of
//   mixtral excepted, below) and the 32 greedy tokens;
// - the trained demo model's perplexity on its own text: mii's equals torch's, and FP8 costs
//   less than 1 % against the unquantized model;
// - the plan quantizes exactly the linear weights, and the weights then take about half
//   of their bf16 bytes; an unknown quantization is refused naming the field.
#include "check_fixture.hpp"

#include <cmath>
#include <cstring>

#include <mii/io/hf_config.hpp>
#include <mii/model/model_shape.hpp>

#include "expect_error.hpp"

using namespace mii;
using Catch::Matchers::Contains;
using mii::test::check_fixture;
using mii::test::fixture_check_options;

namespace {

// The issue's bound for the host backend against torch's FP8 model. Beyond the fp32 sums of the
// unquantized fixtures (1e-5 there), an activation that lands within an fp32 rounding of the
// midpoint between two e4m3 codes may round to the other code in one of the two programs.
constexpr double fp8_tolerance = 1e-4;

fixture_check_options fp8_options() {
  fixture_check_options o;
  o.config.quantization = "fp8";
  o.reference_variant = "fp8";
  o.tolerance = fp8_tolerance;
  // Greedy decoding meets the same boundary cases over 32 steps x 3 prompts. Seen once: llama2,
  // prompt 1, step 6, mii's pick ahead of torch's token by 0.9 % of max |logit| where torch had
  // its token ahead by at least 0.0058 (every other step of the teacher-forced run picks torch's
  // token) — the size of one activation landing on the other side of an e4m3 rounding boundary.
  // A differing pick must be within 2 % (the bf16 GPU budget), and at most one per fixture.
  o.greedy_near_tie = 2e-2;
  o.greedy_max_mismatches = 1;
  return o;
}

template <class Model>
void check_fp8(const std::string& fixture) {
  check_fixture<Model>(fixture, fixture, fp8_options());
}

}  // namespace

TEST_CASE("to_e4m3 rounds every value of the sweep to torch's float8_e4m3fn code", "[model][fp8]") {
  const auto doc = mii::detail::json_document::from_file(test::source_dir() / "tests/fixtures/fp8/e4m3_torch.json");
  const auto root = mii::detail::json_object::expect(doc.root(), doc.origin(), "");
  const auto bits = simdjson::dom::array(*root.raw("float_bits"));
  const auto codes = simdjson::dom::array(*root.raw("e4m3"));
  REQUIRE(bits.size() == codes.size());
  REQUIRE(bits.size() > 10000);
  std::size_t i = 0, wrong = 0;
  auto code = codes.begin();
  for (simdjson::dom::element b : bits) {
    const auto u = std::uint32_t(std::uint64_t(b));
    float f;
    std::memcpy(&f, &u, 4);
    const auto expected = std::uint8_t(std::int64_t(*code));
    const std::uint8_t got = to_e4m3(f);
    // torch writes NaN as 0x7f or 0xff depending on the input's sign bit, as mii does.
    if (got != expected) {
      if (++wrong <= 5) UNSCOPED_INFO("value " << f << " (bits 0x" << std::hex << u << std::dec << "): mii " << int(got)
                                               << ", torch " << int(expected));
    }
    ++code;
    ++i;
  }
  CHECK(wrong == 0);
  // And decoding: every finite code's value encodes back to the same code.
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7f) == 0x7f) {
      CHECK(std::isnan(e4m3_to_float(std::uint8_t(c))));
      continue;
    }
    CHECK(to_e4m3(e4m3_to_float(std::uint8_t(c))) == c);
  }
}

TEST_CASE("llama-3 with FP8 linears matches torch's FP8 reference", "[model][fp8]") { check_fp8<models::llama>("llama3"); }
TEST_CASE("llama-2 with FP8 linears matches torch's FP8 reference", "[model][fp8]") { check_fp8<models::llama>("llama2"); }
TEST_CASE("mistral with FP8 linears matches torch's FP8 reference", "[model][fp8]") { check_fp8<models::mistral>("mistral"); }
TEST_CASE("qwen2 (qkv bias) with FP8 linears matches torch's FP8 reference", "[model][fp8]") {
  check_fp8<models::qwen2>("qwen2");
}
TEST_CASE("qwen3 with FP8 linears matches torch's FP8 reference", "[model][fp8]") { check_fp8<models::qwen3>("qwen3"); }
TEST_CASE("qwen3-moe (experts and the dense layer FP8) matches torch's FP8 reference", "[model][fp8]") {
  check_fp8<models::qwen3_moe>("qwen3_moe");
}
TEST_CASE("qwen2-moe (experts and the shared expert FP8) matches torch's FP8 reference", "[model][fp8]") {
  check_fp8<models::qwen2_moe>("qwen2_moe");
}
TEST_CASE("qwen3-moe with its experts stacked (transformers 5's layout) quantizes as the per-expert layout",
          "[model][fp8]") {
  // The same weights either way: FP8 bytes and scales per expert row, so the logits agree bit for bit.
  model_config cfg = test::fixture_config();
  cfg.quantization = "fp8";
  const auto ref = test::load_reference("qwen3_moe");
  auto logits = [&](const std::string& fixture) {
    test::harness<models::qwen3_moe> h(fixture, cfg);
    return test::run_pieces(h.runner, ref, test::whole_prompt_steps(test::prompt_lengths(ref)));
  };
  CHECK(logits("qwen3_moe_v5layout") == logits("qwen3_moe"));
}

TEST_CASE("mixtral (experts FP8) matches torch's FP8 reference", "[model][fp8]") {
  fixture_check_options o = fp8_options();
  // Prompt 2's last position (row 32): an expert's down-projection input in the last layer is
  // 115.999985 after its scale on the host, 2 fp32 ulps below the midpoint 116 between the e4m3
  // codes 112 and 120 (measured by instrumenting host::linear_fp8); torch's sum order puts it on
  // the other side. That one row's logits then differ by 2.1e-2 of the prompt's largest |logit|;
  // every other row of every prompt stays within 1e-4 (4e-7 typical). Allowed up to 5e-2 (one
  // activation one e4m3 step off), only there.
  o.knife_edge_rows = {{2, 32}};
  o.knife_edge_tolerance = 5e-2;
  check_fixture<models::mixtral>("mixtral", "mixtral", o);
}
TEST_CASE("phi-3 (fused qkv and gate_up) with FP8 linears matches torch's FP8 reference", "[model][fp8]") {
  check_fp8<models::phi3>("phi3");
}
TEST_CASE("phi-2 (biases, parallel block) with FP8 linears matches torch's FP8 reference", "[model][fp8]") {
  check_fp8<models::phi>("phi2");
}
TEST_CASE("falcon (three qkv layouts) with FP8 linears matches torch's FP8 reference", "[model][fp8]") {
  check_fp8<models::falcon>("falcon_new");
  check_fp8<models::falcon>("falcon_old");
  check_fp8<models::falcon>("falcon_rw");
}
TEST_CASE("llama rope scalings (dynamic, linear) and phi-3 longrope with FP8 linears match torch's FP8 reference",
          "[model][fp8]") {
  check_fp8<models::llama>("llama_dynamic");
  check_fp8<models::llama>("llama_linear");
  check_fp8<models::phi3>("phi3_cross");
}
TEST_CASE("opt (post-norm, project_in/out unquantized) with FP8 linears matches torch's FP8 reference", "[model][fp8]") {
  check_fp8<models::opt>("opt");
  check_fp8<models::opt>("opt_postln");
}
TEST_CASE("gemma 2 and 3 with FP8 linears match torch's FP8 reference", "[model][fp8]") {
  check_fp8<models::gemma2>("gemma2");
  check_fp8<models::gemma3>("gemma3");
}

TEST_CASE("demo model: perplexity with FP8 linears equals torch's and is within 1 % of the unquantized model",
          "[model][fp8]") {
  const auto dir = test::fixture_dir("demo-llama");
  const auto doc = mii::detail::json_document::from_file(dir / "perplexity_fp8.json");
  const auto root = mii::detail::json_object::expect(doc.root(), doc.origin(), "");
  test::model_reference seqs;
  seqs.prompts = test::int_lists(root, "sequences");
  REQUIRE(seqs.prompts.size() >= 10);
  auto perplexity = [&](const model_config& cfg) { return test::perplexity<models::llama>(dir, cfg, seqs); };
  model_config fp8 = test::fixture_config();
  fp8.quantization = "fp8";
  const double base = perplexity(test::fixture_config()), quantized = perplexity(fp8);
  const double torch_base = double(*root.raw("perplexity_fp32")), torch_fp8 = double(*root.raw("perplexity_fp8"));
  WARN("demo perplexity: unquantized " << base << " (torch " << torch_base << "), FP8 " << quantized << " (torch "
                                       << torch_fp8 << "): " << 100 * (quantized / base - 1) << " %");
  CHECK(std::fabs(base / torch_base - 1) < 1e-5);
  CHECK(std::fabs(quantized / torch_fp8 - 1) < 1e-4);
  CHECK(quantized / base - 1 < 0.01);
}

TEST_CASE("the FP8 plan quantizes the linear weights only, at about half of their bf16 bytes", "[model][fp8]") {
  // Llama-3-8B's shape (config values only; no tensor is read).
  io::hf_config cfg = io::parse_hf_config(R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 8192, "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0, "tie_word_embeddings": false})",
                                          "config.json");
  const auto arch = models::llama::describe(models::llama::name);
  const auto shape = model::resolve_shape(arch, cfg, 1, 0);
  const auto ckpt = io::checkpoint::synthetic();
  const auto plain = model::plan_weights(arch, shape, ckpt);
  const auto fp8 = model::plan_weights(arch, shape, ckpt, model::weight_quantization::fp8);
  for (const auto& e : fp8.globals) CHECK_FALSE(e.fp8);
  for (const auto& layer : fp8.layers)
    for (std::size_t s = 0; s < layer.size(); ++s) {
      const auto slot = model::layer_slot(s);
      const bool linear = slot == model::layer_slot::qkv_w || slot == model::layer_slot::o_w ||
                          slot == model::layer_slot::up_w || slot == model::layer_slot::down_w;
      INFO("slot " << s);
      CHECK(layer[s].fp8 == linear);
    }
  const double ratio = double(fp8.total_bytes(dtype::bf16)) / double(plain.total_bytes(dtype::bf16));
  WARN("Llama-3-8B weights: bf16 " << plain.total_bytes(dtype::bf16) / 1e9 << " GB, FP8 "
                                   << fp8.total_bytes(dtype::bf16) / 1e9 << " GB (" << ratio << ")");
  // Embedding and lm_head (2 x 128256 x 4096) stay bf16: 1.05 GB of FP8 linears' 6.98 GB.
  CHECK(ratio > 0.5);
  CHECK(ratio < 0.6);
}

TEST_CASE("the FP8 plan quantizes MoE experts and the shared expert, not the router or the shared gate", "[model][fp8]") {
  const auto arch = models::qwen2_moe::describe(models::qwen2_moe::name);
  const auto cfg = io::load_hf_config(test::fixture_dir("qwen2_moe"));
  const auto shape = model::resolve_shape(arch, cfg, 1, 0);
  const auto ckpt = io::checkpoint::synthetic();
  const auto fp8 = model::plan_weights(arch, shape, ckpt, model::weight_quantization::fp8);
  REQUIRE(shape.experts > 0);
  REQUIRE(shape.shared_ffn > 0);
  std::int64_t sparse = 0;
  for (std::int64_t L = 0; L < shape.layers; ++L) {
    using model::layer_slot;
    const auto& layer = fp8.layers[std::size_t(L)];
    INFO("layer " << L);
    CHECK_FALSE(layer[std::size_t(layer_slot::router_w)].fp8);
    CHECK_FALSE(layer[std::size_t(layer_slot::shared_gate_w)].fp8);
    CHECK(layer[std::size_t(layer_slot::shared_up_w)].fp8 == shape.sparse(L));
    CHECK(layer[std::size_t(layer_slot::shared_down_w)].fp8 == shape.sparse(L));
    CHECK(layer[std::size_t(layer_slot::down_w)].fp8 == !shape.sparse(L));  // a dense layer's MLP
    sparse += shape.sparse(L);
  }
  REQUIRE(sparse > 0);
  std::size_t experts = 0;
  for (const auto* group : {&fp8.expert_up, &fp8.expert_down})
    for (const auto& l : *group)
      for (const auto& e : l) {
        CHECK(e.fp8);
        ++experts;
      }
  CHECK(experts == std::size_t(2 * shape.experts * sparse));
}

TEST_CASE("an unknown quantization is refused naming model_config.quantization", "[model][fp8]") {
  model_config cfg = test::fixture_config();
  cfg.quantization = "int4";
  const std::string msg = MII_ERROR_MESSAGE(test::harness<models::llama>(std::string("llama3"), cfg));
  CHECK_THAT(msg, Contains("model_config.quantization") && Contains("int4") && Contains("fp8"));
}


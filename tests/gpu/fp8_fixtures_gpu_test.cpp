// FP8 linear layers and the FP8 KV cache end to end on the GPU (docs/quantization.md): fixtures
// quantized while loading, the compressed-tensors checkpoints written by torch and the block-wise
// ones written by transformers, in bf16 against torch's FP8 model in
// fp32 (reference_fp8.*, tests/fixtures/make_fp8_references.py), with the bf16 budgets of the
// unquantized fixtures plus the quantization's own effect in torch (check_fixture_gpu.hpp says
// why: bf16 values round to other e4m3 codes than fp32 ones, seen on an H200 at 0.7-1.0x that
// effect). The printed relative L2 errors are what docs/quantization.md reports.
#include "check_fixture_gpu.hpp"

using namespace mii;
using mii::test::gpu_fixtures::check_fixture;

namespace {

model_config fp8_config() {
  model_config c = test::fixture_config();
  c.quantization = "fp8";
  return c;
}

}  // namespace

TEST_CASE("FP8 fixtures on the GPU match torch's FP8 model (bf16)", "[gpu][model][fp8]") {
  check_fixture<models::llama>("llama3", "llama3", false, 0, fp8_config(), "fp8");
  check_fixture<models::qwen2>("qwen2", "qwen2", false, 0, fp8_config(), "fp8");
  check_fixture<models::qwen3>("qwen3", "qwen3", false, 0, fp8_config(), "fp8");
  check_fixture<models::phi3>("phi3", "phi3", false, 0, fp8_config(), "fp8");
  check_fixture<models::gemma2>("gemma2", "gemma2", false, 0, fp8_config(), "fp8");
  // MoE: every expert (and Qwen2-MoE's shared expert) through linear_fp8, a call per expert.
  check_fixture<models::mixtral>("mixtral", "mixtral", true, 0, fp8_config(), "fp8");
  check_fixture<models::qwen3_moe>("qwen3_moe", "qwen3_moe", true, 0, fp8_config(), "fp8");
  check_fixture<models::qwen2_moe>("qwen2_moe", "qwen2_moe", true, 0, fp8_config(), "fp8");
}

TEST_CASE("compressed-tensors FP8 checkpoints on the GPU match torch (bf16)", "[gpu][model][fp8]") {
  check_fixture<models::llama>("llama3_fp8_channel", "llama3_fp8_channel", false, 0, test::fixture_config(), "fp8");
  check_fixture<models::qwen2>("qwen2_fp8_tensor", "qwen2_fp8_tensor", false, 0, test::fixture_config(), "fp8");
  // Static input scales, calibrated on the first prompt: the others saturate in places.
  check_fixture<models::llama>("llama3_fp8_static", "llama3_fp8_static", false, 0, test::fixture_config(), "fp8");
}

// transformers' block-wise FP8 ("quant_method": "fp8"): 32 x 64 blocks go through the block GEMV
// (64-byte chunks within a group) and, past 8 rows, the 8-row fallback; 16 x 32 blocks through
// the generic kernel. 128 x 128 blocks (cuBLASLt's block-scaled GEMM) are checked per op
// (fp8_ops_test.cpp): no fixture is large enough for them.
TEST_CASE("block-wise FP8 checkpoints written by transformers on the GPU match torch (bf16)", "[gpu][model][fp8]") {
  check_fixture<models::llama>("llama3_fp8_block32x64", "llama3_fp8_block32x64", false, 0, test::fixture_config(), "fp8");
  check_fixture<models::qwen2>("qwen2_fp8_block16x32", "qwen2_fp8_block16x32", false, 0, test::fixture_config(), "fp8");
  check_fixture<models::qwen3_moe>("qwen3_moe_fp8_block16x16", "qwen3_moe_fp8_block16x16", true, 0,
                                   test::fixture_config(), "fp8");
}

// The FP8 KV cache (backend/kv_fp8.hpp) end to end: torch's model whose cache rounds its keys and
// values the same way (reference_fp8kv.*, tests/fixtures/make_fp8_kv_references.py), alone and
// with FP8 linear layers on top (against the same reference: the budgets are bf16's).
TEST_CASE("fixtures with the FP8 KV cache on the GPU match torch's FP8-cache model (bf16)", "[gpu][model][kvfp8]") {
  model_config kv = test::fixture_config();
  kv.kv_cache_dtype = "fp8_e4m3";
  check_fixture<models::llama>("llama3", "llama3", false, 0, kv, "fp8kv");
  check_fixture<models::mistral>("mistral", "mistral", false, 0, kv, "fp8kv");
  check_fixture<models::qwen3>("qwen3", "qwen3", false, 0, kv, "fp8kv");
  check_fixture<models::gemma2>("gemma2", "gemma2", false, 0, kv, "fp8kv");
  check_fixture<models::phi3>("phi3", "phi3", false, 0, kv, "fp8kv");
  check_fixture<models::mixtral>("mixtral", "mixtral", true, 0, kv, "fp8kv");
  // A checkpoint's static KV-cache scales (kv_cache_scheme): keys and values saturate at them.
  check_fixture<models::llama>("llama3_fp8_kv", "llama3_fp8_kv", false, 0, kv, "fp8");
}

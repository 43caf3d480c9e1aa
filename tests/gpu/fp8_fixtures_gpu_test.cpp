// FP8 linear layers end to end on the GPU (docs/quantization.md): fixtures quantized while loading
// and the compressed-tensors checkpoints written by torch, in bf16 against torch's FP8 model in
// fp32 (reference_fp8.*, tests/fixtures/make_fp8_references.py), with the bf16 budgets of the
// unquantized fixtures (check_fixture_gpu.hpp). bf16 activations land on the other side of an
// e4m3 rounding boundary more often than fp32 ones do, so these runs also measure how much that
// adds; the printed relative L2 errors are what docs/quantization.md reports.
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
  check_fixture<models::mixtral>("mixtral", "mixtral", true, 0, fp8_config(), "fp8");
}

TEST_CASE("compressed-tensors FP8 checkpoints on the GPU match torch (bf16)", "[gpu][model][fp8]") {
  check_fixture<models::llama>("llama3_fp8_channel", "llama3_fp8_channel", false, 0, test::fixture_config(), "fp8");
  check_fixture<models::qwen2>("qwen2_fp8_tensor", "qwen2_fp8_tensor", false, 0, test::fixture_config(), "fp8");
}

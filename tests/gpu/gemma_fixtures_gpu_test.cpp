// Gemma 2 and Gemma 3 end to end on the GPU in bf16 and fp16 against transformers' fp32
// reference, with the dense budgets of tests/gpu/fixtures_gpu_test.cpp: 2e-2 (bf16) / 5e-3
// (fp16) relative L2 on logits, every greedy mismatch a near-tie. Gemma 2's fixture runs the
// soft-capped attention variant (head_dim 16: the fallback kernel; the tensor-core variant is in
// attention_variants_test.cpp), sliding and global layers, the (1 + w) norms, the bf16-rounded
// sqrt(hidden) embedding factor and the soft-capped logits; Gemma 3's adds (1 + w) q/k norms and
// a rope per layer type.
#include <catch2/catch.hpp>

#include "check_fixture_gpu.hpp"

using namespace mii;
using test::gpu_fixtures::check_fixture;

TEST_CASE("GPU bf16: gemma2 fixture matches transformers", "[gpu][model]") { check_fixture<models::gemma2>("gemma2", "gemma2"); }
TEST_CASE("GPU bf16: gemma3 fixture matches transformers", "[gpu][model]") { check_fixture<models::gemma3>("gemma3", "gemma3"); }
TEST_CASE("GPU fp16: gemma2 fixture matches transformers", "[gpu][model][fp16]") {
  check_fixture<models::gemma2, fp16_t>("gemma2", "gemma2");
}
TEST_CASE("GPU fp16: gemma3 fixture matches transformers", "[gpu][model][fp16]") {
  check_fixture<models::gemma3, fp16_t>("gemma3", "gemma3");
}

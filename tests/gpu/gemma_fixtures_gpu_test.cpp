// Gemma 2 and Gemma 3 end to end on the GPU in bf16 and fp16 against transformers' fp32
// reference, with the dense budgets of tests/gpu/fixtures_gpu_test.cpp: 2e-2 (bf16) / 5e-3
// (fp16) relative L2 on logits, every greedy mismatch a near-tie — except Gemma 3 in bf16, whose
// budget is 5e-2: transformers' own bf16 run of that fixture lands 3.86e-2 from its fp32
// reference (fp16: 5.00e-3; tests/gpu/transformers_baseline.py, eager attention, H200), mii's
// 3.30e-2 (fp16: 4.43e-3). Its fp16 run keeps the dense 5e-3 and is the sharp check.
// Gemma 2's fixture runs the soft-capped attention variant (head_dim 16: the fallback kernel; the
// tensor-core variant is in attention_variants_test.cpp), sliding and global layers, the (1 + w)
// norms, the bf16-rounded sqrt(hidden) embedding factor and the soft-capped logits; Gemma 3's
// adds (1 + w) q/k norms and a rope per layer type.
#include <catch2/catch.hpp>

#include "check_fixture_gpu.hpp"

using namespace mii;
using test::gpu_fixtures::check_fixture;

TEST_CASE("GPU bf16: gemma2 fixture matches transformers", "[gpu][model]") { check_fixture<models::gemma2>("gemma2", "gemma2"); }
TEST_CASE("GPU bf16: gemma3 fixture matches transformers", "[gpu][model]") {
  check_fixture<models::gemma3>("gemma3", "gemma3", false, 5e-2);
}
TEST_CASE("GPU fp16: gemma2 fixture matches transformers", "[gpu][model][fp16]") {
  check_fixture<models::gemma2, fp16_t>("gemma2", "gemma2");
}
TEST_CASE("GPU fp16: gemma3 fixture matches transformers", "[gpu][model][fp16]") {
  check_fixture<models::gemma3, fp16_t>("gemma3", "gemma3");
}

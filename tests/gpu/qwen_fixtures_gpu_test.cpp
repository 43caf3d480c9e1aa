// Qwen3, Qwen3-MoE (both expert layouts) and Qwen2-MoE end to end on the GPU in bf16 and fp16
// against transformers' fp32 reference, with the budgets of tests/gpu/fixtures_gpu_test.cpp:
// dense 2e-2 (bf16) / 5e-3 (fp16) with every greedy mismatch a near-tie; MoE 1e-1 in bf16 with
// greedy mismatches reported (bf16 rounding flips near-tied router choices, as transformers' own
// bf16 run does), fp16 5e-3 with near-ties only.
#include <catch2/catch.hpp>

#include "check_fixture_gpu.hpp"

using namespace mii;
using test::gpu_fixtures::check_fixture;

TEST_CASE("GPU bf16: qwen3 fixture matches transformers", "[gpu][model]") { check_fixture<models::qwen3>("qwen3", "qwen3"); }
TEST_CASE("GPU bf16: qwen3-moe fixture matches transformers", "[gpu][model]") {
  check_fixture<models::qwen3_moe>("qwen3_moe", "qwen3_moe", true);
}
TEST_CASE("GPU bf16: qwen3-moe v5 layout matches transformers", "[gpu][model]") {
  check_fixture<models::qwen3_moe>("qwen3_moe_v5layout", "qwen3_moe", true);
}
TEST_CASE("GPU bf16: qwen2-moe fixture matches transformers", "[gpu][model]") {
  check_fixture<models::qwen2_moe>("qwen2_moe", "qwen2_moe", true);
}

TEST_CASE("GPU fp16: qwen3 fixture matches transformers", "[gpu][model][fp16]") {
  check_fixture<models::qwen3, fp16_t>("qwen3", "qwen3");
}
TEST_CASE("GPU fp16: qwen3-moe fixture matches transformers", "[gpu][model][fp16]") {
  check_fixture<models::qwen3_moe, fp16_t>("qwen3_moe", "qwen3_moe", true);
}
TEST_CASE("GPU fp16: qwen3-moe v5 layout matches transformers", "[gpu][model][fp16]") {
  check_fixture<models::qwen3_moe, fp16_t>("qwen3_moe_v5layout", "qwen3_moe", true);
}
TEST_CASE("GPU fp16: qwen2-moe fixture matches transformers", "[gpu][model][fp16]") {
  check_fixture<models::qwen2_moe, fp16_t>("qwen2_moe", "qwen2_moe", true);
}

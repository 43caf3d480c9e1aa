// Rope scalings end to end on the GPU against transformers' fp32 reference, within the dense
// budgets of fixtures_gpu_test.cpp: dynamic NTK (prompts and generations past
// max_position_embeddings: the kernel computes each token's frequencies from its forward length),
// linear, and Phi-3 longrope crossing original_max_position_embeddings during generation.
// Chunked and ragged prompts must give the logits of the whole prompt in one forward.
#include <catch2/catch.hpp>

#include "check_fixture_gpu.hpp"

using namespace mii;
using test::gpu_fixtures::check_fixture;

TEST_CASE("GPU bf16: llama dynamic-NTK rope fixture matches transformers", "[gpu][model][rope]") {
  check_fixture<models::llama>("llama_dynamic", "llama_dynamic");
}
TEST_CASE("GPU bf16: llama linear rope fixture matches transformers", "[gpu][model][rope]") {
  check_fixture<models::llama>("llama_linear", "llama_linear");
}
TEST_CASE("GPU bf16: phi-3 longrope crossing the original length matches transformers", "[gpu][model][rope]") {
  check_fixture<models::phi3>("phi3_cross", "phi3_cross");
}
TEST_CASE("GPU fp16: llama dynamic-NTK rope fixture matches transformers", "[gpu][model][rope][fp16]") {
  check_fixture<models::llama, fp16_t>("llama_dynamic", "llama_dynamic");
}
TEST_CASE("GPU fp16: phi-3 longrope crossing the original length matches transformers", "[gpu][model][rope][fp16]") {
  check_fixture<models::phi3, fp16_t>("phi3_cross", "phi3_cross");
}

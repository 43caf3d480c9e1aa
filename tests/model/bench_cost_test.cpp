// mii-bench's cost model (bench/cost_model.hpp): the multiply-adds per token that its prefill
// floors and TFLOP/s figures are made of, counted by hand for the fixture shapes of each MLP
// kind. A plain MLP (OPT, Falcon, Phi-2) has two hidden x ffn matrices, not three.
#include <catch2/catch.hpp>

#include <mii/io/hf_config.hpp>
#include <mii/models/all.hpp>

#include "../../bench/cost_model.hpp"  // bench/ is not an include directory of the test suites
#include "fixtures.hpp"

using namespace mii;

namespace {

template <class Model>
void check_cost(const std::string& fixture, double mlp_matrices) {
  INFO("fixture " << fixture);
  const auto arch = Model::describe(Model::name);
  const auto hf = io::load_hf_config(test::fixture_dir(fixture));
  const auto s = model::resolve_shape(arch, hf);
  const memory_report mem{1000, 0, 0, 0};
  const auto c = bench::cost_of(s, arch.mlp, mem, 2);
  const double H = double(s.hidden), F = double(s.ffn), hd = double(s.head_dim);
  const double attention = H * (double(s.heads) + 2.0 * double(s.kv_heads)) * hd + double(s.heads) * hd * H;
  CHECK(bench::mlp_matrices(arch.mlp, s.top_k) == mlp_matrices);
  CHECK(c.matmul_params == double(s.layers) * (attention + mlp_matrices * H * F));
  CHECK(c.head_params == double(s.vocab) * double(s.embed_dim));
  CHECK(c.kv_bytes_per_token == double(s.layers) * 2.0 * double(s.kv_heads) * hd * 2.0);
  CHECK(c.weight_bytes == 1000.0);
}

}  // namespace

TEST_CASE("bench cost model: 3 matrices per gated MLP, 2 per plain MLP, top_k x 3 per MoE token", "[model][bench]") {
  check_cost<models::llama>("llama2", 3.0);     // gate, up, down
  check_cost<models::phi3>("phi3", 3.0);        // fused gate_up counts as two
  check_cost<models::opt>("opt", 2.0);          // fc1, fc2
  check_cost<models::falcon>("falcon_rw", 2.0);  // dense_h_to_4h, dense_4h_to_h
  check_cost<models::phi>("phi2", 2.0);         // fc1, fc2
  check_cost<models::mixtral>("mixtral", 2.0 * 3.0);  // top-2 experts, each gated
}

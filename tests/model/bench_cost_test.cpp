// mii-bench's cost model (bench/cost_model.hpp): the multiply-adds per token that its prefill
// floors and TFLOP/s figures are made of, counted by hand for the fixture shapes of each MLP
// kind (a plain MLP (OPT, Falcon, Phi-2) has two hidden x ffn matrices, not three); the weight
// bytes a decode step reads, counted entry by entry from the weight plan (an MoE step reads the
// experts its tokens are routed to, not all of them); and the throughput floor and grid plan on
// synthetic numbers worked out by hand (tests/bench checks bench/results_md.py's copy of the
// floor on the same numbers).
#include <catch2/catch.hpp>

#include <cmath>

#include <mii/io/hf_config.hpp>
#include <mii/io/safetensors.hpp>
#include <mii/model/weight_plan.hpp>
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

// The bytes a decode step of one token reads, entry by entry: every planned weight, except the
// embedding table when lm_head is its own matrix and a learned position table (one row of each is
// read) and, in each MoE layer, only top_k of the experts.
template <class Model>
double bytes_read_by_one_token(const model::model_shape& s, const model::weight_plan& plan) {
  double n = 0;
  auto bytes = [](const model::plan_entry& e) { return double(e.numel()) * 2.0; };
  for (std::size_t g = 0; g < plan.globals.size(); ++g) {
    const auto& e = plan.globals[g];
    if (!e.present()) continue;
    if (g == std::size_t(model::global_slot::positions)) {  // learned positions: one row per token
      n += double(e.cols) * 2.0;
      continue;
    }
    const bool table = g == std::size_t(model::global_slot::embed) && plan[model::global_slot::lm_head_w].present();
    n += table ? double(e.cols) * 2.0 : bytes(e);
  }
  for (const auto& layer : plan.layers)
    for (const auto& e : layer) n += e.present() ? bytes(e) : 0.0;
  for (std::size_t L = 0; L < plan.expert_up.size(); ++L)
    for (std::size_t x = 0; x < plan.expert_up[L].size() && std::int64_t(x) < s.top_k; ++x)
      n += bytes(plan.expert_up[L][x]) + bytes(plan.expert_down[L][x]);
  return n;
}

template <class Model>
void check_step_bytes(const std::string& fixture) {
  INFO("fixture " << fixture);
  const auto arch = Model::describe(Model::name);
  const auto hf = io::load_hf_config(test::fixture_dir(fixture));
  const auto s = model::resolve_shape(arch, hf);
  const auto ckpt = io::checkpoint::synthetic();
  const auto plan = model::plan_weights(arch, s, ckpt);
  const memory_report mem{plan.total_bytes(dtype::bf16), 0, 0, 0};
  const auto c = bench::cost_of(s, arch.mlp, mem, 2);
  CHECK(c.step_weight_bytes(1) == Approx(bytes_read_by_one_token<Model>(s, plan)).epsilon(1e-12));
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

TEST_CASE("bench cost model: a decode step reads the embedding rows it looks up and the experts it routes to",
          "[model][bench]") {
  check_step_bytes<models::llama>("llama2");     // untied: one embedding row, lm_head whole
  check_step_bytes<models::mistral>("mistral");
  check_step_bytes<models::mixtral>("mixtral");  // 2 of 8 experts per layer
  check_step_bytes<models::opt>("opt");          // learned positions: a table too

  // Experts touched by B tokens under uniform routing, E = 8, k = 2: E(1 - (3/4)^B).
  bench::cost_model c;
  c.experts = 8;
  c.top_k = 2;
  c.sparse_layers = 32;
  c.expert_bytes = 1e6;
  c.weight_bytes = 300e6;
  CHECK(c.experts_touched(1) == Approx(2.0));
  CHECK(c.experts_touched(2) == Approx(8.0 * (1.0 - 0.5625)));  // 3.5
  CHECK(c.experts_touched(64) == Approx(8.0).epsilon(1e-6));
  // One token: 32 layers x 6 unread experts fewer; 64 tokens: all of them are read.
  CHECK(c.step_weight_bytes(1) == Approx(300e6 - 32 * 6 * 1e6));
  CHECK(c.step_weight_bytes(64) == Approx(300e6).epsilon(1e-6));
}

TEST_CASE("bench first-token floor: the longer of the prompt's FLOPs and the weight bytes its tokens read",
          "[model][bench]") {
  // Hand-worked: 1e9 multiply-adds per token, no lm_head or attention FLOPs, 1e12 FLOP/s: a prompt
  // of 100 takes 2e11 / 1e12 = 0.2 s of compute. Dense, 2e9 bytes at 1e12 B/s: 2 ms, so compute.
  bench::cost_model c;
  c.matmul_params = 1e9;
  c.weight_bytes = 2e9;
  const bench::ceilings m{1e12, 1e12};
  CHECK(bench::prompt_floor_s(c, m, 100) == Approx(0.2));
  // An MoE whose weights are mostly experts (8 of them, top-2, 32 layers of 1e9-byte experts):
  // 100 tokens touch all of them, 2.58e11 bytes = 0.258 s, longer than the compute.
  c.experts = 8;
  c.top_k = 2;
  c.sparse_layers = 32;
  c.expert_bytes = 1e9;
  c.weight_bytes = 2e9 + 32 * 8 * 1e9;
  CHECK(bench::prompt_floor_s(c, m, 100) == Approx(2.58e11 / 1e12).epsilon(1e-6));
  // and one token reads 2 experts per layer: 2e9 + 64e9 bytes = 0.066 s, against 2e-3 s of compute
  CHECK(bench::prompt_floor_s(c, m, 1) == Approx(0.066));
}

TEST_CASE("bench throughput floor: prompts at the GEMM rate, then decode steps at max(bytes, FLOPs)", "[model][bench]") {
  // The numbers of tests/bench/bench_scripts_test.py's GridFloor, worked out by hand there too.
  bench::cost_model c;
  c.weight_bytes = 2e9;
  c.matmul_params = 1e9;
  c.head_params = 1e8;
  c.kv_bytes_per_token = 1e5;
  c.attn_flops_per_pair = 1e6;
  const bench::ceilings m{1e12, 1e14};
  // One prompt: 100 x 2e9 + 2e8 + 1e6 x 100^2 / 2 = 2.052e11 FLOPs.
  CHECK(bench::prompt_flops(c, 100) == Approx(2.052e11));

  // 40 requests of (100, 11), 20 in flight: 20 steps of (2e9 + 20 x 105.5 x 1e5) bytes.
  auto f = bench::throughput_floor(c, m, 100, 11, 40, 20);
  CHECK(f.prefill_s == Approx(0.08208));
  CHECK(f.decode_steps == Approx(20.0));
  CHECK(f.step_s == Approx(2.211e-3));
  CHECK(f.memory_bound);
  CHECK(f.total_s == Approx(0.12630));

  // 4000 requests, 2000 in flight: the step's FLOPs (2000 x 2.3055e9) outweigh its bytes.
  f = bench::throughput_floor(c, m, 100, 11, 4000, 2000);
  CHECK_FALSE(f.memory_bound);
  CHECK(f.step_s == Approx(0.04611));
  CHECK(f.total_s == Approx(8.208 + 20 * 0.04611));

  // No ceilings measured: no floor.
  CHECK(bench::throughput_floor(c, bench::ceilings{}, 100, 11, 40, 20).total_s == 0.0);

  // Half of the layers' multiply-adds in FP8 linear layers at twice the GEMM rate (GridFloor's
  // test_fp8_linear_layers_count_at_the_e4m3_rate): a prompt of 100 takes 1.552e-3 s, the
  // compute-bound step 0.03611 s; without an e4m3 rate, as before.
  c.fp8_matmul_params = 0.5e9;
  const bench::ceilings fp8{1e12, 1e14, 2e14};
  CHECK(bench::prompt_compute_s(c, fp8, 100) == Approx(1.552e-3));
  f = bench::throughput_floor(c, fp8, 100, 11, 4000, 2000);
  CHECK(f.step_s == Approx(0.03611));
  CHECK(f.total_s == Approx(4000 * 1.552e-3 + 20 * 0.03611));
  CHECK(bench::throughput_floor(c, m, 100, 11, 4000, 2000).total_s == Approx(8.208 + 20 * 0.04611));
}

TEST_CASE("bench cost model: FP8 linear layers are the attention, dense MLP and MoE expert matrices",
          "[model][bench]") {
  for (const char* fixture : {"llama2", "mixtral"}) {
    INFO("fixture " << fixture);
    const bool moe = std::string(fixture) == "mixtral";
    const auto arch = moe ? models::mixtral::describe(models::mixtral::name) : models::llama::describe(models::llama::name);
    const auto s = model::resolve_shape(arch, io::load_hf_config(test::fixture_dir(fixture)));
    const memory_report mem{1, 0, 0, 0};
    const auto plain = bench::cost_of(s, arch.mlp, mem, 2), fp8 = bench::cost_of(s, arch.mlp, mem, 2, false, true);
    CHECK(plain.fp8_matmul_params == 0.0);
    CHECK(fp8.matmul_params == plain.matmul_params);
    CHECK(fp8.fp8_matmul_params == Approx(plain.matmul_params));
    if (moe) {  // an expert's bytes: gate, up and down in e4m3 and a 4-byte scale per row
      const double H = double(s.hidden), F = double(s.expert_ffn);
      CHECK(plain.expert_bytes == Approx(3 * H * F * 2));
      CHECK(fp8.expert_bytes == Approx(3 * H * F + 4 * (2 * F + H)));
    }
  }
}

TEST_CASE("bench grid plan: KV-capped concurrency, whole waves in the time budget, lower concurrency past it",
          "[model][bench]") {
  bench::cost_model c;
  c.weight_bytes = 2e9;
  c.matmul_params = 1e9;
  c.head_params = 1e8;
  c.kv_bytes_per_token = 1e5;
  c.attn_flops_per_pair = 1e6;
  const bench::ceilings m{1e12, 1e14};
  // (100, 11) needs 7 blocks of 16: 100 blocks hold 14 sequences, fewer than the 64 a step may hold.
  // One wave of 14: 14 x 2.052e-3 + 10 x (2e9 + 14 x 105.5 x 1e5) / 1e12 = 0.050205 s.
  auto p = bench::plan_grid_cell(c, m, 100, 11, 64, 100, 16, 3000, 1.0);
  CHECK(p.kv_sequences == 14);
  CHECK(p.concurrency == 14);
  CHECK(p.cap == "kv");
  CHECK(p.requests == 19 * 14);  // floor(1 / 0.050205) whole waves
  // The reference count caps the waves.
  CHECK(bench::plan_grid_cell(c, m, 100, 11, 64, 100, 16, 30, 1.0).requests == 28);
  // The sequence budget caps the concurrency when the cache is large.
  p = bench::plan_grid_cell(c, m, 100, 11, 8, 1000, 16, 3000, 1.0);
  CHECK(p.concurrency == 8);
  CHECK(p.cap == "sequences");
  // A wave of 14 does not fit 0.03 s: b x 2.1575e-3 + 0.02 <= 0.03 holds up to b = 4.
  p = bench::plan_grid_cell(c, m, 100, 11, 64, 100, 16, 3000, 0.03);
  CHECK(p.concurrency == 4);
  CHECK(p.requests == 4);
  CHECK(p.cap == "time");
  // Without ceilings: one wave at the engine's limits.
  p = bench::plan_grid_cell(c, bench::ceilings{}, 100, 11, 64, 100, 16, 3000, 1.0);
  CHECK(p.requests == 14);
}

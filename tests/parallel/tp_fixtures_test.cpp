// Tensor parallelism on the host backend: every fixture architecture sharded over 2 and 4 ranks
// (threads communicator) gives the logits of tp = 1 (relative error <= 1e-5) for a ragged step
// mixing several prompts and chunk sizes, and the same 32 greedy tokens; all ranks hold
// bit-identical logits. This is the check of the sharding rules in model_shape / weight_plan
// (column-, row- and vocab-parallel slices, replicated kv heads, fused and interleaved layouts,
// experts, biases added once).
#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

#include <mii/backend/host/host_backend.hpp>
#include <mii/models/all.hpp>
#include <mii/parallel/single.hpp>
#include <mii/parallel/threads.hpp>
#include <mii/runtime/model_runner.hpp>

#include "expect_error.hpp"
#include "fixtures.hpp"

using namespace mii;

namespace {

constexpr double tolerance = 1e-5;

model_config small_config(const std::string& kv_cache_dtype = "auto") {
  model_config c;
  c.kv_cache_dtype = kv_cache_dtype;
  c.kv_block_size = 4;  // prompts cross many block boundaries
  c.kv_cache_blocks = 256;
  c.max_ragged_batch_size = 256;
  c.show_progress = false;
  c.host_threads = 1;
  return c;
}

struct run_result {
  std::vector<std::vector<float>> ragged;         // per prompt: [len * vocab] logits
  std::vector<std::vector<std::int32_t>> greedy;  // per prompt: greedy continuation
};

// The ragged steps of tests/model/fixtures_test.cpp, then a greedy continuation of every prompt,
// on one rank. Blocks of different sequences interleave on purpose.
template <class Model, class Comm>
run_result run_fixture(Comm& comm, const std::string& fixture, const test::model_reference& ref,
                       const model_config& cfg = small_config()) {
  backend::host::context ctx(1);
  runtime::model_runner<Model, backend::host, Comm> runner(ctx, comm, test::fixture_dir(fixture), cfg);
  const int n = int(ref.prompts.size());
  auto len = [&](int s) { return std::int64_t(ref.prompts[std::size_t(s)].size()); };
  auto blocks = [&](std::int64_t tokens, int seq, int n_seqs) {
    std::vector<std::int32_t> b;
    for (std::int64_t i = 0; i * runner.block_size() < tokens; ++i)
      b.push_back(std::int32_t((i * n_seqs + seq) % runner.kv_blocks()));
    return b;
  };

  run_result out;
  out.ragged.resize(std::size_t(n));
  struct piece {
    int seq;
    std::int64_t begin, end;
  };
  const std::int64_t c1 = len(1) / 2, c2 = len(2) / 3, c2b = 2 * len(2) / 3;
  const std::vector<std::vector<piece>> steps = {
      {{0, 0, len(0)}, {1, 0, c1}, {2, 0, c2}}, {{2, c2, c2b}, {1, c1, len(1)}}, {{2, c2b, len(2)}}};
  std::vector<std::vector<std::int32_t>> seq_blocks;
  for (int s = 0; s < n; ++s) seq_blocks.push_back(blocks(len(s), s, n));
  for (const auto& step : steps) {
    std::vector<runtime::step_chunk> chunks;
    for (const auto& p : step)
      chunks.push_back({std::span(ref.prompts[std::size_t(p.seq)]).subspan(std::size_t(p.begin), std::size_t(p.end - p.begin)),
                        p.begin, seq_blocks[std::size_t(p.seq)], len(p.seq), runtime::step_chunk::logits::all});
    runner.forward(chunks);
    const auto logits = runner.logits();
    std::size_t row = 0;
    for (const auto& p : step) {
      const std::size_t count = std::size_t(p.end - p.begin) * std::size_t(ref.vocab);
      auto& dst = out.ragged[std::size_t(p.seq)];
      dst.insert(dst.end(), logits.begin() + std::ptrdiff_t(row), logits.begin() + std::ptrdiff_t(row + count));
      row += count;
    }
  }

  for (int s = 0; s < n; ++s) {
    std::vector<std::int32_t> tokens = ref.prompts[std::size_t(s)];
    const std::size_t steps_wanted = ref.greedy[std::size_t(s)].size();
    const auto b = blocks(std::int64_t(tokens.size() + steps_wanted), 0, 1);
    std::int64_t cached = 0;
    const auto rope_len = std::int64_t(tokens.size());  // the prompt's forward length (step_chunk)
    runtime::sample_params greedy;
    for (std::size_t i = 0; i < steps_wanted; ++i) {
      const std::int64_t total = std::int64_t(tokens.size());
      const runtime::step_chunk chunk{std::span(tokens).subspan(std::size_t(cached)), cached, b, rope_len,
                                      runtime::step_chunk::logits::last};
      runner.forward(std::span(&chunk, 1));
      cached = total;
      tokens.push_back(runner.sample(std::span(&greedy, 1), {})[0]);
    }
    out.greedy.emplace_back(tokens.end() - std::ptrdiff_t(steps_wanted), tokens.end());
  }
  return out;
}

// What a check runs besides the fixture: the KV cache dtype (its reference variant beside it) and
// the bound of tp against tp = 1.
struct tp_options {
  std::string kv_cache_dtype = "auto", reference_variant;
  double tolerance = ::tolerance;
};

template <class Model>
void check_tp(const std::string& fixture, const std::string& reference, std::vector<int> tps, const tp_options& o = {}) {
  INFO("fixture " << fixture << ", KV cache " << o.kv_cache_dtype);
  const auto ref = test::load_reference(reference, o.reference_variant);
  const model_config cfg = small_config(o.kv_cache_dtype);
  parallel::single one;
  const run_result base = run_fixture<Model>(one, fixture, ref, cfg);
  CHECK(base.greedy == ref.greedy);  // tp = 1 is itself right (tests/model has the details)

  for (int tp : tps) {
    INFO("tensor_parallel " << tp);
    std::vector<run_result> ranks(static_cast<std::size_t>(tp));
    parallel::run_ranks(tp, [&](parallel::threads& comm) {
      ranks[std::size_t(comm.rank())] = run_fixture<Model>(comm, fixture, ref, cfg);
    });
    for (std::size_t s = 0; s < ref.prompts.size(); ++s) {
      INFO("prompt " << s);
      const auto& got = ranks[0].ragged[s];
      REQUIRE(got.size() == base.ragged[s].size());
      const double err = test::max_relative_error(got.data(), base.ragged[s].data(), got.size());
      CHECK(err <= o.tolerance);
      CHECK(ranks[0].greedy[s] == base.greedy[s]);
      for (int r = 1; r < tp; ++r) {
        INFO("rank " << r);
        CHECK(std::memcmp(ranks[std::size_t(r)].ragged[s].data(), got.data(), got.size() * sizeof(float)) == 0);
        CHECK(ranks[std::size_t(r)].greedy[s] == ranks[0].greedy[s]);
      }
    }
  }
}

}  // namespace

TEST_CASE("tp 2/4: llama-2 (GQA 4:2, kv heads replicated at tp 4)", "[parallel][tp]") {
  check_tp<models::llama>("llama2", "llama2", {2, 4});
}
TEST_CASE("tp 2/4: llama-3 (one kv head, tied embeddings, llama3 rope)", "[parallel][tp]") {
  check_tp<models::llama>("llama3", "llama3", {2, 4});
}
TEST_CASE("tp 2/4: mistral (sliding window)", "[parallel][tp]") { check_tp<models::mistral>("mistral", "mistral", {2, 4}); }
TEST_CASE("tp 2/4: qwen2 (qkv bias sliced with its heads)", "[parallel][tp]") { check_tp<models::qwen2>("qwen2", "qwen2", {2, 4}); }
TEST_CASE("tp 2/4: mixtral (every expert sliced, router replicated)", "[parallel][tp]") {
  check_tp<models::mixtral>("mixtral", "mixtral", {2, 4});
}
TEST_CASE("tp 2/4: mixtral in transformers 5's stacked-expert layout", "[parallel][tp]") {
  check_tp<models::mixtral>("mixtral_v5layout", "mixtral", {2, 4});
}
TEST_CASE("tp 2: phi-3 (fused qkv and gate_up; 6 heads allow tp 2 only)", "[parallel][tp]") {
  check_tp<models::phi3>("phi3", "phi3", {2});
}
TEST_CASE("tp 2/4: falcon new decoder architecture (grouped fused qkv)", "[parallel][tp]") {
  check_tp<models::falcon>("falcon_new", "falcon_new", {2, 4});
}
TEST_CASE("tp 2/4: falcon-7b layout (multi-query, parallel block, one norm)", "[parallel][tp]") {
  check_tp<models::falcon>("falcon_old", "falcon_old", {2, 4});
}
TEST_CASE("tp 2/4: falcon RW layout (per-head interleaved qkv, biases)", "[parallel][tp]") {
  check_tp<models::falcon>("falcon_rw", "falcon_rw", {2, 4});
}
TEST_CASE("tp 2/4: opt (learned positions, biases everywhere)", "[parallel][tp]") { check_tp<models::opt>("opt", "opt", {2, 4}); }
TEST_CASE("tp 2/4: opt post-norm with project_in/out", "[parallel][tp]") {
  check_tp<models::opt>("opt_postln", "opt_postln", {2, 4});
}
TEST_CASE("tp 2/4: phi-2 (partial rotary, parallel block, lm_head bias)", "[parallel][tp]") {
  check_tp<models::phi>("phi2", "phi2", {2, 4});
}

TEST_CASE("tp 2/4: qwen3 (q/k norm weights replicated, head_dim 32 != hidden / heads, tied)", "[parallel][tp]") {
  check_tp<models::qwen3>("qwen3", "qwen3", {2, 4});
}
TEST_CASE("tp 2/4: qwen3-moe (experts and the dense layer sliced, router replicated)", "[parallel][tp]") {
  check_tp<models::qwen3_moe>("qwen3_moe", "qwen3_moe", {2, 4});
}
TEST_CASE("tp 2: qwen3-moe in transformers 5's stacked-expert layout", "[parallel][tp]") {
  check_tp<models::qwen3_moe>("qwen3_moe_v5layout", "qwen3_moe", {2});
}
TEST_CASE("tp 2/4: qwen2-moe (shared expert sliced, its sigmoid gate replicated)", "[parallel][tp]") {
  check_tp<models::qwen2_moe>("qwen2_moe", "qwen2_moe", {2, 4});
}

TEST_CASE("tp 2/4: gemma2 (post-norms after the all-reduces, soft-capped logit shards, kv replicated at 4)",
          "[parallel][tp]") {
  check_tp<models::gemma2>("gemma2", "gemma2", {2, 4});
}
TEST_CASE("tp 2/4: gemma3 (one kv head replicated, (1 + w) q/k norms, a rope per layer type)", "[parallel][tp]") {
  check_tp<models::gemma3>("gemma3", "gemma3", {2, 4});
}

// Block-wise FP8 (transformers' checkpoints): a rank of a row-parallel layer holds whole column
// blocks, so it quantizes its inputs in the same groups as one GPU does and tp only reorders sums.
TEST_CASE("tp 2: block-wise FP8 checkpoints written by transformers (llama3 32 x 64, qwen2 16 x 32, qwen3-moe 16 x 16)",
          "[parallel][tp][fp8]") {
  const tp_options fp8{"auto", "fp8", 1e-4};
  check_tp<models::llama>("llama3_fp8_block32x64", "llama3_fp8_block32x64", {2}, fp8);
  check_tp<models::qwen2>("qwen2_fp8_block16x32", "qwen2_fp8_block16x32", {2}, fp8);
  // Each expert's 32-wide inner dimension: 16 columns per rank, one whole block of its down_proj.
  check_tp<models::qwen3_moe>("qwen3_moe_fp8_block16x16", "qwen3_moe_fp8_block16x16", {2}, fp8);
}

TEST_CASE("tp 2/4 with the FP8 KV cache: llama-2 (kv heads replicated at 4), qwen3, gemma2", "[parallel][tp][kvfp8]") {
  // Each rank quantizes whole kv heads, so sharding changes no scale; the keys and values differ
  // from tp = 1 only by the order of the row-parallel sums, which can move a value across an e4m3
  // rounding boundary: the FP8 bound of tests/model (1e-4) instead of 1e-5.
  const tp_options fp8{"fp8_e4m3", "fp8kv", 1e-4};
  check_tp<models::llama>("llama2", "llama2", {2, 4}, fp8);
  check_tp<models::qwen3>("qwen3", "qwen3", {2, 4}, fp8);
  check_tp<models::gemma2>("gemma2", "gemma2", {2, 4}, fp8);
}

TEST_CASE("a tensor-parallel degree the model does not divide fails on every rank, naming the field", "[parallel][tp]") {
  const std::string message = MII_ERROR_MESSAGE(parallel::run_ranks(4, [&](parallel::threads& comm) {
    backend::host::context ctx(1);
    runtime::model_runner<models::phi3, backend::host, parallel::threads> runner(ctx, comm, test::fixture_dir("phi3"),
                                                                                 small_config());
  }));
  CHECK_THAT(message, Catch::Contains("'num_attention_heads' is 6") && Catch::Contains("tensor_parallel = 4"));
}

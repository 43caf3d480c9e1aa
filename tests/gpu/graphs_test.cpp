// Decode steps replayed from CUDA graphs (padded to power-of-two batch buckets, KV lengths
// bucketed) must compute what the plain launches compute: same logits within bf16 noise for
// every batch size, and the same greedy text end to end on the trained demo model.
#include <catch2/catch.hpp>

#include <cmath>

#include <mii/models/all.hpp>
#include <mii/parallel/single.hpp>
#include <mii/pipeline.hpp>
#include <mii/runtime/model_runner.hpp>

#include "fixtures.hpp"
#include "gpu_support.hpp"

using namespace mii;

namespace {

double rel_l2(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    num += double(a[i] - b[i]) * (a[i] - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / den);
}

model_config config(bool graphs) {
  model_config c;
  c.kv_block_size = 16;
  c.kv_cache_blocks = 256;
  c.show_progress = false;
  c.cuda_graphs = graphs;
  return c;
}

}  // namespace

// Prefills `batch` sequences, then decodes 6 steps with a runner that replays graphs and one
// that does not, comparing the logits.
template <class Model>
void check_graphs_match_plain(const char* fixture, std::initializer_list<int> batches) {
  using backend_t = backend::cuda<bf16_t>;
  parallel::single comm;
  auto& ctx = test::gpu::shared_context<bf16_t>();
  runtime::model_runner<Model, backend_t, parallel::single> plain(ctx, comm, test::fixture_dir(fixture), config(false));
  runtime::model_runner<Model, backend_t, parallel::single> graphed(ctx, comm, test::fixture_dir(fixture), config(true));
  REQUIRE(graphed.kv_blocks() == plain.kv_blocks() - 1);  // one block kept for padding rows
  const auto ref = test::load_reference(fixture);
  for (int batch : batches) {
    INFO(fixture << ": batch " << batch);
    // Each sequence: a prompt prefilled plainly, then decode steps of one token each.
    std::vector<std::vector<std::int32_t>> tokens, blocks;
    std::vector<std::int64_t> cached;
    for (int s = 0; s < batch; ++s) {
      tokens.push_back(ref.prompts[std::size_t(s % 3)]);
      tokens.back().resize(tokens.back().size() - std::size_t(s % 4));  // different lengths
      std::vector<std::int32_t> b;
      for (int i = 0; i < 4; ++i) b.push_back(std::int32_t(s * 4 + i));
      blocks.push_back(b);
      cached.push_back(0);
    }
    for (auto* r : {&plain, &graphed}) {
      std::vector<runtime::step_chunk> prefill;
      for (int s = 0; s < batch; ++s)
        prefill.push_back({tokens[std::size_t(s)], 0, blocks[std::size_t(s)], 0, runtime::step_chunk::logits::none});
      r->forward(prefill);
    }
    for (int step = 0; step < 6; ++step) {
      std::vector<runtime::step_chunk> decode;
      std::vector<std::int32_t> next(static_cast<std::size_t>(batch));
      for (int s = 0; s < batch; ++s) {
        next[std::size_t(s)] = std::int32_t((step * 31 + s * 7) % 500 + 3);
        const std::int64_t pos = std::int64_t(tokens[std::size_t(s)].size()) + step;
        decode.push_back({std::span(&next[std::size_t(s)], 1), pos, blocks[std::size_t(s)], 0, runtime::step_chunk::logits::last});
      }
      plain.forward(decode);
      const auto want = plain.logits();
      graphed.forward(decode);
      const auto got = graphed.logits();
      REQUIRE(got.size() == want.size());
      CHECK(rel_l2(got, want) <= 1e-2);
    }
  }
}


TEST_CASE("decode steps from CUDA graphs match plain launches for every batch size", "[gpu][graphs]") {
  check_graphs_match_plain<models::llama>("llama2", {1, 3, 5, 8, 17});
}

// MoE layers route on the GPU up to 8 rows (kernels/moe.cu), so their decode steps are captured
// up to that batch; past it (9, 17) the graphed runner runs them plainly.
TEST_CASE("MoE decode steps from CUDA graphs match plain launches", "[gpu][graphs][moe]") {
  check_graphs_match_plain<models::mixtral>("mixtral", {1, 3, 8, 9});
  check_graphs_match_plain<models::qwen2_moe>("qwen2_moe", {2, 5, 17});
  check_graphs_match_plain<models::qwen3_moe>("qwen3_moe", {1, 4, 8});
}

TEST_CASE("demo model: greedy text is the same with and without CUDA graphs", "[gpu][graphs]") {
  const std::vector<std::string> prompts = {"DeepSpeed is", "Seattle is", "The quick brown", "Once upon a time",
                                            "The capital of France", "Water boils", "Good morning!"};
  generate_params p;
  p.do_sample = false;
  p.max_new_tokens = 20;
  model_config with = config(true), without = config(false);
  with.backend = without.backend = "cuda";
  auto a = mii::pipeline<models::llama>(test::fixture_dir("demo-llama"), with)(prompts, p);
  auto b = mii::pipeline<models::llama>(test::fixture_dir("demo-llama"), without)(prompts, p);
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO(prompts[i]);
    CHECK(a[i].generated_text == b[i].generated_text);
    CHECK(a[i].token_ids == b[i].token_ids);
  }
}

// The tensor-parallel slice resolve_shape computes, over head counts the fixtures do not have
// (up to tp = 8, kv heads split or replicated): every query head lands on exactly one rank,
// and the kv head a rank keeps for it is the one its group reads in the full model. Also the
// weight plan's row and column ranges for each rank tile the checkpoint tensors exactly.
#include <catch2/catch.hpp>

#include <set>
#include <string>

#include <mii/io/hf_config.hpp>
#include <mii/io/safetensors.hpp>
#include <mii/model/model_shape.hpp>
#include <mii/model/weight_plan.hpp>
#include <mii/models/llama.hpp>

#include "expect_error.hpp"
#include "fixtures.hpp"

using namespace mii;

TEST_CASE("resolve_shape: query heads partition, kv heads follow their groups", "[parallel][shard]") {
  const auto arch = models::llama::describe(models::llama::name);
  io::hf_config c = io::load_hf_config(test::fixture_dir("llama2"));
  int checked = 0;
  for (std::int64_t heads : {4, 8, 12, 16, 32, 64}) {
    for (std::int64_t kv : {1, 2, 4, 8, 16, 32, 64}) {
      if (heads % kv) continue;
      for (int tp : {1, 2, 4, 8}) {
        c.num_attention_heads = heads;
        c.num_key_value_heads = kv;
        c.intermediate_size = 64 * 8;
        c.vocab_size = 512;
        const bool divisible = heads % tp == 0 && (kv % tp == 0 || tp % kv == 0);
        INFO("heads " << heads << ", kv " << kv << ", tp " << tp);
        if (!divisible) {
          CHECK_THAT(MII_ERROR_MESSAGE(model::resolve_shape(arch, c, tp, 0)), Catch::Contains("tensor_parallel"));
          continue;
        }
        std::set<std::int64_t> q_heads_seen;
        for (int rank = 0; rank < tp; ++rank) {
          const auto s = model::resolve_shape(arch, c, tp, rank);
          REQUIRE(s.local_heads * tp == heads);
          REQUIRE(s.local_heads % s.local_kv_heads == 0);  // the attention kernels' GQA mapping needs it
          for (std::int64_t i = 0; i < s.local_heads; ++i) {
            const std::int64_t q = rank * s.local_heads + i;
            q_heads_seen.insert(q);
            const std::int64_t kv_in_full_model = q / (heads / kv);
            const std::int64_t kv_this_rank_reads = s.kv_head_begin + i / (s.local_heads / s.local_kv_heads);
            CHECK(kv_this_rank_reads == kv_in_full_model);
          }
          CHECK(s.local_ffn * tp == c.intermediate_size);
          CHECK(s.vocab_begin == rank * s.local_vocab);
          ++checked;
        }
        CHECK(q_heads_seen.size() == std::size_t(heads));
      }
    }
  }
  CHECK(checked > 100);
}

TEST_CASE("weight_plan: the ranks' slices tile every sharded tensor exactly once", "[parallel][shard]") {
  const auto arch = models::llama::describe(models::llama::name);
  const auto c = io::load_hf_config(test::fixture_dir("llama2"));
  const auto ckpt = io::checkpoint::open(test::fixture_dir("llama2"));
  for (int tp : {2, 4}) {
    INFO("tp " << tp);
    // (tensor, row) pairs for row-sliced entries; (tensor, column) for column-sliced ones.
    std::multiset<std::pair<const io::tensor_view*, std::int64_t>> rows, cols;
    for (int rank = 0; rank < tp; ++rank) {
      const auto s = model::resolve_shape(arch, c, tp, rank);
      const auto plan = model::plan_weights(arch, s, ckpt);
      const auto& layer0 = plan.layers[0];
      for (auto slot : {model::layer_slot::up_w}) {
        for (const auto& run : layer0[std::size_t(slot)].runs)
          for (std::int64_t r = run.row; r < run.row + run.count; ++r) rows.insert({run.tensor, r});
      }
      for (auto slot : {model::layer_slot::o_w, model::layer_slot::down_w}) {
        const auto& e = layer0[std::size_t(slot)];
        for (std::int64_t col = e.col_begin; col < e.col_begin + e.cols; ++col) cols.insert({e.runs[0].tensor, col});
      }
      for (const auto& run : plan[model::global_slot::embed].runs)
        for (std::int64_t r = run.row; r < run.row + run.count; ++r) rows.insert({run.tensor, r});
    }
    // gate and up: [ffn] rows each; o: [heads * head_dim] columns; down: [ffn] columns; embedding: [vocab] rows
    const std::size_t expected_rows = std::size_t(2 * c.intermediate_size + c.vocab_size);
    const std::size_t expected_cols = std::size_t(c.num_attention_heads * c.head_dim + c.intermediate_size);
    CHECK(rows.size() == expected_rows);
    CHECK(cols.size() == expected_cols);
    CHECK(std::set(rows.begin(), rows.end()).size() == rows.size());  // no row twice
    CHECK(std::set(cols.begin(), cols.end()).size() == cols.size());
  }
}

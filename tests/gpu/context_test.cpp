// The cuda backend's context services: allocation failures that explain themselves, step
// metadata uploads, weight loads that materialize plan entries as the host does, the KV budget.
#include <catch2/catch.hpp>

#include <cstring>
#include <numeric>

#include <mii/io/safetensors.hpp>
#include <mii/model/weight_plan.hpp>
#include <mii/runtime/step_builder.hpp>

#include "gpu_support.hpp"

using namespace mii;
using namespace mii::test::gpu;

TEST_CASE("cuda allocation failure names the size and the free memory, and leaves the device usable", "[gpu][oom]") {
  using B = backend::cuda<bf16_t>;
  auto& ctx = shared_context<bf16_t>();
  REQUIRE_THROWS_WITH(B::alloc<float>(ctx, std::int64_t(1) << 46),
                      Catch::Contains("281474976710656 bytes") && Catch::Contains("free"));
  auto ok = B::alloc<float>(ctx, 1000);
  B::fill(ctx, ok.data(), 1000, 1.0f);
  ctx.synchronize();
  CHECK(download_raw<bf16_t>(ctx, ok.data(), 1000) == std::vector<float>(1000, 1.0f));
  CHECK(ctx.device() == 0);
}

TEST_CASE("cuda upload_step puts the step's arrays on the device, growing its buffer", "[gpu]") {
  using B = backend::cuda<bf16_t>;
  auto& ctx = shared_context<bf16_t>();
  auto rng = rng_for("upload_step");
  for (const int n_seqs : {1, 40, 3, 200}) {
    INFO("sequences " << n_seqs);
    std::vector<std::vector<std::int32_t>> tokens, blocks;
    std::vector<runtime::step_chunk> chunks;
    std::uniform_int_distribution<int> len(1, 60);
    for (int s = 0; s < n_seqs; ++s) {
      tokens.emplace_back(static_cast<std::size_t>(len(rng)));
      std::iota(tokens.back().begin(), tokens.back().end(), s * 100);
      blocks.emplace_back(static_cast<std::size_t>(len(rng)));
      std::iota(blocks.back().begin(), blocks.back().end(), s * 7);
    }
    for (int s = 0; s < n_seqs; ++s)
      chunks.push_back({tokens[std::size_t(s)], std::int64_t(s), blocks[std::size_t(s)], 40 * (s % 2),
                        s % 3 == 0 ? runtime::step_chunk::logits::all : runtime::step_chunk::logits::last});
    runtime::step_builder builder;
    builder.build(chunks);
    const backend::step_batch b = B::upload_step(ctx, builder);
    const backend::step_batch h = builder.bind(builder.data().data());
    CHECK(b.n_tokens == h.n_tokens);
    CHECK(b.n_sample == h.n_sample);
    auto same = [&](const std::int32_t* dev, const std::int32_t* host, std::int64_t n) {
      return download_raw<bf16_t>(ctx, dev, n) == std::vector<std::int32_t>(host, host + n);
    };
    CHECK(same(b.token_ids, h.token_ids, h.n_tokens));
    CHECK(same(b.positions, h.positions, h.n_tokens));
    CHECK(same(b.token_seq, h.token_seq, h.n_tokens));
    CHECK(same(b.seq_start, h.seq_start, h.n_seqs + 1));
    CHECK(same(b.seq_kv_len, h.seq_kv_len, h.n_seqs));
    CHECK(same(b.block_tables, h.block_tables, std::int64_t(h.n_seqs) * h.max_blocks_per_seq));
    CHECK(same(b.seq_rope_len, h.seq_rope_len, h.n_seqs));
    CHECK(same(b.sample_rows, h.sample_rows, h.n_sample));
  }
}

TEMPLATE_TEST_CASE("cuda load materializes plan entries exactly like the host", "[gpu]", bf16_t, fp16_t) {
  using D = TestType;
  using B = backend::cuda<D>;
  auto& ctx = shared_context<D>();
  auto rng = rng_for("load");

  // A float32 "checkpoint tensor" in memory.
  auto make_tensor = [&](std::int64_t rows, std::int64_t cols, std::vector<float>& storage) {
    std::uniform_real_distribution<float> dist(-3, 3);
    storage.resize(static_cast<std::size_t>(rows * cols));
    for (auto& v : storage) v = dist(rng);
    io::tensor_view t;
    t.name = "test";
    t.type = dtype::f32;
    t.shape = {rows, cols};
    t.bytes = std::as_bytes(std::span<const float>(storage));
    return t;
  };
  auto check_entry = [&](const model::plan_entry& e) {
    std::vector<D> want(static_cast<std::size_t>(e.numel()));
    model::materialize(e, D::tag, want.data());
    auto buf = B::load(ctx, e);
    std::vector<D> got(want.size());
    B::copy_to_host(ctx, got.data(), buf.data(), std::int64_t(got.size()));
    ctx.synchronize();
    CHECK(std::memcmp(got.data(), want.data(), got.size() * sizeof(D)) == 0);
  };

  std::vector<float> small_storage, big_storage;
  const io::tensor_view small = make_tensor(64, 48, small_storage);
  SECTION("rows from two runs, a column slice") {
    model::plan_entry e;
    e.what = "test slice";
    e.runs = {{&small, 5, 10}, {&small, 40, 7}};
    e.rows = 17;
    e.cols = 20;
    e.col_begin = 3;
    check_entry(e);
  }
  SECTION("a 1-D entry") {
    model::plan_entry e;
    e.what = "test bias";
    e.vector = true;
    e.runs = {{&small, 100, 30}, {&small, 7, 5}};
    e.rows = 35;
    e.cols = 1;
    check_entry(e);
  }
  SECTION("an entry larger than the staging buffers, in several chunks") {
    const io::tensor_view big = make_tensor(5000, 4096, big_storage);  // 40 MB as 16-bit, 32 MB chunks
    model::plan_entry e;
    e.what = "test big";
    e.runs = {{&big, 0, 2500}, {&big, 2600, 2400}};
    e.rows = 4900;
    e.cols = 4096;
    for (int i = 0; i < 3; ++i) check_entry(e);  // the double buffer's slots alternate
  }
}

TEST_CASE("cuda kv_budget_bytes is a fraction of the free device memory", "[gpu]") {
  using B = backend::cuda<bf16_t>;
  auto& ctx = shared_context<bf16_t>();
  const std::size_t half = B::kv_budget_bytes(ctx, 0.5), all = B::kv_budget_bytes(ctx, 1.0);
  CHECK(half > 0);
  CHECK(half <= all);
  CHECK(double(half) == Approx(double(all) / 2).epsilon(0.05));
}

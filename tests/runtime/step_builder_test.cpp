// step_builder: the packed metadata of one ragged step, read back through bind() exactly as a
// backend reads it.
#include <catch2/catch.hpp>

#include <vector>

#include <mii/runtime/step_builder.hpp>

#include "expect_error.hpp"

using Catch::Matchers::Contains;
using namespace mii::runtime;

namespace {
template <class T = std::int32_t>
std::vector<T> read(const std::int32_t* p, std::size_t n) {
  return std::vector<T>(p, p + n);
}
}  // namespace

TEST_CASE("step_builder lays out a ragged step", "[runtime][step]") {
  const std::vector<std::int32_t> a = {10, 11, 12}, b = {20}, c = {30, 31};
  const std::vector<std::int32_t> blocks_a = {5, 7}, blocks_b = {1, 2, 3}, blocks_c = {9};
  const std::vector<step_chunk> chunks = {
      {a, 0, blocks_a, 0, step_chunk::logits::last},  // a prompt's first chunk, sampled
      {b, 9, blocks_b, 7, step_chunk::logits::all},   // a decode after 9 cached tokens of a 7-token prompt
      {c, 4, blocks_c, 0, step_chunk::logits::none},  // a middle chunk: no logits
  };
  step_builder sb;
  sb.build(chunks);
  CHECK(sb.n_tokens() == 6);
  CHECK(sb.n_sample() == 2);
  const auto& data = sb.data();
  const auto s = sb.bind(data.data());
  CHECK(s.n_tokens == 6);
  CHECK(s.n_seqs == 3);
  CHECK(s.max_blocks_per_seq == 3);
  CHECK(s.max_new_tokens == 3);
  CHECK(s.max_kv_len == 10);
  CHECK(s.n_sample == 2);
  CHECK(read(s.token_ids, 6) == std::vector<std::int32_t>{10, 11, 12, 20, 30, 31});
  CHECK(read(s.positions, 6) == std::vector<std::int32_t>{0, 1, 2, 9, 4, 5});
  CHECK(read(s.token_seq, 6) == std::vector<std::int32_t>{0, 0, 0, 1, 2, 2});
  CHECK(read(s.seq_start, 4) == std::vector<std::int32_t>{0, 3, 4, 6});
  CHECK(read(s.seq_kv_len, 3) == std::vector<std::int32_t>{3, 10, 6});
  CHECK(read(s.block_tables, 9) == std::vector<std::int32_t>{5, 7, -1, 1, 2, 3, 9, -1, -1});
  CHECK(read(s.seq_rope_len, 3) == std::vector<std::int32_t>{0, 7, 0});
  CHECK(read(s.sample_rows, 2) == std::vector<std::int32_t>{2, 3});
  // Everything lives in the one array a device backend copies.
  CHECK(s.sample_rows + 2 == data.data() + data.size());

  SECTION("bind() works on any copy of the data (as after an upload)") {
    const std::vector<std::int32_t> copy = data;
    const auto t = sb.bind(copy.data());
    CHECK(t.token_ids == copy.data());
    CHECK(read(t.block_tables, 9) == read(s.block_tables, 9));
  }
  SECTION("a rebuild with a smaller step replaces everything") {
    const std::vector<std::int32_t> d = {40, 41, 42, 43};
    const std::vector<step_chunk> one = {{d, 0, blocks_c, 0, step_chunk::logits::all}};
    sb.build(one);
    const auto u = sb.bind(sb.data().data());
    CHECK(u.n_seqs == 1);
    CHECK(u.max_blocks_per_seq == 1);
    CHECK(read(u.sample_rows, 4) == std::vector<std::int32_t>{0, 1, 2, 3});
    CHECK(read(u.seq_start, 2) == std::vector<std::int32_t>{0, 4});
    CHECK(sb.data().size() == 4 * 3 + 2 + 1 + 1 + 1 + 4);
  }
  SECTION("an empty chunk is an internal error") {
    const std::vector<std::int32_t> none;
    const std::vector<step_chunk> bad = {{a, 0, blocks_a, 0, step_chunk::logits::last}, {none, 0, blocks_b, 0, step_chunk::logits::last}};
    CHECK_THAT(MII_ERROR_MESSAGE(sb.build(bad)), Contains("empty chunk"));
  }
}

TEST_CASE("step_builder: sampled rows first (with copies), then extra rows", "[runtime][step][samples]") {
  // a: a prompt whose last row is sampled 3 times (n = 3) and whose tokens 0..1 want rows of
  // their own (prompt log-probabilities); b: a decode; c: a middle chunk with rows for tokens 1..2.
  const std::vector<std::int32_t> a = {10, 11, 12}, b = {20}, c = {30, 31, 32};
  const std::vector<std::int32_t> blocks = {0, 1};
  std::vector<step_chunk> chunks = {{a, 0, blocks, 0, step_chunk::logits::last},
                                    {b, 5, blocks, 0, step_chunk::logits::last},
                                    {c, 2, blocks, 0, step_chunk::logits::none}};
  chunks[0].copies = 3;
  chunks[0].extra_begin = 0;
  chunks[0].extra_end = 2;
  chunks[2].extra_begin = 1;
  chunks[2].extra_end = 3;
  step_builder sb;
  sb.build(chunks);
  CHECK(sb.n_sample() == 3 + 1 + 2 + 2);
  const auto s = sb.bind(sb.data().data());
  // Token indices: a = 0..2, b = 3, c = 4..6.
  CHECK(read(s.sample_rows, 8) == std::vector<std::int32_t>{2, 2, 2, 3, 0, 1, 5, 6});
  CHECK(s.sample_rows + 8 == sb.data().data() + sb.data().size());

  SECTION("extra rows outside the chunk are an internal error") {
    chunks[2].extra_end = 4;
    CHECK_THAT(MII_ERROR_MESSAGE(sb.build(chunks)), Contains("extra rows"));
  }
}

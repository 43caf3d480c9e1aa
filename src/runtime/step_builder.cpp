#include <mii/runtime/step_builder.hpp>

#include <algorithm>
#include <limits>

#include <mii/error.hpp>

namespace mii::runtime {

void step_builder::build(std::span<const step_chunk> chunks, step_shape at_least) {
  std::int64_t n_tokens = 0, n_sample = 0;
  std::int32_t max_blocks = std::max(1, at_least.blocks_per_seq), max_new = 0, max_kv = at_least.max_kv_len;
  for (const auto& c : chunks) {
    n_tokens += std::int64_t(c.tokens.size());
    if (c.copies < 1 || c.extra_begin < 0 || c.extra_begin > c.extra_end || c.extra_end > std::int32_t(c.tokens.size()))
      fail("internal: step chunk of ", c.tokens.size(), " tokens with ", c.copies, " copies and extra rows [",
           c.extra_begin, ", ", c.extra_end, ")");
    n_sample += c.want == step_chunk::logits::all    ? std::int64_t(c.tokens.size())
                : c.want == step_chunk::logits::last ? c.copies
                                                     : 0;
    n_sample += c.extra_end - c.extra_begin;
    max_blocks = std::max(max_blocks, std::int32_t(c.blocks.size()));
    max_new = std::max(max_new, std::int32_t(c.tokens.size()));
    max_kv = std::max(max_kv, std::int32_t(c.start + std::int64_t(c.tokens.size())));
  }
  const std::size_t n_seqs = chunks.size();
  off_tokens_ = 0;
  off_positions_ = off_tokens_ + std::size_t(n_tokens);
  off_token_seq_ = off_positions_ + std::size_t(n_tokens);
  off_seq_start_ = off_token_seq_ + std::size_t(n_tokens);
  off_kv_len_ = off_seq_start_ + n_seqs + 1;
  off_blocks_ = off_kv_len_ + n_seqs;
  off_rope_ = off_blocks_ + n_seqs * std::size_t(max_blocks);
  off_sample_ = off_rope_ + n_seqs;
  data_.assign(off_sample_ + std::size_t(n_sample), -1);  // unused block-table slots stay -1

  std::int32_t t = 0, sample = 0;
  for (std::size_t s = 0; s < n_seqs; ++s) {
    const auto& c = chunks[s];
    if (c.tokens.empty()) fail("internal: empty chunk in a step");
    data_[off_seq_start_ + s] = t;
    for (std::size_t i = 0; i < c.tokens.size(); ++i, ++t) {
      data_[off_tokens_ + std::size_t(t)] = c.tokens[i];
      data_[off_positions_ + std::size_t(t)] = std::int32_t(c.start + std::int64_t(i));
      data_[off_token_seq_ + std::size_t(t)] = std::int32_t(s);
      if (c.want == step_chunk::logits::all) data_[off_sample_ + std::size_t(sample++)] = t;
      if (c.want == step_chunk::logits::last && i + 1 == c.tokens.size())
        for (std::int32_t k = 0; k < c.copies; ++k) data_[off_sample_ + std::size_t(sample++)] = t;
    }
    data_[off_kv_len_ + s] = std::int32_t(c.start + std::int64_t(c.tokens.size()));
    std::copy(c.blocks.begin(), c.blocks.end(), data_.begin() + std::ptrdiff_t(off_blocks_ + s * std::size_t(max_blocks)));
    if (c.rope_len < 0 || c.rope_len > std::numeric_limits<std::int32_t>::max())
      fail("internal: step chunk rope_len ", c.rope_len, " is outside [0, 2^31)");
    data_[off_rope_ + s] = std::int32_t(c.rope_len);
  }
  data_[off_seq_start_ + n_seqs] = t;
  for (std::size_t s = 0; s < n_seqs; ++s)  // the extra rows, after every sampled one
    for (std::int32_t i = chunks[s].extra_begin; i < chunks[s].extra_end; ++i)
      data_[off_sample_ + std::size_t(sample++)] = data_[off_seq_start_ + s] + i;
  header_ = {};
  header_.n_tokens = std::int32_t(n_tokens);
  header_.n_seqs = std::int32_t(n_seqs);
  header_.max_blocks_per_seq = max_blocks;
  header_.max_new_tokens = max_new;
  header_.max_kv_len = max_kv;
  header_.n_sample = std::int32_t(n_sample);
}

backend::step_batch step_builder::bind(const std::int32_t* base) const {
  backend::step_batch b = header_;
  b.token_ids = base + off_tokens_;
  b.positions = base + off_positions_;
  b.token_seq = base + off_token_seq_;
  b.seq_start = base + off_seq_start_;
  b.seq_kv_len = base + off_kv_len_;
  b.block_tables = base + off_blocks_;
  b.seq_rope_len = base + off_rope_;
  b.sample_rows = base + off_sample_;
  return b;
}

}  // namespace mii::runtime

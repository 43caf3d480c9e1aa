// Builds the metadata of one forward step (backend::step_batch) on the host, every array packed
// into one int32 vector so that a device backend sends it with a single copy.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include <mii/backend/step_batch.hpp>

namespace mii::runtime {

// One sequence's part of a step.
struct step_chunk {
  std::span<const std::int32_t> tokens;  // the new tokens
  std::int64_t start;                    // position of tokens[0] (= tokens already cached)
  std::span<const std::int32_t> blocks;  // the sequence's KV blocks (enough for start + size)
  // Length of the forward transformers computes the sequence's prompt in (its prompt length; after
  // a Phi-3 long-rope restart, the restart's length): a token at position p gets the rope
  // frequencies of a forward of max(rope_len, p + 1) tokens (backend/rope_table.hpp). 0: p + 1.
  std::int64_t rope_len = 0;
  enum class logits { none, last, all } want = logits::last;
  // Rows in the step's logits, in this order: every chunk's `want` rows in chunk order, the last
  // token's row repeated `copies` times for want == last (generate_params.n samples drawn from
  // one prompt); then every chunk's rows of tokens [extra_begin, extra_end) (prompt
  // log-probabilities), so that the rows to sample come first.
  std::int32_t copies = 1;
  std::int32_t extra_begin = 0, extra_end = 0;
};

// Lower bounds for the step's shape scalars. A CUDA graph captured for one shape replays any
// step that fits it: the block-table width and the longest KV length are then fixed per graph.
struct step_shape {
  std::int32_t blocks_per_seq = 0;
  std::int32_t max_kv_len = 0;
};

class step_builder {
 public:
  void build(std::span<const step_chunk> chunks, step_shape at_least = {});
  // The step with pointers into `base`, which holds a copy of data() (host or device memory).
  backend::step_batch bind(const std::int32_t* base) const;
  const std::vector<std::int32_t>& data() const { return data_; }
  std::int32_t n_tokens() const { return header_.n_tokens; }
  std::int32_t n_sample() const { return header_.n_sample; }

 private:
  std::vector<std::int32_t> data_;
  backend::step_batch header_;
  std::size_t off_tokens_ = 0, off_positions_ = 0, off_token_seq_ = 0, off_seq_start_ = 0, off_kv_len_ = 0,
              off_blocks_ = 0, off_rope_ = 0, off_sample_ = 0;
};

}  // namespace mii::runtime

// The data every backend op sees for one forward step over a ragged batch, and the layout of
// the blocked KV cache. Host and CUDA backends share these definitions; only where the pointers
// point differs (host memory for `host`, device memory for `cuda`).
//
// A step holds `n_seqs` sequences; sequence s contributes tokens [seq_start[s], seq_start[s+1])
// of the flat token arrays, at positions seq_kv_len[s] - (its new tokens) ... seq_kv_len[s] - 1:
// a decode adds one token, a prefill chunk several. Attention of a token at position p reads
// keys 0..p (or p-window+1..p) of its own sequence from the cache, after this step's keys and
// values have been written there.
#pragma once
#include <cstdint>

#include <mii/backend/rope_table.hpp>

namespace mii::backend {

struct step_batch {
  std::int32_t n_tokens = 0;
  std::int32_t n_seqs = 0;
  std::int32_t max_blocks_per_seq = 0;  // row stride of block_tables
  std::int32_t max_new_tokens = 0;      // largest seq_start[s+1] - seq_start[s] this step
  std::int32_t max_kv_len = 0;          // largest seq_kv_len this step
  std::int32_t n_sample = 0;            // rows whose logits are computed

  const std::int32_t* token_ids = nullptr;   // [n_tokens]
  const std::int32_t* positions = nullptr;   // [n_tokens] position in its sequence
  const std::int32_t* token_seq = nullptr;   // [n_tokens] which sequence
  const std::int32_t* seq_start = nullptr;   // [n_seqs + 1] token offsets
  const std::int32_t* seq_kv_len = nullptr;  // [n_seqs] cached + new tokens after this step
  const std::int32_t* block_tables = nullptr;// [n_seqs][max_blocks_per_seq] KV block ids
  const std::int32_t* seq_rope_len = nullptr;// [n_seqs] length of the forward that computed the prompt (rope_table.hpp)
  const std::int32_t* sample_rows = nullptr; // [n_sample] token index whose logits are needed
};

// One layer's slice of the blocked KV cache, element type T:
//   data[block][2][kv_heads][block_size][head_dim], index 0 = keys, 1 = values.
template <class T>
struct kv_layer {
  T* data = nullptr;
  std::int32_t block_size = 0;
  std::int32_t kv_heads = 0;
  std::int32_t head_dim = 0;

  std::int64_t block_stride() const { return std::int64_t(2) * kv_heads * block_size * head_dim; }
};

// One whole KV block copied onto another: keys and values of every layer. Copy-on-write of the
// block samples of one prompt shared (generate_params.n), done before the step that writes into it.
struct block_copy {
  std::int32_t src = 0;
  std::int32_t dst = 0;
};

// Attention geometry of one layer on this rank.
struct attention_shape {
  std::int32_t heads = 0;      // query heads
  std::int32_t kv_heads = 0;
  std::int32_t head_dim = 0;
  float scale = 1.0f;          // softmax scale, 1/sqrt(head_dim)
  std::int32_t window = 0;     // 0: full causal; else keys with position > p - window
  float softcap = 0.0f;        // > 0: scores become softcap * tanh(score / softcap) before the mask
};

}  // namespace mii::backend

// Dynamic SplitFuse scheduling (DeepSpeed-FastGen) over a blocked KV cache.
//
// Each step gets two budgets: tokens per forward (max_ragged_batch_size) and sequences per
// forward (max_ragged_sequence_count). Running decodes come first, one token each; prompt chunks
// then fill the remaining token budget: partially prefilled prompts continue, new prompts are
// admitted in arrival order. Long prompts split across steps; short ones pack together. Nothing
// runs without its KV blocks: when blocks run out, a decode preempts the most recently admitted
// sequence (its blocks are freed and it is recomputed later from its tokens), so requests wait
// or restart, never fail. With prefix caching (kv_cache_manager.hpp) a sequence that starts with
// tokens whose keys and values are still cached takes those blocks at admission and computes only
// the rest; a recomputed (preempted) sequence usually finds its own blocks again.
//
// Logits rows are a third budget (the model computes at most max_rows per step): a sampled chunk
// needs its sequence's `fanout` rows (generate_params.n samples drawn from one prompt's last row)
// and a chunk over prompt positions whose log-probabilities are asked for needs one row each.
// After the sample that fans out, fork() makes each further sample a sequence of its own that
// shares the prompt's blocks; a sample about to write into a shared block gets a copy of it
// first, listed in block_copies() for the step to make before its forward pass.
#pragma once
#include <cstdint>
#include <deque>
#include <span>
#include <vector>

#include <mii/backend/step_batch.hpp>

#include <mii/runtime/kv_cache_manager.hpp>

namespace mii::runtime {

// The part of a request the scheduler reads and updates.
struct sequence_state {
  std::int64_t total_tokens = 0;   // tokens known: prompt + generated so far
  std::int64_t kv_len = 0;         // of which this many have keys/values in the cache
  std::int64_t max_total = 0;      // the longest this sequence may become (prompt + max_new_tokens)
  std::vector<std::int32_t> blocks;
  std::uint64_t admitted = 0;      // admission order (0: waiting)
  std::int64_t preemptions = 0;
  // Prefix caching: the sequence's token ids (prompt, then generated; null: no caching) and the
  // keys of its first full blocks.
  const std::vector<std::int32_t>* token_ids = nullptr;
  std::vector<block_key> block_keys;
  // Rope: the length of the forward that computed the prompt (step_chunk::rope_len), and the
  // prefix-cache variant of its keys (model::rope_frequencies::kv_variant): blocks are shared
  // only between sequences of one variant.
  std::int64_t rope_len = 0;
  std::uint64_t kv_variant = 0;
  // Logits rows: positions [rows_begin, rows_end) want their own row (prompt log-probabilities
  // not yet recorded; cached blocks are not taken for them), and the next sample draws `fanout`
  // tokens from the last row (generate_params.n, until the samples fork).
  std::int64_t rows_begin = 0, rows_end = 0;
  std::int32_t fanout = 1;

  std::int64_t pending() const { return total_tokens - kv_len; }
  // Logits rows a chunk of `tokens` tokens from kv_len needs.
  std::int64_t rows_for(std::int64_t tokens) const;
};

struct scheduled_chunk {
  sequence_state* seq;
  std::int32_t tokens;  // tokens [kv_len, kv_len + tokens) go through this step
  bool sample;          // the chunk ends at the sequence's last token: sample the next one
};

struct scheduler_limits {
  std::int64_t max_tokens = 768;
  std::int64_t max_seqs = 512;
  std::int32_t block_size = 64;
  bool prefix_caching = false;
  std::int64_t max_rows = 0;  // logits rows per step (0: max_seqs)
};

// Prefix-cache figures since the scheduler was made, in tokens of admitted prompts.
struct prefix_cache_counters {
  std::int64_t queried = 0;  // tokens that admitted sequences needed in the cache
  std::int64_t hit = 0;      // of which found there
};

class scheduler {
 public:
  scheduler(scheduler_limits limits, std::int32_t kv_blocks);

  // Blocks a sequence needs to hold `tokens` tokens.
  std::int32_t blocks_for(std::int64_t tokens) const {
    return std::int32_t((tokens + limits_.block_size - 1) / limits_.block_size);
  }
  // Whether a sequence of at most this many tokens can ever fit in the cache.
  bool fits(std::int64_t max_total) const { return blocks_for(max_total) <= allocator_.total(); }

  void add(sequence_state* s);     // queue a new request (must fit())
  void finish(sequence_state* s);  // remove a finished request and free its blocks
  // Drops every queued and running sequence and frees their blocks (a call that ended early).
  void abandon_all();
  // Plans the next step; chunk order: decodes, continuing prefills, new prefills.
  std::vector<scheduled_chunk> schedule();
  // Block copies the last schedule()'s plan needs before its forward pass (copy on write), in order.
  const std::vector<backend::block_copy>& block_copies() const { return copies_; }
  // After the step ran: the scheduled tokens are in the cache (callers then append sampled
  // tokens), and blocks that became full are registered for prefix caching.
  void commit(const std::vector<scheduled_chunk>& plan);
  // After commit(): `child` is a further sample of `parent`, which just sampled from its prompt.
  // The child runs from here with the parent's keys and values (kv_len) and shares its blocks;
  // the caller has set its tokens. It counts as admitted after every running sequence.
  void fork(const sequence_state* parent, sequence_state* child);

  bool idle() const { return running_.empty() && waiting_.empty(); }
  std::size_t running() const { return running_.size(); }
  std::size_t waiting() const { return waiting_.size(); }
  const kv_cache_manager& blocks() const { return allocator_; }
  const prefix_cache_counters& prefix_cache() const { return prefix_; }
  const scheduler_limits& limits() const { return limits_; }
  std::int64_t preemptions() const { return preemptions_; }
  std::int64_t max_rows() const { return max_rows_; }

 private:
  bool grow(sequence_state* s, std::int64_t tokens);  // blocks for kv_len + tokens
  void preempt(sequence_state* s);
  void drop_blocks(sequence_state* s);  // back to the pool; the sequence restarts from token 0
  std::int64_t reuse_cached_prefix(sequence_state* s);
  bool shares_next_block(const sequence_state* s) const;  // the block kv_len writes into is shared
  std::int64_t fit_rows(const sequence_state* s, std::int64_t chunk, std::int64_t rows) const;
  sequence_state* youngest_running_except(const std::vector<scheduled_chunk>& plan, const sequence_state* keep) const;

  scheduler_limits limits_;
  kv_cache_manager allocator_;
  prefix_cache_counters prefix_;
  std::vector<sequence_state*> running_;   // admission order
  std::deque<sequence_state*> waiting_;    // arrival order; preempted ones go to the front
  std::uint64_t next_admission_ = 1;
  std::int64_t preemptions_ = 0;
  std::int64_t max_rows_;
  std::vector<backend::block_copy> copies_;
};

}  // namespace mii::runtime

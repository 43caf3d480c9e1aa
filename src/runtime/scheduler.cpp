#include <mii/runtime/scheduler.hpp>

#include <algorithm>

#include <mii/error.hpp>

namespace mii::runtime {

std::int64_t sequence_state::rows_for(std::int64_t tokens) const {
  const std::int64_t end = kv_len + tokens;
  const std::int64_t own = std::max<std::int64_t>(0, std::min(end, rows_end) - std::max(kv_len, rows_begin));
  return own + (end == total_tokens ? fanout : 0);
}

scheduler::scheduler(scheduler_limits limits, std::int32_t kv_blocks)
    : limits_(limits),
      allocator_(kv_blocks, std::max(limits.block_size, 1), limits.prefix_caching),
      max_rows_(limits.max_rows > 0 ? limits.max_rows : limits.max_seqs) {
  if (limits_.max_tokens < 1) fail("model_config.max_ragged_batch_size must be >= 1, got ", limits_.max_tokens);
  if (limits_.max_seqs < 1) fail("model_config.max_ragged_sequence_count must be >= 1, got ", limits_.max_seqs);
  if (limits_.block_size < 1) fail("model_config.kv_block_size must be >= 1, got ", limits_.block_size);
}

void scheduler::add(sequence_state* s) {
  if (!fits(s->max_total))
    fail("internal: a sequence of ", s->max_total, " tokens cannot fit the KV cache (", allocator_.total(), " blocks of ",
         limits_.block_size, ")");
  s->admitted = 0;
  waiting_.push_back(s);
}

void scheduler::finish(sequence_state* s) {
  allocator_.release(s->blocks);
  std::erase(running_, s);
  std::erase(waiting_, s);
}

void scheduler::abandon_all() {
  for (sequence_state* s : running_) allocator_.release(s->blocks);
  for (sequence_state* s : waiting_) allocator_.release(s->blocks);  // normally none: preemption freed them
  running_.clear();
  waiting_.clear();
}

void scheduler::commit(const std::vector<scheduled_chunk>& plan) {
  for (const auto& c : plan) {
    sequence_state* s = c.seq;
    s->kv_len += c.tokens;
    if (s->token_ids)
      allocator_.register_full_blocks(*s->token_ids, s->kv_len, s->blocks, s->block_keys, s->kv_variant);
  }
}

void scheduler::fork(const sequence_state* parent, sequence_state* child) {
  if (parent->admitted == 0 || std::find(running_.begin(), running_.end(), parent) == running_.end())
    fail("internal: forking a sequence that is not running");
  const std::vector<std::int32_t>* own_tokens = child->token_ids;
  static_cast<sequence_state&>(*child) = *parent;  // its place in the cache, rope and limits
  child->token_ids = own_tokens;
  allocator_.share(child->blocks);
  child->admitted = next_admission_++;
  child->preemptions = 0;
  child->fanout = 1;
  child->rows_begin = child->rows_end = 0;  // the parent records the prompt's rows
  running_.push_back(child);
}

void scheduler::drop_blocks(sequence_state* s) {
  allocator_.release(s->blocks);
  s->block_keys.clear();
  s->kv_len = 0;
}

// A sequence about to be admitted takes the cached blocks that start its tokens. At least its
// last token is computed again: its logits are what the step samples from. Positions whose own
// logits rows are wanted (prompt log-probabilities) are computed again too.
std::int64_t scheduler::reuse_cached_prefix(sequence_state* s) {
  if (!s->token_ids || s->kv_len != 0 || !s->blocks.empty()) return 0;
  const std::span<const std::int32_t> tokens(s->token_ids->data(), std::size_t(s->total_tokens));
  std::int64_t limit = s->total_tokens - 1;
  if (s->rows_end > s->rows_begin) limit = std::min(limit, s->rows_begin);
  s->block_keys.clear();
  s->kv_len = allocator_.match_prefix(tokens, limit, s->blocks, s->block_keys, s->kv_variant);
  return s->kv_len;
}

bool scheduler::shares_next_block(const sequence_state* s) const {
  const auto i = std::size_t(s->kv_len / limits_.block_size);
  return s->kv_len % limits_.block_size != 0 && i < s->blocks.size() && allocator_.shared(s->blocks[i]);
}

// Blocks for kv_len + tokens, all or nothing. A block the chunk writes into that the sequence
// shares with its sibling samples is replaced by a copy first (listed in copies_).
bool scheduler::grow(sequence_state* s, std::int64_t tokens) {
  const std::int32_t more = std::max(0, blocks_for(s->kv_len + tokens) - std::int32_t(s->blocks.size()));
  const bool copy = shares_next_block(s);
  if (more + (copy ? 1 : 0) > allocator_.free_count()) return false;
  if (copy) copies_.push_back(*allocator_.copy_on_write(s->blocks, std::size_t(s->kv_len / limits_.block_size)));
  return more == 0 || allocator_.allocate(more, s->blocks);
}

// The longest chunk of at most `chunk` tokens whose logits rows fit in `rows` (0: none).
std::int64_t scheduler::fit_rows(const sequence_state* s, std::int64_t chunk, std::int64_t rows) const {
  if (chunk <= 0) return 0;
  if (s->rows_for(chunk) <= rows) return chunk;
  if (chunk == s->pending()) --chunk;  // without its sample the chunk needs only its own rows
  if (chunk <= 0 || s->rows_for(chunk) <= rows) return chunk;
  // Rows start at position max(kv_len, rows_begin) and grow one per token from there.
  return std::min(chunk, std::max(s->kv_len, s->rows_begin) - s->kv_len + rows);
}

void scheduler::preempt(sequence_state* s) {
  drop_blocks(s);  // recomputed from its tokens when readmitted
  s->admitted = 0;
  ++s->preemptions;
  ++preemptions_;
  std::erase(running_, s);
  waiting_.push_front(s);
}

sequence_state* scheduler::youngest_running_except(const std::vector<scheduled_chunk>& plan,
                                                   const sequence_state* keep) const {
  for (auto it = running_.rbegin(); it != running_.rend(); ++it) {
    if (*it == keep) continue;
    if (std::any_of(plan.begin(), plan.end(), [&](const scheduled_chunk& c) { return c.seq == *it; })) continue;
    return *it;
  }
  return nullptr;
}

std::vector<scheduled_chunk> scheduler::schedule() {
  std::vector<scheduled_chunk> plan;
  copies_.clear();
  std::int64_t tokens = limits_.max_tokens, seqs = limits_.max_seqs, rows = max_rows_;

  // 1. Decodes (one pending token), oldest first; make room by preempting the youngest. A decode
  //    that fans out into more rows than are left waits for the next step.
  for (std::size_t i = 0; i < running_.size() && tokens > 0 && seqs > 0; ++i) {
    sequence_state* s = running_[i];
    if (s->pending() != 1 || s->rows_for(1) > rows) continue;
    bool ok = grow(s, 1);
    while (!ok) {
      sequence_state* victim = youngest_running_except(plan, s);
      if (!victim) break;
      const auto victim_pos = std::find(running_.begin(), running_.end(), victim) - running_.begin();
      preempt(victim);
      if (std::size_t(victim_pos) < i) --i;  // keep pointing at s
      ok = grow(s, 1);
    }
    if (!ok) {  // nothing left to take blocks from: s waits for recompute itself
      preempt(s);
      --i;
      continue;
    }
    plan.push_back({s, 1, true});
    --tokens;
    --seqs;
    rows -= s->rows_for(1);
  }

  // 2. Prompt chunks: continuing prefills (already admitted), then new ones in arrival order.
  auto add_chunk = [&](sequence_state* s) -> bool {
    std::int64_t room = std::int64_t(allocator_.free_count() + std::int32_t(s->blocks.size())) * limits_.block_size - s->kv_len;
    if (shares_next_block(s)) room -= limits_.block_size;  // its copy takes a block
    const std::int64_t chunk = fit_rows(s, std::min({s->pending(), tokens, room}), rows);
    if (chunk <= 0 || !grow(s, chunk)) return false;
    rows -= s->rows_for(chunk);
    plan.push_back({s, std::int32_t(chunk), chunk == s->pending()});
    tokens -= chunk;
    --seqs;
    return true;
  };
  for (sequence_state* s : running_) {
    if (tokens <= 0 || seqs <= 0) break;
    if (s->pending() > 1) add_chunk(s);
  }
  while (!waiting_.empty() && tokens > 0 && seqs > 0) {
    sequence_state* s = waiting_.front();
    const std::int64_t reused = reuse_cached_prefix(s);
    if (!add_chunk(s)) {  // admission only with free blocks; keep arrival order
      drop_blocks(s);     // the cached blocks stay cached for its next try
      break;
    }
    waiting_.pop_front();
    s->admitted = next_admission_++;
    running_.push_back(s);
    if (s->token_ids) {
      prefix_.queried += s->total_tokens;
      prefix_.hit += reused;
    }
  }

  // 3. Nothing could run although work is queued: prefills hold all blocks and each needs more.
  //    Free the youngest and try again (every sequence fits the cache alone, so this ends).
  if (plan.empty() && !running_.empty()) {
    preempt(running_.back());
    return schedule();
  }
  return plan;
}

}  // namespace mii::runtime

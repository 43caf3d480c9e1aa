#include <mii/runtime/scheduler.hpp>

#include <algorithm>

#include <mii/error.hpp>

namespace mii::runtime {

scheduler::scheduler(scheduler_limits limits, std::int32_t kv_blocks)
    : limits_(limits), allocator_(kv_blocks, std::max(limits.block_size, 1), limits.prefix_caching) {
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
    if (s->token_ids) allocator_.register_full_blocks(*s->token_ids, s->kv_len, s->blocks, s->block_keys);
  }
}

void scheduler::drop_blocks(sequence_state* s) {
  allocator_.release(s->blocks);
  s->block_keys.clear();
  s->kv_len = 0;
}

// A sequence about to be admitted takes the cached blocks that start its tokens. At least its
// last token is computed again: its logits are what the step samples from.
std::int64_t scheduler::reuse_cached_prefix(sequence_state* s) {
  if (!s->token_ids || s->kv_len != 0 || !s->blocks.empty()) return 0;
  const std::span<const std::int32_t> tokens(s->token_ids->data(), std::size_t(s->total_tokens));
  s->block_keys.clear();
  s->kv_len = allocator_.match_prefix(tokens, s->total_tokens - 1, s->blocks, s->block_keys);
  return s->kv_len;
}

bool scheduler::grow(sequence_state* s, std::int64_t tokens) {
  const std::int32_t need = blocks_for(s->kv_len + tokens) - std::int32_t(s->blocks.size());
  return need <= 0 || allocator_.allocate(need, s->blocks);
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
  std::int64_t tokens = limits_.max_tokens, seqs = limits_.max_seqs;

  // 1. Decodes (one pending token), oldest first; make room by preempting the youngest.
  for (std::size_t i = 0; i < running_.size() && tokens > 0 && seqs > 0; ++i) {
    sequence_state* s = running_[i];
    if (s->pending() != 1) continue;
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
  }

  // 2. Prompt chunks: continuing prefills (already admitted), then new ones in arrival order.
  auto add_chunk = [&](sequence_state* s) -> bool {
    const std::int64_t room = std::int64_t(allocator_.free_count() + std::int32_t(s->blocks.size())) * limits_.block_size - s->kv_len;
    const std::int64_t chunk = std::min({s->pending(), tokens, room});
    if (chunk <= 0 || !grow(s, chunk)) return false;
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

// KV-cache blocks between the scheduler and the cache: a pool of reference-counted blocks with
// automatic prefix caching (vLLM v1's kv_cache_manager is the model).
//
// A block whose block_size tokens all have keys and values in the cache is *full*. A full block
// is identified by a key: a 128-bit hash of its parent block's key and its own token ids, so a
// key names one exact prefix of tokens (positions included). Full blocks are registered under
// their keys; a new sequence takes the longest run of registered blocks that starts its tokens
// instead of computing them again, and shares them (reference counts). A block nobody holds
// goes back to the pool: plain blocks to a free stack, registered ones to an LRU list where they
// stay findable until the pool needs them (least recently used evicted first). Keys are checked
// against the stored token ids on every hit, so a hash collision can cost a miss, never wrong
// keys and values. Everything is a function of the tokens and the order of calls: ranks that make
// the same calls make the same decisions.
//
// Samples of one prompt (generate_params.n) share all of the prompt's blocks, its partial last one
// included (share()); a sample about to write into a block it shares gets its own copy first
// (copy_on_write()), as vLLM's v0 block manager does.
#pragma once
#include <cstdint>
#include <list>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include <mii/backend/step_batch.hpp>

namespace mii::runtime {

struct block_key {
  std::uint64_t lo = 0, hi = 0;
  bool operator==(const block_key&) const = default;
};
struct block_key_hash {
  std::size_t operator()(const block_key& k) const { return std::size_t(k.lo ^ (k.hi * 0x9e3779b97f4a7c15ull)); }
};
// The key of a block holding `tokens`, after the block whose key is `parent` ({} for the first).
block_key chain_key(const block_key& parent, std::span<const std::int32_t> tokens);

class kv_cache_manager {
 public:
  kv_cache_manager(std::int32_t blocks, std::int32_t block_size, bool prefix_caching);

  std::int32_t total() const { return total_; }
  // Blocks a new allocation can have now: free ones and registered ones nobody holds.
  std::int32_t free_count() const { return std::int32_t(free_.size() + lru_.size()); }
  std::int32_t used_count() const { return total_ - free_count(); }
  std::int32_t cached_count() const { return std::int32_t(cached_.size()); }  // registered (held or not)
  bool prefix_caching() const { return prefix_caching_; }

  // Appends n fresh blocks (reference count 1) to `out` and returns true — evicting registered
  // blocks nobody holds when the free stack runs out — or changes nothing and returns false.
  bool allocate(std::int32_t n, std::vector<std::int32_t>& out);
  // Drops one reference to each block and clears `blocks`.
  void release(std::vector<std::int32_t>& blocks);
  // One more reference to each of `blocks`, which must all be held (a sequence forked from
  // another takes its blocks this way).
  void share(std::span<const std::int32_t> blocks);
  // References to block b (0: free or cached unheld).
  std::int32_t refs(std::int32_t b) const;
  bool shared(std::int32_t b) const { return refs(b) > 1; }
  // Copy on write: when blocks[i] has other holders, it is replaced by a fresh block (evicting an
  // unheld cached one when needed) and this holder's reference to it is dropped; returns
  // {old, new} for the caller to copy the keys and values before anything writes into the new
  // block. Returns nullopt, changing nothing, when blocks[i] is this holder's alone or when no
  // block is free (check free_count() first).
  std::optional<backend::block_copy> copy_on_write(std::vector<std::int32_t>& blocks, std::size_t i);
  // Blocks copied by copy_on_write so far.
  std::int64_t copies() const { return copies_; }

  // The longest run of registered blocks that starts `tokens`, covering at most `max_tokens`
  // tokens: appended to `blocks` (one more reference each) with their keys to `keys`. Returns
  // the tokens covered (a multiple of the block size). `blocks` and `keys` must be empty.
  // `variant` separates sequences whose keys differ for the same tokens (rope variants that
  // depend on the prompt's length): it roots the chain of keys.
  std::int64_t match_prefix(std::span<const std::int32_t> tokens, std::int64_t max_tokens,
                            std::vector<std::int32_t>& blocks, std::vector<block_key>& keys,
                            std::uint64_t variant = 0);
  // Registers the blocks of a sequence that became full: the first `computed` of `tokens` have
  // keys and values in `blocks`. `keys` holds the keys of the blocks registered or checked so far
  // and grows; a block whose key another block already has stays unregistered.
  void register_full_blocks(std::span<const std::int32_t> tokens, std::int64_t computed,
                            const std::vector<std::int32_t>& blocks, std::vector<block_key>& keys,
                            std::uint64_t variant = 0);

 private:
  struct block_state {
    std::int32_t refs = 0;
    bool registered = false;
    block_key key;
    std::vector<std::int32_t> tokens;      // when registered: the ids its key stands for
    std::list<std::int32_t>::iterator lru;  // when registered and unheld: its place in lru_
  };
  void take(std::int32_t b);  // one more reference to a block found in the cache
  void evict(std::int32_t b);

  std::int32_t total_, block_size_;
  bool prefix_caching_;
  std::int64_t copies_ = 0;
  std::vector<block_state> state_;
  std::vector<std::int32_t> free_;  // unregistered and unheld; handed out lowest id first
  std::list<std::int32_t> lru_;     // registered and unheld, least recently released first
  std::unordered_map<block_key, std::int32_t, block_key_hash> cached_;
};

}  // namespace mii::runtime

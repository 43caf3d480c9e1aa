#include "tokenizer/bpe.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>

#include "tokenizer/pre_tokenizer.hpp"
#include "tokenizer/unicode.hpp"

namespace mii::detail::tok {

namespace {

std::atomic<std::uint64_t> next_cache_owner{1};

// Vocabularies today have at most a few hundred thousand entries; ids index dense tables.
constexpr std::int64_t max_token_id = std::int64_t{1} << 24;

// Ids of recently seen words, per thread: most words of a text repeat (the reference caches
// them too). Flat table; cleared wholesale when full, which is cheaper than any eviction policy.
class word_cache {
 public:
  static constexpr std::size_t slot_count = 1u << 15;
  static constexpr std::size_t max_entries = slot_count / 2;
  static constexpr std::size_t max_word = 256;  // longer words are not cached (as the reference)

  void reset(std::uint64_t owner) {
    owner_ = owner;
    clear();
  }
  std::uint64_t owner() const { return owner_; }

  // Returns the cached ids of `word` (hash h) or nullptr.
  const std::int32_t* find(std::string_view word, std::uint64_t h, std::size_t& count) const {
    if (slots_.empty()) return nullptr;
    for (std::size_t i = h & (slot_count - 1);; i = (i + 1) & (slot_count - 1)) {
      const slot& s = slots_[i];
      if (s.hash == 0) return nullptr;
      if (s.hash == h && s.key_len == word.size() && std::memcmp(keys_.data() + s.key_off, word.data(), word.size()) == 0) {
        count = s.ids_len;
        return ids_.data() + s.ids_off;
      }
    }
  }
  void insert(std::string_view word, std::uint64_t h, const std::int32_t* ids, std::size_t n) {
    if (slots_.empty()) slots_.assign(slot_count, slot{});
    if (entries_ >= max_entries) clear();
    for (std::size_t i = h & (slot_count - 1);; i = (i + 1) & (slot_count - 1)) {
      slot& s = slots_[i];
      if (s.hash != 0) continue;
      s = slot{h, static_cast<std::uint32_t>(keys_.size()), static_cast<std::uint32_t>(word.size()),
               static_cast<std::uint32_t>(ids_.size()), static_cast<std::uint32_t>(n)};
      keys_.append(word);
      ids_.insert(ids_.end(), ids, ids + n);
      ++entries_;
      return;
    }
  }

 private:
  struct slot {
    std::uint64_t hash = 0;  // 0 = empty (stored hashes have the low bit set)
    std::uint32_t key_off = 0, key_len = 0, ids_off = 0, ids_len = 0;
  };
  void clear() {
    if (!slots_.empty()) std::fill(slots_.begin(), slots_.end(), slot{});
    keys_.clear();
    ids_.clear();
    entries_ = 0;
  }
  std::uint64_t owner_ = 0;
  std::vector<slot> slots_;
  std::string keys_;
  std::vector<std::int32_t> ids_;
  std::size_t entries_ = 0;
};

word_cache& cache_for(std::uint64_t owner) {
  // A few tokenizers may be used alternately on one thread; each gets its own cache.
  thread_local std::array<word_cache, 4> caches;
  thread_local unsigned victim = 0;
  for (word_cache& c : caches)
    if (c.owner() == owner) return c;
  word_cache& c = caches[victim++ % caches.size()];
  c.reset(owner);
  return c;
}

std::string_view element_string(simdjson::dom::element e, bool& ok) {
  std::string_view s;
  ok = e.get_string().get(s) == simdjson::SUCCESS;
  return s;
}

}  // namespace

bpe_model::bpe_model(const json_value& model) : cache_owner_(next_cache_owner++) {
  fallback_ids_.fill(-1);
  byte_symbol_.fill(-1);
  if (auto d = model.find("dropout"); d && d->as_number() != 0.0)
    d->fail("BPE dropout ", d->preview(), " is not supported (inference needs deterministic encoding)");
  fuse_unk_ = model.bool_or("fuse_unk", false);
  byte_fallback_ = model.bool_or("byte_fallback", false);
  ignore_merges_ = model.bool_or("ignore_merges", false);
  if (auto p = model.optional_string("continuing_subword_prefix")) prefix_ = *p;
  if (auto s = model.optional_string("end_of_word_suffix")) suffix_ = *s;

  // ---- vocab: {"token": id, ...}
  const json_value vocab_json = model.at("vocab");
  const simdjson::dom::object vocab_obj = vocab_json.object();
  const std::size_t vocab_size = vocab_obj.size();
  vocab_.reserve(vocab_size);
  arena_.reserve(vocab_size * 8);
  std::int64_t max_id = -1;
  struct entry {
    std::uint32_t offset, length;
    std::uint64_t hash;
    std::int32_t id;
  };
  std::vector<entry> entries;
  entries.reserve(vocab_size);
  for (auto field : vocab_obj) {
    std::int64_t id;
    // Ids index dense tables, so an absurd one is refused rather than allocated for.
    if (field.value.get_int64().get(id) != simdjson::SUCCESS || id < 0 || id >= max_token_id)
      json_value(field.value, model.origin(), vocab_json.child_path(field.key))
          .fail("expected a token id (integer 0..", max_token_id - 1, "), got ",
                json_value(field.value, model.origin()).preview());
    const auto offset = static_cast<std::uint32_t>(arena_.size());
    arena_.append(field.key);
    entries.push_back({offset, static_cast<std::uint32_t>(field.key.size()),
                       hash_bytes(field.key.data(), field.key.size()), static_cast<std::int32_t>(id)});
    max_id = std::max(max_id, id);
  }
  id_tokens_.resize(static_cast<std::size_t>(max_id + 1));
  constexpr std::size_t ahead = 16;  // prefetch distance
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (i + ahead < entries.size()) vocab_.prefetch(entries[i + ahead].hash);
    const entry& en = entries[i];
    vocab_.insert_hashed(arena_, en.offset, en.length, en.hash, en.id, /*overwrite=*/true);
    token_ref& slot = id_tokens_[static_cast<std::size_t>(en.id)];
    if (slot.length != 0 || (slot.offset != 0)) duplicate_ids_ = true;
    slot = {en.offset, en.length};
  }

  if (auto unk = model.optional_string("unk_token")) {
    unk_token_ = *unk;
    // The reference resolves the unk token lazily and fails at encode time when it is missing;
    // failing at load time is clearer.
    if (auto id = token_to_id(unk_token_)) unk_id_ = *id;
    else model.at("unk_token").fail("unk_token \"", unk_token_, "\" is not in model.vocab");
  }
  if (byte_fallback_) {
    for (unsigned b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      if (auto id = token_to_id(name)) fallback_ids_[b] = *id;
    }
  }

  // ---- merges: ["a b", ...] or [["a", "b"], ...]; rank = position in the list
  const json_value merges_json = model.at("merges");
  const simdjson::dom::array merges_arr = merges_json.array();
  merges_.reserve(merges_arr.size());
  // Merges are resolved in batches: parse and hash a batch, prefetch the vocabulary slots of
  // its tokens, look them up, prefetch the merge-table slots, insert. Random memory accesses
  // dominate loading, and this overlaps them.
  struct pending_merge {
    simdjson::dom::element element;
    std::string_view a, b;
    std::uint32_t merged_offset, merged_length;
    std::uint64_t ha, hb, hm;
    std::int32_t ia, ib, im;
  };
  constexpr std::size_t batch_size = 32;
  std::vector<pending_merge> batch;
  batch.reserve(batch_size);
  std::string merged;  // the batch's merged strings, back to back
  std::uint32_t rank = 0;
  const auto process_batch = [&] {
    for (const pending_merge& m : batch) {
      vocab_.prefetch(m.ha);
      vocab_.prefetch(m.hb);
      vocab_.prefetch(m.hm);
    }
    std::uint32_t r = rank - static_cast<std::uint32_t>(batch.size());
    for (pending_merge& m : batch) {
      const auto missing = [&](std::string_view token) {
        json_value(m.element, model.origin(), merges_json.index_path(r))
            .fail("merge ", json_value(m.element, model.origin()).preview(), " uses token \"", token,
                  "\" which is not in model.vocab");
      };
      const std::string_view merged_token(merged.data() + m.merged_offset, m.merged_length);
      const std::int32_t* a_id = vocab_.find_hashed(arena_, m.a, m.ha);
      const std::int32_t* b_id = vocab_.find_hashed(arena_, m.b, m.hb);
      const std::int32_t* new_id = vocab_.find_hashed(arena_, merged_token, m.hm);
      if (!a_id) missing(m.a);
      if (!b_id) missing(m.b);
      if (!new_id) missing(merged_token);
      m.ia = *a_id;
      m.ib = *b_id;
      m.im = *new_id;
      merges_.prefetch(m.ia, m.ib);
      ++r;
    }
    r = rank - static_cast<std::uint32_t>(batch.size());
    for (const pending_merge& m : batch) merges_.insert(m.ia, m.ib, {r++, m.im});
    batch.clear();
    merged.clear();
  };
  for (simdjson::dom::element e : merges_arr) {
    std::string_view a, b;
    bool ok = false;
    if (e.is_string()) {
      const std::string_view line = element_string(e, ok);
      const std::size_t space = line.find(' ');
      if (space == std::string_view::npos || line.find(' ', space + 1) != std::string_view::npos)
        json_value(e, model.origin(), merges_json.index_path(rank))
            .fail("expected a merge \"left right\" (two tokens separated by one space), got ",
                  json_value(e, model.origin()).preview());
      a = line.substr(0, space);
      b = line.substr(space + 1);
    } else {
      simdjson::dom::array pair;
      if (e.get_array().get(pair) == simdjson::SUCCESS && pair.size() == 2) {
        bool ok_a = false, ok_b = false;
        a = element_string(pair.at(0).value_unsafe(), ok_a);
        b = element_string(pair.at(1).value_unsafe(), ok_b);
        ok = ok_a && ok_b;
      }
      if (!ok)
        json_value(e, model.origin(), merges_json.index_path(rank))
            .fail("expected a merge [\"left\", \"right\"] or \"left right\", got ",
                  json_value(e, model.origin()).preview());
    }
    // The merged token is a + b without b's continuing-subword prefix (the reference drops
    // prefix-length bytes of b unconditionally).
    std::string_view b_rest = b;
    b_rest.remove_prefix(std::min(prefix_.size(), b_rest.size()));
    const auto merged_offset = static_cast<std::uint32_t>(merged.size());
    merged.append(a);
    merged.append(b_rest);
    const auto merged_length = static_cast<std::uint32_t>(merged.size() - merged_offset);
    batch.push_back({e, a, b, merged_offset, merged_length, hash_bytes(a.data(), a.size()),
                     hash_bytes(b.data(), b.size()), hash_bytes(merged.data() + merged_offset, merged_length), 0, 0, 0});
    ++rank;
    if (batch.size() == batch_size) process_batch();
  }
  if (!batch.empty()) process_batch();
}

std::optional<std::int32_t> bpe_model::token_to_id(std::string_view token) const {
  if (const std::int32_t* id = vocab_.find(arena_, token)) return *id;
  return std::nullopt;
}

std::string_view bpe_model::id_to_token(std::int32_t id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= id_tokens_.size()) return {};
  const token_ref r = id_tokens_[static_cast<std::size_t>(id)];
  return std::string_view(arena_).substr(r.offset, r.length);
}

bool bpe_model::enable_raw_bytes() {
  if (!prefix_.empty() || !suffix_.empty()) return false;
  const byte_level_tables& t = byte_level();
  std::array<std::int32_t, 256> byte_ids{};
  for (unsigned b = 0; b < 256; ++b) {
    const std::int32_t* id = vocab_.find(arena_, std::string_view(t.utf8[b], t.length[b]));
    if (!id) return false;  // a byte with no token: leave it to the general path (unk / fallback)
    byte_ids[b] = *id;
  }
  byte_symbol_ = byte_ids;
  raw_bytes_ = true;
  if (!ignore_merges_) return true;  // whole-word lookups are the only use of the raw vocabulary
  // Re-key every token made only of byte-level characters by the bytes they stand for: convert
  // and hash them all first, then insert with prefetching (random inserts dominate otherwise).
  struct entry {
    std::uint32_t offset, length;
    std::uint64_t hash;
    std::int32_t id;
  };
  std::vector<entry> entries;
  entries.reserve(vocab_.size());
  raw_arena_.reserve(arena_.size());
  for (std::size_t id = 0; id < id_tokens_.size(); ++id) {
    const token_ref r = id_tokens_[id];
    if (r.length == 0) continue;
    const std::string_view tok = std::string_view(arena_).substr(r.offset, r.length);
    const auto offset = static_cast<std::uint32_t>(raw_arena_.size());
    bool ok = true;
    std::size_t i = 0;
    while (i < tok.size()) {
      const auto b = static_cast<unsigned char>(tok[i]);
      char32_t c;
      if (b < 0x80) c = b, ++i;
      else c = next_code_point(tok, i);
      if (c >= 0x144 || t.byte_of[c] < 0) { ok = false; break; }
      raw_arena_.push_back(static_cast<char>(t.byte_of[c]));
    }
    // Only the id the string vocabulary gives this string counts (duplicate ids are possible).
    if (!ok || (duplicate_ids_ && *vocab_.find(arena_, tok) != static_cast<std::int32_t>(id))) {
      raw_arena_.resize(offset);
      continue;
    }
    const auto length = static_cast<std::uint32_t>(raw_arena_.size() - offset);
    entries.push_back({offset, length, hash_bytes(raw_arena_.data() + offset, length), static_cast<std::int32_t>(id)});
  }
  raw_vocab_.reserve(entries.size());
  constexpr std::size_t ahead = 16;
  for (std::size_t k = 0; k < entries.size(); ++k) {
    if (k + ahead < entries.size()) raw_vocab_.prefetch(entries[k + ahead].hash);
    raw_vocab_.insert_hashed(raw_arena_, entries[k].offset, entries[k].length, entries[k].hash, entries[k].id);
  }
  return true;
}

void bpe_model::initial_symbols(std::string_view word, std::vector<std::int32_t>& symbols) const {
  symbols.clear();
  if (raw_bytes_) {
    for (char ch : word) symbols.push_back(byte_symbol_[static_cast<unsigned char>(ch)]);
    return;
  }
  // One symbol per character, as the reference's merge_word: the character (with the
  // continuing-subword prefix / end-of-word suffix where they apply) if it is a token, else its
  // <0xXX> byte tokens (byte_fallback), else the unknown token (fused with a preceding one when
  // fuse_unk).
  std::int32_t pending_unk = -1;  // an unknown token not yet added (fuse_unk may extend it)
  std::string key;
  std::size_t i = 0;
  while (i < word.size()) {
    const std::size_t start = i;
    i += utf8_length(static_cast<unsigned char>(word[i]));
    std::string_view ch = word.substr(start, i - start);
    const std::int32_t* id;
    if ((prefix_.empty() || start == 0) && (suffix_.empty() || i < word.size())) {
      id = vocab_.find(arena_, ch);
    } else {
      key.clear();
      if (start != 0) key += prefix_;
      key.append(ch);
      if (i >= word.size()) key += suffix_;
      ch = key;
      id = vocab_.find(arena_, ch);
    }
    if (id) {
      if (pending_unk >= 0) {
        symbols.push_back(pending_unk);
        pending_unk = -1;
      }
      symbols.push_back(*id);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (char b : ch) all = all && fallback_ids_[static_cast<unsigned char>(b)] >= 0;
      if (all) {
        for (char b : ch) symbols.push_back(fallback_ids_[static_cast<unsigned char>(b)]);
        continue;
      }
    }
    if (unk_id_) {
      if (pending_unk >= 0 && !fuse_unk_) symbols.push_back(pending_unk);
      pending_unk = *unk_id_;
    }
  }
  if (pending_unk >= 0) symbols.push_back(pending_unk);
}

void bpe_model::merge_symbols(std::vector<std::int32_t>& symbols, bool force_heap) const {
  if (symbols.size() < 2) return;
  if (symbols.size() <= scan_limit && !force_heap) merge_by_scan(symbols);
  else merge_by_heap(symbols);
}

// Repeatedly merges the adjacent pair with the lowest rank (the leftmost among equals): exactly
// the order the reference's priority queue produces. Quadratic, but short words are the norm.
void bpe_model::merge_by_scan(std::vector<std::int32_t>& sym) const {
  std::size_t n = sym.size();
  std::uint32_t rank[scan_limit];
  std::int32_t merged[scan_limit];
  const auto look = [&](std::size_t i) {
    if (const pair_table::value* v = merges_.find(sym[i], sym[i + 1])) {
      rank[i] = v->rank;
      merged[i] = v->id;
    } else {
      rank[i] = UINT32_MAX;
    }
  };
  for (std::size_t i = 0; i + 1 < n; ++i) look(i);
  while (n > 1) {
    std::size_t best = 0;
    for (std::size_t i = 1; i + 1 < n; ++i)
      if (rank[i] < rank[best]) best = i;
    if (rank[best] == UINT32_MAX) break;
    sym[best] = merged[best];
    for (std::size_t i = best + 1; i + 1 < n; ++i) {
      sym[i] = sym[i + 1];
      rank[i] = rank[i + 1];
      merged[i] = merged[i + 1];
    }
    --n;
    if (best > 0) look(best - 1);
    if (best + 1 < n) look(best);
    else rank[best] = UINT32_MAX;
  }
  sym.resize(n);
}

// The reference's algorithm for long words: a min-heap of (rank, position) candidates over a
// doubly linked list of symbols; stale candidates are recognised and dropped when popped.
void bpe_model::merge_by_heap(std::vector<std::int32_t>& sym) const {
  struct candidate {
    std::uint32_t rank;
    std::uint32_t pos;
    std::int32_t id;
    bool operator>(const candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  thread_local std::vector<candidate> heap;
  thread_local std::vector<std::int32_t> prev, next;
  const std::size_t n = sym.size();
  heap.clear();
  prev.resize(n);
  next.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    prev[i] = static_cast<std::int32_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<std::int32_t>(i + 1) : -1;
  }
  const auto cmp = [](const candidate& a, const candidate& b) { return a > b; };
  const auto push = [&](std::size_t pos) {
    const std::int32_t nx = next[pos];
    if (nx < 0) return;
    if (const pair_table::value* v = merges_.find(sym[pos], sym[static_cast<std::size_t>(nx)])) {
      heap.push_back({v->rank, static_cast<std::uint32_t>(pos), v->id});
      std::push_heap(heap.begin(), heap.end(), cmp);
    }
  };
  for (std::size_t i = 0; i + 1 < n; ++i)
    if (const pair_table::value* v = merges_.find(sym[i], sym[i + 1]))
      heap.push_back({v->rank, static_cast<std::uint32_t>(i), v->id});
  std::make_heap(heap.begin(), heap.end(), cmp);
  constexpr std::int32_t removed = -2;
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), cmp);
    const candidate top = heap.back();
    heap.pop_back();
    const std::size_t pos = top.pos;
    if (sym[pos] == removed) continue;
    const std::int32_t nx = next[pos];
    if (nx < 0) continue;
    const pair_table::value* v = merges_.find(sym[pos], sym[static_cast<std::size_t>(nx)]);
    if (!v || v->id != top.id) continue;  // stale: the pair at pos has changed since
    sym[pos] = top.id;
    const std::int32_t after = next[static_cast<std::size_t>(nx)];
    sym[static_cast<std::size_t>(nx)] = removed;
    next[pos] = after;
    if (after >= 0) prev[static_cast<std::size_t>(after)] = static_cast<std::int32_t>(pos);
    if (prev[pos] >= 0) push(static_cast<std::size_t>(prev[pos]));
    push(pos);
  }
  std::size_t out = 0;
  for (std::size_t i = 0; i < n; ++i)
    if (sym[i] != removed) sym[out++] = sym[i];
  sym.resize(out);
}

void bpe_model::tokenize_uncached(std::string_view word, bool force_heap, std::vector<std::int32_t>& out) const {
  std::vector<std::int32_t> symbols;
  initial_symbols(word, symbols);
  merge_symbols(symbols, force_heap);
  out.insert(out.end(), symbols.begin(), symbols.end());
}

bool bpe_model::enable_marker_splitting() {
  const std::string marker = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK
  if (ignore_merges_ || !prefix_.empty() || !suffix_.empty() || raw_bytes_ || !token_to_id(marker)) return false;
  for (const token_ref& r : id_tokens_) {
    const std::string_view tok = std::string_view(arena_).substr(r.offset, r.length);
    for (std::size_t pos = tok.find(marker, 1); pos != std::string_view::npos; pos = tok.find(marker, pos + 1))
      if (pos < marker.size() || tok.substr(pos - marker.size(), marker.size()) != marker)
        return false;  // "x\u2581" inside a token
  }
  split_marker_ = marker;
  return true;
}

void bpe_model::tokenize(std::string_view word, std::vector<std::int32_t>& out) const {
  if (word.empty()) return;
  if (split_marker_.empty()) {
    tokenize_piece(word, out);
    return;
  }
  const std::string_view m = split_marker_;
  std::size_t start = 0;
  for (std::size_t pos = word.find(m, 1); pos != std::string_view::npos; pos = word.find(m, pos + 1)) {
    if (pos >= m.size() && word.substr(pos - m.size(), m.size()) == m) continue;  // inside a run of markers
    tokenize_piece(word.substr(start, pos - start), out);
    start = pos;
  }
  tokenize_piece(word.substr(start), out);
}

void bpe_model::tokenize_piece(std::string_view word, std::vector<std::int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    // A word that is a token as a whole is that token, whatever the merges would make of it.
    const std::int32_t* id = raw_bytes_ ? raw_vocab_.find(raw_arena_, word) : vocab_.find(arena_, word);
    if (id) {
      out.push_back(*id);
      return;
    }
  }
  if (raw_bytes_ && word.size() == 1) {
    out.push_back(byte_symbol_[static_cast<unsigned char>(word[0])]);
    return;
  }
  const bool cacheable = word.size() < word_cache::max_word;
  std::uint64_t h = 0;
  word_cache* cache = nullptr;
  if (cacheable) {
    cache = &cache_for(cache_owner_);
    h = hash_bytes(word.data(), word.size()) | 1u;
    std::size_t count = 0;
    if (const std::int32_t* ids = cache->find(word, h, count)) {
      out.insert(out.end(), ids, ids + count);
      return;
    }
  }
  thread_local std::vector<std::int32_t> symbols;
  initial_symbols(word, symbols);
  merge_symbols(symbols);
  out.insert(out.end(), symbols.begin(), symbols.end());
  if (cache) cache->insert(word, h, symbols.data(), symbols.size());
}

}  // namespace mii::detail::tok

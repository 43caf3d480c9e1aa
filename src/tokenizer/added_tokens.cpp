#include "tokenizer/added_tokens.hpp"

#include <algorithm>
#include <map>

#include "tokenizer/unicode.hpp"

namespace mii::detail::tok {

void added_token_matcher::build(const std::vector<std::string>& patterns, const std::vector<std::uint32_t>& token_index) {
  // Build a map-based trie first, then flatten it breadth-first so children are contiguous.
  struct build_node {
    std::int32_t token = -1;
    std::map<unsigned char, std::size_t> kids;
  };
  std::vector<build_node> tmp(1);
  for (std::size_t i = 0; i < patterns.size(); ++i) {
    const std::string& p = patterns[i];
    if (p.empty()) continue;
    std::size_t at = 0;
    for (char ch : p) {
      const auto b = static_cast<unsigned char>(ch);
      auto it = tmp[at].kids.find(b);
      if (it == tmp[at].kids.end()) {
        tmp.push_back({});
        it = tmp[at].kids.emplace(b, tmp.size() - 1).first;
      }
      at = it->second;
    }
    // The same content twice: the later token wins, as the reference's map of contents does.
    tmp[at].token = static_cast<std::int32_t>(token_index[i]);
    first_byte_[static_cast<unsigned char>(p[0])] = true;
  }
  nodes_.assign(1, node{});
  nodes_[0].token = tmp[0].token;
  std::vector<std::size_t> order{0};  // tmp index of nodes_[k]
  for (std::size_t k = 0; k < order.size(); ++k) {
    const build_node& bn = tmp[order[k]];
    nodes_[k].first_child = static_cast<std::uint32_t>(nodes_.size());
    nodes_[k].child_count = static_cast<std::uint16_t>(bn.kids.size());
    for (const auto& [b, child] : bn.kids) {
      node n;
      n.byte = b;
      n.token = tmp[child].token;
      nodes_.push_back(n);
      order.push_back(child);
    }
  }
}

namespace {

// The character before byte offset `end` (well-formed UTF-8).
char32_t char_before(std::string_view s, std::size_t end) {
  std::size_t start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  return next_code_point(s, start);
}

}  // namespace

void added_token_matcher::split(std::string_view text, const std::vector<added_token>& tokens,
                                std::vector<text_split>& out) const {
  out.clear();
  const auto n = static_cast<std::uint32_t>(text.size());
  if (n == 0) {
    out.push_back({0, 0, -1});
    return;
  }
  std::uint32_t start_offset = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    if (!first_byte_[static_cast<unsigned char>(text[i])]) {
      ++i;
      continue;
    }
    // Longest token starting at i.
    std::int32_t found = -1;
    std::size_t found_end = 0;
    std::uint32_t at = 0;
    for (std::size_t j = i; j < text.size(); ++j) {
      const node& cur = nodes_[at];
      const auto b = static_cast<unsigned char>(text[j]);
      std::uint32_t next = 0;
      for (std::uint32_t k = cur.first_child; k < cur.first_child + cur.child_count; ++k)
        if (nodes_[k].byte == b) { next = k; break; }
      if (!next) break;
      at = next;
      if (nodes_[at].token >= 0) {
        found = nodes_[at].token;
        found_end = j + 1;
      }
    }
    if (found < 0) {
      ++i;
      continue;
    }
    const added_token& tok = tokens[static_cast<std::size_t>(found)];
    auto start = static_cast<std::uint32_t>(i);
    auto stop = static_cast<std::uint32_t>(found_end);
    i = found_end;  // the search resumes after this match even when the match is discarded
    if (tok.single_word) {
      // Discarded unless it stands alone: no \w character right before or right after it.
      const bool word_before = start > 0 && (classify(char_before(text, start)) & cls_word);
      std::size_t k = stop;
      const bool word_after = stop < n && (classify(next_code_point(text, k)) & cls_word);
      if (word_before || word_after) continue;
    }
    if (tok.lstrip) {
      std::uint32_t s = start;
      while (s > 0) {
        std::size_t cs = s - 1;
        while (cs > 0 && (static_cast<unsigned char>(text[cs]) & 0xC0) == 0x80) --cs;
        std::size_t k = cs;
        if (!(classify(next_code_point(text, k)) & cls_space)) break;
        s = static_cast<std::uint32_t>(cs);
      }
      start = std::max(s, start_offset);  // spaces an earlier match took stay with it
    }
    if (tok.rstrip) {
      std::size_t k = stop;
      while (k < n) {
        std::size_t next = k;
        if (!(classify(next_code_point(text, next)) & cls_space)) break;
        k = next;
      }
      stop = static_cast<std::uint32_t>(k);
    }
    if (start_offset < start) out.push_back({start_offset, start, -1});
    out.push_back({start, stop, tok.id});
    start_offset = stop;
  }
  if (start_offset != n) out.push_back({start_offset, n, -1});
}

}  // namespace mii::detail::tok

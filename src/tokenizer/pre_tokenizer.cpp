#include "tokenizer/pre_tokenizer.hpp"

#include <algorithm>

#include "tokenizer/normalizer.hpp"
#include "tokenizer/unicode.hpp"

namespace mii::detail::tok {

// ---- byte-level tables --------------------------------------------------------------------

static byte_level_tables build_byte_level_tables() {
  byte_level_tables t{};
  for (auto& b : t.byte_of) b = -1;
  unsigned next_extra = 0;
  for (unsigned b = 0; b < 256; ++b) {
    // Printable Latin-1 bytes stand for themselves; the others get code points from U+0100 up.
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    const char32_t c = printable ? b : 0x100 + next_extra++;
    std::string s;
    append_utf8(s, c);
    for (std::size_t i = 0; i < s.size(); ++i) t.utf8[b][i] = s[i];
    t.length[b] = static_cast<std::uint8_t>(s.size());
    t.byte_of[c] = static_cast<std::int16_t>(b);
  }
  return t;
}

const byte_level_tables& byte_level() {
  static const byte_level_tables tables = build_byte_level_tables();
  return tables;
}

void append_byte_level_chars(std::string& out, std::string_view bytes) {
  const byte_level_tables& t = byte_level();
  for (char ch : bytes) {
    const auto b = static_cast<unsigned char>(ch);
    out.append(t.utf8[b], t.length[b]);
  }
}

namespace {

enum class split_behavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

struct segment {
  std::uint32_t begin, end;
  bool is_match;
};

// Turns the matches inside a piece of length n into the alternating list of (range, is_match)
// that the reference builds, then applies `behavior` and appends the kept, non-empty pieces.
void emit_split(pre_tokenize_state& st, const piece& p, const std::vector<match_span>& matches, bool invert,
                split_behavior behavior) {
  thread_local std::vector<segment> segs;
  thread_local std::vector<segment> kept;
  segs.clear();
  const std::uint32_t n = p.end - p.begin;
  std::uint32_t prev = 0;
  for (const match_span& m : matches) {
    if (prev != m.begin) segs.push_back({prev, m.begin, invert});
    segs.push_back({m.begin, m.end, !invert});
    prev = m.end;
  }
  if (prev != n) segs.push_back({prev, n, invert});

  kept.clear();
  bool previous_match = false;
  switch (behavior) {
    case split_behavior::isolated:
      kept = segs;
      break;
    case split_behavior::removed:
      for (const segment& s : segs)
        if (!s.is_match) kept.push_back(s);
      break;
    case split_behavior::contiguous:
      for (const segment& s : segs) {
        if (s.is_match == previous_match && !kept.empty()) kept.back().end = s.end;
        else kept.push_back(s);
        previous_match = s.is_match;
      }
      break;
    case split_behavior::merged_with_previous:
      for (const segment& s : segs) {
        if (s.is_match && !previous_match && !kept.empty()) kept.back().end = s.end;
        else kept.push_back(s);
        previous_match = s.is_match;
      }
      break;
    case split_behavior::merged_with_next:
      for (std::size_t i = segs.size(); i-- > 0;) {
        const segment& s = segs[i];
        if (s.is_match && !previous_match && !kept.empty()) kept.back().begin = s.begin;
        else kept.push_back(s);
        previous_match = s.is_match;
      }
      std::reverse(kept.begin(), kept.end());
      break;
  }
  for (const segment& s : kept)
    if (s.end > s.begin) st.next.push_back({p.begin + s.begin, p.begin + s.end, p.at_origin && s.begin == 0});
}

// Matches of a per-character predicate: each matching character is one match.
template <class Pred>
void find_chars(std::string_view text, Pred pred, std::vector<match_span>& out) {
  out.clear();
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t at = i;
    const char32_t c = next_code_point(text, i);
    if (pred(c)) out.push_back({static_cast<std::uint32_t>(at), static_cast<std::uint32_t>(i)});
  }
}

// Starts a step: the step reads st.pieces and writes st.next; finish() swaps them.
void finish(pre_tokenize_state& st) {
  st.pieces.swap(st.next);
  st.next.clear();
}

// Appends `text` (which may alias the buffer) to the buffer and returns it as a piece.
piece append_piece(pre_tokenize_state& st, std::string_view prefix, const piece& source, bool at_origin) {
  const auto begin = static_cast<std::uint32_t>(st.buffer.size());
  const std::size_t src_begin = source.begin, src_len = source.end - source.begin;
  st.buffer.append(prefix);
  st.buffer.append(st.buffer, src_begin, src_len);  // safe when appending from itself
  return piece{begin, static_cast<std::uint32_t>(st.buffer.size()), at_origin};
}

class split_pre_tokenizer final : public pre_tokenizer {
 public:
  split_pre_tokenizer(std::unique_ptr<text_matcher> m, split_behavior b, bool invert)
      : matcher_(std::move(m)), behavior_(b), invert_(invert) {}
  void apply(pre_tokenize_state& st) const override {
    for (const piece& p : st.pieces) {
      matcher_->find_all(st.text(p), st.matches);
      emit_split(st, p, st.matches, invert_, behavior_);
    }
    finish(st);
  }

 private:
  std::unique_ptr<text_matcher> matcher_;
  split_behavior behavior_;
  bool invert_;
};

class byte_level_pre_tokenizer final : public pre_tokenizer {
 public:
  byte_level_pre_tokenizer(bool add_prefix_space, bool use_regex) : add_prefix_space_(add_prefix_space) {
    if (use_regex) {
      std::string error;
      matcher_ = make_regex_matcher(gpt2_pattern, true, error);
    }
  }
  void apply(pre_tokenize_state& st) const override {
    if (add_prefix_space_) {
      for (piece& p : st.pieces)
        if (st.buffer[p.begin] != ' ') p = append_piece(st, " ", p, p.at_origin);
    }
    if (matcher_) {
      for (const piece& p : st.pieces) {
        matcher_->find_all(st.text(p), st.matches);
        emit_split(st, p, st.matches, false, split_behavior::isolated);
      }
      finish(st);
    }
    if (!skip_mapping_) {
      for (piece& p : st.pieces) {
        const auto begin = static_cast<std::uint32_t>(st.buffer.size());
        const std::string raw(st.text(p));
        append_byte_level_chars(st.buffer, raw);
        p = piece{begin, static_cast<std::uint32_t>(st.buffer.size()), p.at_origin};
      }
    }
  }
  bool is_byte_level() const override { return true; }
  void set_skip_byte_mapping(bool skip) override { skip_mapping_ = skip; }

 private:
  bool add_prefix_space_;
  std::unique_ptr<text_matcher> matcher_;
  bool skip_mapping_ = false;
};

enum class prepend_scheme { always, first, never };

class metaspace_pre_tokenizer final : public pre_tokenizer {
 public:
  metaspace_pre_tokenizer(char32_t replacement, prepend_scheme scheme, bool split)
      : scheme_(scheme), split_(split), replacement_cp_(replacement) {
    append_utf8(replacement_, replacement);
  }
  void apply(pre_tokenize_state& st) const override {
    for (piece& p : st.pieces) {
      // Replace every ' ' with the replacement, then maybe prepend one.
      const std::string original(st.text(p));
      const auto begin = static_cast<std::uint32_t>(st.buffer.size());
      const bool starts_with_replacement = original.starts_with(' ') || original.starts_with(replacement_);
      const bool prepend = !starts_with_replacement &&
                           (scheme_ == prepend_scheme::always || (scheme_ == prepend_scheme::first && p.at_origin));
      if (prepend) st.buffer.append(replacement_);
      for (char ch : original) {
        if (ch == ' ') st.buffer.append(replacement_);
        else st.buffer.push_back(ch);
      }
      p = piece{begin, static_cast<std::uint32_t>(st.buffer.size()), p.at_origin};
    }
    if (split_) {
      for (const piece& p : st.pieces) {
        find_chars(st.text(p), [&](char32_t c) { return c == replacement_cp_; }, st.matches);
        emit_split(st, p, st.matches, false, split_behavior::merged_with_next);
      }
      finish(st);
    }
  }

 private:
  prepend_scheme scheme_;
  bool split_;
  char32_t replacement_cp_;
  std::string replacement_;
};

class digits_pre_tokenizer final : public pre_tokenizer {
 public:
  explicit digits_pre_tokenizer(bool individual) : individual_(individual) {}
  void apply(pre_tokenize_state& st) const override {
    for (const piece& p : st.pieces) {
      find_chars(st.text(p), [](char32_t c) { return (classify(c) & cls_number) != 0; }, st.matches);
      emit_split(st, p, st.matches, false, individual_ ? split_behavior::isolated : split_behavior::contiguous);
    }
    finish(st);
  }

 private:
  bool individual_;
};

class whitespace_split_pre_tokenizer final : public pre_tokenizer {
 public:
  void apply(pre_tokenize_state& st) const override {
    for (const piece& p : st.pieces) {
      find_chars(st.text(p), [](char32_t c) { return (classify(c) & cls_space) != 0; }, st.matches);
      emit_split(st, p, st.matches, false, split_behavior::removed);
    }
    finish(st);
  }
};

class sequence_pre_tokenizer final : public pre_tokenizer {
 public:
  explicit sequence_pre_tokenizer(std::vector<std::unique_ptr<pre_tokenizer>> steps) : steps_(std::move(steps)) {}
  void apply(pre_tokenize_state& st) const override {
    for (const auto& s : steps_) s->apply(st);
  }
  pre_tokenizer* last() const { return steps_.empty() ? nullptr : steps_.back().get(); }

 private:
  std::vector<std::unique_ptr<pre_tokenizer>> steps_;
};

split_behavior parse_behavior(const json_value& v) {
  const std::string_view b = v.as_string();
  if (b == "Removed") return split_behavior::removed;
  if (b == "Isolated") return split_behavior::isolated;
  if (b == "MergedWithPrevious") return split_behavior::merged_with_previous;
  if (b == "MergedWithNext") return split_behavior::merged_with_next;
  if (b == "Contiguous") return split_behavior::contiguous;
  v.fail("unknown split behavior \"", b, "\" (expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous)");
}

char32_t single_char(const json_value& v) {
  const std::string_view s = v.as_string();
  if (s.empty() || find_invalid_utf8(s) != std::string_view::npos) v.fail("expected one character, got ", v.preview());
  std::size_t i = 0;
  const char32_t c = next_code_point(s, i);
  if (i != s.size()) v.fail("expected one character, got ", v.preview());
  return c;
}

}  // namespace

pre_tokenizer* last_step(pre_tokenizer* p) {
  while (auto* seq = dynamic_cast<sequence_pre_tokenizer*>(p)) p = seq->last();
  return p;
}

std::unique_ptr<pre_tokenizer> make_pre_tokenizer(const json_value& spec) {
  const json_value type_field = spec.at("type");
  const std::string_view type = type_field.as_string();
  if (type == "Sequence") {
    std::vector<std::unique_ptr<pre_tokenizer>> steps;
    spec.at("pretokenizers").for_each_element([&](const json_value& e) { steps.push_back(make_pre_tokenizer(e)); });
    return std::make_unique<sequence_pre_tokenizer>(std::move(steps));
  }
  if (type == "Split")
    return std::make_unique<split_pre_tokenizer>(make_pattern_matcher(spec.at("pattern")),
                                                 parse_behavior(spec.at("behavior")), spec.at("invert").as_bool());
  if (type == "ByteLevel")
    return std::make_unique<byte_level_pre_tokenizer>(spec.bool_or("add_prefix_space", true),
                                                      spec.bool_or("use_regex", true));
  if (type == "Metaspace") {
    prepend_scheme scheme = prepend_scheme::always;
    if (auto s = spec.find("prepend_scheme")) {
      const std::string_view v = s->as_string();
      if (v == "always") scheme = prepend_scheme::always;
      else if (v == "first") scheme = prepend_scheme::first;
      else if (v == "never") scheme = prepend_scheme::never;
      else s->fail("unknown prepend_scheme \"", v, "\" (expected always, first or never)");
    }
    if (auto a = spec.find("add_prefix_space"); a && !a->as_bool()) {
      if (spec.find("prepend_scheme") && scheme != prepend_scheme::never)
        a->fail("add_prefix_space false does not match prepend_scheme");
      scheme = prepend_scheme::never;
    }
    return std::make_unique<metaspace_pre_tokenizer>(single_char(spec.at("replacement")), scheme,
                                                     spec.bool_or("split", true));
  }
  if (type == "Digits") return std::make_unique<digits_pre_tokenizer>(spec.bool_or("individual_digits", false));
  if (type == "WhitespaceSplit") return std::make_unique<whitespace_split_pre_tokenizer>();
  type_field.fail("unsupported pre-tokenizer type \"", type,
                  "\" (supported: Sequence, Split, ByteLevel, Metaspace, Digits, WhitespaceSplit)");
}

}  // namespace mii::detail::tok

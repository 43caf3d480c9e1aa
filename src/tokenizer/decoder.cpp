#include "tokenizer/decoder.hpp"

#include "tokenizer/normalizer.hpp"
#include "tokenizer/pre_tokenizer.hpp"
#include "tokenizer/text_matcher.hpp"
#include "tokenizer/unicode.hpp"

namespace mii::detail::tok {

// ---- description ----------------------------------------------------------------------------

namespace {

char32_t one_char(const json_value& v) {
  const std::string_view s = v.as_string();
  std::size_t i = 0;
  if (s.empty() || find_invalid_utf8(s) != std::string_view::npos || (next_code_point(s, i), i != s.size()))
    v.fail("expected one character, got ", v.preview());
  i = 0;
  return next_code_point(s, i);
}

std::size_t count_field(const json_value& spec, std::string_view key) {
  const json_value v = spec.at(key);
  const std::int64_t n = v.as_int();
  if (n < 0) v.fail("expected a count >= 0, got ", v.preview());
  return static_cast<std::size_t>(n);
}

}  // namespace

decoder_chain::decoder_chain(const json_value& spec) { add(spec); }

void decoder_chain::add(const json_value& spec) {
  const json_value type_field = spec.at("type");
  const std::string_view type = type_field.as_string();
  decoder_step step{};
  if (type == "Sequence") {
    spec.at("decoders").for_each_element([&](const json_value& d) { add(d); });
    return;
  }
  if (type == "ByteLevel") {
    step.type = decoder_step::kind::byte_level;
  } else if (type == "Metaspace") {
    step.type = decoder_step::kind::metaspace;
    step.ch = one_char(spec.at("replacement"));
    std::string_view scheme = "always";
    if (auto s = spec.find("prepend_scheme")) scheme = s->as_string();
    if (auto a = spec.find("add_prefix_space"); a && !a->as_bool()) scheme = "never";
    if (scheme != "always" && scheme != "first" && scheme != "never")
      spec.at("prepend_scheme").fail("unknown prepend_scheme \"", scheme, "\" (expected always, first or never)");
    step.strip_first = scheme != "never";
  } else if (type == "ByteFallback") {
    step.type = decoder_step::kind::byte_fallback;
  } else if (type == "Fuse") {
    step.type = decoder_step::kind::fuse;
  } else if (type == "Strip") {
    step.type = decoder_step::kind::strip;
    step.ch = one_char(spec.at("content"));
    step.start = count_field(spec, "start");
    step.stop = count_field(spec, "stop");
  } else if (type == "Replace") {
    step.type = decoder_step::kind::replace;
    step.matcher = make_pattern_matcher(spec.at("pattern"));
    step.content = std::string(spec.string_at("content"));
  } else if (type == "BPEDecoder") {
    step.type = decoder_step::kind::bpe_suffix;
    step.content = std::string(spec.optional_string("suffix").value_or("</w>"));
  } else {
    type_field.fail("unsupported decoder type \"", type,
                    "\" (supported: Sequence, ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace, BPEDecoder)");
  }
  steps_.push_back(std::move(step));
}

// ---- stages ---------------------------------------------------------------------------------

struct decode_run::stage {
  stage* next = nullptr;  // nullptr: append to *out
  std::string* out = nullptr;
  virtual ~stage() = default;
  // A piece of the current token; token_end closes it.
  virtual void feed(std::string_view piece, bool token_end) = 0;
  virtual void finish() { emit_finish(); }
  virtual std::unique_ptr<stage> clone() const = 0;

  void emit(std::string_view piece, bool token_end) {
    if (next) next->feed(piece, token_end);
    else out->append(piece);
  }
  void emit_finish() {
    if (next) next->finish();
  }
};

namespace {

using stage = decode_run::stage;

template <class Derived>
struct cloneable : stage {
  std::unique_ptr<stage> clone() const override { return std::make_unique<Derived>(static_cast<const Derived&>(*this)); }
};

// Stages that need a token whole collect its pieces here first.
struct whole_token {
  std::string buffer;
  bool collect(std::string_view piece, bool token_end) {
    buffer.append(piece);
    return token_end;
  }
};

// ByteLevel: characters back to bytes (a token with any other character keeps its own UTF-8),
// then bytes to text as Rust's from_utf8_lossy does -- over the whole output, which is one token.
struct byte_level_stage final : cloneable<byte_level_stage> {
  whole_token token;
  std::string pending;  // bytes not yet turned into text (an incomplete character at the end)
  std::string text;
  void feed(std::string_view piece, bool token_end) override {
    if (!token.collect(piece, token_end)) return;
    const byte_level_tables& t = byte_level();
    const std::string& tok = token.buffer;
    const std::size_t mark = pending.size();
    bool all_mapped = true;
    std::size_t i = 0;
    while (i < tok.size()) {
      const char32_t c = next_code_point(tok, i);
      if (c >= 0x144 || t.byte_of[c] < 0) { all_mapped = false; break; }
      pending.push_back(static_cast<char>(t.byte_of[c]));
    }
    if (!all_mapped) {
      pending.resize(mark);
      pending.append(tok);
    }
    token.buffer.clear();
    text.clear();
    const std::size_t used = append_utf8_lossy(text, pending, /*final_chunk=*/false);
    pending.erase(0, used);
    if (!text.empty()) emit(text, false);
  }
  void finish() override {
    text.clear();
    append_utf8_lossy(text, pending, true);
    pending.clear();
    emit(text, true);
    emit_finish();
  }
};

// Metaspace: the replacement character becomes a space, except in the first token, where it is
// dropped (unless prepend_scheme is never).
struct metaspace_stage final : cloneable<metaspace_stage> {
  char32_t replacement = 0;
  bool strip_first = false;
  bool first_token = true;
  std::string text;
  void feed(std::string_view piece, bool token_end) override {
    text.clear();
    std::size_t i = 0;
    while (i < piece.size()) {
      const std::size_t at = i;
      const char32_t c = next_code_point(piece, i);
      if (c == replacement) {
        if (!(first_token && strip_first)) text.push_back(' ');
      } else {
        text.append(piece.substr(at, i - at));
      }
    }
    if (token_end) first_token = false;
    emit(text, token_end);
  }
};

// ByteFallback: runs of <0xXX> tokens become the text of their bytes when those are valid UTF-8,
// else one U+FFFD per byte. A run is emitted only when it ends (a later invalid byte would turn
// the whole run into replacement characters).
struct byte_fallback_stage final : cloneable<byte_fallback_stage> {
  whole_token token;
  std::string run;
  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  // "<0xXX>" -> the byte, as the reference parses it (u8::from_str_radix of the two characters).
  static int byte_of(std::string_view t) {
    if (t.size() != 6 || !t.starts_with("<0x") || t[5] != '>') return -1;
    if (t[3] == '+') return hex(t[4]);
    const int hi = hex(t[3]), lo = hex(t[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
  }
  void flush_run() {
    if (run.empty()) return;
    if (find_invalid_utf8(run) == std::string_view::npos) {
      emit(run, true);
    } else {
      for (std::size_t i = 0; i < run.size(); ++i) emit("\xEF\xBF\xBD", true);
    }
    run.clear();
  }
  void feed(std::string_view piece, bool token_end) override {
    if (!token.collect(piece, token_end)) return;
    const int b = byte_of(token.buffer);
    if (b >= 0) {
      run.push_back(static_cast<char>(b));
    } else {
      flush_run();
      emit(token.buffer, true);
    }
    token.buffer.clear();
  }
  void finish() override {
    flush_run();
    emit_finish();
  }
};

// Fuse: everything becomes one token (which later stages see growing piece by piece).
struct fuse_stage final : cloneable<fuse_stage> {
  void feed(std::string_view piece, bool) override {
    if (!piece.empty()) emit(piece, false);
  }
  void finish() override {
    emit({}, true);
    emit_finish();
  }
};

// Strip: removes up to `start` copies of a character at the start of each token and up to `stop`
// at its end. Trailing copies are held back until something else follows them.
struct strip_stage final : cloneable<strip_stage> {
  char32_t content = 0;
  std::size_t start = 0, stop = 0;
  std::size_t stripped = 0;
  bool leading_done = false;
  std::string held;  // a run of `content` characters at the current end of the token
  std::size_t held_count = 0;
  std::string text;
  void feed(std::string_view piece, bool token_end) override {
    text.clear();
    std::size_t i = 0;
    while (i < piece.size()) {
      const std::size_t at = i;
      const char32_t c = next_code_point(piece, i);
      const std::string_view ch = piece.substr(at, i - at);
      if (!leading_done) {
        if (c == content && stripped < start) {
          ++stripped;
          continue;
        }
        leading_done = true;
      }
      if (c == content && stop > 0) {
        held.append(ch);
        ++held_count;
      } else {
        text.append(held);
        held.clear();
        held_count = 0;
        text.append(ch);
      }
    }
    if (token_end) {
      // Drop up to `stop` of the held characters, keep the rest.
      const std::size_t keep = held_count > stop ? held_count - stop : 0;
      const std::size_t char_len = held_count ? held.size() / held_count : 0;
      text.append(held, 0, keep * char_len);
      held.clear();
      held_count = 0;
      stripped = 0;
      leading_done = false;
    }
    emit(text, token_end);
  }
};

// Replace: literal or regex replacement inside each token.
struct replace_stage final : cloneable<replace_stage> {
  const text_matcher* matcher = nullptr;
  std::string content;
  whole_token token;
  std::vector<match_span> matches;
  std::string text;
  void feed(std::string_view piece, bool token_end) override {
    if (!token.collect(piece, token_end)) return;
    const std::string& t = token.buffer;
    matcher->find_all(t, matches);
    text.clear();
    std::size_t prev = 0;
    for (const match_span& m : matches) {
      text.append(t, prev, m.begin - prev);
      text.append(content);
      prev = m.end;
    }
    text.append(t, prev, std::string::npos);
    token.buffer.clear();
    emit(text, true);
  }
};

// BPEDecoder: the end-of-word suffix becomes a space, except in the last token where it goes.
// The last token is known only at the end, so each token waits for the next one.
struct bpe_suffix_stage final : cloneable<bpe_suffix_stage> {
  std::string suffix;
  whole_token token;
  std::string previous;
  bool has_previous = false;
  std::string replaced(std::string_view t, std::string_view with) const {
    std::string r;
    std::size_t prev = 0, pos;
    while (!suffix.empty() && (pos = t.find(suffix, prev)) != std::string_view::npos) {
      r.append(t.substr(prev, pos - prev));
      r.append(with);
      prev = pos + suffix.size();
    }
    r.append(t.substr(prev));
    return r;
  }
  void feed(std::string_view piece, bool token_end) override {
    if (!token.collect(piece, token_end)) return;
    if (has_previous) emit(replaced(previous, " "), true);
    previous.swap(token.buffer);
    token.buffer.clear();
    has_previous = true;
  }
  void finish() override {
    if (has_previous) emit(replaced(previous, ""), true);
    has_previous = false;
    emit_finish();
  }
};

// No decoder: tokens joined with single spaces.
struct join_stage final : cloneable<join_stage> {
  bool any = false;
  bool in_token = false;
  void feed(std::string_view piece, bool token_end) override {
    if (!in_token) {
      if (any) emit(" ", false);
      any = true;
      in_token = true;
    }
    emit(piece, false);
    if (token_end) in_token = false;
  }
};

}  // namespace

decode_run::decode_run(const decoder_chain& chain) {
  if (chain.join_with_spaces()) stages_.push_back(std::make_unique<join_stage>());
  for (const decoder_step& s : chain.steps()) {
    switch (s.type) {
      case decoder_step::kind::byte_level: stages_.push_back(std::make_unique<byte_level_stage>()); break;
      case decoder_step::kind::metaspace: {
        auto st = std::make_unique<metaspace_stage>();
        st->replacement = s.ch;
        st->strip_first = s.strip_first;
        stages_.push_back(std::move(st));
        break;
      }
      case decoder_step::kind::byte_fallback: stages_.push_back(std::make_unique<byte_fallback_stage>()); break;
      case decoder_step::kind::fuse: stages_.push_back(std::make_unique<fuse_stage>()); break;
      case decoder_step::kind::strip: {
        auto st = std::make_unique<strip_stage>();
        st->content = s.ch;
        st->start = s.start;
        st->stop = s.stop;
        stages_.push_back(std::move(st));
        break;
      }
      case decoder_step::kind::replace: {
        auto st = std::make_unique<replace_stage>();
        st->matcher = s.matcher.get();
        st->content = s.content;
        stages_.push_back(std::move(st));
        break;
      }
      case decoder_step::kind::bpe_suffix: {
        auto st = std::make_unique<bpe_suffix_stage>();
        st->suffix = s.content;
        stages_.push_back(std::move(st));
        break;
      }
    }
  }
  for (std::size_t i = 0; i < stages_.size(); ++i) {
    stages_[i]->next = i + 1 < stages_.size() ? stages_[i + 1].get() : nullptr;
    stages_[i]->out = &out_;
  }
}

decode_run::~decode_run() = default;

decode_run::decode_run(const decode_run& other) : out_(other.out_) {
  for (const auto& s : other.stages_) stages_.push_back(s->clone());
  for (std::size_t i = 0; i < stages_.size(); ++i) {
    stages_[i]->next = i + 1 < stages_.size() ? stages_[i + 1].get() : nullptr;
    stages_[i]->out = &out_;
  }
}

void decode_run::push(std::string_view token) { stages_.front()->feed(token, true); }

void decode_run::finish() { stages_.front()->finish(); }

}  // namespace mii::detail::tok

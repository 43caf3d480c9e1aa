#include "tokenizer/normalizer.hpp"

#include <vector>

#include "tokenizer/text_matcher.hpp"
#include "tokenizer/unicode.hpp"

namespace mii::detail::tok {

namespace {

class sequence_normalizer final : public normalizer {
 public:
  explicit sequence_normalizer(std::vector<std::unique_ptr<normalizer>> steps) : steps_(std::move(steps)) {}
  bool apply(std::string_view in, std::string& out) const override {
    bool changed = false;
    std::string current, next;
    for (const auto& step : steps_) {
      next.clear();
      if (step->apply(changed ? std::string_view(current) : in, next)) {
        current.swap(next);
        changed = true;
      }
    }
    if (changed) out = std::move(current);
    return changed;
  }

 private:
  std::vector<std::unique_ptr<normalizer>> steps_;
};

class prepend_normalizer final : public normalizer {
 public:
  explicit prepend_normalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  bool apply(std::string_view in, std::string& out) const override {
    if (in.empty() || prefix_.empty()) return false;  // the reference prepends only to non-empty text
    out.reserve(prefix_.size() + in.size());
    out.assign(prefix_);
    out.append(in);
    return true;
  }

 private:
  std::string prefix_;
};

class replace_normalizer final : public normalizer {
 public:
  replace_normalizer(std::unique_ptr<text_matcher> matcher, std::string content)
      : matcher_(std::move(matcher)), content_(std::move(content)) {}
  bool apply(std::string_view in, std::string& out) const override {
    thread_local std::vector<match_span> matches;
    matcher_->find_all(in, matches);
    if (matches.empty()) return false;
    out.clear();
    out.reserve(in.size() + matches.size() * content_.size());
    std::size_t prev = 0;
    for (const match_span& m : matches) {
      out.append(in.substr(prev, m.begin - prev));
      out.append(content_);
      prev = m.end;
    }
    out.append(in.substr(prev));
    return true;
  }

 private:
  std::unique_ptr<text_matcher> matcher_;
  std::string content_;
};

class unicode_form_normalizer final : public normalizer {
 public:
  explicit unicode_form_normalizer(normal_form form) : form_(form) {}
  bool apply(std::string_view in, std::string& out) const override { return unicode_normalize(in, form_, out); }

 private:
  normal_form form_;
};

class lowercase_normalizer final : public normalizer {
 public:
  bool apply(std::string_view in, std::string& out) const override {
    std::string lower = unicode_lowercase(in);
    if (lower == in) return false;
    out = std::move(lower);
    return true;
  }
};

// Strips White_Space characters from the left and/or right end.
class strip_normalizer final : public normalizer {
 public:
  strip_normalizer(bool left, bool right) : left_(left), right_(right) {}
  bool apply(std::string_view in, std::string& out) const override {
    std::size_t begin = 0, end = in.size();
    if (left_) {
      while (begin < end) {
        std::size_t i = begin;
        if (!(classify(next_code_point(in, i)) & cls_space)) break;
        begin = i;
      }
    }
    if (right_) {
      while (end > begin) {
        std::size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>(in[start]) & 0xC0) == 0x80) --start;
        std::size_t i = start;
        if (!(classify(next_code_point(in, i)) & cls_space)) break;
        end = start;
      }
    }
    if (begin == 0 && end == in.size()) return false;
    out.assign(in.substr(begin, end - begin));
    return true;
  }

 private:
  bool left_, right_;
};

// Maps every byte to its printable stand-in, as the ByteLevel pre-tokenizer does.
class byte_level_normalizer final : public normalizer {
 public:
  bool apply(std::string_view in, std::string& out) const override;
};

}  // namespace

// Defined in pre_tokenizer.cpp with the byte <-> character tables.
void append_byte_level_chars(std::string& out, std::string_view bytes);

bool byte_level_normalizer::apply(std::string_view in, std::string& out) const {
  if (in.empty()) return false;
  out.clear();
  append_byte_level_chars(out, in);
  return true;
}

std::unique_ptr<text_matcher> make_pattern_matcher(const json_value& pattern) {
  // {"String": "..."} or {"Regex": "..."}
  if (auto s = pattern.find("String")) return make_literal_matcher(s->as_string());
  if (auto r = pattern.find("Regex")) {
    std::string error;
    auto m = make_regex_matcher(r->as_string(), /*allow_builtin=*/true, error);
    if (!m) r->fail("invalid regular expression ", r->preview(), ": ", error);
    return m;
  }
  pattern.fail("expected {\"String\": ...} or {\"Regex\": ...}, got ", pattern.preview());
}

std::unique_ptr<normalizer> make_normalizer(const json_value& spec) {
  const json_value type_field = spec.at("type");
  const std::string_view type = type_field.as_string();
  if (type == "Sequence") {
    std::vector<std::unique_ptr<normalizer>> steps;
    spec.at("normalizers").for_each_element([&](const json_value& e) { steps.push_back(make_normalizer(e)); });
    return std::make_unique<sequence_normalizer>(std::move(steps));
  }
  if (type == "Prepend") return std::make_unique<prepend_normalizer>(std::string(spec.string_at("prepend")));
  if (type == "Replace")
    return std::make_unique<replace_normalizer>(make_pattern_matcher(spec.at("pattern")),
                                                std::string(spec.string_at("content")));
  if (type == "NFC") return std::make_unique<unicode_form_normalizer>(normal_form::nfc);
  if (type == "NFD") return std::make_unique<unicode_form_normalizer>(normal_form::nfd);
  if (type == "NFKC") return std::make_unique<unicode_form_normalizer>(normal_form::nfkc);
  if (type == "NFKD") return std::make_unique<unicode_form_normalizer>(normal_form::nfkd);
  if (type == "Lowercase") return std::make_unique<lowercase_normalizer>();
  if (type == "Strip") return std::make_unique<strip_normalizer>(spec.bool_or("strip_left", true), spec.bool_or("strip_right", true));
  if (type == "ByteLevel") return std::make_unique<byte_level_normalizer>();
  type_field.fail("unsupported normalizer type \"", type,
                  "\" (supported: Sequence, Prepend, Replace, NFC, NFD, NFKC, NFKD, Lowercase, Strip, ByteLevel)");
}

}  // namespace mii::detail::tok

#include "chat/lexer.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cmath>
#include <limits>

#include "chat/py_text.hpp"

namespace mii::detail::jinja {

source_map::source_map(std::string_view normalized_source) : source_(normalized_source) {
  line_starts_.push_back(0);
  for (std::size_t i = 0; i < source_.size(); ++i)
    if (source_[i] == '\n') line_starts_.push_back(static_cast<std::uint32_t>(i + 1));
}

source_position source_map::at(std::uint32_t offset) const {
  offset = std::min<std::uint32_t>(offset, static_cast<std::uint32_t>(source_.size()));
  const auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset) - 1;
  const std::uint32_t start = *it;
  return {static_cast<int>(it - line_starts_.begin()) + 1,
          static_cast<int>(char_count(source_.substr(start, offset - start))) + 1};
}

std::string normalize_template_source(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (std::size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

namespace {

[[noreturn]] void fail_at(std::size_t offset, std::string message) {
  throw syntax_failure{static_cast<std::uint32_t>(offset), std::move(message)};
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

class lexer {
 public:
  explicit lexer(std::string_view src) : s_(src) {}

  std::vector<token> run() {
    std::size_t pos = 0;
    bool line_starting = true;  // did the previous match end a line (jinja2's lstrip rule)
    while (pos < s_.size()) {
      const std::size_t tag = find_tag_start(pos);
      if (tag == std::string_view::npos) {
        emit_text(pos, s_.substr(pos));
        break;
      }
      const char kind = s_[tag + 1];
      std::size_t after = tag + 2;
      char sign = 0;
      if (after < s_.size() && (s_[after] == '-' || s_[after] == '+')) sign = s_[after++];
      std::size_t raw_end = 0;
      const bool raw = kind == '%' && match_raw_begin(after, raw_end);
      std::string_view text = s_.substr(pos, tag - pos);
      text = strip_before_tag(text, sign, kind != '{', line_starting);
      emit_text(pos, text);
      if (kind == '#') {
        pos = skip_comment(tag, after, line_starting);
      } else if (raw) {
        pos = lex_raw(tag, raw_end, line_starting);
      } else {
        pos = lex_tag(tag, after, kind == '{', line_starting);
      }
    }
    tokens_.push_back(token{token_kind::end, static_cast<std::uint32_t>(s_.size()), {}});
    return std::move(tokens_);
  }

 private:
  std::size_t find_tag_start(std::size_t from) const {
    for (std::size_t i = s_.find('{', from); i != std::string_view::npos; i = s_.find('{', i + 1))
      if (i + 1 < s_.size() && (s_[i + 1] == '{' || s_[i + 1] == '%' || s_[i + 1] == '#')) return i;
    return std::string_view::npos;
  }

  // Whitespace as Python's re \s (Unicode); returns the offset after it.
  std::size_t skip_space(std::size_t i) const {
    while (i < s_.size()) {
      std::size_t j = i;
      if (!py_isspace(next_char(s_, j))) break;
      i = j;
    }
    return i;
  }

  static bool all_space(std::string_view t) {
    if (t.empty()) return false;
    for (std::size_t i = 0; i < t.size();)
      if (!py_isspace(next_char(t, i))) return false;
    return true;
  }

  // Whitespace control before a tag: "-" strips all whitespace, and lstrip_blocks strips the
  // spaces between a line's start and a block or comment tag unless "+" says not to.
  static std::string_view strip_before_tag(std::string_view text, char sign, bool lstrip_applies, bool line_starting) {
    if (sign == '-') {
      std::size_t end = text.size();
      while (end > 0) {
        std::size_t start = end - 1;
        while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
        std::size_t i = start;
        if (!py_isspace(next_char(text, i))) break;
        end = start;
      }
      return text.substr(0, end);
    }
    if (sign != '+' && lstrip_applies) {
      const std::size_t nl = text.rfind('\n');
      const std::size_t line_start = nl == std::string_view::npos ? 0 : nl + 1;
      if ((line_start > 0 || line_starting) && all_space(text.substr(line_start))) return text.substr(0, line_start);
    }
    return text;
  }

  void emit_text(std::size_t offset, std::string_view text) {
    if (text.empty()) return;
    tokens_.push_back(token{token_kind::text, static_cast<std::uint32_t>(offset), std::string(text)});
  }

  // {%[-+]? raw [-]?%}: the regex is  \s*raw\s*(?:-%}\s*|%})  after the sign.
  bool match_raw_begin(std::size_t i, std::size_t& end) const {
    i = skip_space(i);
    if (s_.compare(i, 3, "raw") != 0) return false;
    i = skip_space(i + 3);
    if (s_.compare(i, 3, "-%}") == 0) {
      end = skip_space(i + 3);
      return true;
    }
    if (s_.compare(i, 2, "%}") == 0) {
      end = i + 2;
      return true;
    }
    return false;
  }

  std::size_t skip_comment(std::size_t tag, std::size_t from, bool& line_starting) {
    for (std::size_t j = from; j + 1 < s_.size(); ++j) {
      std::size_t end = 0;
      if (s_.compare(j, 3, "+#}") == 0) end = j + 3;
      else if (s_.compare(j, 3, "-#}") == 0) end = skip_space(j + 3);
      else if (s_.compare(j, 2, "#}") == 0) end = j + 2 + (j + 2 < s_.size() && s_[j + 2] == '\n' ? 1 : 0);
      if (end) {
        line_starting = s_[end - 1] == '\n';
        return end;
      }
    }
    fail_at(tag, "missing end of comment tag '#}'");
  }

  std::size_t lex_raw(std::size_t tag, std::size_t body, bool& line_starting) {
    line_starting = s_[body - 1] == '\n';
    for (std::size_t j = s_.find("{%", body); j != std::string_view::npos; j = s_.find("{%", j + 1)) {
      std::size_t i = j + 2;
      char sign = 0;
      if (i < s_.size() && (s_[i] == '-' || s_[i] == '+')) sign = s_[i++];
      i = skip_space(i);
      if (s_.compare(i, 6, "endraw") != 0) continue;
      i = skip_space(i + 6);
      std::size_t end = 0;
      if (s_.compare(i, 3, "+%}") == 0) end = i + 3;
      else if (s_.compare(i, 3, "-%}") == 0) end = skip_space(i + 3);
      else if (s_.compare(i, 2, "%}") == 0) end = i + 2 + (i + 2 < s_.size() && s_[i + 2] == '\n' ? 1 : 0);
      if (!end) continue;
      emit_text(body, strip_before_tag(s_.substr(body, j - body), sign, true, line_starting));
      line_starting = s_[end - 1] == '\n';
      return end;
    }
    fail_at(tag, "missing end of raw directive ({% endraw %})");
  }

  // The tokens of one {{ ... }} or {% ... %}; returns the offset after its end delimiter.
  std::size_t lex_tag(std::size_t tag, std::size_t i, bool variable, bool& line_starting) {
    tokens_.push_back(token{variable ? token_kind::variable_begin : token_kind::block_begin,
                            static_cast<std::uint32_t>(tag), {}});
    std::vector<char> balance;  // closing brackets expected; end delimiters only count when empty
    while (true) {
      if (i >= s_.size())
        fail_at(i, variable ? "unexpected end of template, expected '}}'" : "unexpected end of template, expected '%}'");
      if (balance.empty()) {
        std::size_t end = 0;
        if (variable) {
          if (s_.compare(i, 3, "-}}") == 0) end = skip_space(i + 3);
          else if (s_.compare(i, 2, "}}") == 0) end = i + 2;
        } else {
          if (s_.compare(i, 3, "+%}") == 0) end = i + 3;
          else if (s_.compare(i, 3, "-%}") == 0) end = skip_space(i + 3);
          else if (s_.compare(i, 2, "%}") == 0) end = i + 2 + (i + 2 < s_.size() && s_[i + 2] == '\n' ? 1 : 0);
        }
        if (end) {
          tokens_.push_back(token{variable ? token_kind::variable_end : token_kind::block_end,
                                  static_cast<std::uint32_t>(i), {}});
          line_starting = s_[end - 1] == '\n';
          return end;
        }
      }
      const std::size_t after_space = skip_space(i);
      if (after_space != i) {
        i = after_space;
        continue;
      }
      const char c = s_[i];
      if (is_digit(c)) i = lex_number(i);
      else if (c == '\'' || c == '"') i = lex_string(i);
      else if (std::size_t n = name_length(i)) {
        tokens_.push_back(token{token_kind::name, static_cast<std::uint32_t>(i), std::string(s_.substr(i, n))});
        i += n;
      } else {
        i = lex_operator(i, balance);
      }
    }
  }

  std::size_t name_length(std::size_t i) const {
    std::size_t j = i;
    while (j < s_.size()) {
      const unsigned char b = static_cast<unsigned char>(s_[j]);
      if (b < 0x80) {
        if (!(std::isalnum(b) || b == '_')) break;
        if (j == i && is_digit(static_cast<char>(b))) break;
        ++j;
        continue;
      }
      std::size_t k = j;
      if (!py_isalnum(next_char(s_, k))) break;  // non-ASCII identifiers: letters and digits
      j = k;
    }
    return j - i;
  }

  // Digits with single underscores between them: (\d+_)*\d+ ; returns the end or npos.
  std::size_t digit_run(std::size_t i) const {
    if (i >= s_.size() || !is_digit(s_[i])) return std::string_view::npos;
    while (true) {
      while (i < s_.size() && is_digit(s_[i])) ++i;
      if (i + 1 < s_.size() && s_[i] == '_' && is_digit(s_[i + 1])) {
        ++i;
        continue;
      }
      return i;
    }
  }

  std::size_t exponent_end(std::size_t i) const {
    if (i >= s_.size() || (s_[i] != 'e' && s_[i] != 'E')) return std::string_view::npos;
    ++i;
    if (i < s_.size() && (s_[i] == '+' || s_[i] == '-')) ++i;
    return digit_run(i);
  }

  std::size_t lex_number(std::size_t i) {
    const std::size_t npos = std::string_view::npos;
    // A float never starts right after a '.' (so that x.0.1 is two subscripts).
    if (i == 0 || s_[i - 1] != '.') {
      const std::size_t int_end = digit_run(i);
      std::size_t end = npos;
      std::size_t frac_end = npos;
      if (int_end < s_.size() && s_[int_end] == '.') frac_end = digit_run(int_end + 1);
      if (frac_end != npos) end = exponent_end(frac_end);
      if (end == npos) end = exponent_end(int_end);
      if (end == npos) end = frac_end;
      if (end != npos) {
        std::string digits;
        for (char c : s_.substr(i, end - i))
          if (c != '_') digits.push_back(c);
        double d = 0;
        const auto r = std::from_chars(digits.data(), digits.data() + digits.size(), d);
        if (r.ec == std::errc::result_out_of_range) {
          const std::size_t e = digits.find_first_of("eE");
          d = e != std::string::npos && digits[e + 1] == '-' ? 0.0 : std::numeric_limits<double>::infinity();
        }
        tokens_.push_back(token{token_kind::floating, static_cast<std::uint32_t>(i), std::string(s_.substr(i, end - i))});
        tokens_.back().floating = d;
        return end;
      }
    }
    // Integers: 0b / 0o / 0x prefixes, decimals, or zeros.
    int base = 10;
    std::size_t j = i;
    if (s_[i] == '0' && i + 1 < s_.size()) {
      const char p = static_cast<char>(s_[i + 1] | 0x20);
      if (p == 'b' || p == 'o' || p == 'x') {
        base = p == 'b' ? 2 : p == 'o' ? 8 : 16;
        auto ok = [&](char c) {
          const int v = is_digit(c) ? c - '0' : ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') ? (c | 0x20) - 'a' + 10 : 99;
          return v < base;
        };
        std::size_t k = i + 2;
        std::size_t last = npos;
        while (true) {
          std::size_t m = k;
          if (m < s_.size() && s_[m] == '_') ++m;
          if (m < s_.size() && ok(s_[m])) {
            k = m + 1;
            last = k;
          } else {
            break;
          }
        }
        if (last != npos) j = last;
        else base = 10;
      }
    }
    if (base == 10) {
      j = i + 1;
      const char first = s_[i];
      while (j < s_.size()) {
        std::size_t m = j;
        if (s_[m] == '_') ++m;
        if (m < s_.size() && is_digit(s_[m]) && (first != '0' || s_[m] == '0')) j = m + 1;
        else break;
      }
    }
    std::string digits;
    for (char c : s_.substr(base == 10 ? i : i + 2, j - (base == 10 ? i : i + 2)))
      if (c != '_') digits.push_back(c);
    std::int64_t v = 0;
    const auto r = std::from_chars(digits.data(), digits.data() + digits.size(), v, base);
    if (r.ec != std::errc()) fail_at(i, "integer literal " + std::string(s_.substr(i, j - i)) + " does not fit in 64 bits");
    tokens_.push_back(token{token_kind::integer, static_cast<std::uint32_t>(i), std::string(s_.substr(i, j - i))});
    tokens_.back().integer = v;
    return j;
  }

  // A quoted literal; its value is decoded as Python's "unicode-escape" codec would (jinja2 does
  // exactly that), so \n, \t, \xNN, \uNNNN, \UNNNNNNNN and octal escapes work and unknown escapes
  // keep their backslash.
  std::size_t lex_string(std::size_t start) {
    const char quote = s_[start];
    std::size_t i = start + 1;
    std::string v;
    while (true) {
      if (i >= s_.size()) fail_at(start, "unterminated string literal");
      const char c = s_[i];
      if (c == quote) break;
      if (c != '\\') {
        v.push_back(c);
        ++i;
        continue;
      }
      if (i + 1 >= s_.size()) fail_at(start, "unterminated string literal");
      const unsigned char e = static_cast<unsigned char>(s_[i + 1]);
      i += 2;
      switch (e) {
        case '\n': break;  // line continuation
        case '\\': v.push_back('\\'); break;
        case '\'': v.push_back('\''); break;
        case '"': v.push_back('"'); break;
        case 'a': v.push_back('\a'); break;
        case 'b': v.push_back('\b'); break;
        case 'f': v.push_back('\f'); break;
        case 'n': v.push_back('\n'); break;
        case 'r': v.push_back('\r'); break;
        case 't': v.push_back('\t'); break;
        case 'v': v.push_back('\v'); break;
        case 'x':
        case 'u':
        case 'U': {
          const std::size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          std::uint32_t code = 0;
          for (std::size_t k = 0; k < n; ++k) {
            const char h = i + k < s_.size() ? s_[i + k] : '\0';
            int d = is_digit(h) ? h - '0' : ((h | 0x20) >= 'a' && (h | 0x20) <= 'f') ? (h | 0x20) - 'a' + 10 : -1;
            if (d < 0) fail_at(start, std::string("truncated \\") + static_cast<char>(e) + " escape in string literal");
            code = code * 16 + static_cast<std::uint32_t>(d);
          }
          i += n;
          if (code > 0x10FFFF) fail_at(start, "illegal Unicode character in string literal escape");
          if (code >= 0xD800 && code <= 0xDFFF)
            fail_at(start, "string literal escape makes a lone surrogate, which is not valid UTF-8");
          append_char(v, code);
          break;
        }
        case 'N': fail_at(start, "\\N{...} escapes are not supported in string literals");
        default:
          if (e >= '0' && e <= '7') {
            std::uint32_t code = e - '0';
            for (int k = 0; k < 2 && i < s_.size() && s_[i] >= '0' && s_[i] <= '7'; ++k) code = code * 8 + (s_[i++] - '0');
            append_char(v, code);
          } else if (e >= 0x80) {
            // jinja2 escapes non-ASCII characters before decoding, so "\é" keeps the backslash
            // and spells the character as its escape: \xe9.
            std::size_t k = i - 1;
            const char32_t ch = next_char(s_, k);
            char buf[16];
            if (ch <= 0xFF) std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(ch));
            else if (ch <= 0xFFFF) std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(ch));
            else std::snprintf(buf, sizeof buf, "\\U%08x", static_cast<unsigned>(ch));
            v += buf;
            i = k;
          } else {
            v.push_back('\\');
            v.push_back(static_cast<char>(e));
          }
      }
    }
    tokens_.push_back(token{token_kind::string, static_cast<std::uint32_t>(start), std::move(v)});
    return i + 1;
  }

  std::size_t lex_operator(std::size_t i, std::vector<char>& balance) {
    static constexpr std::string_view two[] = {"**", "//", "==", "!=", ">=", "<="};
    for (std::string_view op : two) {
      if (s_.compare(i, 2, op) == 0) {
        tokens_.push_back(token{token_kind::op, static_cast<std::uint32_t>(i), std::string(op)});
        return i + 2;
      }
    }
    const char c = s_[i];
    if (std::string_view("+-/*%~[](){}><=.:|,;").find(c) == std::string_view::npos) {
      std::size_t k = i;
      const char32_t ch = next_char(s_, k);
      std::string shown;
      append_char(shown, ch);
      fail_at(i, "unexpected character " + py_repr_string(shown));
    }
    if (c == '(') balance.push_back(')');
    else if (c == '[') balance.push_back(']');
    else if (c == '{') balance.push_back('}');
    else if (c == ')' || c == ']' || c == '}') {
      if (balance.empty()) fail_at(i, std::string("unexpected '") + c + "'");
      if (balance.back() != c) fail_at(i, std::string("unexpected '") + c + "', expected '" + balance.back() + "'");
      balance.pop_back();
    }
    tokens_.push_back(token{token_kind::op, static_cast<std::uint32_t>(i), std::string(1, c)});
    return i + 1;
  }

  std::string_view s_;
  std::vector<token> tokens_;
};

}  // namespace

std::vector<token> tokenize(std::string_view normalized_source) { return lexer(normalized_source).run(); }

}  // namespace mii::detail::jinja

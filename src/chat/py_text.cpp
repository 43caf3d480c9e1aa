#include "chat/py_text.hpp"

#include <utf8proc.h>

#include <algorithm>
#include <cstdio>

#include <mii/error.hpp>

#include "chat/value.hpp"  // raise
#include "tokenizer/unicode.hpp"

namespace mii::detail::jinja {

char32_t next_char(std::string_view s, std::size_t& i) { return tok::next_code_point(s, i); }
void append_char(std::string& out, char32_t c) { tok::append_utf8(out, c); }

std::u32string to_u32(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) out.push_back(next_char(s, i));
  return out;
}

std::string from_u32(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) append_char(out, c);
  return out;
}

bool is_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

std::size_t char_count(std::string_view s) {
  // Continuation bytes (10xxxxxx) do not start a character.
  return static_cast<std::size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

std::size_t byte_offset(std::string_view s, std::size_t index) {
  std::size_t i = 0;
  while (index > 0 && i < s.size()) {
    i += tok::utf8_length(static_cast<unsigned char>(s[i]));
    --index;
  }
  return std::min(i, s.size());
}

void require_utf8(std::string_view s, std::string_view what) {
  if (const std::size_t bad = tok::find_invalid_utf8(s); bad != std::string_view::npos) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned>(static_cast<unsigned char>(s[bad])));
    fail(what, ": not valid UTF-8: bad byte ", hex, " at byte offset ", bad);
  }
}

namespace {
utf8proc_category_t category(char32_t c) { return utf8proc_category(static_cast<utf8proc_int32_t>(c)); }
}  // namespace

bool py_isspace(char32_t c) {
  if (c < 0x80) return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

bool py_isalpha(char32_t c) {
  if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
  const auto k = category(c);
  return k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT ||
         k == UTF8PROC_CATEGORY_LM || k == UTF8PROC_CATEGORY_LO;
}

bool py_isdigit(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  return category(c) == UTF8PROC_CATEGORY_ND || c == 0xB2 || c == 0xB3 || c == 0xB9 ||
         (c >= 0x2070 && c <= 0x2079) || (c >= 0x2080 && c <= 0x2089);
}

bool py_isnumeric(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  const auto k = category(c);
  return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

bool py_isalnum(char32_t c) { return py_isalpha(c) || py_isnumeric(c); }

bool py_isprintable(char32_t c) {
  if (c < 0x80) return c >= 0x20 && c < 0x7F;
  switch (category(c)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
    case UTF8PROC_CATEGORY_ZS: return false;
    default: return true;
  }
}

bool py_islower_char(char32_t c) {
  if (c < 0x80) return c >= 'a' && c <= 'z';
  return category(c) == UTF8PROC_CATEGORY_LL || (category(c) != UTF8PROC_CATEGORY_LU &&
                                                 utf8proc_toupper(static_cast<utf8proc_int32_t>(c)) != static_cast<utf8proc_int32_t>(c) &&
                                                 category(c) != UTF8PROC_CATEGORY_LT);
}

bool py_isupper_char(char32_t c) {
  if (c < 0x80) return c >= 'A' && c <= 'Z';
  return category(c) == UTF8PROC_CATEGORY_LU || (category(c) != UTF8PROC_CATEGORY_LL &&
                                                 utf8proc_tolower(static_cast<utf8proc_int32_t>(c)) != static_cast<utf8proc_int32_t>(c) &&
                                                 category(c) != UTF8PROC_CATEGORY_LT);
}

bool py_iscased(char32_t c) {
  if (c < 0x80) return py_isalpha(c);
  const auto k = category(c);
  if (k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT) return true;
  const auto i = static_cast<utf8proc_int32_t>(c);
  return utf8proc_tolower(i) != i || utf8proc_toupper(i) != i;
}

bool py_is_linebreak(char32_t c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E || c == 0x85 ||
         c == 0x2028 || c == 0x2029;
}

// SpecialCasing.txt's unconditional one-to-many mappings that real text meets (German sharp s,
// Latin ligatures, dotted capital I). The rest of Unicode uses the simple mappings of utf8proc.
namespace {
struct special_case {
  char32_t c;
  const char32_t* lower;
  const char32_t* title;
  const char32_t* upper;
};
constexpr special_case special_cases[] = {
    {0x00DF, U"\u00DF", U"Ss", U"SS"},
    {0x0130, U"i\u0307", U"\u0130", U"\u0130"},
    {0x0149, U"\u0149", U"\u02BCN", U"\u02BCN"},
    {0x01F0, U"\u01F0", U"J\u030C", U"J\u030C"},
    {0xFB00, U"\uFB00", U"Ff", U"FF"},
    {0xFB01, U"\uFB01", U"Fi", U"FI"},
    {0xFB02, U"\uFB02", U"Fl", U"FL"},
    {0xFB03, U"\uFB03", U"Ffi", U"FFI"},
    {0xFB04, U"\uFB04", U"Ffl", U"FFL"},
    {0xFB05, U"\uFB05", U"St", U"ST"},
    {0xFB06, U"\uFB06", U"St", U"ST"},
};
const special_case* find_special(char32_t c) {
  if (c < 0xDF) return nullptr;
  for (const auto& s : special_cases)
    if (s.c == c) return &s;
  return nullptr;
}
}  // namespace

void append_upper(std::u32string& out, char32_t c) {
  if (c < 0x80) { out.push_back(c >= 'a' && c <= 'z' ? c - 32 : c); return; }
  if (const auto* s = find_special(c)) { out += s->upper; return; }
  out.push_back(static_cast<char32_t>(utf8proc_toupper(static_cast<utf8proc_int32_t>(c))));
}

void append_lower(std::u32string& out, char32_t c) {
  if (c < 0x80) { out.push_back(c >= 'A' && c <= 'Z' ? c + 32 : c); return; }
  if (const auto* s = find_special(c)) { out += s->lower; return; }
  out.push_back(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
}

void append_title(std::u32string& out, char32_t c) {
  if (c < 0x80) { out.push_back(c >= 'a' && c <= 'z' ? c - 32 : c); return; }
  if (const auto* s = find_special(c)) { out += s->title; return; }
  out.push_back(static_cast<char32_t>(utf8proc_totitle(static_cast<utf8proc_int32_t>(c))));
}

namespace {
// Python lowercases a capital sigma at the end of a word to the final form (Final_Sigma).
char32_t lower_sigma(const std::u32string& s, std::size_t i) {
  auto ignorable = [](char32_t c) {
    const auto k = category(c);
    return k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_ME || k == UTF8PROC_CATEGORY_CF ||
           k == UTF8PROC_CATEGORY_LM || k == UTF8PROC_CATEGORY_SK || c == '\'' || c == 0x2019 || c == '.' || c == ':';
  };
  std::size_t j = i;
  bool cased_before = false;
  while (j > 0) {
    --j;
    if (ignorable(s[j])) continue;
    cased_before = py_iscased(s[j]);
    break;
  }
  bool cased_after = false;
  for (std::size_t k = i + 1; k < s.size(); ++k) {
    if (ignorable(s[k])) continue;
    cased_after = py_iscased(s[k]);
    break;
  }
  return cased_before && !cased_after ? 0x03C2 : 0x03C3;
}

// ASCII-only text maps byte by byte (the common case: roles, tool names).
template <class F>
std::string map_ascii(std::string_view s, F&& f) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(f(static_cast<unsigned char>(c)));
  return out;
}
}  // namespace

std::string py_upper(std::string_view s) {
  if (is_ascii(s)) return map_ascii(s, [](unsigned char c) { return c >= 'a' && c <= 'z' ? c - 32 : c; });
  std::u32string out;
  for (char32_t c : to_u32(s)) append_upper(out, c);
  return from_u32(out);
}

std::string py_lower(std::string_view s) {
  if (is_ascii(s)) return map_ascii(s, [](unsigned char c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; });
  const std::u32string in = to_u32(s);
  std::u32string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == 0x03A3) out.push_back(lower_sigma(in, i));
    else append_lower(out, in[i]);
  }
  return from_u32(out);
}

std::string py_title(std::string_view s) {
  const std::u32string in = to_u32(s);
  std::u32string out;
  bool previous_cased = false;
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char32_t c = in[i];
    if (previous_cased) {
      if (c == 0x03A3) out.push_back(lower_sigma(in, i));
      else append_lower(out, c);
    } else {
      append_title(out, c);
    }
    previous_cased = py_iscased(c);
  }
  return from_u32(out);
}

std::string py_capitalize(std::string_view s) {
  const std::u32string in = to_u32(s);
  std::u32string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (i == 0) append_title(out, in[i]);
    else if (in[i] == 0x03A3) out.push_back(lower_sigma(in, i));
    else append_lower(out, in[i]);
  }
  return from_u32(out);
}

std::string py_swapcase(std::string_view s) {
  std::u32string out;
  for (char32_t c : to_u32(s)) {
    if (py_isupper_char(c)) append_lower(out, c);
    else if (py_islower_char(c)) append_upper(out, c);
    else out.push_back(c);
  }
  return from_u32(out);
}

bool py_islower(std::string_view s) {
  bool cased = false;
  for (char32_t c : to_u32(s)) {
    if (py_isupper_char(c) || category(c) == UTF8PROC_CATEGORY_LT) return false;
    if (py_islower_char(c)) cased = true;
  }
  return cased;
}

bool py_isupper(std::string_view s) {
  bool cased = false;
  for (char32_t c : to_u32(s)) {
    if (py_islower_char(c) || category(c) == UTF8PROC_CATEGORY_LT) return false;
    if (py_isupper_char(c)) cased = true;
  }
  return cased;
}

std::string py_strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right) {
  const std::u32string in = to_u32(s);
  const std::u32string set = chars ? to_u32(*chars) : std::u32string();
  auto strips = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : py_isspace(c); };
  std::size_t b = 0, e = in.size();
  if (left)
    while (b < e && strips(in[b])) ++b;
  if (right)
    while (e > b && strips(in[e - 1])) --e;
  return from_u32(std::u32string_view(in).substr(b, e - b));
}

std::vector<std::string> py_split(std::string_view s, const std::optional<std::string>& sep, long long maxsplit,
                                  bool from_right) {
  std::vector<std::string> parts;
  if (maxsplit < 0) maxsplit = static_cast<long long>(s.size()) + 1;  // Python: no limit
  if (!sep) {
    // CPython's split_whitespace / rsplit_whitespace: after maxsplit cuts, the rest is kept from
    // its first (last, for rsplit) non-space character to the end (start).
    const std::u32string in = to_u32(s);
    const std::size_t n = in.size();
    if (!from_right) {
      std::size_t i = 0;
      while (maxsplit-- > 0) {
        while (i < n && py_isspace(in[i])) ++i;
        if (i == n) break;
        const std::size_t j = i;
        while (i < n && !py_isspace(in[i])) ++i;
        parts.push_back(from_u32(std::u32string_view(in).substr(j, i - j)));
      }
      while (i < n && py_isspace(in[i])) ++i;
      if (i < n) parts.push_back(from_u32(std::u32string_view(in).substr(i)));
      return parts;
    }
    std::size_t i = n;
    while (maxsplit-- > 0) {
      while (i > 0 && py_isspace(in[i - 1])) --i;
      if (i == 0) break;
      const std::size_t j = i;
      while (i > 0 && !py_isspace(in[i - 1])) --i;
      parts.push_back(from_u32(std::u32string_view(in).substr(i, j - i)));
    }
    while (i > 0 && py_isspace(in[i - 1])) --i;
    if (i > 0) parts.push_back(from_u32(std::u32string_view(in).substr(0, i)));
    std::reverse(parts.begin(), parts.end());
    return parts;
  }
  if (sep->empty()) raise("empty separator");
  if (!from_right) {
    std::size_t pos = 0;
    while (maxsplit-- > 0) {
      const std::size_t at = s.find(*sep, pos);
      if (at == std::string_view::npos) break;
      parts.emplace_back(s.substr(pos, at - pos));
      pos = at + sep->size();
    }
    parts.emplace_back(s.substr(pos));
    return parts;
  }
  std::size_t end = s.size();
  while (maxsplit-- > 0 && end >= sep->size()) {
    const std::size_t at = s.rfind(*sep, end - sep->size());
    if (at == std::string_view::npos) break;
    parts.emplace_back(s.substr(at + sep->size(), end - at - sep->size()));
    end = at;
  }
  parts.emplace_back(s.substr(0, end));
  std::reverse(parts.begin(), parts.end());
  return parts;
}

std::vector<std::string> py_splitlines(std::string_view s, bool keepends) {
  const std::u32string in = to_u32(s);
  std::vector<std::string> lines;
  std::size_t start = 0, i = 0;
  while (i < in.size()) {
    if (!py_is_linebreak(in[i])) { ++i; continue; }
    std::size_t eol = i + 1;
    if (in[i] == '\r' && eol < in.size() && in[eol] == '\n') ++eol;
    lines.push_back(from_u32(std::u32string_view(in).substr(start, (keepends ? eol : i) - start)));
    start = i = eol;
  }
  if (start < in.size()) lines.push_back(from_u32(std::u32string_view(in).substr(start)));
  return lines;
}

std::string py_replace(std::string_view s, std::string_view old, std::string_view new_, long long count) {
  std::string out;
  if (count < 0) count = static_cast<long long>(s.size()) + 1;
  if (old.empty()) {
    std::size_t i = 0;
    while (i <= s.size()) {
      if (count-- > 0) out += new_;
      else { out += s.substr(i); break; }
      if (i == s.size()) break;
      const std::size_t n = tok::utf8_length(static_cast<unsigned char>(s[i]));
      out += s.substr(i, n);
      i += n;
    }
    return out;
  }
  std::size_t pos = 0;
  while (count-- > 0) {
    const std::size_t at = s.find(old, pos);
    if (at == std::string_view::npos) break;
    out += s.substr(pos, at - pos);
    out += new_;
    pos = at + old.size();
  }
  out += s.substr(pos);
  return out;
}

long long py_find(std::string_view s, std::string_view sub, long long start, long long end, bool from_right) {
  const std::u32string in = to_u32(s), needle = to_u32(sub);
  const long long n = static_cast<long long>(in.size());
  if (start < 0) start = std::max(0LL, start + n);
  if (end < 0) end = std::max(0LL, end + n);
  end = std::min(end, n);
  if (start > n || end - start < static_cast<long long>(needle.size())) return -1;
  const std::u32string_view window = std::u32string_view(in).substr(static_cast<std::size_t>(start),
                                                                     static_cast<std::size_t>(end - start));
  const std::size_t at = from_right ? window.rfind(needle) : window.find(needle);
  return at == std::u32string_view::npos ? -1 : start + static_cast<long long>(at);
}

long long py_count(std::string_view s, std::string_view sub, long long start, long long end) {
  const std::u32string in = to_u32(s), needle = to_u32(sub);
  const long long n = static_cast<long long>(in.size());
  if (start < 0) start = std::max(0LL, start + n);
  if (end < 0) end = std::max(0LL, end + n);
  end = std::min(end, n);
  if (start > n || end < start) return 0;
  if (needle.empty()) return end - start + 1;
  long long found = 0;
  const std::u32string_view window = std::u32string_view(in).substr(static_cast<std::size_t>(start),
                                                                     static_cast<std::size_t>(end - start));
  for (std::size_t at = window.find(needle); at != std::u32string_view::npos; at = window.find(needle, at + needle.size()))
    ++found;
  return found;
}

std::string py_repr_string(std::string_view s) {
  const bool has_single = s.find('\'') != std::string_view::npos;
  const bool has_double = s.find('"') != std::string_view::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back(quote);
  for (std::size_t i = 0; i < s.size();) {
    const char32_t c = next_char(s, i);
    char buf[16];
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7F) {
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(c));
      out += buf;
    } else if (c < 0x7F || py_isprintable(c)) {
      append_char(out, c);
    } else {
      if (c <= 0xFF) std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(c));
      else if (c <= 0xFFFF) std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      else std::snprintf(buf, sizeof buf, "\\U%08x", static_cast<unsigned>(c));
      out += buf;
    }
  }
  out.push_back(quote);
  return out;
}

}  // namespace mii::detail::jinja

#include "tokenizer/unicode.hpp"

#include <cstdlib>
#include <memory>

#include <utf8proc.h>

namespace mii::detail::tok {

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

std::size_t utf8_sequence(std::string_view s, bool& valid, bool& incomplete) {
  valid = false;
  incomplete = false;
  const auto b0 = static_cast<unsigned char>(s[0]);
  if (b0 < 0x80) { valid = true; return 1; }
  std::size_t need;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte (Unicode Table 3-7)
  if (b0 >= 0xC2 && b0 <= 0xDF) need = 2;
  else if (b0 == 0xE0) { need = 3; lo = 0xA0; }
  else if (b0 >= 0xE1 && b0 <= 0xEC) need = 3;
  else if (b0 == 0xED) { need = 3; hi = 0x9F; }
  else if (b0 >= 0xEE && b0 <= 0xEF) need = 3;
  else if (b0 == 0xF0) { need = 4; lo = 0x90; }
  else if (b0 >= 0xF1 && b0 <= 0xF3) need = 4;
  else if (b0 == 0xF4) { need = 4; hi = 0x8F; }
  else return 1;  // 80..C1, F5..FF can never start a sequence
  for (std::size_t k = 1; k < need; ++k) {
    if (k >= s.size()) { incomplete = true; return 0; }
    const auto b = static_cast<unsigned char>(s[k]);
    const bool ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) return k;
  }
  valid = true;
  return need;
}

std::size_t find_invalid_utf8(std::string_view s) {
  std::size_t i = 0;
  const std::size_t n = s.size();
  while (i < n) {
    // ASCII fast path, eight bytes at a time.
    while (i + 8 <= n) {
      std::uint64_t w;
      __builtin_memcpy(&w, s.data() + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    if (static_cast<unsigned char>(s[i]) < 0x80) { ++i; continue; }
    bool valid, incomplete;
    const std::size_t len = utf8_sequence(s.substr(i), valid, incomplete);
    if (!valid) return i;
    i += len;
  }
  return std::string_view::npos;
}

std::size_t append_utf8_lossy(std::string& out, std::string_view bytes, bool final_chunk) {
  std::size_t i = 0;
  while (i < bytes.size()) {
    const auto b = static_cast<unsigned char>(bytes[i]);
    if (b < 0x80) { out.push_back(static_cast<char>(b)); ++i; continue; }
    bool valid, incomplete;
    std::size_t len = utf8_sequence(bytes.substr(i), valid, incomplete);
    if (incomplete) {
      if (!final_chunk) return i;
      len = bytes.size() - i;  // a truncated sequence at the very end is one ill-formed subpart
    }
    if (valid) out.append(bytes.data() + i, len);
    else out.append("\xEF\xBF\xBD");
    i += len;
  }
  return i;
}

// ---- character classes --------------------------------------------------------------------

static constexpr std::uint8_t L = cls_letter | cls_word, N = cls_number, D = cls_number | cls_word,
                              S = cls_space, R = cls_space | cls_newline, W = cls_word;
const std::uint8_t ascii_classes[128] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, S, R, S, S, R, 0, 0,  // \t \n \v \f \r
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  //
    S, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  // space and punctuation
    D, D, D, D, D, D, D, D, D, D, 0, 0, 0, 0, 0, 0,  // digits
    0, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L,  // @ A-O
    L, L, L, L, L, L, L, L, L, L, L, 0, 0, 0, 0, W,  // P-Z, _ is \w (Pc)
    0, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L,  // ` a-o
    L, L, L, L, L, L, L, L, L, L, L, 0, 0, 0, 0, 0,  // p-z
};
static_assert(N == cls_number);

std::uint8_t classify_slow(char32_t c) {
  if (c == 0x85) return cls_space;  // NEL: \s in Oniguruma and White_Space in Unicode
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
      return cls_letter | cls_word;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL:
      return cls_number | cls_word;
    case UTF8PROC_CATEGORY_NO:
      return cls_number;
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_PC:
      return cls_word;
    case UTF8PROC_CATEGORY_ZS: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP:
      return cls_space;
    case UTF8PROC_CATEGORY_SO:
      // Circled / squared Latin letters are Alphabetic (hence \w) although they are symbols.
      if ((c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F189)) return cls_word;
      return 0;
    case UTF8PROC_CATEGORY_CF:
      return (c == 0x200C || c == 0x200D) ? cls_word : 0;  // Join_Control is part of \w
    default:
      return 0;
  }
}

// ---- normalization ------------------------------------------------------------------------

namespace {

// A code point before which NFC may cut the text: a starter that NFC leaves alone and that never
// composes with what precedes it. NFC of the text is then the concatenation of NFC of the
// pieces between such points, and a piece made of one such code point is already NFC.
bool nfc_boundary(char32_t c) {
  if (c < 0x300) return true;  // nothing below U+0300 is a combining mark or decomposes... see below
  if (c >= 0x1100 && c <= 0x11FF) return false;  // Hangul jamo compose algorithmically
  if (c >= 0xA960 && c <= 0xA97F) return false;
  if (c >= 0xD7B0 && c <= 0xD7FF) return false;
  const utf8proc_property_t* p = utf8proc_get_property(static_cast<utf8proc_int32_t>(c));
  if (p->combining_class != 0) return false;
  if (p->decomp_type == 0 && p->decomp_seqindex != UINT16_MAX) return false;  // canonical decomposition
  if (p->comp_exclusion) return false;
  if (p->comb_index != UINT16_MAX && (p->comb_index & 0x8000)) return false;  // second of a pair
  return true;
}

bool utf8proc_form(std::string_view in, utf8proc_option_t options, std::string& out) {
  utf8proc_uint8_t* result = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(in.data()),
                   static_cast<utf8proc_ssize_t>(in.size()), &result, options);
  if (n < 0) {
    std::free(result);
    return false;
  }
  out.append(reinterpret_cast<const char*>(result), static_cast<std::size_t>(n));
  std::free(result);
  return true;
}

}  // namespace

bool unicode_normalize(std::string_view in, normal_form form, std::string& out) {
  // Below U+0300 only Latin-1 has anything to say, and only for the compatibility forms
  // (e.g. U+00A0 -> U+0020, U+00BD -> 1/2) and for the decomposing ones (U+00E9 -> e + U+0301).
  const auto utf8proc_options = [&] {
    int o = UTF8PROC_STABLE;
    if (form == normal_form::nfc || form == normal_form::nfkc) o |= UTF8PROC_COMPOSE;
    else o |= UTF8PROC_DECOMPOSE;
    if (form == normal_form::nfkc || form == normal_form::nfkd) o |= UTF8PROC_COMPAT;
    return static_cast<utf8proc_option_t>(o);
  }();
  bool all_ascii = true;
  for (char ch : in)
    if (static_cast<unsigned char>(ch) >= 0x80) { all_ascii = false; break; }
  if (all_ascii) return false;
  if (form != normal_form::nfc) {
    std::string tmp;
    utf8proc_form(in, utf8proc_options, tmp);
    if (tmp == in) return false;
    out = std::move(tmp);
    return true;
  }
  // NFC: cut at boundaries, run utf8proc only on the pieces that can change.
  std::string result;
  bool changed = false;
  std::size_t piece_start = 0, i = 0;
  bool piece_trivial = true;  // the current piece is one boundary code point (or empty)
  const auto flush = [&](std::size_t end) {
    const std::string_view piece = in.substr(piece_start, end - piece_start);
    if (piece.empty()) return;
    if (piece_trivial) {
      result.append(piece);
      return;
    }
    const std::size_t before = result.size();
    utf8proc_form(piece, utf8proc_options, result);
    if (std::string_view(result).substr(before) != piece) changed = true;
  };
  while (i < in.size()) {
    const std::size_t at = i;
    const char32_t c = next_code_point(in, i);
    if (nfc_boundary(c)) {
      flush(at);
      piece_start = at;
      piece_trivial = true;
    } else {
      piece_trivial = false;
    }
  }
  flush(in.size());
  if (!changed) return false;
  out = std::move(result);
  return true;
}

std::string unicode_lowercase(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  std::size_t i = 0;
  while (i < in.size()) {
    const char32_t c = next_code_point(in, i);
    if (c < 0x80) {
      out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c));
    } else if (c == 0x130) {
      out.append("i\xCC\x87");  // the one unconditional multi-character lowercase mapping
    } else {
      append_utf8(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
    }
  }
  return out;
}

}  // namespace mii::detail::tok

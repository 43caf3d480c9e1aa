// UTF-8 and Unicode character classes as the tokenizer needs them. The classes follow the regex
// engines the Hugging Face `tokenizers` library uses (Oniguruma for pre-tokenizer patterns, the
// Rust `regex` crate for added-token word boundaries), not any one "obvious" definition:
// e.g. \s includes U+0085 (NEL) as Oniguruma's does.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mii::detail::tok {

// Decodes one code point starting at s[i] of well-formed UTF-8 (validate first) and advances i.
inline char32_t next_code_point(std::string_view s, std::size_t& i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) { ++i; return b0; }
  if (b0 < 0xE0) {
    char32_t c = ((b0 & 0x1Fu) << 6) | (static_cast<unsigned char>(s[i + 1]) & 0x3Fu);
    i += 2;
    return c;
  }
  if (b0 < 0xF0) {
    char32_t c = ((b0 & 0x0Fu) << 12) | ((static_cast<unsigned char>(s[i + 1]) & 0x3Fu) << 6) |
                 (static_cast<unsigned char>(s[i + 2]) & 0x3Fu);
    i += 3;
    return c;
  }
  char32_t c = ((b0 & 0x07u) << 18) | ((static_cast<unsigned char>(s[i + 1]) & 0x3Fu) << 12) |
               ((static_cast<unsigned char>(s[i + 2]) & 0x3Fu) << 6) |
               (static_cast<unsigned char>(s[i + 3]) & 0x3Fu);
  i += 4;
  return c;
}

// Length in bytes of the UTF-8 sequence that starts with lead byte b (1 for stray bytes).
inline std::size_t utf8_length(unsigned char b) {
  return b < 0x80 ? 1 : b < 0xE0 ? (b < 0xC0 ? 1 : 2) : b < 0xF0 ? 3 : 4;
}

void append_utf8(std::string& out, char32_t c);

// Offset of the first byte that is not part of well-formed UTF-8, or npos when all of s is.
std::size_t find_invalid_utf8(std::string_view s);

// Length of the maximal prefix of s that is either a complete well-formed sequence (returns its
// length, *valid = true) or the maximal ill-formed subpart in the sense of Unicode 3.9 / Rust's
// String::from_utf8_lossy (returns its length, *valid = false). When s ends inside a sequence
// that could still become valid, returns 0 and sets *incomplete = true.
std::size_t utf8_sequence(std::string_view s, bool& valid, bool& incomplete);

// Appends bytes to out decoded as Rust's String::from_utf8_lossy does: each maximal ill-formed
// subpart becomes one U+FFFD. With `final_chunk` false, an incomplete sequence at the end is not
// consumed; the return value is the number of bytes consumed.
std::size_t append_utf8_lossy(std::string& out, std::string_view bytes, bool final_chunk);

// Character classes (bit flags) of a code point.
enum char_class : std::uint8_t {
  cls_letter = 1,      // \p{L}
  cls_number = 2,      // \p{N}
  cls_space = 4,       // \s as Oniguruma and Rust define it (White_Space)
  cls_word = 8,        // \w of the Rust regex crate (used for single_word added tokens)
  cls_newline = 16,    // \r or \n
};
std::uint8_t classify_slow(char32_t c);
extern const std::uint8_t ascii_classes[128];
inline std::uint8_t classify(char32_t c) { return c < 128 ? ascii_classes[c] : classify_slow(c); }

// Unicode NFC / NFD / NFKC / NFKD of well-formed UTF-8. Returns false (out untouched) when the
// text is already in that form by a cheap check, which is the common case for NFC.
enum class normal_form { nfc, nfd, nfkc, nfkd };
bool unicode_normalize(std::string_view in, normal_form form, std::string& out);

// Lowercases as Rust's char::to_lowercase does, character by character.
std::string unicode_lowercase(std::string_view in);

}  // namespace mii::detail::tok

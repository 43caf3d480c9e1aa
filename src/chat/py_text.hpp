// Python's str semantics over UTF-8 text, as chat templates see them through jinja2: lengths,
// indices and slices count code points; whitespace, case and "printable" follow Python's Unicode
// tables (str.isspace, str.upper, str.isprintable), not the C locale's.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mii::detail::jinja {

// Decoding of well-formed UTF-8 (every string in the engine is validated on the way in).
char32_t next_char(std::string_view s, std::size_t& i);
void append_char(std::string& out, char32_t c);
std::u32string to_u32(std::string_view s);
std::string from_u32(std::u32string_view s);
bool is_ascii(std::string_view s);
std::size_t char_count(std::string_view s);
// Byte offset of code point index `index` (0 <= index <= char_count).
std::size_t byte_offset(std::string_view s, std::size_t index);
// Throws mii::error naming `what` when s is not well-formed UTF-8.
void require_utf8(std::string_view s, std::string_view what);

// Character classes as Python's str methods define them.
bool py_isspace(char32_t c);
bool py_isalpha(char32_t c);
bool py_isdigit(char32_t c);  // Nd (str.isdigit is a little wider; decimal digits are what matters)
bool py_isnumeric(char32_t c);
bool py_isalnum(char32_t c);
bool py_isprintable(char32_t c);
bool py_iscased(char32_t c);
bool py_islower_char(char32_t c);
bool py_isupper_char(char32_t c);
bool py_is_linebreak(char32_t c);  // what str.splitlines splits at

// Full case mappings (str.upper may lengthen: "ß".upper() == "SS").
void append_upper(std::u32string& out, char32_t c);
void append_lower(std::u32string& out, char32_t c);
void append_title(std::u32string& out, char32_t c);

std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
std::string py_title(std::string_view s);       // str.title
std::string py_capitalize(std::string_view s);  // str.capitalize
std::string py_swapcase(std::string_view s);
bool py_islower(std::string_view s);
bool py_isupper(std::string_view s);

// str.strip / lstrip / rstrip; chars == nullopt strips whitespace.
std::string py_strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right);
// str.split / str.rsplit; sep == nullopt splits at runs of whitespace.
std::vector<std::string> py_split(std::string_view s, const std::optional<std::string>& sep, long long maxsplit,
                                  bool from_right);
std::vector<std::string> py_splitlines(std::string_view s, bool keepends);
// str.replace with Python's rule for an empty `old` (insert between characters).
std::string py_replace(std::string_view s, std::string_view old, std::string_view new_, long long count);
// str.find / rfind / count over code points; start/end already clipped like a slice.
long long py_find(std::string_view s, std::string_view sub, long long start, long long end, bool from_right);
long long py_count(std::string_view s, std::string_view sub, long long start, long long end);

// repr() of a str: quotes chosen and characters escaped as Python does.
std::string py_repr_string(std::string_view s);

}  // namespace mii::detail::jinja

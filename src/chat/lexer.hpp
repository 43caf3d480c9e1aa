// Splits a template into tokens the way jinja2's lexer does with transformers' settings
// (trim_blocks, lstrip_blocks, keep_trailing_newline off): text between tags, {{ }} / {% %}
// delimiters, and the names, literals and operators inside them. {# #} comments and their
// whitespace vanish here; {% raw %} bodies come out as text.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mii::detail::jinja {

enum class token_kind : std::uint8_t {
  text,            // template data between tags (whitespace control already applied)
  variable_begin,  // {{
  variable_end,    // }}
  block_begin,     // {%
  block_end,       // %}
  name,
  string,   // the literal's value, escapes decoded
  integer,
  floating,
  op,  // + - * / // % ** ~ == != < <= > >= = . , : | ( ) [ ] { } ;
  end,
};

struct token {
  token_kind kind;
  std::uint32_t offset;  // byte offset in the normalized source
  std::string text;      // text, name, string value or operator spelling
  std::int64_t integer = 0;
  double floating = 0;
};

// Where an offset is, for messages: 1-based line and column (columns count characters).
struct source_position {
  int line;
  int column;
};

class source_map {
 public:
  explicit source_map(std::string_view normalized_source);
  source_position at(std::uint32_t offset) const;

 private:
  std::string_view source_;
  std::vector<std::uint32_t> line_starts_;
};

// jinja2 reads a template with every \r\n and \r turned into \n and without one trailing newline.
std::string normalize_template_source(std::string_view source);

// A lexical or grammatical error at a byte offset; the template loader adds the origin, line and
// column and turns it into a mii::error.
struct syntax_failure {
  std::uint32_t offset;
  std::string message;
};

// Tokenizes a normalized source; throws syntax_failure.
std::vector<token> tokenize(std::string_view normalized_source);

}  // namespace mii::detail::jinja

// The parsed form of a template: statements (text, {{ }}, {% %} tags) holding expressions. Nodes
// keep the byte offset they start at so that errors can name a line and column. A parsed
// template is immutable and shared by every render (renders may run on several threads).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "chat/lexer.hpp"
#include "chat/value.hpp"

namespace mii::detail::jinja {

struct filter_entry;
struct test_entry;

enum class expr_kind : std::uint8_t {
  literal,      // `constant`
  name,         // variable `name`
  attribute,    // operands[0].name
  subscript,    // operands[0][operands[1]]
  slice,        // operands[0][operands[1]:operands[2]:operands[3]] (each bound may be null)
  call,         // operands[0](operands[1..], keywords)
  filter,       // operands[0] | name(operands[1..], keywords)
  test,         // operands[0] is [not] name(operands[1..], keywords)
  not_,         // not operands[0]
  negate,       // -operands[0]
  plus,         // +operands[0]
  binary,       // operands[0] op operands[1]: + - * / // % **
  concat,       // operands[0] ~ operands[1] ~ ...
  compare,      // operands[0] ops[0] operands[1] ops[1] operands[2] ... (chained, as Python)
  and_,
  or_,
  conditional,  // operands[0] if operands[1] else operands[2] (else part may be null)
  list,
  tuple,
  dict,         // operands: key, value, key, value...
  block_text,   // the rendered body of a {% filter %} or {% set %} block, fed to its filters
};

struct expr;
using expr_ptr = std::unique_ptr<expr>;

struct keyword_arg {
  std::string name;
  expr_ptr value;
};

struct expr {
  expr_kind kind;
  std::uint32_t offset = 0;
  value constant;                    // literal
  std::string name;                  // name, attribute, filter or test name
  std::string op;                    // binary operator
  std::vector<expr_ptr> operands;
  std::vector<std::string> compare_ops;  // "==", "!=", "<", "<=", ">", ">=", "in", "not in"
  std::vector<keyword_arg> keywords;
  const filter_entry* filter = nullptr;  // resolved when parsed: an unknown name is a syntax error
  const test_entry* test = nullptr;
  bool negated = false;  // test: `is not`
};

// The left side of an assignment: a name, a tuple of targets, or a namespace attribute.
struct target {
  enum class kind : std::uint8_t { name, tuple, ns_attr } type = kind::name;
  std::uint32_t offset = 0;
  std::string name;  // name, or the namespace variable
  std::string attr;  // ns_attr
  std::vector<target> items;
};

enum class stmt_kind : std::uint8_t {
  text,          // `text`
  output,        // {{ expr }}
  if_,           // {% if expr %} body {% else %} else_body (elif nests an if in else_body)
  for_,          // {% for tgt in expr [if loop_filter] %} body {% else %} else_body
  set,           // {% set tgt = expr %}
  set_block,     // {% set tgt [| filters] %} body {% endset %}; expr is the filter chain or null
  macro,         // {% macro name(params) %} body
  call_block,    // {% call[(params)] expr %} body: body is `caller` inside the called macro
  filter_block,  // {% filter chain %} body: expr is the chain over a block_text leaf
  with,          // {% with a = x, ... %} body
  break_,
  continue_,
  generation,    // transformers' {% generation %}: renders its body as it is
};

struct stmt;
using stmt_ptr = std::unique_ptr<stmt>;

struct parameter {
  std::string name;
  expr_ptr default_value;  // null: required
};

struct stmt {
  stmt_kind kind;
  std::uint32_t offset = 0;
  std::string text;
  expr_ptr expr;
  expr_ptr loop_filter;
  target tgt;
  std::vector<stmt_ptr> body;
  std::vector<stmt_ptr> else_body;
  std::string name;                    // macro name
  std::vector<parameter> params;       // macro / call block parameters
  bool uses_varargs = false;           // the macro body reads `varargs`, `kwargs`, `caller`
  bool uses_kwargs = false;
  bool uses_caller = false;
  std::vector<std::pair<target, expr_ptr>> assignments;  // with
};

// A parsed template and what is needed to report positions in it.
struct program {
  std::string origin;  // e.g. "/models/x/tokenizer_config.json (chat_template)"
  std::string source;  // normalized (see normalize_template_source)
  std::unique_ptr<source_map> positions;
  std::vector<stmt_ptr> body;
};

// Parses a template; throws mii::error "origin:line:col: message" on a syntax error.
std::shared_ptr<const program> parse_template(std::string_view source, std::string origin);

}  // namespace mii::detail::jinja

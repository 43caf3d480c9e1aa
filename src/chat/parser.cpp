// Recursive-descent parser with jinja2's grammar (jinja2/parser.py): the same operator precedence
// (or < and < not < comparisons < + - < ~ < * / // % < ** < unary < postfix/filters), the same
// statements, and errors for what jinja2 rejects when it compiles a template.
#include <mii/error.hpp>

#include "chat/ast.hpp"
#include "chat/filters.hpp"
#include "chat/limits.hpp"
#include "chat/py_text.hpp"

namespace mii::detail::jinja {
namespace {

[[noreturn]] void fail_at(std::uint32_t offset, std::string message) {
  throw syntax_failure{offset, std::move(message)};
}

std::string describe(const token& t) {
  switch (t.kind) {
    case token_kind::text: return "template text";
    case token_kind::variable_begin: return "'{{'";
    case token_kind::variable_end: return "end of print statement '}}'";
    case token_kind::block_begin: return "'{%'";
    case token_kind::block_end: return "end of statement block '%}'";
    case token_kind::name: return "'" + t.text + "'";
    case token_kind::string: return "string " + py_repr_string(t.text);
    case token_kind::integer:
    case token_kind::floating: return "number " + t.text;
    case token_kind::op: return "'" + t.text + "'";
    case token_kind::end: return "end of template";
  }
  return "token";
}

// Names a macro body must see to accept extra arguments (jinja2 decides the same way).
void scan_names(const expr* e, bool& varargs, bool& kwargs, bool& caller) {
  if (!e) return;
  if (e->kind == expr_kind::name) {
    varargs |= e->name == "varargs";
    kwargs |= e->name == "kwargs";
    caller |= e->name == "caller";
  }
  for (const auto& o : e->operands) scan_names(o.get(), varargs, kwargs, caller);
  for (const auto& k : e->keywords) scan_names(k.value.get(), varargs, kwargs, caller);
}

void scan_names(const std::vector<stmt_ptr>& body, bool& varargs, bool& kwargs, bool& caller) {
  for (const auto& s : body) {
    scan_names(s->expr.get(), varargs, kwargs, caller);
    scan_names(s->loop_filter.get(), varargs, kwargs, caller);
    for (const auto& p : s->params) scan_names(p.default_value.get(), varargs, kwargs, caller);
    for (const auto& a : s->assignments) scan_names(a.second.get(), varargs, kwargs, caller);
    scan_names(s->body, varargs, kwargs, caller);
    scan_names(s->else_body, varargs, kwargs, caller);
  }
}

class parser {
 public:
  parser(std::vector<token> tokens, const source_map& positions) : t_(std::move(tokens)), positions_(positions) {}

  std::vector<stmt_ptr> parse_all() {
    std::vector<stmt_ptr> body = parse_body({}, nullptr);
    return body;
  }

 private:
  // ---- token stream ----------------------------------------------------------------------
  const token& cur() const { return t_[i_]; }
  const token& peek(std::size_t n = 1) const { return t_[std::min(i_ + n, t_.size() - 1)]; }
  const token& advance() {
    const token& t = t_[i_];
    if (i_ + 1 < t_.size()) ++i_;
    return t;
  }
  bool is_op(std::string_view op) const { return cur().kind == token_kind::op && cur().text == op; }
  bool is_name(std::string_view n) const { return cur().kind == token_kind::name && cur().text == n; }
  bool skip_op(std::string_view op) {
    if (!is_op(op)) return false;
    advance();
    return true;
  }
  bool skip_name(std::string_view n) {
    if (!is_name(n)) return false;
    advance();
    return true;
  }
  void expect_op(std::string_view op) {
    if (!skip_op(op)) fail_at(cur().offset, "expected '" + std::string(op) + "', got " + describe(cur()));
  }
  void expect_name_kw(std::string_view n) {
    if (!skip_name(n)) fail_at(cur().offset, "expected '" + std::string(n) + "', got " + describe(cur()));
  }
  std::string expect_name() {
    if (cur().kind != token_kind::name) fail_at(cur().offset, "expected a name, got " + describe(cur()));
    return advance().text;
  }
  void expect_block_end() {
    if (cur().kind != token_kind::block_end)
      fail_at(cur().offset, "expected end of statement block '%}', got " + describe(cur()));
    advance();
  }

  // Bounds recursion so that "((((...))))" or deeply nested blocks cannot exhaust the stack.
  struct depth_guard {
    parser& p;
    explicit depth_guard(parser& p_) : p(p_) {
      if (++p.depth_ > max_nesting_depth)
        fail_at(p.cur().offset, "template nests deeper than the limit of " + std::to_string(max_nesting_depth) + " levels");
    }
    ~depth_guard() { --p.depth_; }
  };

  // ---- statements ------------------------------------------------------------------------
  // Parses until a {% name %} whose name is in `ends` (left as the current token) or the end.
  std::vector<stmt_ptr> parse_body(std::initializer_list<std::string_view> ends, const token* opened_by) {
    depth_guard guard(*this);
    std::vector<stmt_ptr> body;
    while (true) {
      const token& t = cur();
      if (t.kind == token_kind::end) {
        if (opened_by) {
          std::string wanted;
          for (auto e : ends) wanted += (wanted.empty() ? "'" : " or '") + std::string(e) + "'";
          fail_at(t.offset, "unexpected end of template: the '" + opened_by->text + "' block opened at line " +
                                std::to_string(positions_.at(opened_by->offset).line) + " is not closed (expected " +
                                wanted + ")");
        }
        return body;
      }
      if (t.kind == token_kind::text) {
        auto s = std::make_unique<stmt>();
        s->kind = stmt_kind::text;
        s->offset = t.offset;
        s->text = t.text;
        body.push_back(std::move(s));
        advance();
      } else if (t.kind == token_kind::variable_begin) {
        advance();
        auto s = std::make_unique<stmt>();
        s->kind = stmt_kind::output;
        s->offset = t.offset;
        s->expr = parse_tuple(true, false, {});
        if (cur().kind != token_kind::variable_end)
          fail_at(cur().offset, "expected end of print statement '}}', got " + describe(cur()));
        advance();
        body.push_back(std::move(s));
      } else if (t.kind == token_kind::block_begin) {
        advance();
        if (cur().kind != token_kind::name) fail_at(cur().offset, "expected a tag name after '{%', got " + describe(cur()));
        for (auto e : ends)
          if (cur().text == e) return body;
        body.push_back(parse_statement());
        expect_block_end();
      } else {
        fail_at(t.offset, "unexpected " + describe(t));
      }
    }
  }

  stmt_ptr parse_statement() {
    const token& tag = cur();
    const std::string& n = tag.text;
    if (n == "for") return parse_for();
    if (n == "if") return parse_if();
    if (n == "set") return parse_set();
    if (n == "macro") return parse_macro();
    if (n == "call") return parse_call_block();
    if (n == "filter") return parse_filter_block();
    if (n == "with") return parse_with();
    if (n == "generation") return parse_generation();
    if (n == "print") {
      auto s = make(stmt_kind::output);
      s->expr = parse_tuple(true, false, {});
      return s;
    }
    if (n == "break" || n == "continue") {
      if (loop_depth_ == 0) fail_at(tag.offset, "'" + n + "' outside of a for loop");
      return make(n == "break" ? stmt_kind::break_ : stmt_kind::continue_);
    }
    if (n == "include" || n == "import" || n == "from" || n == "extends" || n == "block" || n == "autoescape")
      fail_at(tag.offset, "the '" + n + "' tag is not supported in chat templates");
    if (n.rfind("end", 0) == 0 || n == "else" || n == "elif")
      fail_at(tag.offset, "unexpected '" + n + "': no open block that it could close or continue");
    fail_at(tag.offset, "unknown tag '" + n + "'");
  }

  stmt_ptr make(stmt_kind k) {
    auto s = std::make_unique<stmt>();
    s->kind = k;
    s->offset = advance().offset;  // the tag name
    return s;
  }

  stmt_ptr parse_for() {
    const token opened = cur();
    auto s = make(stmt_kind::for_);
    s->tgt = parse_assign_target(true, false, {"in"});
    expect_name_kw("in");
    s->expr = parse_tuple(false, false, {"recursive"});
    if (skip_name("if")) s->loop_filter = parse_expression(true);
    if (is_name("recursive")) fail_at(cur().offset, "recursive for loops are not supported in chat templates");
    expect_block_end();
    ++loop_depth_;
    s->body = parse_body({"endfor", "else"}, &opened);
    --loop_depth_;
    if (advance().text == "else") {
      expect_block_end();
      s->else_body = parse_body({"endfor"}, &opened);
      advance();
    }
    return s;
  }

  stmt_ptr parse_if() {
    const token opened = cur();
    auto s = make(stmt_kind::if_);
    s->expr = parse_tuple(false, false, {});
    expect_block_end();
    parse_if_rest(*s, opened);
    return s;
  }

  // The body and branches of an if or elif whose test was parsed; elif becomes an if nested in
  // the else branch, sharing the outer endif.
  void parse_if_rest(stmt& s, const token& opened) {
    s.body = parse_body({"elif", "else", "endif"}, &opened);
    const token& t = advance();
    if (t.text == "elif") {
      auto nested = std::make_unique<stmt>();
      nested->kind = stmt_kind::if_;
      nested->offset = t.offset;
      nested->expr = parse_tuple(false, false, {});
      expect_block_end();
      parse_if_rest(*nested, opened);
      s.else_body.push_back(std::move(nested));
    } else if (t.text == "else") {
      expect_block_end();
      s.else_body = parse_body({"endif"}, &opened);
      advance();
    }
  }

  stmt_ptr parse_set() {
    const token opened = cur();
    auto s = make(stmt_kind::set);
    s->tgt = parse_assign_target(true, true, {});
    if (skip_op("=")) {
      s->expr = parse_tuple(true, false, {});
      return s;
    }
    s->kind = stmt_kind::set_block;
    if (s->tgt.type == target::kind::tuple) fail_at(s->tgt.offset, "a block set ({% set x %}...{% endset %}) assigns one name");
    if (is_op("|")) s->expr = parse_filter_chain(block_text_leaf());
    expect_block_end();
    s->body = parse_body({"endset"}, &opened);
    advance();
    return s;
  }

  expr_ptr block_text_leaf() {
    auto e = std::make_unique<expr>();
    e->kind = expr_kind::block_text;
    e->offset = cur().offset;
    return e;
  }

  stmt_ptr parse_filter_block() {
    const token opened = cur();
    auto s = make(stmt_kind::filter_block);
    if (cur().kind != token_kind::name) fail_at(cur().offset, "expected a filter name, got " + describe(cur()));
    s->expr = parse_filter_chain(block_text_leaf(), true);
    expect_block_end();
    s->body = parse_body({"endfilter"}, &opened);
    advance();
    return s;
  }

  stmt_ptr parse_generation() {
    const token opened = cur();
    auto s = make(stmt_kind::generation);
    expect_block_end();
    s->body = parse_body({"endgeneration"}, &opened);
    advance();
    return s;
  }

  stmt_ptr parse_with() {
    const token opened = cur();
    auto s = make(stmt_kind::with);
    while (cur().kind != token_kind::block_end) {
      if (!s->assignments.empty()) expect_op(",");
      target t = parse_assign_target(false, false, {});
      expect_op("=");
      s->assignments.emplace_back(std::move(t), parse_expression(true));
    }
    expect_block_end();
    s->body = parse_body({"endwith"}, &opened);
    advance();
    return s;
  }

  void parse_signature(stmt& s) {
    expect_op("(");
    while (!is_op(")")) {
      if (!s.params.empty()) expect_op(",");
      if (is_op(")")) break;
      const std::uint32_t at = cur().offset;
      parameter p;
      p.name = expect_name();
      for (const auto& q : s.params)
        if (q.name == p.name) fail_at(at, "duplicate parameter '" + p.name + "'");
      if (skip_op("=")) p.default_value = parse_expression(true);
      else if (!s.params.empty() && s.params.back().default_value)
        fail_at(at, "parameter without a default follows one with a default");
      s.params.push_back(std::move(p));
    }
    expect_op(")");
  }

  stmt_ptr parse_macro() {
    const token opened = cur();
    auto s = make(stmt_kind::macro);
    s->name = expect_name();
    parse_signature(*s);
    expect_block_end();
    const int outer_loops = loop_depth_;
    loop_depth_ = 0;  // break/continue cannot cross a macro body
    s->body = parse_body({"endmacro"}, &opened);
    loop_depth_ = outer_loops;
    advance();
    scan_names(s->body, s->uses_varargs, s->uses_kwargs, s->uses_caller);
    return s;
  }

  stmt_ptr parse_call_block() {
    const token opened = cur();
    auto s = make(stmt_kind::call_block);
    if (is_op("(")) parse_signature(*s);
    s->expr = parse_expression(true);
    if (s->expr->kind != expr_kind::call) fail_at(s->expr->offset, "expected a call after 'call'");
    expect_block_end();
    const int outer_loops = loop_depth_;
    loop_depth_ = 0;
    s->body = parse_body({"endcall"}, &opened);
    loop_depth_ = outer_loops;
    advance();
    scan_names(s->body, s->uses_varargs, s->uses_kwargs, s->uses_caller);
    return s;
  }

  target parse_assign_target(bool with_tuple, bool with_namespace, std::initializer_list<std::string_view> extra_end) {
    target t;
    t.offset = cur().offset;
    if (with_namespace && cur().kind == token_kind::name && peek().kind == token_kind::op && peek().text == ".") {
      t.type = target::kind::ns_attr;
      t.name = advance().text;
      advance();  // .
      t.attr = expect_name();
      return t;
    }
    if (!with_tuple) {
      t.name = expect_name();
      check_assignable(t);
      return t;
    }
    // A "simplified" tuple: names (or parenthesized tuples of names) separated by commas.
    std::vector<target> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (tuple_end(extra_end)) break;
      items.push_back(parse_target_primary());
      if (is_op(",")) is_tuple = true;
      else break;
    }
    if (!is_tuple) {
      if (items.empty()) fail_at(cur().offset, "expected an assignment target, got " + describe(cur()));
      return std::move(items.front());
    }
    t.type = target::kind::tuple;
    t.items = std::move(items);
    return t;
  }

  target parse_target_primary() {
    target t;
    t.offset = cur().offset;
    if (cur().kind == token_kind::name) {
      t.name = advance().text;
      check_assignable(t);
      return t;
    }
    if (skip_op("(")) {
      depth_guard guard(*this);
      t.type = target::kind::tuple;
      while (!is_op(")")) {
        if (!t.items.empty()) expect_op(",");
        if (is_op(")")) break;
        t.items.push_back(parse_target_primary());
      }
      expect_op(")");
      return t;
    }
    fail_at(cur().offset, "cannot assign to " + describe(cur()));
  }

  static void check_assignable(const target& t) {
    static constexpr std::string_view reserved[] = {"true", "false", "none", "True", "False", "None"};
    for (auto r : reserved)
      if (t.name == r) fail_at(t.offset, "cannot assign to '" + t.name + "'");
  }

  bool tuple_end(std::initializer_list<std::string_view> extra_end) const {
    const token& t = cur();
    if (t.kind == token_kind::variable_end || t.kind == token_kind::block_end || t.kind == token_kind::end) return true;
    if (t.kind == token_kind::op && t.text == ")") return true;
    if (t.kind == token_kind::name)
      for (auto e : extra_end)
        if (t.text == e) return true;
    return false;
  }

  // ---- expressions -------------------------------------------------------------------------
  expr_ptr node(expr_kind k, std::uint32_t offset) {
    auto e = std::make_unique<expr>();
    e->kind = k;
    e->offset = offset;
    return e;
  }

  // jinja2's parse_tuple: expressions separated by commas make a tuple; one without a comma is
  // itself.
  expr_ptr parse_tuple(bool with_condexpr, bool explicit_parens, std::initializer_list<std::string_view> extra_end) {
    const std::uint32_t start = cur().offset;
    std::vector<expr_ptr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (tuple_end(extra_end)) break;
      items.push_back(parse_expression(with_condexpr));
      if (is_op(",")) is_tuple = true;
      else break;
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items.front());
      if (!explicit_parens) fail_at(cur().offset, "expected an expression, got " + describe(cur()));
    }
    auto e = node(expr_kind::tuple, start);
    e->operands = std::move(items);
    return e;
  }

  expr_ptr parse_expression(bool with_condexpr) {
    depth_guard guard(*this);
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  expr_ptr parse_condexpr() {
    expr_ptr e = parse_or();
    while (is_name("if")) {
      const std::uint32_t at = advance().offset;
      auto c = node(expr_kind::conditional, at);
      expr_ptr cond = parse_or();
      expr_ptr otherwise = skip_name("else") ? parse_condexpr() : nullptr;
      c->operands.push_back(std::move(e));
      c->operands.push_back(std::move(cond));
      c->operands.push_back(std::move(otherwise));
      e = std::move(c);
    }
    return e;
  }

  expr_ptr parse_or() {
    expr_ptr left = parse_and();
    while (is_name("or")) {
      auto e = node(expr_kind::or_, advance().offset);
      e->operands.push_back(std::move(left));
      e->operands.push_back(parse_and());
      left = std::move(e);
    }
    return left;
  }

  expr_ptr parse_and() {
    expr_ptr left = parse_not();
    while (is_name("and")) {
      auto e = node(expr_kind::and_, advance().offset);
      e->operands.push_back(std::move(left));
      e->operands.push_back(parse_not());
      left = std::move(e);
    }
    return left;
  }

  expr_ptr parse_not() {
    if (is_name("not")) {
      depth_guard guard(*this);
      auto e = node(expr_kind::not_, advance().offset);
      e->operands.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }

  expr_ptr parse_compare() {
    const std::uint32_t start = cur().offset;
    expr_ptr first = parse_math1();
    std::vector<std::string> ops;
    std::vector<expr_ptr> operands;
    while (true) {
      static constexpr std::string_view cmp[] = {"==", "!=", "<", "<=", ">", ">="};
      bool matched = false;
      if (cur().kind == token_kind::op)
        for (auto c : cmp)
          if (cur().text == c) matched = true;
      if (matched) {
        ops.push_back(advance().text);
      } else if (is_name("in")) {
        advance();
        ops.emplace_back("in");
      } else if (is_name("not") && peek().kind == token_kind::name && peek().text == "in") {
        advance();
        advance();
        ops.emplace_back("not in");
      } else {
        break;
      }
      operands.push_back(parse_math1());
    }
    if (ops.empty()) return first;
    auto e = node(expr_kind::compare, start);
    e->operands.push_back(std::move(first));
    for (auto& o : operands) e->operands.push_back(std::move(o));
    e->compare_ops = std::move(ops);
    return e;
  }

  expr_ptr binary(std::string op, std::uint32_t at, expr_ptr l, expr_ptr r) {
    auto e = node(expr_kind::binary, at);
    e->op = std::move(op);
    e->operands.push_back(std::move(l));
    e->operands.push_back(std::move(r));
    return e;
  }

  expr_ptr parse_math1() {
    expr_ptr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      const token& t = advance();
      std::string op = t.text;
      left = binary(op, t.offset, std::move(left), parse_concat());
    }
    return left;
  }

  expr_ptr parse_concat() {
    const std::uint32_t start = cur().offset;
    expr_ptr first = parse_math2();
    if (!is_op("~")) return first;
    auto e = node(expr_kind::concat, start);
    e->operands.push_back(std::move(first));
    while (skip_op("~")) e->operands.push_back(parse_math2());
    return e;
  }

  expr_ptr parse_math2() {
    expr_ptr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const token& t = advance();
      std::string op = t.text;
      left = binary(op, t.offset, std::move(left), parse_pow());
    }
    return left;
  }

  expr_ptr parse_pow() {
    expr_ptr left = parse_unary(true);
    while (is_op("**")) {
      const std::uint32_t at = advance().offset;
      left = binary("**", at, std::move(left), parse_unary(true));
    }
    return left;
  }

  expr_ptr parse_unary(bool with_filter) {
    expr_ptr e;
    if (is_op("-") || is_op("+")) {
      depth_guard guard(*this);
      const token& t = advance();
      e = node(t.text == "-" ? expr_kind::negate : expr_kind::plus, t.offset);
      e->operands.push_back(parse_unary(false));
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  expr_ptr parse_primary() {
    const token& t = cur();
    switch (t.kind) {
      case token_kind::name: {
        advance();
        if (t.text == "true" || t.text == "True") return literal(value::boolean(true), t.offset);
        if (t.text == "false" || t.text == "False") return literal(value::boolean(false), t.offset);
        if (t.text == "none" || t.text == "None") return literal(value::none(), t.offset);
        auto e = node(expr_kind::name, t.offset);
        e->name = t.text;
        return e;
      }
      case token_kind::string: {
        // Adjacent string literals concatenate, as in Python.
        const std::uint32_t at = t.offset;
        std::string s;
        while (cur().kind == token_kind::string) s += advance().text;
        return literal(value::string(std::move(s)), at);
      }
      case token_kind::integer: advance(); return literal(value::integer(t.integer), t.offset);
      case token_kind::floating: advance(); return literal(value::floating(t.floating), t.offset);
      case token_kind::op:
        if (t.text == "(") {
          depth_guard guard(*this);
          advance();
          expr_ptr e = parse_tuple(true, true, {});
          expect_op(")");
          return e;
        }
        if (t.text == "[") return parse_list();
        if (t.text == "{") return parse_dict();
        break;
      default: break;
    }
    fail_at(t.offset, "unexpected " + describe(t));
  }

  expr_ptr literal(value v, std::uint32_t at) {
    auto e = node(expr_kind::literal, at);
    e->constant = std::move(v);
    return e;
  }

  expr_ptr parse_list() {
    depth_guard guard(*this);
    auto e = node(expr_kind::list, advance().offset);
    while (!is_op("]")) {
      if (!e->operands.empty()) expect_op(",");
      if (is_op("]")) break;
      e->operands.push_back(parse_expression(true));
    }
    expect_op("]");
    return e;
  }

  expr_ptr parse_dict() {
    depth_guard guard(*this);
    auto e = node(expr_kind::dict, advance().offset);
    while (!is_op("}")) {
      if (!e->operands.empty()) expect_op(",");
      if (is_op("}")) break;
      e->operands.push_back(parse_expression(true));
      expect_op(":");
      e->operands.push_back(parse_expression(true));
    }
    expect_op("}");
    return e;
  }

  expr_ptr parse_postfix(expr_ptr e) {
    while (true) {
      if (is_op(".") || is_op("[")) e = parse_subscript(std::move(e));
      else if (is_op("(")) e = parse_call(std::move(e));
      else return e;
    }
  }

  expr_ptr parse_filter_expr(expr_ptr e) {
    while (true) {
      if (is_op("|")) e = parse_filter_chain(std::move(e));
      else if (is_name("is")) e = parse_test(std::move(e));
      else if (is_op("(")) e = parse_call(std::move(e));
      else return e;
    }
  }

  expr_ptr parse_subscript(expr_ptr object) {
    depth_guard guard(*this);
    const token& t = advance();
    if (t.text == ".") {
      const token& a = cur();
      if (a.kind == token_kind::name) {
        advance();
        auto e = node(expr_kind::attribute, a.offset);
        e->name = a.text;
        e->operands.push_back(std::move(object));
        return e;
      }
      if (a.kind != token_kind::integer) fail_at(a.offset, "expected a name or number after '.', got " + describe(a));
      advance();
      auto e = node(expr_kind::subscript, a.offset);
      e->operands.push_back(std::move(object));
      e->operands.push_back(literal(value::integer(a.integer), a.offset));
      return e;
    }
    // [ ... ]: one index, a slice, or several (a tuple key).
    const std::uint32_t at = t.offset;
    std::vector<expr_ptr> args;
    while (!is_op("]")) {
      if (!args.empty()) expect_op(",");
      args.push_back(parse_subscribed());
    }
    expect_op("]");
    if (args.empty()) fail_at(at, "expected a subscript inside '[]'");
    expr_ptr key;
    if (args.size() == 1) {
      key = std::move(args.front());
    } else {
      // jinja2 would build a tuple of slice objects here, a key no list or dict of a chat template
      // accepts; mii has no slice value, so it says so rather than evaluate a slice with no object.
      for (const auto& a : args)
        if (a->kind == expr_kind::slice) fail_at(a->offset, "a slice inside a tuple subscript (x[a:b, c]) is not supported in chat templates");
      key = node(expr_kind::tuple, at);
      key->operands = std::move(args);
    }
    if (key->kind == expr_kind::slice) {
      key->operands.insert(key->operands.begin(), std::move(object));
      return key;
    }
    auto e = node(expr_kind::subscript, at);
    e->operands.push_back(std::move(object));
    e->operands.push_back(std::move(key));
    return e;
  }

  // An index or a slice a:b:c (any part may be missing).
  expr_ptr parse_subscribed() {
    const std::uint32_t at = cur().offset;
    std::vector<expr_ptr> parts;
    if (is_op(":")) {
      advance();
      parts.push_back(nullptr);
    } else {
      expr_ptr e = parse_expression(true);
      if (!is_op(":")) return e;
      advance();
      parts.push_back(std::move(e));
    }
    if (is_op(":")) parts.push_back(nullptr);
    else if (!is_op("]") && !is_op(",")) parts.push_back(parse_expression(true));
    else parts.push_back(nullptr);
    if (skip_op(":")) {
      if (!is_op("]") && !is_op(",")) parts.push_back(parse_expression(true));
      else parts.push_back(nullptr);
    } else {
      parts.push_back(nullptr);
    }
    auto s = node(expr_kind::slice, at);
    s->operands = std::move(parts);
    return s;
  }

  // ( args ) of a call, filter or test: positional arguments, then name=value keywords.
  void parse_call_args(expr& e) {
    depth_guard guard(*this);
    expect_op("(");
    bool first = true;
    while (!is_op(")")) {
      if (!first) expect_op(",");
      if (is_op(")")) break;
      first = false;
      if (is_op("*") || is_op("**")) fail_at(cur().offset, "*args and **kwargs in calls are not supported in chat templates");
      if (cur().kind == token_kind::name && peek().kind == token_kind::op && peek().text == "=") {
        keyword_arg k;
        k.name = advance().text;
        advance();
        for (const auto& other : e.keywords)
          if (other.name == k.name) fail_at(cur().offset, "keyword argument '" + k.name + "' repeated");
        k.value = parse_expression(true);
        e.keywords.push_back(std::move(k));
      } else {
        if (!e.keywords.empty()) fail_at(cur().offset, "positional argument follows keyword argument");
        e.operands.push_back(parse_expression(true));
      }
    }
    expect_op(")");
  }

  expr_ptr parse_call(expr_ptr callee) {
    auto e = node(expr_kind::call, cur().offset);
    e->operands.push_back(std::move(callee));
    parse_call_args(*e);
    return e;
  }

  // | name(args) | name ...; `inline_start` when the first filter has no leading '|'.
  expr_ptr parse_filter_chain(expr_ptr input, bool inline_start = false) {
    while (is_op("|") || inline_start) {
      if (!inline_start) advance();
      inline_start = false;
      const std::uint32_t at = cur().offset;
      std::string name = expect_name();
      while (skip_op(".")) {
        name += '.';
        name += expect_name();
      }
      auto e = node(expr_kind::filter, at);
      e->name = name;
      e->filter = find_filter(name);
      if (!e->filter) fail_at(at, "no filter named '" + name + "'");
      e->operands.push_back(std::move(input));
      if (is_op("(")) parse_call_args(*e);
      input = std::move(e);
    }
    return input;
  }

  expr_ptr parse_test(expr_ptr subject) {
    advance();  // is
    const bool negated = skip_name("not");
    const std::uint32_t at = cur().offset;
    std::string name = expect_name();
    while (skip_op(".")) {
      name += '.';
      name += expect_name();
    }
    auto e = node(expr_kind::test, at);
    e->name = name;
    e->negated = negated;
    e->test = find_test(name);
    if (!e->test) fail_at(at, "no test named '" + name + "'");
    e->operands.push_back(std::move(subject));
    if (is_op("(")) {
      parse_call_args(*e);
    } else {
      // One argument may follow without parentheses: `x is divisibleby 3`, `x is sameas none`.
      const token& t = cur();
      const bool starts_arg = t.kind == token_kind::name || t.kind == token_kind::string ||
                              t.kind == token_kind::integer || t.kind == token_kind::floating ||
                              (t.kind == token_kind::op && (t.text == "(" || t.text == "[" || t.text == "{"));
      if (starts_arg && !is_name("else") && !is_name("or") && !is_name("and")) {
        if (is_name("is")) fail_at(t.offset, "tests cannot be chained with 'is'");
        e->operands.push_back(parse_postfix(parse_primary()));
      }
    }
    return e;
  }

  std::vector<token> t_;
  const source_map& positions_;
  std::size_t i_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

std::shared_ptr<const program> parse_template(std::string_view source, std::string origin) {
  if (source.size() > max_template_bytes)
    fail(origin, ": the template is ", source.size(), " bytes, more than the limit of ", max_template_bytes);
  require_utf8(source, origin);
  auto p = std::make_shared<program>();
  p->origin = std::move(origin);
  p->source = normalize_template_source(source);
  p->positions = std::make_unique<source_map>(p->source);
  try {
    p->body = parser(tokenize(p->source), *p->positions).parse_all();
  } catch (const syntax_failure& f) {
    const source_position at = p->positions->at(f.offset);
    fail(p->origin, ":", at.line, ":", at.column, ": syntax error: ", f.message);
  }
  return p;
}

}  // namespace mii::detail::jinja

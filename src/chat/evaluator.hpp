// Runs a parsed template once: jinja2's scoping (a for-loop iteration, a macro call and a block
// body each get a scope; if-blocks do not), its sandbox rules for attribute and item access, and
// the bounds of limits.hpp. One evaluator serves one render on one thread.
#pragma once
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "chat/ast.hpp"
#include "chat/value.hpp"

namespace mii::detail::jinja {

// Variables visible at one level: a for-loop iteration, a macro call, a block, the template.
struct scope {
  scope* parent = nullptr;
  std::vector<std::pair<std::string, value>> vars;
  std::unordered_map<std::string, std::size_t> index;  // built once vars grows large
  bool captured = false;  // a macro defined here refers to it: keep it until the render ends

  const value* find(std::string_view name) const;
  void set(std::string_view name, value v);
};

class evaluator {
 public:
  explicit evaluator(const program& prog);
  ~evaluator();
  evaluator(const evaluator&) = delete;
  evaluator& operator=(const evaluator&) = delete;

  // Renders the template with the keys of `variables` (a dict) as its variables.
  std::string render(const value& variables);

  // ---- what filters, tests, methods and globals use ----
  value attribute(const value& object, const std::string& name);  // object.name, sandboxed
  value item(const value& object, const value& key);               // object[key], sandboxed
  value call(const value& fn, call_args& args);
  bool test(std::string_view name, const value& v, call_args& args);
  value filter(std::string_view name, const value& v, call_args& args);
  namespace_data* new_namespace();
  // Counts bytes of strings the render builds against the work budget (limits.hpp).
  void charge(std::uint64_t bytes);
  // iterate(v), counting the copy against the work budget (filters walk whole lists).
  std::vector<value> items_of(const value& v);
  void step();

  // Used by macro and caller callables.
  scope* new_scope(scope* parent);
  void release_scope(scope* s);
  std::string render_body(const std::vector<stmt_ptr>& body, scope* s);
  value eval(const expr& e, scope* s);
  struct call_guard {
    evaluator& ev;
    explicit call_guard(evaluator& e);
    ~call_guard();
  };
  [[noreturn]] void fail_at(std::uint32_t offset, const std::string& message) const;
  const program& prog() const { return prog_; }

 private:
  enum class flow { normal, break_loop, continue_loop };
  flow exec_body(const std::vector<stmt_ptr>& body, scope* s, std::string& out);
  flow exec(const stmt& st, scope* s, std::string& out);
  void exec_for(const stmt& st, scope* s, std::string& out);
  void exec_call_block(const stmt& st, scope* s, std::string& out);
  void assign(const target& t, const value& v, scope* s);
  void append_output(std::string& out, std::string_view text);
  value eval_node(const expr& e, scope* s);
  value eval_call(const expr& e, scope* s, const value* caller);
  void collect_args(const expr& e, std::size_t first, scope* s, call_args& args);
  value lookup(const std::string& name, scope* s) const;
  value slice(const value& object, const value& start, const value& stop, const value& step);

  const program& prog_;
  std::deque<scope> scopes_;           // every scope this render made (stable addresses)
  std::vector<scope*> free_scopes_;    // released, to reuse
  std::deque<namespace_data> namespaces_;
  std::vector<std::string> block_text_;  // the body a {% filter %} / {% set %} block's filters read
  std::uint64_t steps_ = 0;
  std::uint64_t work_bytes_ = 0;
  int call_depth_ = 0;
};

// Python's `in`, binary operators and unary minus over values (operators.cpp).
bool contains(const value& container, const value& item);
value binary_op(std::string_view op, const value& a, const value& b);
value negate(const value& v);
value positive(const value& v);
// A macro or a call block's `caller` (macros.cpp); `closure` is the scope it was defined in.
value make_macro(const stmt& definition, scope* closure, bool is_caller);
// Attribute tables of the built-in types (methods.cpp): a bound method, or undefined.
value builtin_attribute(const value& object, const std::string& name, bool& found);
// The globals every template sees: range, dict, namespace, joiner, raise_exception, strftime_now.
void install_globals(scope& globals);

}  // namespace mii::detail::jinja

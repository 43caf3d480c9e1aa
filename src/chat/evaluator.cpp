// Executing statements and evaluating expressions, with the step and work budgets of limits.hpp.
// Attribute/item access is in access.cpp, macros in macros.cpp, operators in operators.cpp.
#include "chat/evaluator.hpp"

#include <unordered_map>

#include <mii/error.hpp>

#include "chat/filters.hpp"
#include "chat/limits.hpp"
#include "chat/py_text.hpp"

namespace mii::detail::jinja {

// ---- scopes ---------------------------------------------------------------------------------

const value* scope::find(std::string_view name) const {
  if (!index.empty()) {
    const auto it = index.find(std::string(name));
    return it == index.end() ? nullptr : &vars[it->second].second;
  }
  for (const auto& [k, v] : vars)
    if (k == name) return &v;
  return nullptr;
}

void scope::set(std::string_view name, value v) {
  if (value* old = const_cast<value*>(find(name))) {
    *old = std::move(v);
    return;
  }
  vars.emplace_back(std::string(name), std::move(v));
  if (!index.empty()) {
    index.emplace(vars.back().first, vars.size() - 1);
  } else if (vars.size() > 32) {
    // Many variables (the caller's top-level keys, say): look them up by hash from now on.
    for (std::size_t i = 0; i < vars.size(); ++i) index.emplace(vars[i].first, i);
  }
}

// ---- evaluator --------------------------------------------------------------------------------

evaluator::evaluator(const program& prog) : prog_(prog) {}
evaluator::~evaluator() = default;

evaluator::call_guard::call_guard(evaluator& e) : ev(e) {
  if (++ev.call_depth_ > max_call_depth) {
    --ev.call_depth_;
    raise("macro calls nest deeper than the limit of " + std::to_string(max_call_depth));
  }
}
evaluator::call_guard::~call_guard() { --ev.call_depth_; }

void evaluator::fail_at(std::uint32_t offset, const std::string& message) const {
  const source_position at = prog_.positions->at(offset);
  fail(prog_.origin, ":", at.line, ":", at.column, ": ", message);
}

void evaluator::step() {
  if (++steps_ > max_steps)
    raise("the template ran more than the limit of " + std::to_string(max_steps) + " steps");
}

void evaluator::charge(std::uint64_t bytes) {
  work_bytes_ += bytes;
  if (work_bytes_ > max_work_bytes)
    raise("the template built more than the limit of " + std::to_string(max_work_bytes) + " bytes of text");
}

std::vector<value> evaluator::items_of(const value& v) {
  std::vector<value> items = iterate(v);
  charge(v.is_string() ? 48 * items.size() : 16 * items.size());
  return items;
}

scope* evaluator::new_scope(scope* parent) {
  scope* s;
  if (!free_scopes_.empty()) {
    s = free_scopes_.back();
    free_scopes_.pop_back();
  } else {
    s = &scopes_.emplace_back();
  }
  s->parent = parent;
  return s;
}

void evaluator::release_scope(scope* s) {
  if (s->captured) return;
  s->vars.clear();
  s->index.clear();
  s->parent = nullptr;
  free_scopes_.push_back(s);
}

namespace_data* evaluator::new_namespace() {
  charge(1024);  // namespaces live until the render ends: count them against the budget
  return &namespaces_.emplace_back();
}

std::string evaluator::render(const value& variables) {
  scope* globals = new_scope(nullptr);
  install_globals(*globals);
  globals->captured = true;
  scope* vars = new_scope(globals);
  vars->captured = true;
  if (variables.is_dict()) {
    // Later duplicates were merged by the JSON reader; here keys are unique strings.
    for (const auto& [k, v] : variables.dict().entries)
      if (k.is_string()) vars->set(k.str(), v);
  }
  scope* top = new_scope(vars);
  top->captured = true;
  std::string out;
  exec_body(prog_.body, top, out);
  return out;
}

value evaluator::lookup(const std::string& name, scope* s) const {
  for (; s; s = s->parent)
    if (const value* v = s->find(name)) return *v;
  return value::missing(name);
}

void evaluator::append_output(std::string& out, std::string_view text) {
  if (out.size() + text.size() > max_string_bytes)
    raise("the rendered text exceeds the limit of " + std::to_string(max_string_bytes) + " bytes");
  charge(text.size());
  out += text;
}

std::string evaluator::render_body(const std::vector<stmt_ptr>& body, scope* s) {
  std::string out;
  exec_body(body, s, out);
  return out;
}

evaluator::flow evaluator::exec_body(const std::vector<stmt_ptr>& body, scope* s, std::string& out) {
  for (const auto& st : body) {
    const flow f = exec(*st, s, out);
    if (f != flow::normal) return f;
  }
  return flow::normal;
}

namespace {
// Marks a scope and its parents as kept until the render ends (a macro or caller refers to it).
void capture(scope* s) {
  for (; s && !s->captured; s = s->parent) s->captured = true;
}
}  // namespace

evaluator::flow evaluator::exec(const stmt& st, scope* s, std::string& out) {
  try {
    step();
    switch (st.kind) {
      case stmt_kind::text: append_output(out, st.text); return flow::normal;
      case stmt_kind::output: {
        const value v = eval(*st.expr, s);
        if (v.is_string()) append_output(out, v.str());
        else append_output(out, py_str(v));
        return flow::normal;
      }
      case stmt_kind::if_:
        return truthy(eval(*st.expr, s)) ? exec_body(st.body, s, out) : exec_body(st.else_body, s, out);
      case stmt_kind::for_: exec_for(st, s, out); return flow::normal;
      case stmt_kind::set: assign(st.tgt, eval(*st.expr, s), s); return flow::normal;
      case stmt_kind::set_block:
      case stmt_kind::filter_block: {
        scope* inner = new_scope(s);
        std::string text;
        const flow f = exec_body(st.body, inner, text);
        release_scope(inner);
        if (f != flow::normal) return f;
        value v;
        if (st.expr) {
          block_text_.push_back(std::move(text));
          v = eval(*st.expr, s);
          block_text_.pop_back();
        } else {
          v = value::string(std::move(text));
        }
        if (st.kind == stmt_kind::set_block) assign(st.tgt, v, s);
        else append_output(out, py_str(v));
        return flow::normal;
      }
      case stmt_kind::macro:
        capture(s);
        charge(1024);  // a captured scope lives until the render ends
        s->set(st.name, make_macro(st, s, false));
        return flow::normal;
      case stmt_kind::call_block: exec_call_block(st, s, out); return flow::normal;
      case stmt_kind::with: {
        scope* inner = new_scope(s);
        for (const auto& [t, e] : st.assignments) assign(t, eval(*e, inner), inner);
        const flow f = exec_body(st.body, inner, out);
        release_scope(inner);
        return f;
      }
      case stmt_kind::generation: {
        scope* inner = new_scope(s);
        const flow f = exec_body(st.body, inner, out);
        release_scope(inner);
        return f;
      }
      case stmt_kind::break_: return flow::break_loop;
      case stmt_kind::continue_: return flow::continue_loop;
    }
  } catch (const eval_failure& f) {
    fail_at(st.offset, f.message);
  }
  return flow::normal;
}

void evaluator::exec_for(const stmt& st, scope* s, std::string& out) {
  value iterable = eval(*st.expr, s);
  std::vector<value> items;
  try {
    // A temporary list (range(n), a filter's result) is moved, not copied.
    if (iterable.is_sequence_like() && iterable.items().view != list_view::iterator && iterable.sole_list_owner())
      items = std::move(iterable.items().items);
    else
      items = items_of(iterable);
  } catch (const eval_failure& f) {
    fail_at(st.expr->offset, f.message);
  }
  if (st.loop_filter) {
    std::vector<value> kept;
    for (value& item : items) {
      step();
      scope* f = new_scope(s);
      assign(st.tgt, item, f);
      const bool keep = truthy(eval(*st.loop_filter, f));
      release_scope(f);
      if (keep) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  // jinja2 runs the else block unless some iteration reached the end of the body: a loop whose
  // every iteration ends in {% continue %} (or that breaks in its first) runs it too.
  bool completed_an_iteration = false;
  if (!items.empty()) {
    auto state = std::make_shared<loop_state>();
    state->items = std::move(items);
    const value loop_value = value::loop(state);
    for (std::size_t i = 0; i < state->items.size(); ++i) {
      step();
      state->index0 = i;
      scope* it = new_scope(s);
      assign(st.tgt, state->items[i], it);
      it->set("loop", loop_value);
      const flow f = exec_body(st.body, it, out);
      release_scope(it);
      if (f == flow::break_loop) break;
      if (f == flow::normal) completed_an_iteration = true;
    }
  }
  if (!completed_an_iteration && !st.else_body.empty()) {
    scope* e = new_scope(s);
    exec_body(st.else_body, e, out);
    release_scope(e);
  }
}

void evaluator::exec_call_block(const stmt& st, scope* s, std::string& out) {
  capture(s);
  charge(1024);
  const value caller = make_macro(st, s, true);
  const value result = eval_call(*st.expr, s, &caller);
  append_output(out, py_str(result));
}

void evaluator::assign(const target& t, const value& v, scope* s) {
  switch (t.type) {
    case target::kind::name: s->set(t.name, v); return;
    case target::kind::tuple: {
      if (!(v.is_string() || v.is_sequence_like() || v.is_dict() || v.is_undefined()))
        raise("cannot unpack non-iterable " + type_name(v) + " object");
      const std::vector<value> parts = iterate(v);
      if (parts.size() < t.items.size())
        raise("not enough values to unpack (expected " + std::to_string(t.items.size()) + ", got " +
              std::to_string(parts.size()) + ")");
      if (parts.size() > t.items.size())
        raise("too many values to unpack (expected " + std::to_string(t.items.size()) + ")");
      for (std::size_t i = 0; i < parts.size(); ++i) assign(t.items[i], parts[i], s);
      return;
    }
    case target::kind::ns_attr: {
      const value ns = lookup(t.name, s);
      if (!ns.is_namespace()) raise("cannot assign attribute on non-namespace object");
      ns.ns_data().attrs.set(value::string(t.attr), v);
      return;
    }
  }
}

// ---- expressions --------------------------------------------------------------------------------

value evaluator::eval(const expr& e, scope* s) {
  try {
    step();
    return eval_node(e, s);
  } catch (const eval_failure& f) {
    fail_at(e.offset, f.message);
  }
}

void evaluator::collect_args(const expr& e, std::size_t first, scope* s, call_args& args) {
  for (std::size_t i = first; i < e.operands.size(); ++i) args.positional.push_back(eval(*e.operands[i], s));
  for (const auto& k : e.keywords) args.keywords.emplace_back(k.name, eval(*k.value, s));
}

value evaluator::eval_call(const expr& e, scope* s, const value* caller) {
  const value fn = eval(*e.operands[0], s);
  call_args args;
  collect_args(e, 1, s, args);
  if (caller) args.keywords.emplace_back("caller", *caller);
  try {
    return call(fn, args);
  } catch (const eval_failure& f) {
    fail_at(e.offset, f.message);
  }
}

namespace {
void charge_result(evaluator& ev, const value& v) {
  if (v.is_string()) ev.charge(v.str().size());
  else if (v.is_sequence_like()) ev.charge(16 * v.items().items.size());
  else if (v.is_dict()) ev.charge(32 * v.dict().entries.size());
}
}  // namespace

value evaluator::eval_node(const expr& e, scope* s) {
  switch (e.kind) {
    case expr_kind::literal: return e.constant;
    case expr_kind::name: return lookup(e.name, s);
    case expr_kind::block_text: return value::string(block_text_.back());
    case expr_kind::attribute: return attribute(eval(*e.operands[0], s), e.name);
    case expr_kind::subscript: {
      const value object = eval(*e.operands[0], s);
      return item(object, eval(*e.operands[1], s));
    }
    case expr_kind::slice: {
      const value object = eval(*e.operands[0], s);
      value bounds[3];
      for (int i = 0; i < 3; ++i) bounds[i] = e.operands[i + 1] ? eval(*e.operands[i + 1], s) : value::none();
      return slice(object, bounds[0], bounds[1], bounds[2]);
    }
    case expr_kind::call: {
      value r = eval_call(e, s, nullptr);
      charge_result(*this, r);
      return r;
    }
    case expr_kind::filter: {
      const value input = eval(*e.operands[0], s);
      call_args args;
      collect_args(e, 1, s, args);
      if (!e.filter->fn) raise("the '" + e.name + "' filter is not supported by mii's template engine");
      value r = e.filter->fn(*this, input, args);
      charge_result(*this, r);
      return r;
    }
    case expr_kind::test: {
      const value subject = eval(*e.operands[0], s);
      call_args args;
      collect_args(e, 1, s, args);
      if (!e.test->fn) raise("the '" + e.name + "' test is not supported by mii's template engine");
      return value::boolean(e.test->fn(*this, subject, args) != e.negated);
    }
    case expr_kind::not_: return value::boolean(!truthy(eval(*e.operands[0], s)));
    case expr_kind::negate: return negate(eval(*e.operands[0], s));
    case expr_kind::plus: return positive(eval(*e.operands[0], s));
    case expr_kind::binary: {
      const value a = eval(*e.operands[0], s);
      const value b = eval(*e.operands[1], s);
      value r = binary_op(e.op, a, b);
      charge_result(*this, r);
      return r;
    }
    case expr_kind::concat: {
      // str() of every operand, joined: sized first so that the result is built in one copy.
      std::vector<value> parts;
      parts.reserve(e.operands.size());
      std::size_t total = 0;
      for (const auto& o : e.operands) {
        value v = eval(*o, s);
        if (!v.is_string()) v = value::string(py_str(v));
        total += v.str().size();
        if (total > max_string_bytes) raise("a string exceeds the limit of " + std::to_string(max_string_bytes) + " bytes");
        parts.push_back(std::move(v));
      }
      std::string text;
      text.reserve(total);
      for (const value& p : parts) text += p.str();
      charge(text.size());
      return value::string(std::move(text));
    }
    case expr_kind::compare: {
      value left = eval(*e.operands[0], s);
      for (std::size_t i = 0; i < e.compare_ops.size(); ++i) {
        value right = eval(*e.operands[i + 1], s);
        const std::string& op = e.compare_ops[i];
        bool r;
        if (op == "in") r = contains(right, left);
        else if (op == "not in") r = !contains(right, left);
        else r = py_compare(left, right, op);
        if (!r) return value::boolean(false);
        left = std::move(right);
      }
      return value::boolean(true);
    }
    case expr_kind::and_: {
      value left = eval(*e.operands[0], s);
      return truthy(left) ? eval(*e.operands[1], s) : left;
    }
    case expr_kind::or_: {
      value left = eval(*e.operands[0], s);
      return truthy(left) ? left : eval(*e.operands[1], s);
    }
    case expr_kind::conditional: {
      if (truthy(eval(*e.operands[1], s))) return eval(*e.operands[0], s);
      if (e.operands[2]) return eval(*e.operands[2], s);
      auto info = std::make_shared<undefined_info>();
      info->hint = "the inline if-expression evaluated to false and no else section was defined";
      return value::undefined(std::move(info));
    }
    case expr_kind::list:
    case expr_kind::tuple: {
      std::vector<value> items;
      items.reserve(e.operands.size());
      for (const auto& o : e.operands) items.push_back(eval(*o, s));
      charge(16 * items.size());
      return e.kind == expr_kind::list ? value::list(std::move(items)) : value::tuple(std::move(items));
    }
    case expr_kind::dict: {
      auto d = std::make_shared<dict_data>();
      for (std::size_t i = 0; i + 1 < e.operands.size(); i += 2) {
        value k = eval(*e.operands[i], s);
        value v = eval(*e.operands[i + 1], s);
        if (!is_hashable(k)) raise("unhashable type: '" + type_name(k) + "'");
        d->set(std::move(k), std::move(v));
      }
      charge(32 * d->entries.size());
      return value::dict(std::move(d));
    }
  }
  return {};
}

value evaluator::call(const value& fn, call_args& args) {
  if (fn.is_callable()) return fn.fn().call(*this, args);
  if (fn.is_undefined()) fail_undefined(fn);
  raise("'" + type_name(fn) + "' object is not callable");
}

bool evaluator::test(std::string_view name, const value& v, call_args& args) {
  const test_entry* t = find_test(name);
  if (!t) raise("no test named '" + std::string(name) + "'");
  if (!t->fn) raise("the '" + std::string(name) + "' test is not supported by mii's template engine");
  return t->fn(*this, v, args);
}

value evaluator::filter(std::string_view name, const value& v, call_args& args) {
  const filter_entry* f = find_filter(name);
  if (!f) raise("no filter named '" + std::string(name) + "'");
  if (!f->fn) raise("the '" + std::string(name) + "' filter is not supported by mii's template engine");
  return f->fn(*this, v, args);
}

}  // namespace mii::detail::jinja
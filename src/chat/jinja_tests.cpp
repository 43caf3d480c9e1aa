// jinja2 3.1's built-in tests (jinja2/tests.py): {% if x is defined %}, x is divisibleby 3, ...
// The type tests answer as Python's isinstance checks do; jinja2's Undefined is iterable,
// a sequence and callable (it defines __iter__, __len__, __getitem__ and __call__).
#include "chat/evaluator.hpp"
#include "chat/filters.hpp"
#include "chat/py_text.hpp"

namespace mii::detail::jinja {
namespace {

void no_args(const char* name, call_args& args) { arg_binder(name, args, {}); }

bool t_defined(evaluator&, const value& v, call_args& a) { return no_args("defined", a), !v.is_undefined(); }
bool t_undefined(evaluator&, const value& v, call_args& a) { return no_args("undefined", a), v.is_undefined(); }
bool t_none(evaluator&, const value& v, call_args& a) { return no_args("none", a), v.is_none(); }
bool t_boolean(evaluator&, const value& v, call_args& a) { return no_args("boolean", a), v.is_bool(); }
bool t_true(evaluator&, const value& v, call_args& a) { return no_args("true", a), v.is_bool() && v.as_bool(); }
bool t_false(evaluator&, const value& v, call_args& a) { return no_args("false", a), v.is_bool() && !v.as_bool(); }
bool t_integer(evaluator&, const value& v, call_args& a) { return no_args("integer", a), v.is_int(); }
bool t_float(evaluator&, const value& v, call_args& a) { return no_args("float", a), v.is_float(); }
bool t_number(evaluator&, const value& v, call_args& a) { return no_args("number", a), v.is_number(); }
bool t_string(evaluator&, const value& v, call_args& a) { return no_args("string", a), v.is_string(); }
bool t_mapping(evaluator&, const value& v, call_args& a) { return no_args("mapping", a), v.is_dict(); }
bool t_lower(evaluator&, const value& v, call_args& a) { return no_args("lower", a), py_islower(py_str(v)); }
bool t_upper(evaluator&, const value& v, call_args& a) { return no_args("upper", a), py_isupper(py_str(v)); }
bool t_escaped(evaluator&, const value&, call_args& a) { return no_args("escaped", a), false; }

bool t_sequence(evaluator&, const value& v, call_args& a) {
  no_args("sequence", a);
  switch (v.type()) {
    case kind::string:
    case kind::tuple:
    case kind::dict:
    case kind::undefined: return true;
    case kind::list: return v.items().indexable();
    default: return false;
  }
}

bool t_iterable(evaluator&, const value& v, call_args& a) {
  no_args("iterable", a);
  switch (v.type()) {
    case kind::string:
    case kind::list:
    case kind::tuple:
    case kind::dict:
    case kind::undefined:
    case kind::loop: return true;
    default: return false;
  }
}

bool t_callable(evaluator&, const value& v, call_args& a) {
  no_args("callable", a);
  return v.is_callable() || v.is_undefined() || v.is_loop();
}

bool modulo_is(const value& v, const value& divisor, std::int64_t expected) {
  return py_equal(binary_op("%", v, divisor), value::integer(expected));
}
bool t_odd(evaluator&, const value& v, call_args& a) { return no_args("odd", a), modulo_is(v, value::integer(2), 1); }
bool t_even(evaluator&, const value& v, call_args& a) { return no_args("even", a), modulo_is(v, value::integer(2), 0); }
bool t_divisibleby(evaluator&, const value& v, call_args& args) {
  arg_binder a("divisibleby", args, {"num"});
  return modulo_is(v, a.required(0), 0);
}

bool t_sameas(evaluator&, const value& v, call_args& args) {
  arg_binder a("sameas", args, {"other"});
  const value& o = a.required(0);
  if (v.type() != o.type()) return false;
  switch (v.type()) {
    case kind::none:
    case kind::undefined: return true;
    case kind::boolean:
    case kind::integer:
    case kind::floating: return py_equal(v, o);
    default: return v.identity() == o.identity();
  }
}

bool t_in(evaluator&, const value& v, call_args& args) {
  arg_binder a("in", args, {"seq"});
  return contains(a.required(0), v);
}

template <const char* Op>
bool t_compare(evaluator&, const value& v, call_args& args) {
  arg_binder a(Op, args, {"other"});
  return py_compare(v, a.required(0), Op);
}
constexpr char eq[] = "==", ne[] = "!=", gt[] = ">", ge[] = ">=", lt[] = "<", le[] = "<=";

bool t_filter(evaluator&, const value& v, call_args& a) {
  no_args("filter", a);
  return v.is_string() && find_filter(v.str()) != nullptr;
}
bool t_test(evaluator&, const value& v, call_args& a) {
  no_args("test", a);
  return v.is_string() && find_test(v.str()) != nullptr;
}

constexpr test_entry tests[] = {
    {"odd", t_odd}, {"even", t_even}, {"divisibleby", t_divisibleby}, {"defined", t_defined},
    {"undefined", t_undefined}, {"filter", t_filter}, {"test", t_test}, {"none", t_none},
    {"boolean", t_boolean}, {"false", t_false}, {"true", t_true}, {"integer", t_integer}, {"float", t_float},
    {"lower", t_lower}, {"upper", t_upper}, {"string", t_string}, {"mapping", t_mapping}, {"number", t_number},
    {"sequence", t_sequence}, {"iterable", t_iterable}, {"callable", t_callable}, {"sameas", t_sameas},
    {"escaped", t_escaped}, {"in", t_in}, {"==", t_compare<eq>}, {"eq", t_compare<eq>}, {"equalto", t_compare<eq>},
    {"!=", t_compare<ne>}, {"ne", t_compare<ne>}, {">", t_compare<gt>}, {"gt", t_compare<gt>},
    {"greaterthan", t_compare<gt>}, {"ge", t_compare<ge>}, {">=", t_compare<ge>}, {"<", t_compare<lt>},
    {"lt", t_compare<lt>}, {"lessthan", t_compare<lt>}, {"<=", t_compare<le>}, {"le", t_compare<le>},
};

}  // namespace

const test_entry* find_test(std::string_view name) {
  for (const auto& t : tests)
    if (t.name == name) return &t;
  return nullptr;
}

}  // namespace mii::detail::jinja
